package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/internal/syncbuf"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/prompts"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

const keyEnv = "AGORA_ENGINE_TEST_KEY"

// fixture is a spec with one OpenAI-compatible generator pointed at a
// stand-in server, its seed data, and helpers to run apply.
type fixture struct {
	t      *testing.T
	dir    string
	srv    *apitest.Server
	exp    *spec.Experiment
	plan   *plan.Plan
	oracle *oracle
	// progress, when set, receives the progress lines.
	progress io.Writer
	// eng is the engine of the last applyWith.
	eng *engine.Engine
}

type fixtureOpts struct {
	instances   int
	concurrency int
	budget      float64
	method      string
	faults      apitest.Faults
	latency     time.Duration
	benchmarks  []string // default gsm8k
	extra       string   // more CUE for the spec (student, evaluation)
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	if o.method == "" {
		o.method = spec.MethodResponse
	}
	if len(o.benchmarks) == 0 {
		o.benchmarks = []string{"gsm8k"}
	}
	benchmarks := `"` + strings.Join(o.benchmarks, `", "`) + `"`
	dir := t.TempDir()
	var seeds strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&seeds, `{"instruction": "What is %d + %d? Show your steps.", "response": "%d + %d = %d. [RESULT] %d [/RESULT]"}`+"\n", i, i+1, i, i+1, 2*i+1, 2*i+1)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(seeds.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: dir}
	srv := apitest.New(apitest.Options{Faults: o.faults, Seed: 7, Latency: o.latency, Log: true,
		Responder: func(r apitest.ChatRequest) string { return f.oracle.respond(r) }})
	t.Cleanup(srv.Close)
	t.Setenv(keyEnv, srv.APIKey())
	budget := ""
	if o.budget > 0 {
		budget = fmt.Sprintf("budgets: usd: %g", o.budget)
	}
	src := fmt.Sprintf(`
generators: g: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: %q
	price: {input: 2, output: 8}
	limits: concurrency: %d
	sampling: max_tokens: 600
}
settings: s: {
	domain: "math"
	method: %q
	seed_data: path: "seed.jsonl"
	instances: %d
	benchmarks: [%s]
}
%s
%s
`, srv.URL(), keyEnv, apitest.DefaultModel, o.concurrency, o.method, o.instances, benchmarks, budget, o.extra)
	path := filepath.Join(dir, "agora.cue")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	exp, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.srv, f.exp, f.plan = srv, exp, p
	f.oracle = newOracle(t, exp, p)
	return f
}

// oracle plays a well-behaved model: it recognises each prompt agora can
// send and answers with a valid completion, so that every rejection in a
// test comes from injected faults.
type oracle struct {
	mu    sync.Mutex
	task  *generation.Task
	byMsg map[string]generation.Request
	n     int
}

func newOracle(t *testing.T, exp *spec.Experiment, p *plan.Plan) *oracle {
	t.Helper()
	var gen plan.Step
	for _, s := range p.Steps {
		if s.Kind == plan.KindGenerate {
			gen = s
		}
	}
	set := exp.Settings[gen.Setting]
	items, _, err := (providers.Seeds{Dir: exp.Source.Dir}).Load(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := prompts.Builtin(set.Domain, set.Method, gen.Variant)
	if err != nil {
		t.Fatal(err)
	}
	task := &generation.Task{Domain: set.Domain, Method: set.Method, Variant: gen.Variant, Template: tpl,
		Seed: int64(*gen.Seed), Seeds: items, Instances: gen.Instances}
	o := &oracle{task: task, byMsg: map[string]generation.Request{}}
	for slot := 0; slot < gen.Instances; slot++ {
		for attempt := 1; attempt <= 10; attempt++ {
			req, err := task.Request(slot, attempt)
			if err != nil {
				t.Fatal(err)
			}
			key := req.Messages[len(req.Messages)-1].Content
			if _, dup := o.byMsg[key]; !dup {
				o.byMsg[key] = req
			}
		}
	}
	return o
}

func (o *oracle) respond(r apitest.ChatRequest) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	req, ok := o.byMsg[r.Messages[len(r.Messages)-1].Content]
	if !ok {
		return "I do not understand the request."
	}
	o.n++
	return generation.ExampleCompletion(o.task, req, o.n)
}

func (f *fixture) apply(ctx context.Context, stop <-chan struct{}) (*engine.Result, *state.Store) {
	f.t.Helper()
	return f.applyWith(ctx, func(o *engine.Options) { o.Stop = stop })
}

func (f *fixture) generateStep() plan.Step {
	for _, s := range f.plan.Steps {
		if s.Kind == plan.KindGenerate {
			return s
		}
	}
	f.t.Fatal("no generate step")
	return plan.Step{}
}

// serverCost is what the server billed, at the spec's prices.
func (f *fixture) serverCost() float64 {
	st := f.srv.Stats()
	return (float64(st.PromptTokens)*2 + float64(st.CompletionTokens)*8) / 1e6
}

func recordedCost(t *testing.T, store *state.Store) float64 {
	t.Helper()
	total, _, err := store.Spend(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestChaos: with 429s, 5xx, dropped connections, malformed bodies and
// truncated completions, every instance completes exactly once and the
// recorded cost equals the server's tally.
func TestChaos(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 300, concurrency: 32, faults: apitest.Faults{
		RateLimit: 0.20, RetryAfter: 5 * time.Millisecond, ServerError: 0.05, Drop: 0.02, Malformed: 0.01, Truncated: 0.02,
	}})
	res, store := f.apply(context.Background(), nil)
	gen := f.generateStep()
	if _, failed := res.Failed[gen.Address]; failed || res.Budget != nil || res.Stopped {
		t.Fatalf("apply: %+v", res)
	}
	if len(res.Done) != 1 || res.Done[0] != gen.Address {
		t.Fatalf("done = %v", res.Done)
	}
	st, ok, err := store.Step(context.Background(), gen.ID)
	if err != nil || !ok {
		t.Fatalf("step: %v %v", ok, err)
	}
	if st.Status != state.StatusDone || st.Accepted != gen.Instances {
		t.Fatalf("step state = %+v", st)
	}
	slots := map[int]int{}
	err = store.Accepted(context.Background(), gen.ID, func(g state.Generation) error {
		slots[g.Slot]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for slot := 0; slot < gen.Instances; slot++ {
		if slots[slot] != 1 {
			t.Errorf("slot %d accepted %d times", slot, slots[slot])
		}
	}
	stats := f.srv.Stats()
	if stats.Outcomes[apitest.OutcomeRateLimited] == 0 || stats.Outcomes[apitest.OutcomeServerError] == 0 ||
		stats.Outcomes[apitest.OutcomeDropped] == 0 || stats.Outcomes[apitest.OutcomeTruncated] == 0 {
		t.Errorf("faults were not all exercised: %v", stats.Outcomes)
	}
	if st.Rejected == 0 {
		t.Errorf("truncated completions should have been rejected and retried")
	}
	got, want := recordedCost(t, store), f.serverCost()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded cost %.9f, server tally %.9f", got, want)
	}
	// The dataset is written and holds one line per instance.
	b, err := os.ReadFile(filepath.Join(f.dir, ".agora", "datasets", gen.ID+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != gen.Instances {
		t.Errorf("dataset has %d lines, want %d", n, gen.Instances)
	}
	if !strings.Contains(string(b), `"role":"assistant"`) {
		t.Errorf("dataset is not in chat format: %.200s", b)
	}
}

// TestBudgetStopsCleanly: a budget covering about half the run, at high
// concurrency, is never exceeded; the run stops with the budget named; a
// larger budget then completes the run without re-buying anything.
func TestBudgetStopsCleanly(t *testing.T) {
	const n = 200
	f := newFixture(t, fixtureOpts{instances: n, concurrency: 64})
	// Measure the cost of a full run on a twin fixture.
	twin := newFixture(t, fixtureOpts{instances: n, concurrency: 64})
	twin.apply(context.Background(), nil)
	full := twin.serverCost()
	if full <= 0 {
		t.Fatal("twin run cost nothing")
	}

	limit := full / 2
	f.exp.Budgets.USD = limit
	res, store := f.apply(context.Background(), nil)
	if res.Budget == nil || res.Budget.Budget != "usd" {
		t.Fatalf("want a budget stop, got %+v", res)
	}
	if !strings.Contains(res.Err().Error(), "budget usd exhausted") {
		t.Errorf("message: %v", res.Err())
	}
	spent := recordedCost(t, store)
	if spent > limit {
		t.Fatalf("spent %.6f over the budget %.6f", spent, limit)
	}
	if spent < limit/3 {
		t.Errorf("spent only %.6f of %.6f: stopped far too early", spent, limit)
	}
	if got, want := spent, f.serverCost(); math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, server tally %.9f", got, want)
	}
	accepted, _ := store.AcceptedSlots(context.Background(), f.generateStep().ID)
	store.Close()

	// Raise the budget and resume: it completes, and no accepted slot is
	// requested again.
	before := f.srv.Stats().Served
	f.exp.Budgets.USD = full * 3
	res, store = f.apply(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatalf("resume: %v", err)
	}
	served := f.srv.Stats().Served - before
	if int(served) > n-len(accepted)+5 {
		t.Errorf("resume served %d responses for %d missing instances", served, n-len(accepted))
	}
	if got, want := recordedCost(t, store), f.serverCost(); math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, server tally %.9f", got, want)
	}
}

// TestStopFinishesInFlight: closing Stop sends nothing new, records what
// is in flight, and a rerun completes.
func TestStopFinishesInFlight(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 100, concurrency: 8, latency: 20 * time.Millisecond})
	stop := make(chan struct{})
	go func() {
		for f.srv.Stats().Served < 20 {
			time.Sleep(2 * time.Millisecond)
		}
		close(stop)
	}()
	res, store := f.apply(context.Background(), stop)
	if !res.Stopped {
		t.Fatalf("want stopped, got %+v", res)
	}
	// Everything the server delivered is recorded: nothing was in flight
	// when apply returned.
	if got, want := recordedCost(t, store), f.serverCost(); math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded %.9f, server tally %.9f", got, want)
	}
	store.Close()
	res, _ = f.apply(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatalf("resume: %v", err)
	}
}

// TestPermanentErrors: a bad key and an unknown model fail the step with a
// clear cause and do not spin.
func TestPermanentErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 5, concurrency: 2})
	t.Setenv(keyEnv, "sk-wrong-key-0123456789")
	res, _ := f.apply(context.Background(), nil)
	err := res.Err()
	if err == nil || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("want a failure, got %v", err)
	}
	if strings.Contains(err.Error(), "sk-wrong-key") {
		t.Errorf("the key leaked into the error: %v", err)
	}
	if got := f.srv.Stats().Requests; got > 4 {
		t.Errorf("%d requests after a 401: permanent errors must not be retried", got)
	}
}

func TestLedgerNeverOvercommits(t *testing.T) {
	l := engine.NewLedger(1.0, map[string]float64{"g": 0.2}, 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := l.Reserve(ctx, "g", 0.01)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				var be *engine.BudgetError
				if !errors.As(err, &be) || be.Budget != "usd:g" {
					t.Errorf("err = %v", err)
				}
				refused++
				return
			}
			ok++
			r.Settle(0.004)
		}()
	}
	wg.Wait()
	total, byGen := l.Spent("g")
	// Each request reserves 0.01 and costs 0.004: requests are admitted
	// while spent + 0.01 <= 0.2, so exactly 48 (0.192) go through.
	if ok != 48 || refused != 52 {
		t.Errorf("admitted %d, refused %d; want 48 and 52", ok, refused)
	}
	if math.Abs(total-0.192) > 1e-12 || math.Abs(byGen-0.192) > 1e-12 {
		t.Errorf("spent %v %v, want 0.192", total, byGen)
	}
}

func TestLedgerWaitsForInFlight(t *testing.T) {
	l := engine.NewLedger(0.05, nil, 0, nil)
	first, err := l.Reserve(context.Background(), "g", 0.03)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := l.Reserve(context.Background(), "g", 0.03)
		if err == nil {
			r.Settle(0.01)
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second reservation did not wait: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	first.Settle(0.01) // 0.01 spent: 0.03 more fits in 0.05
	if err := <-got; err != nil {
		t.Fatalf("second reservation: %v", err)
	}
	// 0.02 spent; 0.04 no longer fits even alone.
	if _, err := l.Reserve(context.Background(), "g", 0.04); err == nil {
		t.Fatal("want a budget error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	hold, _ := l.Reserve(context.Background(), "g", 0.02)
	cancel()
	if _, err := l.Reserve(ctx, "g", 0.02); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	hold.Settle(0)
}

// TestProgressLines: without a terminal, progress comes as plain periodic
// lines naming the step, done/total, rates, spend and the budget.
func TestProgressLines(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 40, concurrency: 4, budget: 50, latency: 5 * time.Millisecond,
		faults: apitest.Faults{RateLimit: 0.2, RetryAfter: time.Millisecond}})
	var buf syncbuf.Buffer
	f.progress = &buf
	res, _ := f.apply(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	gen := f.generateStep()
	for _, want := range []string{gen.Address + "  40/40  ", "req/s", "tok/s", "rejects 0", "ETA done", "retries ", "spent $", " of $50.00"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("escape sequences without a terminal:\n%q", out)
	}
}
