package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/tokens"
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
// the nearest nanodollar; amounts beyond maxNano (about $9 billion) count
// as maxNano, so no reported usage can overflow them.
//
// The guarantee holds while every response costs at most its reservation.
// A provider may report more (docs/budgets.md): judgeUsage refuses usage
// that is not a bill and marks usage beyond what the request could cost
// as an anomaly that stops the step, but the reported cost is booked all
// the same (it was billed), and a settlement that takes the spend past a
// limit returns a *BudgetError with the overshoot, which stops the run.
// From then on no reservation fits, so the overshoot is bounded by the
// requests already in flight when the limit was crossed: they are
// recorded and settled, and nothing new is sent.
type Ledger struct {
	mu       sync.Mutex
	limit    int64            // total; 0 = none
	perGen   map[string]int64 // per generator; absent = none
	spent    int64
	spentBy  map[string]int64
	reserved int64
	resBy    map[string]int64
	// fixed holds, for the whole run, what no step of it settles: the
	// worst case of batches of steps not in the plan (HoldFixed). It
	// counts like spend when a request is fitted.
	fixed   int64
	fixedBy map[string]int64
	changed chan struct{} // closed and replaced when a reservation settles
	over    *BudgetError  // the first settlement that crossed a limit
	crossed chan struct{} // closed by that settlement
}

const nano = 1e9

// maxNano bounds an amount: a quarter of the int64 range, so that sums of
// a few of them cannot overflow either.
const maxNano = math.MaxInt64 / 4

func toNanoUp(usd float64) int64 { return clampNano(math.Ceil(usd * nano)) }
func toNano(usd float64) int64   { return clampNano(math.Round(usd * nano)) }

func clampNano(n float64) int64 {
	switch {
	case n != n || n <= 0: // NaN or nothing; negative spend is never credited
		return 0
	case n >= maxNano:
		return maxNano
	}
	return int64(n)
}

func fromNano(n int64) float64            { return float64(n) / nano }
func fits(used, amount, limit int64) bool { return used+amount <= limit }

// NewLedger starts a ledger with the spend already recorded in the state.
func NewLedger(limit float64, perGenerator map[string]float64, spent float64, spentBy map[string]float64) *Ledger {
	l := &Ledger{limit: toNano(limit), perGen: map[string]int64{}, spent: toNano(spent), spentBy: map[string]int64{},
		resBy: map[string]int64{}, fixedBy: map[string]int64{}, changed: make(chan struct{}), crossed: make(chan struct{})}
	for k, v := range perGenerator {
		l.perGen[k] = toNano(v)
	}
	for k, v := range spentBy {
		l.spentBy[k] = toNano(v)
	}
	return l
}

// BudgetError says which budget a request cannot fit in, or, with
// Overshoot set, which budget a settlement took the spend past.
type BudgetError struct {
	Budget    string // "usd" or "usd:GENERATOR"
	Limit     float64
	Spent     float64
	Requested float64
	// Held is what batches of steps not in the plan hold (HoldFixed).
	Held float64
	// Overshoot is the spend beyond the limit when a provider's reported
	// usage exceeded what was reserved; Why says what it reported.
	Overshoot float64
	Why       string
}

func (e *BudgetError) Error() string {
	if e.Overshoot > 0 {
		msg := fmt.Sprintf("budget %s exceeded by $%s: $%s of $%s spent, because a provider reported more usage than its requests could cost",
			e.Budget, plainUSD(e.Overshoot), plainUSD(e.Spent), plainUSD(e.Limit))
		if e.Why != "" {
			msg += " (" + e.Why + ")"
		}
		return msg + "; the run stopped at once, and only requests already in flight were settled after it"
	}
	if e.Budget == budgetGPUHours {
		return fmt.Sprintf("budget gpu_hours exhausted: %.2f of %.2f GPU-hours used, and the next job is estimated at %.2f",
			e.Spent, e.Limit, e.Requested)
	}
	if e.Held > 0 {
		return fmt.Sprintf("budget %s exhausted: $%.4f of $%.2f spent and $%.4f held by batches of steps not in the plan (apply the spec they were made with to record them), and the next request may cost up to $%.4f",
			e.Budget, e.Spent, e.Limit, e.Held, e.Requested)
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
		totalOK := l.limit == 0 || fits(l.spent+l.fixed+l.reserved, n, l.limit)
		lim, hasGen := l.perGen[gen]
		genOK := !hasGen || fits(l.spentBy[gen]+l.fixedBy[gen]+l.resBy[gen], n, lim)
		if totalOK && genOK {
			l.reserved += n
			l.resBy[gen] += n
			l.mu.Unlock()
			return &Reservation{l: l, gen: gen, amount: n}, nil
		}
		var err *BudgetError
		switch {
		case !totalOK && !fits(l.spent+l.fixed, n, l.limit):
			err = &BudgetError{Budget: "usd", Limit: fromNano(l.limit), Spent: fromNano(l.spent), Held: fromNano(l.fixed), Requested: amount}
		case !genOK && !fits(l.spentBy[gen]+l.fixedBy[gen], n, lim):
			err = &BudgetError{Budget: "usd:" + gen, Limit: fromNano(lim), Spent: fromNano(l.spentBy[gen]), Held: fromNano(l.fixedBy[gen]), Requested: amount}
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
// happen when the reservation is a true worst case. When it takes the
// spend past a limit, Settle returns a *BudgetError naming the limit and
// the overshoot: the caller stops, and no reservation fits any more.
// Negative actual is booked as zero: spend is never credited.
func (r *Reservation) Settle(actual float64) error {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.settled {
		return nil
	}
	r.settled = true
	a := toNano(actual)
	l.reserved -= r.amount
	l.resBy[r.gen] -= r.amount
	l.spent = min(l.spent+a, maxNano)
	l.spentBy[r.gen] = min(l.spentBy[r.gen]+a, maxNano)
	close(l.changed)
	l.changed = make(chan struct{})
	if a <= r.amount {
		return nil
	}
	var be *BudgetError
	if l.limit > 0 && l.spent > l.limit {
		be = &BudgetError{Budget: "usd", Limit: fromNano(l.limit), Spent: fromNano(l.spent), Overshoot: fromNano(l.spent - l.limit)}
	} else if lim, ok := l.perGen[r.gen]; ok && l.spentBy[r.gen] > lim {
		be = &BudgetError{Budget: "usd:" + r.gen, Limit: fromNano(lim), Spent: fromNano(l.spentBy[r.gen]), Overshoot: fromNano(l.spentBy[r.gen] - lim)}
	}
	if be != nil && l.over == nil {
		l.over = be
		close(l.crossed)
	}
	if be == nil {
		return nil
	}
	return be
}

// Crossed is closed once a settlement took the spend past a limit: from
// then on nothing new is sent.
func (l *Ledger) Crossed() <-chan struct{} { return l.crossed }

// Final is the budget error an apply ends with: the first settlement that
// crossed a limit, when one did, with the spend booked once the requests
// then in flight were settled too; otherwise b.
func (l *Ledger) Final(b *BudgetError) *BudgetError {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.over
	if e == nil {
		return b
	}
	spent := l.spent
	if gen, ok := strings.CutPrefix(e.Budget, "usd:"); ok {
		spent = l.spentBy[gen]
	}
	e.Spent = fromNano(spent)
	e.Overshoot = max(e.Overshoot, e.Spent-e.Limit)
	return e
}

// plainUSD formats dollars for budget messages: cents, or four decimals
// below a dollar.
func plainUSD(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.4f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Spent returns the dollars booked so far, in total and for gen.
func (l *Ledger) Spent(gen string) (total, byGen float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fromNano(l.spent), fromNano(l.spentBy[gen])
}

// Usage a provider reports is judged before it is settled
// (docs/budgets.md):
//
//   - negative counts are invalid: the response is recorded as rejected
//     with the reason, nothing is booked (never a credit), and the step
//     fails;
//   - more prompt tokens than the prompt's bound plus usageTolerance, or
//     more completion tokens than max_tokens plus usageTolerance, is an
//     anomaly: the reported cost is booked (the provider billed it), the
//     response is recorded as rejected with the reason, and the step
//     fails;
//   - no completion tokens for a non-empty completion is an anomaly too:
//     the request's reservation (its worst case) is booked, since the data
//     was not free.
//
// Anomalies are judged for priced generators only: a self-hosted model's
// counts bill nothing.
//
// usageTolerance covers what a chat template may add beyond the bound
// (a system preamble some templates insert) and providers that count a
// stop token past max_tokens.
const usageTolerance = 256

// usageVerdict is what to book and record for one response.
type usageVerdict struct {
	in, out int     // the tokens to record: the reported ones, or 0 for invalid usage
	cost    float64 // dollars to book
	reject  string  // the reason the response is not used; "" when fine
	err     error   // the step's error; nil when fine
}

// judgeUsage judges the usage of c, a response of generator g to a
// request whose prompt has at most promptBound tokens, that may generate
// maxTokens (0: no limit) and for which reserved dollars were held.
func judgeUsage(g *spec.Generator, c Completion, promptBound, maxTokens int, reserved float64) usageVerdict {
	in, out := c.PromptTokens, c.CompletionTokens
	cost := price(g, in, out)
	anomaly := func(why string) usageVerdict {
		why = "usage anomaly: " + why
		return usageVerdict{in: in, out: out, cost: cost, reject: why, err: fmt.Errorf("generator %s: %s; it is booked as reported and the step stopped", g.Name, why)}
	}
	switch {
	case in >= 0 && out >= 0 && g.Price == nil:
		// Nothing is billed (a self-hosted model): its counts cannot
		// break a budget, and a server's template may add what no
		// bound foresees.
	case in < 0 || out < 0:
		why := fmt.Sprintf("invalid usage: %d prompt and %d completion tokens reported", in, out)
		return usageVerdict{in: 0, out: 0, reject: why, err: fmt.Errorf("generator %s: %s: the response is not used and nothing is credited", g.Name, why)}
	case in > promptBound+usageTolerance:
		return anomaly(fmt.Sprintf("%d prompt tokens reported for a prompt of at most %d", in, promptBound))
	case maxTokens > 0 && out > maxTokens+usageTolerance:
		return anomaly(fmt.Sprintf("%d completion tokens reported, max_tokens is %d", out, maxTokens))
	case out == 0 && c.Text != "":
		v := anomaly(fmt.Sprintf("no completion tokens reported for a completion of %d bytes", len(c.Text)))
		v.cost = max(cost, reserved)
		v.err = fmt.Errorf("generator %s: %s; its reservation ($%s) is booked and the step stopped", g.Name, v.reject, plainUSD(v.cost))
		return v
	}
	return usageVerdict{in: in, out: out, cost: cost}
}

// promptBound bounds a request's prompt tokens for generator g: with the
// model's real tokenizer where agora knows it offline (OpenAI's models,
// package tokens) and the generator is priced, the content's tokens plus
// perMessageOverhead per message and 3 for the reply's priming (OpenAI
// counts 3 and 3); otherwise the bytes (a byte-level BPE token covers at
// least one byte).
func promptBound(g *spec.Generator, msgs []Message) int {
	if g != nil && g.Price != nil && tokens.Encoding(g.Model) != "" {
		n := 3
		for _, m := range msgs {
			c, method := promptCounter.Count(g.Model, m.Content)
			if method == tokens.Heuristic {
				return byteBound(msgs)
			}
			n += c + len(m.Role) + perMessageOverhead
		}
		return n
	}
	return byteBound(msgs)
}

// promptCounter counts prompts with the models' tokenizers (loaded once).
var promptCounter tokens.Counter

// byteBound bounds a prompt's tokens by its bytes.
func byteBound(msgs []Message) int {
	prompt := 3
	for _, m := range msgs {
		prompt += len(m.Content) + len(m.Role) + perMessageOverhead
	}
	return prompt
}

// settle books v on res and says how the step goes on: the budget's
// error when the settlement crossed a limit (with the anomaly as its
// reason), else the verdict's error, else nil.
func settle(res *Reservation, v usageVerdict) error {
	if err := res.Settle(v.cost); err != nil {
		var be *BudgetError
		if errors.As(err, &be) && be.Why == "" {
			be.Why = v.reject
		}
		return err
	}
	return v.err
}

// overshot reports whether err is a settlement's crossing of a budget,
// which outranks any other error of a step.
func overshot(err error) bool {
	var be *BudgetError
	return errors.As(err, &be) && be.Overshoot > 0
}

// ReservePrefix reserves amounts (dollars, for generator gen) in order,
// as many as fit now, without waiting: a batch takes the requests the
// budgets can cover, and the rest wait for a later batch. It returns the
// reservations made, a prefix of amounts, possibly none. When not even
// the first fits and nothing is reserved by anyone, nothing ever will: it
// returns the *BudgetError of the first.
func (l *Ledger) ReservePrefix(gen string, amounts []float64) ([]*Reservation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Reservation
	lim, hasGen := l.perGen[gen]
	for _, a := range amounts {
		n := toNanoUp(a)
		if (l.limit > 0 && !fits(l.spent+l.fixed+l.reserved, n, l.limit)) || (hasGen && !fits(l.spentBy[gen]+l.fixedBy[gen]+l.resBy[gen], n, lim)) {
			break
		}
		l.reserved += n
		l.resBy[gen] += n
		out = append(out, &Reservation{l: l, gen: gen, amount: n})
	}
	if len(out) > 0 || len(amounts) == 0 || l.reserved > 0 {
		return out, nil
	}
	a := amounts[0]
	if l.limit > 0 && !fits(l.spent+l.fixed, toNanoUp(a), l.limit) {
		return nil, &BudgetError{Budget: "usd", Limit: fromNano(l.limit), Spent: fromNano(l.spent), Held: fromNano(l.fixed), Requested: a}
	}
	return nil, &BudgetError{Budget: "usd:" + gen, Limit: fromNano(lim), Spent: fromNano(l.spentBy[gen]), Held: fromNano(l.fixedBy[gen]), Requested: a}
}

// Hold reserves amount for gen whether or not it fits: requests already
// submitted (a batch a killed apply left at the provider) are paid for
// whatever the budget says now, and hold it until they are settled.
func (l *Ledger) Hold(gen string, amount float64) *Reservation {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := toNanoUp(amount)
	l.reserved += n
	l.resBy[gen] += n
	return &Reservation{l: l, gen: gen, amount: n}
}

// HoldFixed holds amount for gen for the rest of the run: requests that
// may be paid for and that no step of this run settles (a batch of a step
// not in the plan). Unlike Hold's, nothing waits for it to settle.
func (l *Ledger) HoldFixed(gen string, amount float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := toNanoUp(amount)
	l.fixed = min(l.fixed+n, maxNano)
	l.fixedBy[gen] = min(l.fixedBy[gen]+n, maxNano)
}

// Changed is closed at the next settlement.
func (l *Ledger) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}
