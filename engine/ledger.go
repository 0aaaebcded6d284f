package engine

import (
	"context"
	"fmt"
	"math"
	"sync"
)

// Ledger enforces dollar budgets at run time. Before each request the
// caller reserves the request's worst-case cost; after the response is
// recorded it settles the reservation at the actual cost. Spend that is
// recorded plus spend that is reserved never exceeds a limit, so under any
// concurrency and any retry pattern the recorded spend stays within the
// budget.
//
// Amounts are kept in integer nanodollars, so that a thousand reservations
// of a cent add up to exactly ten dollars; reservations round up, spend to
// the nearest nanodollar.
type Ledger struct {
	mu       sync.Mutex
	limit    int64            // total; 0 = none
	perGen   map[string]int64 // per generator; absent = none
	spent    int64
	spentBy  map[string]int64
	reserved int64
	resBy    map[string]int64
	changed  chan struct{} // closed and replaced when a reservation settles
}

const nano = 1e9

func toNanoUp(usd float64) int64          { return int64(math.Ceil(usd * nano)) }
func toNano(usd float64) int64            { return int64(math.Round(usd * nano)) }
func fromNano(n int64) float64            { return float64(n) / nano }
func fits(used, amount, limit int64) bool { return used+amount <= limit }

// NewLedger starts a ledger with the spend already recorded in the state.
func NewLedger(limit float64, perGenerator map[string]float64, spent float64, spentBy map[string]float64) *Ledger {
	l := &Ledger{limit: toNano(limit), perGen: map[string]int64{}, spent: toNano(spent), spentBy: map[string]int64{},
		resBy: map[string]int64{}, changed: make(chan struct{})}
	for k, v := range perGenerator {
		l.perGen[k] = toNano(v)
	}
	for k, v := range spentBy {
		l.spentBy[k] = toNano(v)
	}
	return l
}

// BudgetError says which budget a request cannot fit in.
type BudgetError struct {
	Budget    string // "usd" or "usd:GENERATOR"
	Limit     float64
	Spent     float64
	Requested float64
}

func (e *BudgetError) Error() string {
	if e.Budget == budgetGPUHours {
		return fmt.Sprintf("budget gpu_hours exhausted: %.2f of %.2f GPU-hours used, and the next job is estimated at %.2f",
			e.Spent, e.Limit, e.Requested)
	}
	return fmt.Sprintf("budget %s exhausted: $%.4f of $%.2f spent, and the next request may cost up to $%.4f",
		e.Budget, e.Spent, e.Limit, e.Requested)
}

// Reservation is an amount held against the budgets until settled.
type Reservation struct {
	l       *Ledger
	gen     string
	amount  int64
	settled bool
}

// Reserve holds amount (dollars) for generator gen. When it does not fit
// but other reservations are in flight, it waits for them to settle, since
// they usually cost less than their worst case; when it cannot fit even
// alone it returns a *BudgetError. It returns ctx's error if ctx ends while
// waiting.
func (l *Ledger) Reserve(ctx context.Context, gen string, amount float64) (*Reservation, error) {
	n := toNanoUp(amount)
	for {
		l.mu.Lock()
		totalOK := l.limit == 0 || fits(l.spent+l.reserved, n, l.limit)
		lim, hasGen := l.perGen[gen]
		genOK := !hasGen || fits(l.spentBy[gen]+l.resBy[gen], n, lim)
		if totalOK && genOK {
			l.reserved += n
			l.resBy[gen] += n
			l.mu.Unlock()
			return &Reservation{l: l, gen: gen, amount: n}, nil
		}
		var err *BudgetError
		switch {
		case !totalOK && !fits(l.spent, n, l.limit):
			err = &BudgetError{Budget: "usd", Limit: fromNano(l.limit), Spent: fromNano(l.spent), Requested: amount}
		case !genOK && !fits(l.spentBy[gen], n, lim):
			err = &BudgetError{Budget: "usd:" + gen, Limit: fromNano(lim), Spent: fromNano(l.spentBy[gen]), Requested: amount}
		}
		ch := l.changed
		l.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Settle releases the reservation and books actual, the cost the provider
// reported, which the caller has already made durable. Actual above the
// reservation is booked all the same (the provider charged it); it cannot
// happen when the reservation is a true worst case.
func (r *Reservation) Settle(actual float64) {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.settled {
		return
	}
	r.settled = true
	a := toNano(actual)
	l.reserved -= r.amount
	l.resBy[r.gen] -= r.amount
	l.spent += a
	l.spentBy[r.gen] += a
	close(l.changed)
	l.changed = make(chan struct{})
}

// Spent returns the dollars booked so far, in total and for gen.
func (l *Ledger) Spent(gen string) (total, byGen float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fromNano(l.spent), fromNano(l.spentBy[gen])
}
