package engine_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/metrics"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/state"
)

var numberRE = regexp.MustCompile(`What is (\d+) \+`)

// seedNumber is i of a fixture instruction "What is i + i+1? …".
func seedNumber(t *testing.T, instruction string) int {
	m := numberRE.FindStringSubmatch(instruction)
	if m == nil {
		t.Fatalf("not a fixture instruction: %q", instruction)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// judgeServer plays a judge: the difficulty of "What is i + …" is
// i%5+1, the quality of its response (i+2)%5+1; for i%4 == 0 the first
// judgement of each prompt cannot be read.
func judgeServer(t *testing.T, faults apitest.Faults) *apitest.Server {
	var mu sync.Mutex
	calls := map[string]int{}
	s := apitest.New(apitest.Options{Models: []string{"judge-model"}, Faults: faults, Seed: 3, Responder: func(r apitest.ChatRequest) string {
		p := r.Messages[len(r.Messages)-1].Content
		m := numberRE.FindStringSubmatch(p)
		if m == nil {
			return "I cannot tell."
		}
		i, _ := strconv.Atoi(m[1])
		mu.Lock()
		calls[p]++
		n := calls[p]
		mu.Unlock()
		if i%4 == 0 && n == 1 {
			return "The response looks fine to me, a solid four."
		}
		if strings.Contains(p, "Rate how DIFFICULT") {
			return fmt.Sprintf("Feedback: a routine sum.\n[RESULT] %d", i%5+1)
		}
		return fmt.Sprintf("Feedback: correct.\n[RESULT] %d", (i+2)%5+1)
	}})
	t.Cleanup(s.Close)
	return s
}

// sampled returns the fixture's accepted items a metric step looks at.
func sampled(t *testing.T, store *state.Store, gen plan.Step, k, seed int) []state.Generation {
	var all []state.Generation
	if err := store.Accepted(context.Background(), gen.ID, func(g state.Generation) error { all = append(all, g); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Slot < all[j].Slot })
	var out []state.Generation
	for _, i := range metrics.Sample(len(all), k, seed, gen.ID) {
		out = append(out, all[i])
	}
	return out
}

func metricsOf(t *testing.T, store *state.Store, stepID string) map[string]state.Metric {
	ms, err := store.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]state.Metric{}
	for _, m := range ms {
		if m.StepID == stepID {
			out[m.Name] = m
		}
	}
	return out
}

func (f *fixture) step(kind string) plan.Step { return f.stepOf(kind, "") }

// TestJudgeMetric: a judge declared in place scores a sample of the data
// through 429s and 500s; unreadable judgements are asked again and
// counted; the scores' mean and interval are recorded; the judge's spend
// is recorded against the data's generator and equals its server's tally.
func TestJudgeMetric(t *testing.T) {
	js := judgeServer(t, apitest.Faults{RateLimit: 0.2, ServerError: 0.05, RetryAfter: 5 * time.Millisecond})
	f := newFixture(t, fixtureOpts{instances: 20, concurrency: 4, extra: fmt.Sprintf(`metrics: judge: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: "judge-model"
	price: {input: 5, output: 15}
	limits: concurrency: 3
	sample: 12
}`, js.URL(), keyEnv)})
	res, store := f.apply(context.Background(), nil)
	j := f.step(plan.KindJudge)
	if _, failed := res.Failed[j.Address]; failed || !contains(res.Done, j.Address) {
		t.Fatalf("apply: %+v", res)
	}
	items := sampled(t, store, f.generateStep(), 12, 0)
	var diff, qual []float64
	unreadable := 0
	for _, it := range items {
		i := seedNumber(t, it.Instruction)
		diff = append(diff, float64(i%5+1))
		qual = append(qual, float64((i+2)%5+1))
		if i%4 == 0 {
			unreadable += 2
		}
	}
	got := metricsOf(t, store, j.ID)
	for name, xs := range map[string][]float64{"instruction_difficulty": diff, "response_quality": qual} {
		want, _ := metrics.Summarize(xs)
		m, ok := got[name]
		if !ok || m.N != 12 || math.Abs(m.Value-want.Mean) > 1e-12 || math.Abs(*m.Low-want.Low) > 1e-12 || math.Abs(*m.High-want.High) > 1e-12 {
			t.Errorf("%s = %+v, want %+v", name, m, want)
		}
		// Each aspect counts its own: one unreadable judgement per such item.
		if !strings.Contains(m.Detail, fmt.Sprintf(`"unreadable":%d,`, unreadable/2)) || !strings.Contains(m.Detail, `"given_up":0}`) {
			t.Errorf("%s detail %s, want %d unreadable", name, m.Detail, unreadable/2)
		}
	}
	if unreadable == 0 {
		t.Error("the sample has no item with an unreadable first judgement: the test proves less than it should")
	}
	if st := js.Stats(); st.Outcomes[apitest.OutcomeRateLimited] == 0 {
		t.Errorf("no 429 was served: %v", st.Outcomes)
	}
	js2, err := store.Judgements(context.Background(), j.ID)
	if err != nil || len(js2) != 24+unreadable {
		t.Errorf("%d judgements recorded, want %d (%v)", len(js2), 24+unreadable, err)
	}
	// Spend: generation at the generator's prices, judging at the judge's.
	st := js.Stats()
	judgeCost := (float64(st.PromptTokens)*5 + float64(st.CompletionTokens)*15) / 1e6
	if got, want := recordedCost(t, store), f.serverCost()+judgeCost; math.Abs(got-want) > 1e-9 {
		t.Errorf("recorded spend %.9f, servers' tally %.9f", got, want)
	}
	_, byGen, _ := store.Spend(context.Background())
	if math.Abs(byGen["g"]-(f.serverCost()+judgeCost)) > 1e-9 {
		t.Errorf("spend by generator %v", byGen)
	}

	// A rerun finds the step done and asks nothing.
	before := js.Stats().Requests
	f.plan = recompile(t, f, store)
	res, _ = f.apply(context.Background(), nil)
	if js.Stats().Requests != before || contains(res.Done, j.Address) {
		t.Errorf("rerun asked the judge again: %+v", res)
	}
}

// TestJudgeGivenUpAcrossRuns: the difficulty of one item can never be
// read; it is given up after its 3 attempts, and the apply is stopped
// right after. The next apply asks nothing more about it, and each
// aspect's detail counts its own unreadable and given-up judgements over
// both runs (the quality of items i%4 == 0 is unreadable once).
func TestJudgeGivenUpAcrossRuns(t *testing.T) {
	var (
		mu     sync.Mutex
		poison string // the first difficulty prompt: never readable
		calls  = map[string]int{}
		stop   = make(chan struct{})
		closed bool
	)
	js := apitest.New(apitest.Options{Models: []string{"judge-model"}, Responder: func(r apitest.ChatRequest) string {
		p := r.Messages[len(r.Messages)-1].Content
		m := numberRE.FindStringSubmatch(p)
		if m == nil {
			return "I cannot tell."
		}
		i, _ := strconv.Atoi(m[1])
		difficulty := strings.Contains(p, "Rate how DIFFICULT")
		mu.Lock()
		defer mu.Unlock()
		if difficulty && poison == "" {
			poison = p
		}
		calls[p]++
		if p == poison {
			return "Hard to say."
		}
		if calls[poison] >= 3 && !closed {
			closed = true // the poison item's last attempt is recorded: stop
			close(stop)
		}
		if difficulty {
			return fmt.Sprintf("Feedback: a routine sum.\n[RESULT] %d", i%5+1)
		}
		if i%4 == 0 && calls[p] == 1 {
			return "A solid four."
		}
		return fmt.Sprintf("Feedback: correct.\n[RESULT] %d", (i+2)%5+1)
	}})
	t.Cleanup(js.Close)
	f := newFixture(t, fixtureOpts{instances: 12, concurrency: 4, extra: fmt.Sprintf(`metrics: judge: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: "judge-model"
	price: {input: 1, output: 1}
	limits: concurrency: 1
}`, js.URL(), keyEnv)})
	res, store := f.apply(context.Background(), stop)
	j := f.step(plan.KindJudge)
	if contains(res.Done, j.Address) || !closed {
		t.Fatalf("the judge step was not stopped midway: %+v", res)
	}
	full := j.Estimate
	f.plan = recompile(t, f, store)
	// The plan estimates the judgements that remain, not the whole step.
	prior, err := store.Judgements(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	judged := 0
	for _, p := range prior {
		if p.Error == "" {
			judged++
		}
	}
	left := f.step(plan.KindJudge).Estimate
	if judged == 0 || left.Requests != full.Requests-int64(judged) ||
		math.Abs(left.USD-full.USD*float64(full.Requests-int64(judged))/float64(full.Requests)) > 1e-12 {
		t.Errorf("after %d of %d judgements, the plan's estimate %+v; the whole step's %+v", judged, full.Requests, left, full)
	}
	res, store = f.apply(context.Background(), nil)
	if !contains(res.Done, j.Address) {
		t.Fatalf("the judge step did not finish: %+v", res)
	}
	mu.Lock()
	if calls[poison] != 3 {
		t.Errorf("the given-up item was asked %d times, want 3", calls[poison])
	}
	mu.Unlock()
	unreadable := 0
	items := sampled(t, store, f.generateStep(), 0, 0)
	for _, it := range items {
		if seedNumber(t, it.Instruction)%4 == 0 {
			unreadable++
		}
	}
	got := metricsOf(t, store, j.ID)
	if d := got["instruction_difficulty"]; d.N != len(items)-1 || !strings.Contains(d.Detail, `"unreadable":3,"given_up":1}`) {
		t.Errorf("instruction_difficulty n=%d detail %s, want n=%d, 3 unreadable and 1 given up", d.N, d.Detail, len(items)-1)
	}
	if q := got["response_quality"]; q.N != len(items) || !strings.Contains(q.Detail, fmt.Sprintf(`"unreadable":%d,"given_up":0}`, unreadable)) {
		t.Errorf("response_quality n=%d detail %s, want n=%d, %d unreadable", q.N, q.Detail, len(items), unreadable)
	}
	if unreadable == 0 {
		t.Error("no item i%4 == 0: the test proves less than it should")
	}
}

// TestJudgeNeverReadable: a judge that never writes the format is
// stopped after its first judgements, not paid for every item.
func TestJudgeNeverReadable(t *testing.T) {
	js := apitest.New(apitest.Options{Models: []string{"judge-model"}, Responder: func(apitest.ChatRequest) string { return "Looks good." }})
	t.Cleanup(js.Close)
	f := newFixture(t, fixtureOpts{instances: 30, concurrency: 4, extra: fmt.Sprintf(`metrics: judge: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: "judge-model"
	price: {input: 1, output: 1}
	limits: concurrency: 1
}`, js.URL(), keyEnv)})
	res, store := f.apply(context.Background(), nil)
	j := f.step(plan.KindJudge)
	msg := res.Failed[j.Address]
	if !strings.Contains(msg, "judge metrics/judge: the first 20 judgements could not be read (last: no [RESULT] marker)") {
		t.Fatalf("failure %q", msg)
	}
	if n := js.Stats().Requests; n != 20 {
		t.Errorf("%d judge requests, want 20", n)
	}
	st, _, _ := store.Step(context.Background(), j.ID)
	if st.Status != state.StatusFailed || st.Rejected != 20 {
		t.Errorf("step %+v", st)
	}
}

// TestJudgeBudget: judging stops when the next judgement's worst case no
// longer fits, and the recorded spend stays within the budget.
func TestJudgeBudget(t *testing.T) {
	js := judgeServer(t, apitest.Faults{})
	f := newFixture(t, fixtureOpts{instances: 20, concurrency: 4, budget: 0.5, extra: fmt.Sprintf(`metrics: judge: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: "judge-model"
	price: {input: 100, output: 100}
	limits: concurrency: 2
}`, js.URL(), keyEnv)})
	res, store := f.apply(context.Background(), nil)
	j := f.step(plan.KindJudge)
	if res.Budget == nil || contains(res.Done, j.Address) {
		t.Fatalf("apply: %+v", res)
	}
	spent := recordedCost(t, store)
	if spent > 0.5 || js.Stats().Served == 0 {
		t.Errorf("spent %v of 0.5 with %d judgements", spent, js.Stats().Served)
	}
	st, _, _ := store.Step(context.Background(), j.ID)
	if st.Status == state.StatusDone {
		t.Errorf("judge step done under the budget")
	}
}

// auxServer serves embeddings and log-probabilities: an instruction "What
// is i + …" embeds as the basis vector e_i of R^50, every response as
// (1, 1, 0, …); the prompt of item merge is echoed as a single token, so
// its response has no token of its own.
func auxServer(t *testing.T, merge *int) *apitest.Server {
	s := apitest.New(apitest.Options{Models: []string{"aux-model"}, Faults: apitest.Faults{RetryAfter: 5 * time.Millisecond}, Scorer: func(prompt string) []apitest.LogprobToken {
		if strings.HasPrefix(prompt, fmt.Sprintf("What is %d +", *merge)) {
			return []apitest.LogprobToken{{Text: prompt}}
		}
		return apitest.DefaultTokenize(prompt)
	}, Embedder: func(_, text string) []float32 {
		v := make([]float32, 50)
		if m := numberRE.FindStringSubmatch(text); m != nil && strings.HasPrefix(text, "What is") {
			i, _ := strconv.Atoi(m[1])
			v[i] = 2
		} else {
			v[0], v[1] = 1, 1
		}
		return v
	}})
	t.Cleanup(s.Close)
	return s
}

// TestDiversityAndPerplexity: embeddings in batches through a 429, a 500
// and a malformed body; the diversity of orthogonal instructions is 1
// (pairwise) and 1 − 1/√n (to the centroid), of identical responses 0;
// perplexity from the stand-in's known log-probabilities, to the digit.
func TestDiversityAndPerplexity(t *testing.T) {
	merge := -1
	aux := auxServer(t, &merge)
	f := newFixture(t, fixtureOpts{instances: 20, concurrency: 4, extra: fmt.Sprintf(`metrics: {
	diversity: {provider: openai: {base_url: %[1]q, api_key_env: %[2]q}, model: "aux-model", price: {input: 0.5, output: 0}, sample: 15, batch: 4}
	perplexity: {provider: openai: {base_url: %[1]q, api_key_env: %[2]q}, model: "aux-model", sample: 12}
}`, aux.URL(), keyEnv)})
	aux.Enqueue(apitest.FaultRateLimit, apitest.FaultServerError, apitest.FaultMalformed)
	// Slot s answers seed item s: the first sampled item cannot be scored.
	merge = metrics.Sample(20, 12, 0, f.generateStep().ID)[0]
	res, store := f.apply(context.Background(), nil)
	d, p := f.step(plan.KindDiversity), f.step(plan.KindPerplexity)
	if !contains(res.Done, d.Address) || !contains(res.Done, p.Address) {
		t.Fatalf("apply: %+v", res)
	}
	if aux.MetricStats().Faulted != 3 {
		t.Errorf("faults served: %+v", aux.MetricStats())
	}
	got := metricsOf(t, store, d.ID)
	sampleN := 15.0
	for name, want := range map[string]float64{
		"instruction_diversity": 1, "instruction_diversity_centroid": 1 - 1/math.Sqrt(sampleN),
		"response_diversity": 0, "response_diversity_centroid": 0,
	} {
		if m, ok := got[name]; !ok || m.N != 15 || math.Abs(m.Value-want) > 1e-6 {
			t.Errorf("%s = %+v, want %v", name, m, want)
		}
	}
	// 30 texts in batches of 4: 8 requests delivered, paid at $0.5/M.
	ms := aux.MetricStats()
	if ms.EmbeddingInputs != 30 {
		t.Errorf("embedded %d texts, want 30", ms.EmbeddingInputs)
	}
	st, _, _ := store.Step(context.Background(), d.ID)
	if math.Abs(st.CostUSD-float64(ms.EmbeddingTokens)*0.5/1e6) > 1e-12 || st.InputTokens != ms.EmbeddingTokens {
		t.Errorf("diversity step cost %v, tokens %d; server %d tokens", st.CostUSD, st.InputTokens, ms.EmbeddingTokens)
	}

	// Perplexity: the stand-in splits text into runs of spaces and of
	// non-spaces, each with log-probability −0.1 × its length; the
	// prompt's prefix ends with a blank line, so a response starting with
	// a non-space has NLL 0.1 × its characters over its runs.
	runs := regexp.MustCompile(`\s+|\S+`)
	var want float64
	n := 0
	for _, it := range sampled(t, store, f.generateStep(), 12, 0) {
		if strings.TrimLeft(it.Response, " \n\t") != it.Response {
			t.Fatalf("response starts with a space: %q", it.Response)
		}
		if seedNumber(t, it.Instruction) == merge {
			continue
		}
		tokens := len(runs.FindAllString(it.Response, -1))
		want += math.Exp(0.1 * float64(utf8.RuneCountInString(it.Response)) / float64(tokens))
		n++
	}
	want /= float64(n)
	m := metricsOf(t, store, p.ID)[engine.FeaturePerplexity]
	if n != 11 || m.N != 11 || math.Abs(m.Value-want) > 1e-12*want || !strings.Contains(m.Detail, `"left_out":1`) {
		t.Errorf("perplexity %v over %d items (%s), want %v over %d, one left out", m.Value, m.N, m.Detail, want, n)
	}
	if m.Low == nil || *m.Low > m.Value || *m.High < m.Value {
		t.Errorf("interval %v %v", m.Low, m.High)
	}
}

// rewardScript is a stand-in reward model: the score of line i is its
// length in bytes modulo 7; with BAD set it writes a broken file.
const rewardScript = `#!/bin/bash
set -e
if [ -n "$AGORA_TEST_BAD_REWARD" ]; then echo '{"index": 0, "score": "high"}' >"$2"; exit 0; fi
i=0
while IFS= read -r line; do
	echo "{\"index\": $i, \"score\": $(( $(printf '%s' "$line" | wc -c) % 7 ))}"
	i=$((i+1))
done <"$1" >"$2.tmp"
mv "$2.tmp" "$2"
`

func rewardFixture(t *testing.T, executor string) *fixture {
	dir := t.TempDir()
	script := filepath.Join(dir, "reward.sh")
	if err := os.WriteFile(script, []byte(rewardScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return newFixture(t, fixtureOpts{instances: 20, concurrency: 4, extra: fmt.Sprintf(`metrics: reward: {
	model: "stand-in/reward-model"
	command: "%s {{.Data}} {{.Output}}"
	executor: %q
	gpus: 1
	time_limit: "00:05:00"
	sample: 9
}`, script, executor)})
}

func checkReward(t *testing.T, f *fixture, res *engine.Result, store *state.Store) {
	t.Helper()
	r := f.step(plan.KindReward)
	if !contains(res.Done, r.Address) {
		t.Fatalf("apply: %+v", res)
	}
	dir := filepath.Join(f.dir, ".agora", "runs", r.ID)
	b, err := os.ReadFile(filepath.Join(dir, engine.RewardData))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 9 {
		t.Fatalf("reward input has %d lines", len(lines))
	}
	var xs []float64
	for _, l := range lines {
		xs = append(xs, float64(len(l)%7))
	}
	want, _ := metrics.Summarize(xs)
	m := metricsOf(t, store, r.ID)[engine.FeatureReward]
	if m.N != 9 || math.Abs(m.Value-want.Mean) > 1e-12 || math.Abs(*m.Low-want.Low) > 1e-12 {
		t.Errorf("reward %+v, want %+v", m, want)
	}
	jobs, _ := store.Jobs(context.Background(), r.ID)
	if len(jobs) != 1 || jobs[0].Status != "COMPLETED" {
		t.Errorf("jobs %+v", jobs)
	}
}

// TestRewardLocal: the reward job runs locally from the command template;
// its output is parsed; a broken output fails the step with file:line:col.
func TestRewardLocal(t *testing.T) {
	f := rewardFixture(t, "local")
	res, store := f.apply(context.Background(), nil)
	checkReward(t, f, res, store)

	bad := rewardFixture(t, "local")
	t.Setenv("AGORA_TEST_BAD_REWARD", "1")
	res, _ = bad.applyWith(context.Background(), func(o *engine.Options) { o.Resubmits = -1 })
	r := bad.step(plan.KindReward)
	if msg := res.Failed[r.Address]; !strings.Contains(msg, "reward: the job exited 0 but its output cannot be read: ") ||
		!strings.Contains(msg, engine.RewardOutput+":1:") {
		t.Errorf("failure %q", msg)
	}
}

// TestRewardSlurm: the same job through sbatch on the CI Slurm.
func TestRewardSlurm(t *testing.T) {
	requireSlurm(t)
	f := rewardFixture(t, "slurm")
	f.exp.Metrics.Reward.GPUs = 0 // the test node has no GPUs
	if err := os.Chmod(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newSbatchCounter(t)
	res, store := f.applyWith(withTimeout(t, 4*time.Minute), func(o *engine.Options) {
		o.Slurm = &slurm.Client{Sbatch: c.bin, Squeue: c.squeue}
		o.PollInterval = time.Second
	})
	checkReward(t, f, res, store)
	if n := c.count("agora-reward-"); n != 1 {
		t.Errorf("%d reward jobs submitted: %v", n, c.submitted())
	}
}

// recompile makes the plan again against the state (done steps noop).
func recompile(t *testing.T, f *fixture, store *state.Store) *plan.Plan {
	t.Helper()
	p, err := compiler.Compile(context.Background(), f.exp, compiler.Options{Recorded: store})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPerplexityVLLM: the base model is served by vLLM servers agora
// starts for the perplexity step (executors/vllm, the stand-in vllm):
// perplexity to the digit from the stand-in's log-probabilities, the
// server recorded as a job of the step with its GPU time, and stopped
// once no step needs it.
func TestPerplexityVLLM(t *testing.T) {
	f := newVLLMFixture(t, `{}`, []int{6}, false, `metrics: perplexity: {provider: vllm: {}, sample: 4}`)
	res, store := f.apply(context.Background(), nil)
	var p plan.Step
	for _, s := range f.plan.Steps {
		if s.Kind == plan.KindPerplexity {
			p = s
		}
	}
	if !contains(res.Done, p.Address) {
		t.Fatalf("apply: %v %+v", res.Err(), res)
	}
	var gen plan.Step
	for _, s := range f.plan.Steps {
		if s.Kind == plan.KindGenerate {
			gen = s
		}
	}
	runs := regexp.MustCompile(`\s+|\S+`)
	var want float64
	items := sampled(t, store, gen, 4, 0)
	for _, it := range items {
		want += math.Exp(0.1 * float64(utf8.RuneCountInString(it.Response)) / float64(len(runs.FindAllString(it.Response, -1))))
	}
	want /= float64(len(items))
	m := metricsOf(t, store, p.ID)[engine.FeaturePerplexity]
	if m.N != 4 || math.Abs(m.Value-want) > 1e-12*want {
		t.Errorf("perplexity %v over %d items, want %v", m.Value, m.N, want)
	}
	jobs, err := store.Jobs(context.Background(), p.ID)
	if err != nil || len(jobs) != 1 || jobs[0].Executor != "server:local" || jobs[0].GPUHours <= 0 {
		t.Errorf("server jobs of the perplexity step: %+v %v", jobs, err)
	}
	f.noServersLeft(store)
}

// TestJudgeVLLM: a judge declared in place on vLLM servers agora starts
// for the judge step (the stand-in vllm answering "[RESULT] 4"); its
// servers are a job of the step, stopped once no step needs them.
func TestJudgeVLLM(t *testing.T) {
	t.Setenv("AGORA_STUB_REPLY", "Feedback: a fair item.\n[RESULT] 4")
	// The data comes from the API generator; the vLLM servers are the
	// judge's alone.
	f := newVLLMFixture(t, `{}`, []int{6}, true, `metrics: judge: {provider: vllm: {}, model: "judge/model", sample: 5}
grid: generators: ["api"]
budgets: gpu_hours: 100`)
	res, store := f.apply(context.Background(), nil)
	var j plan.Step
	for _, s := range f.plan.Steps {
		if s.Kind == plan.KindJudge {
			j = s
		}
	}
	if !contains(res.Done, j.Address) || j.Estimate.GPUHours <= 0 {
		t.Fatalf("apply: %v %+v (estimate %+v)", res.Err(), res, j.Estimate)
	}
	for name, m := range metricsOf(t, store, j.ID) {
		if m.Value != 4 || m.N != 5 || *m.Low != 4 || *m.High != 4 {
			t.Errorf("%s = %+v", name, m)
		}
	}
	jobs, err := store.Jobs(context.Background(), j.ID)
	if err != nil || len(jobs) != 1 || jobs[0].Executor != "server:local" {
		t.Errorf("server jobs of the judge step: %+v %v", jobs, err)
	}
	f.noServersLeft(store)
}

// TestDiversityResume: an apply stopped while embeddings are in flight
// keeps what was paid for; the rerun embeds only the texts still missing.
func TestDiversityResume(t *testing.T) {
	stop := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	embedded := 0
	aux := apitest.New(apitest.Options{Models: []string{"aux-model"}, Embedder: func(_, text string) []float32 {
		mu.Lock()
		embedded++
		if embedded == 6 {
			once.Do(func() { close(stop) })
		}
		mu.Unlock()
		return apitest.DefaultEmbedding(text)
	}})
	t.Cleanup(aux.Close)
	f := newFixture(t, fixtureOpts{instances: 20, concurrency: 4, extra: fmt.Sprintf(`metrics: diversity: {provider: openai: {base_url: %q, api_key_env: %q}, model: "aux-model", price: {input: 1, output: 0}, sample: 15, batch: 3}`, aux.URL(), keyEnv)})
	// Generate first, then the diversity step with the stop armed.
	gen := f.generateStep()
	d := f.step(plan.KindDiversity)
	res, store := f.apply(context.Background(), stop)
	if contains(res.Done, d.Address) || !contains(res.Done, gen.Address) || !res.Stopped {
		t.Fatalf("first apply: %+v", res)
	}
	first := aux.MetricStats().EmbeddingInputs
	if first == 0 || first >= 30 {
		t.Fatalf("%d texts embedded before the stop", first)
	}
	f.plan = recompile(t, f, store)
	res, store = f.apply(context.Background(), nil)
	if !contains(res.Done, d.Address) {
		t.Fatalf("rerun: %+v", res)
	}
	if n := aux.MetricStats().EmbeddingInputs; n != 30 {
		t.Errorf("%d texts embedded in all (%d before the stop), want each of the 30 once", n, first)
	}
	st, _, _ := store.Step(context.Background(), d.ID)
	if want := float64(aux.MetricStats().EmbeddingTokens) / 1e6; math.Abs(st.CostUSD-want) > 1e-12 {
		t.Errorf("recorded %v, the server billed %v", st.CostUSD, want)
	}
}

// TestJudgeResume: an apply stopped while judgements are in flight
// records them; the rerun asks only for the items still without a score,
// and every judgement served is recorded once.
func TestJudgeResume(t *testing.T) {
	stop := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	calls := 0
	js := apitest.New(apitest.Options{Models: []string{"judge-model"}, Responder: func(apitest.ChatRequest) string {
		mu.Lock()
		calls++
		if calls == 5 {
			once.Do(func() { close(stop) })
		}
		mu.Unlock()
		return "Fine.\n[RESULT] 3"
	}})
	t.Cleanup(js.Close)
	f := newFixture(t, fixtureOpts{instances: 20, concurrency: 4, extra: fmt.Sprintf(`metrics: judge: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: "judge-model"
	price: {input: 1, output: 1}
	limits: concurrency: 3
}`, js.URL(), keyEnv)})
	j := f.step(plan.KindJudge)
	res, store := f.apply(context.Background(), stop)
	if contains(res.Done, j.Address) || !res.Stopped {
		t.Fatalf("first apply: %+v", res)
	}
	first := js.Stats().Served
	f.plan = recompile(t, f, store)
	res, store = f.apply(context.Background(), nil)
	if !contains(res.Done, j.Address) {
		t.Fatalf("rerun: %+v", res)
	}
	recorded, err := store.Judgements(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := js.Stats().Served; n != 40 || len(recorded) != 40 || first >= 40 {
		t.Errorf("%d judgements served (%d before the stop), %d recorded; want 40 and 40", n, first, len(recorded))
	}
	if m := metricsOf(t, store, j.ID)["response_quality"]; m.Value != 3 || m.N != 20 {
		t.Errorf("response_quality %+v", m)
	}
}

// TestTwoJudges: judge (agora's template) and judge_2 (the Prometheus
// layout with its system message, on another server) score the same
// sample; each records its own features, judge_2's under the _2 names,
// and each server sees only its own judge's prompts.
func TestTwoJudges(t *testing.T) {
	js := judgeServer(t, apitest.Faults{})
	var mu sync.Mutex
	var bad []string
	prom := apitest.New(apitest.Options{Models: []string{"prom-model"}, Seed: 4, Responder: func(r apitest.ChatRequest) string {
		p := r.Messages[len(r.Messages)-1].Content
		mu.Lock()
		defer mu.Unlock()
		if len(r.Messages) != 2 || r.Messages[0].Role != "system" || !strings.HasPrefix(p, "###Task Description:") || !strings.HasSuffix(p, "###Feedback: ") {
			bad = append(bad, fmt.Sprintf("%+v", r.Messages))
			return "?"
		}
		i := seedNumber(t, p)
		if strings.Contains(p, "How difficult is this instruction") {
			return fmt.Sprintf("Feedback: easy. [RESULT] %d", i%3+1)
		}
		return fmt.Sprintf("Feedback: fine. [RESULT] %d", (i+1)%5+1)
	}})
	t.Cleanup(prom.Close)
	f := newFixture(t, fixtureOpts{instances: 10, concurrency: 4, extra: fmt.Sprintf(`metrics: {
	judge: {provider: openai: {base_url: %q, api_key_env: %q}, model: "judge-model", price: {input: 5, output: 15}, sample: 6}
	judge_2: {provider: openai: {base_url: %q, api_key_env: %q}, model: "prom-model", price: {input: 1, output: 1}, sample: 6, template: "prometheus"}
}`, js.URL(), keyEnv, prom.URL(), keyEnv)})
	res, store := f.apply(context.Background(), nil)
	var j1, j2 plan.Step
	for _, s := range f.plan.Steps {
		switch {
		case strings.HasPrefix(s.Address, "judge."):
			j1 = s
		case strings.HasPrefix(s.Address, "judge_2."):
			j2 = s
		}
	}
	if !contains(res.Done, j1.Address) || !contains(res.Done, j2.Address) {
		t.Fatalf("apply: %+v", res)
	}
	if len(bad) > 0 {
		t.Fatalf("judge_2 was sent %d requests not in the Prometheus layout, e.g. %s", len(bad), bad[0])
	}
	items := sampled(t, store, f.generateStep(), 6, 0)
	want := map[string][]float64{}
	var retried int64 // judgeServer's first judgement of i%4 == 0 is unreadable
	for _, it := range items {
		i := seedNumber(t, it.Instruction)
		if i%4 == 0 {
			retried += 2
		}
		want["instruction_difficulty"] = append(want["instruction_difficulty"], float64(i%5+1))
		want["response_quality"] = append(want["response_quality"], float64((i+2)%5+1))
		want["instruction_difficulty_2"] = append(want["instruction_difficulty_2"], float64(i%3+1))
		want["response_quality_2"] = append(want["response_quality_2"], float64((i+1)%5+1))
	}
	got1, got2 := metricsOf(t, store, j1.ID), metricsOf(t, store, j2.ID)
	if len(got1) != 2 || len(got2) != 2 {
		t.Fatalf("judge's metrics %v, judge_2's %v", got1, got2)
	}
	for name, xs := range want {
		got := got1
		if strings.HasSuffix(name, "_2") {
			got = got2
		}
		w, _ := metrics.Summarize(xs)
		if m, ok := got[name]; !ok || m.N != 6 || math.Abs(m.Value-w.Mean) > 1e-12 || !strings.Contains(m.Detail, `"model":`) {
			t.Errorf("%s = %+v, want mean %v", name, m, w.Mean)
		}
	}
	if js.Stats().Requests != 12+retried || prom.Stats().Requests != 12 {
		t.Errorf("requests: judge %d, judge_2 %d; want %d and 12", js.Stats().Requests, prom.Stats().Requests, 12+retried)
	}
}
