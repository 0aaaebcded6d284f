package engine_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/internal/syncbuf"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// batchFixture is a fixture whose generator is in batch mode at half
// price, polled every few milliseconds.
func batchFixture(t *testing.T, o fixtureOpts, b spec.Batch) *fixture {
	t.Helper()
	f := newFixture(t, o)
	g := f.exp.Generators["g"]
	b.On = true
	if b.Window == "" {
		b.Window = "24h"
	}
	g.Provider.OpenAI.Batch = b
	g.Price.BatchDiscount = 0.5
	return f
}

func (f *fixture) applyBatch(ctx context.Context, set func(*engine.Options)) (*engine.Result, *state.Store) {
	f.t.Helper()
	return f.applyWith(ctx, func(o *engine.Options) {
		o.Providers = providers.New(providers.Tuning{BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond,
			AttemptTimeout: 10 * time.Second, BatchPoll: 5 * time.Millisecond, BatchCancelWait: 5 * time.Second})
		if set != nil {
			set(o)
		}
	})
}

// batchCost is what the server's batches billed, at the batch price.
func (f *fixture) batchCost() float64 {
	st := f.srv.BatchStats()
	return (float64(st.PromptTokens)*2 + float64(st.CompletionTokens)*8) / 2 / 1e6
}

// checkOnce checks that every slot of the generate step is accepted
// exactly once and that no request was paid twice.
func (f *fixture) checkOnce(store *state.Store) {
	f.t.Helper()
	gen := f.generateStep()
	slots := map[int]int{}
	if err := store.Accepted(context.Background(), gen.ID, func(g state.Generation) error {
		slots[g.Slot]++
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	for slot := 0; slot < gen.Instances; slot++ {
		if slots[slot] != 1 {
			f.t.Errorf("slot %d accepted %d times", slot, slots[slot])
		}
	}
	for id, n := range f.srv.BatchStats().PerCustomID {
		if n != 1 {
			f.t.Errorf("request %s paid %d times", id, n)
		}
	}
}

// TestBatchApply: a step larger than max_requests goes in several
// batches, through slow validation, failed lines, truncated completions
// (rejected, asked again in a later batch) and 5xx on download; every
// instance is recorded once at the batch price, equal to the server's
// tally, and the progress shows the batches.
func TestBatchApply(t *testing.T) {
	f := batchFixture(t, fixtureOpts{instances: 120, concurrency: 8, faults: apitest.Faults{Truncated: 0.05}},
		spec.Batch{MaxRequests: 50})
	f.srv.SetBatch(apitest.BatchOptions{Validation: 30 * time.Millisecond, LineDelay: time.Millisecond, FailEvery: 9, DownloadErrors: 2})
	var progress syncbuf.Buffer
	f.progress = &progress
	res, store := f.applyBatch(context.Background(), nil)
	gen := f.generateStep()
	if len(res.Done) != 1 || res.Done[0] != gen.Address {
		t.Fatalf("apply: %+v %v", res, res.Err())
	}
	f.checkOnce(store)
	bst := f.srv.BatchStats()
	t.Logf("batch stats %+v", bst)
	if bst.Batches < 4 || bst.Failed == 0 || f.srv.Stats().Outcomes[apitest.OutcomeTruncated] == 0 {
		t.Errorf("batch stats %+v, outcomes %v: not every fault was exercised", bst, f.srv.Stats().Outcomes)
	}
	if st := f.srv.Stats(); st.Served != int64(bst.Served) {
		t.Errorf("%d responses served, %d of them in batches: a request went synchronously", st.Served, bst.Served)
	}
	if got, want := recordedCost(t, store), f.batchCost(); math.Abs(got-want) > 1e-9 || want == 0 {
		t.Errorf("recorded %.9f, server tally at the batch price %.9f", got, want)
	}
	batches, err := store.Batches(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if !b.Done || b.BatchID == "" || b.FileID == "" || b.Status != "completed" {
			t.Errorf("batch %+v", b)
		}
		if len(b.Lines) > 50 {
			t.Errorf("batch of %d lines, max_requests is 50", len(b.Lines))
		}
	}
	// The result files went once their lines were recorded.
	if left, _ := os.ReadDir(filepath.Join(f.dir, ".agora", "batches")); len(left) != 0 {
		t.Errorf("%d batch directories left in .agora/batches", len(left))
	}
	// And at the provider: inputs, outputs and error files deleted.
	if bst := f.srv.BatchStats(); bst.Stored != 0 || bst.Deleted < bst.Files {
		t.Errorf("%d files left at the provider, %d deleted of %d uploaded", bst.Stored, bst.Deleted, bst.Files)
	}
	if !strings.Contains(progress.String(), "batches: ") {
		t.Errorf("progress never showed the batches:\n%s", progress.String())
	}
}

// TestBatchExpiry: lines a batch could not run in its window are sent
// again in a new batch; with sync_after passed, synchronously at the full
// price.
func TestBatchExpiry(t *testing.T) {
	f := batchFixture(t, fixtureOpts{instances: 40, concurrency: 8}, spec.Batch{})
	f.srv.SetBatch(apitest.BatchOptions{ExpireAfter: 25})
	res, store := f.applyBatch(context.Background(), nil)
	if err := res.Err(); err != nil || len(res.Done) != 1 {
		t.Fatalf("apply: %v", err)
	}
	f.checkOnce(store)
	if st := f.srv.BatchStats(); st.Expired == 0 || st.Batches < 2 {
		t.Errorf("stats %+v", st)
	}
	if got, want := recordedCost(t, store), f.batchCost(); math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, server tally at the batch price %.9f", got, want)
	}

	g := batchFixture(t, fixtureOpts{instances: 40, concurrency: 8}, spec.Batch{SyncAfter: "1ns"})
	g.srv.SetBatch(apitest.BatchOptions{ExpireAfter: 25})
	res, store = g.applyBatch(context.Background(), func(o *engine.Options) {})
	if err := res.Err(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	g.checkOnce(store)
	bst, st := g.srv.BatchStats(), g.srv.Stats()
	if bst.Batches != 1 || st.Served-int64(bst.Served) < 15 {
		t.Errorf("batches %d, %d served synchronously: want the expired lines sent synchronously", bst.Batches, st.Served-int64(bst.Served))
	}
	syncCost := (float64(st.PromptTokens-bst.PromptTokens)*2 + float64(st.CompletionTokens-bst.CompletionTokens)*8) / 1e6
	if got, want := recordedCost(t, store), g.batchCost()+syncCost; math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, server tally %.9f (batch) + %.9f (sync)", got, g.batchCost(), syncCost)
	}
}

// TestBatchBudgetSplits: a budget below the worst case of the whole step
// splits it: each batch reserves the worst case of its requests, so the
// spend never passes the budget, and later batches take what the settled
// ones left.
func TestBatchBudgetSplits(t *testing.T) {
	twin := batchFixture(t, fixtureOpts{instances: 60, concurrency: 8}, spec.Batch{})
	res, _ := twin.applyBatch(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	full := twin.batchCost()

	f := batchFixture(t, fixtureOpts{instances: 60, concurrency: 8}, spec.Batch{})
	f.exp.Budgets.USD = full * 1.5 // well below the worst case (every completion at max_tokens)
	res, store := f.applyBatch(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	f.checkOnce(store)
	spent := recordedCost(t, store)
	if spent > f.exp.Budgets.USD || math.Abs(spent-f.batchCost()) > 1e-9 {
		t.Errorf("spent %.9f of %.9f, tally %.9f", spent, f.exp.Budgets.USD, f.batchCost())
	}
	if n := f.srv.BatchStats().Batches; n < 2 {
		t.Errorf("%d batch: the step was not split", n)
	}

	// A budget too small for all: it stops, never over.
	h := batchFixture(t, fixtureOpts{instances: 60, concurrency: 8}, spec.Batch{})
	h.exp.Budgets.USD = full / 2
	res, store = h.applyBatch(context.Background(), nil)
	if res.Budget == nil {
		t.Fatalf("want a budget stop: %+v %v", res, res.Err())
	}
	if spent := recordedCost(t, store); spent > h.exp.Budgets.USD || math.Abs(spent-h.batchCost()) > 1e-9 {
		t.Errorf("spent %.9f of %.9f, tally %.9f", spent, h.exp.Budgets.USD, h.batchCost())
	}
}

// TestBatchCancel: the first stop sends no new batch and waits for those
// at the provider; cancelling the context cancels them at the provider and
// records what they completed; the next apply completes paying nothing
// twice.
func TestBatchCancel(t *testing.T) {
	f := batchFixture(t, fixtureOpts{instances: 60, concurrency: 8}, spec.Batch{MaxRequests: 30})
	f.srv.SetBatch(apitest.BatchOptions{LineDelay: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	go func() {
		for f.srv.BatchStats().Served < 10 {
			time.Sleep(time.Millisecond)
		}
		close(stop)
		cancel()
	}()
	res, store := f.applyBatch(ctx, func(o *engine.Options) { o.Stop = stop })
	if !res.Stopped {
		t.Fatalf("want stopped: %+v", res)
	}
	bst := f.srv.BatchStats()
	t.Logf("cancelled: %+v; server batches %v", bst, f.srv.BatchStatus())
	if bst.Cancels == 0 {
		t.Errorf("no batch was cancelled at the provider: %+v", bst)
	}
	if got, want := recordedCost(t, store), f.batchCost(); math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, tally %.9f: a cancelled batch's completions were lost", got, want)
	}
	store.Close()
	f.srv.SetBatch(apitest.BatchOptions{})
	res, store = f.applyBatch(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatalf("resume: %v", err)
	}
	f.checkOnce(store)
	if got, want := recordedCost(t, store), f.batchCost(); math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, tally %.9f", got, want)
	}
}

// TestBatchCostPerInstance is the benchmark of docs/benchmarks.md: the
// same plan (200 instances, one in twenty completions truncated and asked
// again) applied synchronously and in batch mode at a 50% batch discount;
// it reports the recorded cost per accepted instance of each, and checks
// that batch mode costs half, within the spread of the completions'
// lengths.
func TestBatchCostPerInstance(t *testing.T) {
	const n = 200
	o := fixtureOpts{instances: n, concurrency: 16, faults: apitest.Faults{Truncated: 0.05}}
	syncF := newFixture(t, o)
	syncF.exp.Generators["g"].Price.BatchDiscount = 0.5 // priced, not used: batch is off
	t0 := time.Now()
	res, syncStore := syncF.apply(context.Background(), nil)
	syncTime := time.Since(t0)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	batchF := batchFixture(t, o, spec.Batch{})
	t0 = time.Now()
	res, batchStore := batchF.applyBatch(context.Background(), nil)
	batchTime := time.Since(t0)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	per := func(f *fixture, store *state.Store) (float64, int) {
		st, _, err := store.Step(context.Background(), f.generateStep().ID)
		if err != nil {
			t.Fatal(err)
		}
		return recordedCost(t, store) / float64(st.Accepted), st.Accepted + st.Rejected
	}
	s, sreq := per(syncF, syncStore)
	b, breq := per(batchF, batchStore)
	t.Logf("sync:  $%.6f per instance (%d requests, %s)", s, sreq, syncTime.Round(time.Millisecond))
	t.Logf("batch: $%.6f per instance (%d requests in %d batches, %s)", b, breq, batchF.srv.BatchStats().Batches, batchTime.Round(time.Millisecond))
	t.Logf("batch / sync = %.3f", b/s)
	if r := b / s; r < 0.45 || r > 0.55 {
		t.Errorf("batch costs %.3f of sync, want about 0.5", r)
	}
}

// TestBatchLimits: max_bytes and max_enqueued_tokens split a step like
// max_requests: no input file above max_bytes, and no more batches at the
// provider at once than the enqueued tokens allow.
func TestBatchLimits(t *testing.T) {
	f := batchFixture(t, fixtureOpts{instances: 40, concurrency: 8}, spec.Batch{MaxBytes: 30000})
	res, store := f.applyBatch(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	f.checkOnce(store)
	st := f.srv.BatchStats()
	t.Logf("max_bytes 30000: %d batches, the largest file %d bytes", st.Batches, st.MaxFileBytes)
	if st.MaxFileBytes > 30000 || st.Batches < 3 {
		t.Errorf("max_bytes 30000: %d batches, the largest file %d bytes", st.Batches, st.MaxFileBytes)
	}

	// About 1,100 prompt tokens a request: 12,000 enqueued tokens let
	// batches of ten or so run, one at a time.
	g := batchFixture(t, fixtureOpts{instances: 40, concurrency: 8}, spec.Batch{MaxEnqueuedTokens: 12000})
	g.srv.SetBatch(apitest.BatchOptions{Validation: 20 * time.Millisecond})
	res, store = g.applyBatch(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	g.checkOnce(store)
	st = g.srv.BatchStats()
	t.Logf("max_enqueued_tokens 12000: %d batches, at most %d at once", st.Batches, st.MaxRunning)
	if st.MaxRunning != 1 || st.Batches < 3 {
		t.Errorf("max_enqueued_tokens 12000: %d batches, at most %d at once", st.Batches, st.MaxRunning)
	}
	if got, want := recordedCost(t, store), g.batchCost(); math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, tally %.9f", got, want)
	}
}

// TestBatchEnqueuedShared: the provider counts enqueued tokens per
// account and model, so two generators of the same endpoint and model
// share one max_enqueued_tokens: their batches never run together when
// one batch takes most of it.
func TestBatchEnqueuedShared(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 20, concurrency: 8, extra: `generators: h: {
	provider: openai: {base_url: generators.g.provider.openai.base_url, api_key_env: generators.g.provider.openai.api_key_env}
	model: generators.g.model
	price: {input: 2, output: 8}
	limits: concurrency: 8
	sampling: {max_tokens: 600, temperature: 0.5}
}`})
	for _, n := range []string{"g", "h"} {
		g := f.exp.Generators[n]
		g.Provider.OpenAI.Batch = spec.Batch{On: true, Window: "24h", MaxEnqueuedTokens: 12000}
		g.Price.BatchDiscount = 0.5
	}
	f.srv.SetBatch(apitest.BatchOptions{Validation: 20 * time.Millisecond})
	res, _ := f.applyBatch(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	st := f.srv.BatchStats()
	t.Logf("two generators sharing 12000 enqueued tokens: %d batches, at most %d at once", st.Batches, st.MaxRunning)
	if st.MaxRunning != 1 || st.Batches < 4 {
		t.Errorf("two generators sharing 12000 enqueued tokens: %d batches, at most %d at once", st.Batches, st.MaxRunning)
	}
}

// TestBatchUsageAnomaly: a provider reporting more prompt tokens than a
// request can have: every line of the batch is booked as reported (it was
// billed), recorded as rejected, the budget crossed stops the run, and no
// new batch is sent. In batch mode the overshoot is bounded by the
// batches at the provider, not by the concurrency.
func TestBatchUsageAnomaly(t *testing.T) {
	f := batchFixture(t, fixtureOpts{instances: 30, concurrency: 8}, spec.Batch{MaxRequests: 10})
	f.srv.SetHostile(apitest.HostileOverReport)
	f.srv.SetBatch(apitest.BatchOptions{LineDelay: 2 * time.Millisecond})
	f.exp.Budgets.USD = 0.2
	res, store := f.applyBatch(context.Background(), nil)
	if res.Budget == nil || res.Budget.Overshoot <= 0 {
		t.Fatalf("want a budget overshoot: %+v %v", res, res.Err())
	}
	if got, want := recordedCost(t, store), f.batchCost(); math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, tally %.9f: a billed line was not booked", got, want)
	}
	st, _, _ := store.Step(context.Background(), f.generateStep().ID)
	if st.Accepted != 0 {
		t.Errorf("%d anomalous completions accepted", st.Accepted)
	}
	t.Logf("%s; %d batches, %d lines run", res.Budget, f.srv.BatchStats().Batches, f.srv.BatchStats().Served)
}

// TestBatchCreateAnswerLost: creations that made their batch but answered
// 500 are not retried blindly: the batch is found by its key, and each
// batch of the state exists once at the provider.
func TestBatchCreateAnswerLost(t *testing.T) {
	f := batchFixture(t, fixtureOpts{instances: 30, concurrency: 8}, spec.Batch{MaxRequests: 10})
	f.srv.SetBatch(apitest.BatchOptions{CreateErrors: 2})
	res, store := f.applyBatch(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	f.checkOnce(store)
	bs, err := store.Batches(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st := f.srv.BatchStats(); st.Batches != len(bs) || len(bs) != 3 {
		t.Errorf("the server made %d batches for %d in the state", st.Batches, len(bs))
	}
	if got, want := recordedCost(t, store), f.batchCost(); math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, tally %.9f", got, want)
	}
}

// TestBatchFailedValidation: a batch that fails its validation ran
// nothing and cost nothing: its requests go into a new batch, and after
// maxLineFailures new batches failing the same way the step gives them up
// with the provider's reason.
func TestBatchFailedValidation(t *testing.T) {
	f := batchFixture(t, fixtureOpts{instances: 20, concurrency: 8}, spec.Batch{})
	f.srv.SetBatch(apitest.BatchOptions{FailValidation: 1})
	res, store := f.applyBatch(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	f.checkOnce(store)
	if st := f.srv.BatchStats(); st.Batches != 2 {
		t.Errorf("%d batches, want the failed one and its retry", st.Batches)
	}

	g := batchFixture(t, fixtureOpts{instances: 20, concurrency: 8}, spec.Batch{})
	g.srv.SetBatch(apitest.BatchOptions{FailValidation: 100})
	res, store = g.applyBatch(context.Background(), nil)
	why := res.Failed[g.generateStep().Address]
	if !strings.Contains(why, "20 instances rejected on every attempt") || !strings.Contains(why, "batch failed: token_limit_exceeded: Enqueued token limit reached") {
		t.Fatalf("want the step given up with the provider's reason: %+v", res)
	}
	if st := g.srv.BatchStats(); st.Batches != 4 || st.Lines != 0 {
		t.Errorf("stats %+v: want 4 batches (the first and 3 retries), nothing run", st)
	}
	if spent := recordedCost(t, store); spent != 0 {
		t.Errorf("spent %v on batches that ran nothing", spent)
	}
}
