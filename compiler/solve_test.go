package compiler

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/agorabench/agora/plan"
)

// solveSpec has an API generator, a vLLM generator and two settings;
// block is the problem_solving block (and anything else to add).
const solveSpec = `
generators: {
	api: {provider: openai: {}, model: "m-api", price: {input: 2, output: 8}, sampling: max_tokens: 1000}
	local: {provider: vllm: {gpus: 2, throughput_tokens_per_s: 1000}, model: "m-local", sampling: max_tokens: 2000}
}
settings: {"math-rg": {instances: 100}, "if-rg": {instances: 100}}
grid: exclude: [{generator: "local", setting: "if-rg"}]
`

func TestSolveSteps(t *testing.T) {
	p := compileSrc(t, solveSpec+`problem_solving: {}
budgets: per_generator: api: usd: 1000
`, "")
	got := addresses(stepsOf(p, plan.KindSolve))
	want := []string{"solve.api.gsm8k", "solve.api.math", "solve.api.alpacaeval2", "solve.api.arenahard", "solve.local.gsm8k", "solve.local.math"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("solve steps %v, want %v", got, want)
	}
	// Solve steps come last, need nothing, and run locally.
	if last := p.Steps[len(p.Steps)-1]; last.Kind != plan.KindSolve {
		t.Errorf("last step is %s", last.Address)
	}
	s := step(t, p, "solve.api.gsm8k")
	if s.Generator != "api" || s.Benchmark != "gsm8k" || s.Instances != 1319 || len(s.Needs) != 0 || s.Executor != "local" || s.Action != plan.ActionCreate {
		t.Errorf("step = %+v", s)
	}
	var in map[string]any
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		t.Fatal(err)
	}
	if in["kind"] != "solve" || in["provider"] != "openai" || in["endpoint"] != "https://api.openai.com/v1" || in["model"] != "m-api" ||
		in["benchmark"] != "gsm8k" || in["harness"] != "lm-eval" || in["items"] != 1319.0 {
		t.Errorf("inputs = %s", s.Inputs)
	}

	// Estimates: items × (prompt + min(output, max_tokens)) at the
	// generator's prices; worst case at max_tokens.
	e := s.Estimate
	if e.InputTokens != 1319*130 || e.OutputTokens != 1319*256 || e.Requests != 1319 {
		t.Errorf("gsm8k tokens %d in, %d out, %d requests", e.InputTokens, e.OutputTokens, e.Requests)
	}
	checkNear(t, "gsm8k usd", e.USD, (1319*130*2+1319*256*8)/1e6)
	checkNear(t, "gsm8k worst", e.WorstUSD, (1319*130*2+1319*1000*8)/1e6)
	// A judged benchmark adds the judge's dollars, not its tokens.
	a := step(t, p, "solve.api.alpacaeval2").Estimate
	checkNear(t, "alpacaeval2 usd", a.USD, (805*60*2+805*512*8)/1e6+(805*1400*10+805*1*30)/1e6)
	if a.InputTokens != 805*60 {
		t.Errorf("alpacaeval2 input tokens %d", a.InputTokens)
	}
	// A vLLM generator costs GPU-hours: output tokens at its throughput
	// plus a server start, on its GPUs.
	l := step(t, p, "solve.local.math").Estimate
	checkNear(t, "local math gpu-h", l.GPUHours, (5000*512/1000.0/3600+serverOverheadHours)*2)
	if l.USD != 0 {
		t.Errorf("local math usd %v", l.USD)
	}

	// The generator owns its solve steps: they are in its totals and among
	// the contributors to its budget.
	var solveUSD float64
	for _, s := range stepsOf(p, plan.KindSolve) {
		if s.Generator == "api" {
			solveUSD += s.Estimate.USD
		}
	}
	var genUSD float64
	for _, s := range p.Steps {
		if s.Generator == "api" {
			genUSD += s.Estimate.USD
		}
	}
	checkNear(t, "api total", p.Totals.ByGenerator["api"].USD, genUSD)
	if p.Totals.ByGenerator["api"].USD <= solveUSD || solveUSD <= 0 {
		t.Errorf("api total %v, solve %v", p.Totals.ByGenerator["api"].USD, solveUSD)
	}
	var bud plan.Budget
	for _, b := range p.Budgets {
		if b.Name == "usd:api" {
			bud = b
		}
	}
	if len(bud.Top) == 0 || bud.Top[0].Name != "solve.api.arenahard" {
		t.Errorf("usd:api contributors %+v, want solve.api.arenahard first", bud.Top)
	}
	if p.Counts.Create[plan.KindSolve] != 6 {
		t.Errorf("counts %v", p.Counts.Create)
	}
}

func TestSolveStepIdentity(t *testing.T) {
	id := func(src string) string {
		t.Helper()
		return step(t, compileSrc(t, src, ""), "solve.api.math").ID
	}
	block := "problem_solving: benchmarks: [\"math\"]\n"
	base := id(solveSpec + block)
	if again := id(solveSpec + block); again != base {
		t.Fatalf("ID not stable: %s then %s", base, again)
	}
	// Names, prices, limits and the block's other lists are not inputs.
	same := map[string]string{
		"price":     replace(t, solveSpec, "price: {input: 2, output: 8}", "price: {input: 3, output: 9}, limits: rpm: 5"),
		"generator": solveSpec + "problem_solving: {benchmarks: [\"math\", \"gsm8k\"], generators: [\"api\"]}\n",
		"items cap": solveSpec + "problem_solving: {benchmarks: [\"math\"], items: 5000}\n",
	}
	for what, src := range same {
		if what != "price" {
			if got := id(src); got != base {
				t.Errorf("%s: ID changed", what)
			}
			continue
		}
		if got := id(src + block); got != base {
			t.Errorf("%s: ID changed", what)
		}
	}
	// Model, sampling, endpoint, items and the judge are.
	differ := map[string]string{
		"model":    replace(t, solveSpec, `model: "m-api"`, `model: "m-api-2"`) + block,
		"sampling": replace(t, solveSpec, "sampling: max_tokens: 1000}", "sampling: {max_tokens: 1000, temperature: 0.5}}") + block,
		"endpoint": replace(t, solveSpec, "provider: openai: {}", `provider: openai: base_url: "https://example.com/v1"`) + block,
		"items":    solveSpec + "problem_solving: {benchmarks: [\"math\"], items: 100}\n",
		"judge":    solveSpec + "problem_solving: benchmarks: [\"math\"]\nevaluation: benchmarks: math: judge: {model: \"j\", price: {input: 1, output: 1}}\n",
	}
	for what, src := range differ {
		if got := id(src); got == base {
			t.Errorf("%s: ID did not change", what)
		}
	}
}

func TestSolveNoop(t *testing.T) {
	src := solveSpec + "problem_solving: benchmarks: [\"math\"]\n"
	p := compileSrc(t, src, "")
	s := step(t, p, "solve.api.math")
	p2 := compile(t, load(t, src, ""), Options{Recorded: &recorded{done: map[string]bool{s.ID: true}}})
	if got := step(t, p2, "solve.api.math"); got.Action != plan.ActionNoop {
		t.Errorf("recorded solve step: action %s", got.Action)
	}
	if p2.Counts.Noop[plan.KindSolve] != 1 || p2.Counts.Create[plan.KindSolve] != 1 {
		t.Errorf("counts create %v noop %v", p2.Counts.Create, p2.Counts.Noop)
	}
}

func TestSolveSkipsCommandBenchmarks(t *testing.T) {
	p := compileSrc(t, `
generators: api: {provider: openai: {}, model: "m", price: {input: 1, output: 1}}
settings: "math-rg": {instances: 10, benchmarks: ["gsm8k", "mine"]}
evaluation: benchmarks: mine: {harness: "command", command: "run {{.ModelPath}}", items: 10}
problem_solving: {}
`, "")
	if got := addresses(stepsOf(p, plan.KindSolve)); !reflect.DeepEqual(got, []string{"solve.api.gsm8k"}) {
		t.Errorf("solve steps %v", got)
	}
	want := "problem_solving: benchmark mine runs a command template on a checkpoint, which a generator behind an API cannot answer: no solve step for it"
	found := false
	for _, w := range p.Warnings {
		found = found || w == want
	}
	if !found {
		t.Errorf("warnings %q, want %q", p.Warnings, want)
	}
}
