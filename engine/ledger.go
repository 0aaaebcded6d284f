package engine

import (
	"fmt"
	"sync"
)

// Ledger enforces dollar budgets at run time. Before each request the
// caller reserves the request's worst-case cost; after the response is
// recorded it settles the reservation at the actual cost. Spend that is
// recorded plus spend that is reserved never exceeds a limit, so under any
// concurrency and any retry pattern the recorded spend stays within the
// budget.
type Ledger struct {
	mu       sync.Mutex
	limit    float64            // total dollars; 0 = none
	perGen   map[string]float64 // per-generator dollars; absent = none
	spent    float64
	spentBy  map[string]float64
	reserved float64
	resBy    map[string]float64
}

// NewLedger starts a ledger with the spend already recorded in the state.
func NewLedger(limit float64, perGenerator map[string]float64, spent float64, spentBy map[string]float64) *Ledger {
	l := &Ledger{limit: limit, perGen: map[string]float64{}, spent: spent, spentBy: map[string]float64{}, resBy: map[string]float64{}}
	for k, v := range perGenerator {
		l.perGen[k] = v
	}
	for k, v := range spentBy {
		l.spentBy[k] = v
	}
	return l
}

// BudgetError says which budget a reservation would exceed.
type BudgetError struct {
	Budget    string // "usd" or "usd:GENERATOR"
	Limit     float64
	Spent     float64
	Reserved  float64
	Requested float64
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("budget %s exhausted: $%.2f spent and $%.2f in flight of $%.2f; the next request may cost up to $%.4f",
		e.Budget, e.Spent, e.Reserved, e.Limit, e.Requested)
}

// Reservation is an amount held against the budgets until settled.
type Reservation struct {
	l       *Ledger
	gen     string
	amount  float64
	settled bool
}

// Reserve holds amount for generator gen, or returns a *BudgetError when
// that would exceed the total or the generator's budget.
func (l *Ledger) Reserve(gen string, amount float64) (*Reservation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limit > 0 && l.spent+l.reserved+amount > l.limit {
		return nil, &BudgetError{Budget: "usd", Limit: l.limit, Spent: l.spent, Reserved: l.reserved, Requested: amount}
	}
	if lim, ok := l.perGen[gen]; ok && l.spentBy[gen]+l.resBy[gen]+amount > lim {
		return nil, &BudgetError{Budget: "usd:" + gen, Limit: lim, Spent: l.spentBy[gen], Reserved: l.resBy[gen], Requested: amount}
	}
	l.reserved += amount
	l.resBy[gen] += amount
	return &Reservation{l: l, gen: gen, amount: amount}, nil
}

// Settle releases the reservation and books actual, the cost the provider
// reported, which the caller has already made durable. actual above the
// reservation is booked all the same (the provider charged it) and shows
// as spend; it cannot happen when the reservation is a true worst case.
func (r *Reservation) Settle(actual float64) {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.settled {
		return
	}
	r.settled = true
	l.reserved -= r.amount
	l.resBy[r.gen] -= r.amount
	l.spent += actual
	l.spentBy[r.gen] += actual
}

// Spent returns the dollars booked so far, in total and for gen.
func (l *Ledger) Spent(gen string) (total, byGen float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spent, l.spentBy[gen]
}

// Limit returns the total budget (0 when none).
func (l *Ledger) Limit() float64 { return l.limit }
