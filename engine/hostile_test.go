package engine_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/state"
)

// The hostile stand-in's usage modes through a whole apply: usage is
// judged before it is settled (docs/budgets.md).

// stepRecords returns the generate step's records, accepted or not.
func stepRecords(t *testing.T, store *state.Store, stepID string) (n int, rejected []string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+store.Path()+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT accepted, reject_reason FROM generations WHERE step_id = ?`, stepID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var ok bool
		var why string
		if err := rows.Scan(&ok, &why); err != nil {
			t.Fatal(err)
		}
		n++
		if !ok {
			rejected = append(rejected, why)
		}
	}
	return n, rejected
}

// Negative usage is an error of the response: the step fails saying so,
// nothing is credited, and an honest run after it stays in its budget.
func TestHostileNegativeUsageNeverCredits(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 20, concurrency: 4})
	f.srv.SetHostile(apitest.HostileNegativeUsage)
	res, store := f.apply(context.Background(), nil)
	gen := f.generateStep()
	if why := res.Failed[gen.Address]; !strings.Contains(why, "usage.prompt_tokens is -100000000: negative") {
		t.Fatalf("failed %v: want the step failed for its negative usage", res.Failed)
	}
	if spent := recordedCost(t, store); spent != 0 {
		t.Fatalf("spent %v after negative usage: want 0, never a credit", spent)
	}
	store.Close()

	f.srv.SetHostile(apitest.HostileNone)
	f.exp.Budgets.USD = 0.05
	res, store = f.apply(context.Background(), nil)
	if spent := recordedCost(t, store); spent > 0.05 || spent <= 0 {
		t.Fatalf("honest run spent %v against $0.05 (%+v)", spent, res)
	}
}

// Usage far beyond what a request could cost (1e12 completion tokens) is
// booked as reported, recorded as an anomaly, and, crossing the budget,
// stops the run naming the budget and the overshoot.
func TestHostileHugeUsageStopsTheRun(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 20, concurrency: 1, budget: 10})
	f.srv.SetHostile(apitest.HostileHugeUsage)
	res, store := f.apply(context.Background(), nil)
	if res.Budget == nil || res.Budget.Overshoot <= 0 {
		t.Fatalf("result %+v: want the run stopped by the crossed budget", res)
	}
	msg := res.Err().Error()
	for _, want := range []string{"budget usd exceeded by $", "1000000000000 completion tokens reported, max_tokens is 600"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	spent := recordedCost(t, store)
	if spent < 8e6 { // 1e12 tokens at $8/M: billed, so booked
		t.Fatalf("spent %v: the reported usage must be booked", spent)
	}
	// At concurrency 1, the crossing response and at most one request
	// sent before it was settled.
	sent := f.srv.Stats().Requests
	if sent > 2 {
		t.Fatalf("%d requests: nothing new may be sent after the crossing", sent)
	}
	n, rejected := stepRecords(t, store, f.generateStep().ID)
	if int64(n) != sent || len(rejected) != n || !strings.Contains(rejected[0], "usage anomaly") {
		t.Fatalf("%d records, rejected %q: want the response recorded as an anomaly", n, rejected)
	}
}

// TestOvershootBound measures the overshoot of a provider that reports
// 20,000 prompt tokens for every request (about 15 times the byte-based
// bound): the spend past the budget comes only from requests already in
// flight when the first anomaly (or crossing) was settled: at most the
// concurrency, and nothing is sent after it. Measured on a 2-core machine:
// 5 requests, $0.2011 spent of $0.05, an overshoot of $0.1511 (the bound:
// 8 × $0.0448).
func TestOvershootBound(t *testing.T) {
	const conc = 8
	f := newFixture(t, fixtureOpts{instances: 200, concurrency: conc, budget: 0.05, latency: 30 * time.Millisecond})
	f.srv.SetHostile(apitest.HostileOverReport)
	res, store := f.apply(context.Background(), nil)
	spent := recordedCost(t, store)
	sent := f.srv.Stats().Requests
	n, rejected := stepRecords(t, store, f.generateStep().ID)
	perRequest := (20000*2 + 600*8) / 1e6 // the most one of them books
	t.Logf("budget $0.05: %d requests sent, %d recorded, spent $%.4f (overshoot $%.4f, at most %d × $%.4f)",
		sent, n, spent, spent-0.05, conc, perRequest)
	// The first anomalous response, and those in flight when it was
	// settled: at most the concurrency.
	if sent > conc+1 {
		t.Errorf("%d requests sent at concurrency %d: requests after the first anomaly", sent, conc)
	}
	if int64(n) != sent || len(rejected) != n {
		t.Errorf("%d requests, %d recorded, %d rejected: each is recorded as an anomaly", sent, n, len(rejected))
	}
	if spent-0.05 > float64(conc)*perRequest {
		t.Errorf("overshoot $%.4f beyond %d requests in flight", spent-0.05, conc)
	}
	if spent > 0.05 && (res.Budget == nil || res.Budget.Overshoot <= 0 || !strings.Contains(res.Err().Error(), "exceeded by")) {
		t.Errorf("spent $%.4f of $0.05 but the result %+v does not name the overshoot", spent, res.Budget)
	}
	if res.Budget != nil && mathAbs(res.Budget.Spent-spent) > 1e-9 {
		t.Errorf("the budget error says $%.4f spent, the state $%.4f", res.Budget.Spent, spent)
	}
}

func mathAbs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Zero usage for a non-empty completion is an anomaly: the request's
// reservation is booked (the data was not free) and the step stops.
func TestHostileZeroUsage(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 10, concurrency: 1})
	f.srv.SetHostile(apitest.HostileZeroUsage)
	res, store := f.apply(context.Background(), nil)
	gen := f.generateStep()
	if why := res.Failed[gen.Address]; !strings.Contains(why, "no completion tokens reported") {
		t.Fatalf("failed %v: want the step stopped by the zero usage", res.Failed)
	}
	if spent := recordedCost(t, store); spent <= 0 {
		t.Fatalf("spent %v: the reservation must be booked", spent)
	}
}

// After the first interrupt no new attempt starts, retries included.
func TestStopStartsNoRetry(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 50, concurrency: 4, latency: 20 * time.Millisecond,
		faults: apitest.Faults{ServerError: 1}})
	stop := make(chan struct{})
	var atStop atomic.Int64
	go func() {
		for f.srv.Stats().Requests < 8 {
			time.Sleep(time.Millisecond)
		}
		atStop.Store(f.srv.Stats().Requests)
		close(stop)
	}()
	start := time.Now()
	res, _ := f.apply(context.Background(), stop)
	after := f.srv.Stats().Requests - atStop.Load()
	if !res.Stopped {
		t.Fatalf("result %+v: want stopped", res)
	}
	if after > 4 || time.Since(start) > 5*time.Second {
		t.Fatalf("%d requests after the interrupt (in %v): retries must not start", after, time.Since(start))
	}
}

// A provider answering 100 MB bodies costs neither memory nor state: each
// attempt fails at the body cap, nothing of it is stored, and the state
// stays small.
func TestHostileHugeBodyStateSize(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 4, concurrency: 2})
	f.srv.SetHostile(apitest.HostileHugeBody)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, store := f.apply(context.Background(), nil)
	runtime.ReadMemStats(&after)
	if why := res.Failed[f.generateStep().Address]; !strings.Contains(why, "response body too large") {
		t.Fatalf("failed %v: want the body cap named", res.Failed)
	}
	store.Close()
	var size int64
	for _, name := range []string{"state.db", "state.db-wal"} {
		if fi, err := os.Stat(filepath.Join(f.dir, ".agora", name)); err == nil {
			size += fi.Size()
		}
	}
	if size > 4<<20 {
		t.Fatalf("state is %d bytes after refusing huge bodies", size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
		t.Fatalf("allocated %d MiB refusing %d huge bodies", alloc>>20, f.srv.Stats().Requests)
	}
}
