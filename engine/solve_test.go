package engine_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// solveFixture is a spec whose generator, behind the stand-in server,
// answers "What is K + K?" right for even K only, with solve steps for
// gsm8k (lm-eval) and humaneval (evalplus) on 4 problems each; the
// stand-in harnesses ask K = 1..4 through agora's proxy, so each scores
// 50%.
type solveFixture struct {
	t     *testing.T
	dir   string
	srv   *apitest.Server
	exp   *spec.Experiment
	solve *plan.Plan // the plan's solve steps alone
}

var sumQuestion = regexp.MustCompile(`What is (\d+) \+ (\d+)\?`)

func newSolveFixture(t *testing.T, extra string) *solveFixture {
	t.Helper()
	standIns(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(`{"instruction": "What is 1 + 1?", "response": "2 [RESULT] 2 [/RESULT]"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := apitest.New(apitest.Options{Seed: 3, Responder: func(r apitest.ChatRequest) string {
		m := sumQuestion.FindStringSubmatch(r.Messages[len(r.Messages)-1].Content)
		if m == nil {
			return "I do not understand the request."
		}
		k, _ := strconv.Atoi(m[1])
		if k%2 == 0 {
			return fmt.Sprintf("The sum is %d", 2*k)
		}
		return "I am not sure."
	}})
	t.Cleanup(srv.Close)
	t.Setenv(keyEnv, srv.APIKey())
	src := fmt.Sprintf(`
generators: g: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: %q
	price: {input: 2, output: 8}
	limits: concurrency: 4
	sampling: max_tokens: 100
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: 5
	benchmarks: ["gsm8k", "humaneval"]
}
problem_solving: items: *4 | int
%s
`, srv.URL(), keyEnv, apitest.DefaultModel, extra)
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
	// Only the solve steps run: the rest of the plan is other tests'.
	var steps []plan.Step
	for _, s := range p.Steps {
		if s.Kind == plan.KindSolve {
			steps = append(steps, s)
		}
	}
	if len(steps) == 0 {
		t.Fatal("no solve steps")
	}
	p.Steps = steps
	return &solveFixture{t: t, dir: dir, srv: srv, exp: exp, solve: p}
}

func (f *solveFixture) apply() (*engine.Result, *state.Store) {
	f.t.Helper()
	return f.applyStop(nil)
}

func (f *solveFixture) applyStop(stop <-chan struct{}) (*engine.Result, *state.Store) {
	f.t.Helper()
	ctx := context.Background()
	dir := filepath.Join(f.dir, ".agora")
	store, err := state.Open(ctx, dir)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { store.Close() })
	spent, byGen, err := store.Spend(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	e := engine.New(f.exp, f.solve, store, spent, byGen, engine.Options{
		Dir:       dir,
		Providers: providers.New(providers.Tuning{BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond, AttemptTimeout: 10 * time.Second}),
		Interval:  10 * time.Millisecond,
		Resubmits: -1,
		Stop:      stop,
	})
	res, err := e.Apply(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return res, store
}

func (f *solveFixture) tally() float64 {
	st := f.srv.Stats()
	return (float64(st.PromptTokens)*2 + float64(st.CompletionTokens)*8) / 1e6
}

// TestSolve: each generator answers its benchmarks through agora's proxy,
// run by the stand-in harnesses; the scores are recorded under the
// generator's name, every request is in the state with the spend equal to
// the server's tally, and a rerun sends nothing.
func TestSolve(t *testing.T) {
	f := newSolveFixture(t, "")
	res, store := f.apply()
	if len(res.Failed) > 0 || res.Budget != nil || res.Stopped || len(res.Done) != 2 {
		t.Fatalf("apply: %+v", res)
	}
	if n := f.srv.Stats().Outcomes[apitest.OutcomeOK]; n != 8 {
		t.Errorf("server answered %d requests, want 4 per benchmark", n)
	}
	// The harness's decoding reached the provider (ask.py sends
	// temperature 0 and max_tokens 64, within the generator's 100).
	if last, ok := f.srv.LastRequest(); !ok || last.Temperature == nil || *last.Temperature != 0 || last.MaxTokens == nil || *last.MaxTokens != 64 {
		t.Errorf("last request %+v, want temperature 0 and max_tokens 64", last)
	}
	scores, err := store.Scores(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, sc := range scores {
		if sc.Model != "g" {
			t.Errorf("score recorded under model %q, want the generator g", sc.Model)
		}
		got[sc.Benchmark] = sc.Value
	}
	if got["gsm8k"] != 50 || got["humaneval"] != 50 || len(got) != 2 {
		t.Errorf("scores %v, want gsm8k 50 and humaneval 50", got)
	}
	for _, s := range f.solve.Steps {
		st, ok, err := store.Step(context.Background(), s.ID)
		if err != nil || !ok || st.Status != state.StatusDone || st.Accepted != 4 || st.CostUSD <= 0 {
			t.Errorf("%s: state %+v (%v, %v)", s.Address, st, ok, err)
		}
		// Every answer is kept with its question.
		var questions []string
		if err := store.Accepted(context.Background(), s.ID, func(g state.Generation) error {
			questions = append(questions, g.Instruction)
			if g.Response == "" || g.InputTokens == 0 {
				t.Errorf("%s: record %+v", s.Address, g)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(questions) != 4 || !sumQuestion.MatchString(questions[0]) {
			t.Errorf("%s: recorded questions %q", s.Address, questions)
		}
	}
	if got, want := recordedCost(t, store), f.tally(); math.Abs(got-want) > 1e-12 || want == 0 {
		t.Errorf("recorded spend %.9f, server tally %.9f", got, want)
	}
	store.Close()

	// A rerun has nothing to do and asks nothing.
	res, store = f.apply()
	if len(res.Done) != 0 || len(res.Failed) != 0 || len(res.Skipped) != 0 {
		t.Errorf("rerun: %+v", res)
	}
	if n := f.srv.Stats().Outcomes[apitest.OutcomeOK]; n != 8 {
		t.Errorf("rerun sent requests: %d answered in all", n)
	}
}

// TestSolveBudget: with a budget that covers a few requests (each
// reserves $0.00057 at the harness's max_tokens 64 and costs about
// $0.00004), the proxy refuses the first that does not fit, its step ends
// with the budget error, and the spend recorded (the server's tally) stays
// within the budget.
func TestSolveBudget(t *testing.T) {
	const budget = 0.0007
	f := newSolveFixture(t, fmt.Sprintf("budgets: usd: %g", budget))
	res, store := f.apply()
	if res.Budget == nil || res.Budget.Budget != "usd" {
		t.Fatalf("apply: %+v, want the usd budget to stop it", res)
	}
	got, want := recordedCost(t, store), f.tally()
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("recorded spend %.9f, server tally %.9f", got, want)
	}
	if got > budget || got == 0 {
		t.Errorf("spent %.6f of a %.3f budget", got, budget)
	}
	if n := f.srv.Stats().Outcomes[apitest.OutcomeOK]; n == 0 || n >= 8 {
		t.Errorf("%d requests answered; want some, not all", n)
	}
	done := 0
	for _, s := range f.solve.Steps {
		if st, _, _ := store.Step(context.Background(), s.ID); st.Status == state.StatusDone {
			done++
		}
	}
	if done == len(f.solve.Steps) {
		t.Errorf("every solve step is done despite the budget")
	}
}

// TestSolveWithoutHarness: a solve step whose harness is not installed is
// not run, with the reason.
func TestSolveWithoutHarness(t *testing.T) {
	f := newSolveFixture(t, "")
	t.Setenv("PATH", "/nonexistent")
	res, _ := f.apply()
	want := "lm_eval is not in PATH (needed to answer gsm8k with lm-eval locally)"
	if res.Skipped["solve.g.gsm8k"] != want {
		t.Errorf("skipped %q, want %q", res.Skipped, want)
	}
	if n := f.srv.Stats().Outcomes[apitest.OutcomeOK]; n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestSolveProxyRefusesWrongKey(t *testing.T) {
	// The stand-in harness's key is replaced by a wrong one: the proxy
	// answers 401 and the step fails with the harness's message.
	f := newSolveFixture(t, "problem_solving: benchmarks: [\"gsm8k\"]")
	bin := t.TempDir()
	script := "#!/bin/bash\nOPENAI_API_KEY=wrong exec " + filepath.Join(mustAbs(t, "testdata/bin"), "lm_eval") + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "lm_eval"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	res, _ := f.apply()
	msg := res.Failed["solve.g.gsm8k"]
	if !strings.Contains(msg, "HTTP 401") || !strings.Contains(msg, "missing or wrong API key") {
		t.Errorf("failure %q, want the proxy's 401", msg)
	}
	if n := f.srv.Stats().Outcomes[apitest.OutcomeOK]; n != 0 {
		t.Errorf("%d requests reached the provider", n)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestSolveVLLM: a vllm generator answers through the servers agora
// starts for it (the stand-in vllm, whose every answer is "… 4 …", so the
// stand-in lm_eval scores 1 of K = 1..4 right: 25%); the servers are
// recorded under the solve step and stopped after it.
func TestSolveVLLM(t *testing.T) {
	standIns(t) // first: the fixture puts the serving stand-in vllm before it
	f := newVLLMFixture(t, `{}`, []int{5}, false, "problem_solving: items: 4")
	var steps []plan.Step
	for _, s := range f.plan.Steps {
		if s.Kind == plan.KindSolve {
			steps = append(steps, s)
		}
	}
	if len(steps) != 1 || steps[0].Address != "solve.open.gsm8k" || steps[0].Estimate.GPUHours <= 0 {
		t.Fatalf("solve steps %+v", steps)
	}
	f.plan.Steps = steps
	res, store := f.apply(context.Background(), nil)
	if len(res.Done) != 1 {
		t.Fatalf("apply: %+v %v", res, res.Err())
	}
	scores, err := store.Scores(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 1 || scores[0].Model != "open" || scores[0].Benchmark != "gsm8k" || scores[0].Value != 25 {
		t.Errorf("scores %+v, want open's gsm8k 25", scores)
	}
	jobs := serverJobs(t, store, steps)
	var servers int
	for _, j := range jobs {
		if strings.HasPrefix(j.Executor, "server:") {
			servers++
		}
	}
	if servers != 1 {
		t.Errorf("jobs of the solve step %+v, want its server", jobs)
	}
	f.noServersLeft(store)
}

// TestSolveStop: the first interrupt lets the requests in flight finish
// and be recorded, refuses the next ones, ends the harness's job, and
// leaves the step to the next apply, which completes it.
func TestSolveStop(t *testing.T) {
	// 8 questions, 4 at a time: the first 4 are in flight at the interrupt.
	f := newSolveFixture(t, "problem_solving: {benchmarks: [\"gsm8k\"], items: 8}")
	f.srv.Hold()
	stop := make(chan struct{})
	go func() {
		for f.srv.InFlight() < 4 {
			time.Sleep(5 * time.Millisecond)
		}
		close(stop)
		time.Sleep(50 * time.Millisecond)
		f.srv.Release()
	}()
	res, store := f.applyStop(stop)
	if !res.Stopped || len(res.Done) != 0 || len(res.Failed) != 0 {
		t.Fatalf("apply: %+v", res)
	}
	served := f.srv.Stats().Outcomes[apitest.OutcomeOK]
	if served != 4 {
		t.Errorf("%d requests answered; want the 4 in flight at the interrupt", served)
	}
	if got, want := recordedCost(t, store), f.tally(); math.Abs(got-want) > 1e-12 {
		t.Errorf("recorded spend %.9f, server tally %.9f", got, want)
	}
	store.Close()
	res, _ = f.apply()
	if len(res.Done) != 1 || res.Stopped {
		t.Errorf("second apply: %+v", res)
	}
}

// TestSolveAlpacaEval: a judged benchmark runs its API command through the
// stand-ins (python answers, alpaca_eval judges with the judge's key) and
// the leaderboard row of the generator's served name is its score (the
// stand-in alpaca_eval gives 10 to a name that is neither a student nor
// the reference).
func TestSolveAlpacaEval(t *testing.T) {
	f := newSolveFixture(t, "problem_solving: benchmarks: [\"alpacaeval2\"]")
	t.Setenv("OPENAI_API_KEY", "judge-key")
	res, store := f.apply()
	if len(res.Done) != 1 || res.Done[0] != "solve.g.alpacaeval2" {
		t.Fatalf("apply: %+v %v", res, res.Err())
	}
	scores, err := store.Scores(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 1 || scores[0].Model != "g" || scores[0].Benchmark != "alpacaeval2" || scores[0].Value != 10 {
		t.Errorf("scores %+v, want g's alpacaeval2 10", scores)
	}
	// The keys reached the job by name only: neither the judge's nor the
	// proxy's is in its script.
	scripts, _ := filepath.Glob(filepath.Join(f.dir, ".agora", "runs", f.solve.Steps[0].ID, "job-*.sh"))
	if len(scripts) != 1 {
		t.Fatalf("job scripts %v", scripts)
	}
	b, err := os.ReadFile(scripts[0])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "judge-key") || regexp.MustCompile(`agora-[0-9a-f]{48}`).Match(b) {
		t.Errorf("the job script carries a key:\n%s", b)
	}
	if !strings.Contains(string(b), "AGORA_SOLVE_KEY") {
		t.Errorf("the job script does not name the proxy's key variable:\n%s", b)
	}
}
