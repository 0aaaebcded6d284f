package compiler

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/agorabench/agora/metrics"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/tokens"
)

const metricsSpec = `
generators: {
	api: {provider: openai: {}, model: "m-api", price: {input: 2, output: 8}}
	judge: {provider: openai: {}, model: "j-model", price: {input: 5, output: 15}, sampling: max_tokens: 500}
}
settings: {
	"math-ig": {instances: 1000, estimate: {input_tokens: 100, output_tokens: 400}}
	"if-rg": {instances: 1000, estimate: {input_tokens: 100, output_tokens: 400}}
}
grid: generators: ["api"]
metrics: {
	judge: {generator: "judge", sample: 200, output_tokens: 300}
	diversity: {provider: openai: {}, model: "emb", price: {input: 0.02, output: 0}, sample: 500, batch: 100}
	perplexity: {provider: vllm: {gpus: 2, replicas: 1}, sample: 300, throughput_tokens_per_s: 10000}
	reward: {model: "rm", command: "score {{.Data}} {{.Output}}", gpus: 2, throughput_items_per_s: 10}
}
`

func TestMetricSteps(t *testing.T) {
	p := compileSrc(t, metricsSpec, "")
	for _, kind := range []string{plan.KindJudge, plan.KindDiversity, plan.KindPerplexity, plan.KindReward} {
		got := addresses(stepsOf(p, kind))
		want := []string{kind + ".api.math-ig.n1000.free-form.s42", kind + ".api.if-rg.n1000.free-form.s42"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s steps %v, want %v", kind, got, want)
		}
	}
	gen := step(t, p, "generate.api.math-ig.n1000.free-form.s42")
	j := step(t, p, "judge.api.math-ig.n1000.free-form.s42")
	if !reflect.DeepEqual(j.Needs, []string{gen.ID}) || j.Executor != "api" || j.Generator != "api" {
		t.Errorf("judge step %+v", j)
	}
	var in JudgeInputs
	if err := json.Unmarshal(j.Inputs, &in); err != nil {
		t.Fatal(err)
	}
	if in.Data != gen.ID || in.Judge.Model != "j-model" || in.Domain != "math" || in.Sample != 200 || in.Rubric != metrics.RubricDigest() ||
		!reflect.DeepEqual(in.Aspects, []string{"instruction_difficulty", "response_quality"}) {
		t.Errorf("judge inputs %s", j.Inputs)
	}

	// Judge: 200 items × 2 aspects; each prompt is the rubric's text
	// (counted by the tokenizer), 16 tokens of overhead and the item (400
	// tokens for instance generation; half of it for difficulty).
	tok := &tokens.Counter{}
	static := func(aspect, domain string) int64 {
		text, _ := metrics.JudgePrompt(aspect, domain, "", "")
		n, _ := tok.Count("j-model", text)
		return int64(n)
	}
	wantIn := 200*(static("instruction_difficulty", "math")+16+200) + 200*(static("response_quality", "math")+16+400)
	e := j.Estimate
	if e.Requests != 400 || e.InputTokens != wantIn || e.OutputTokens != 400*300 {
		t.Errorf("judge estimate %+v, want %d input tokens", e, wantIn)
	}
	checkNear(t, "judge usd", e.USD, (float64(wantIn)*5+400*300*15)/1e6)
	checkNear(t, "judge worst", e.WorstUSD, (float64(wantIn)*5+400*500*15)/1e6)
	// Response generation: the item is the seed instruction and the
	// response, 500 tokens.
	rg := step(t, p, "judge.api.if-rg.n1000.free-form.s42").Estimate
	if want := 200*(static("instruction_difficulty", "instruction_following")+16+250) + 200*(static("response_quality", "instruction_following")+16+500); rg.InputTokens != want {
		t.Errorf("if-rg judge input %d, want %d", rg.InputTokens, want)
	}

	// Diversity: 500 items × 400 tokens at $0.02/M, 1000 texts in batches of 100.
	d := step(t, p, "diversity.api.math-ig.n1000.free-form.s42")
	if d.Estimate.InputTokens != 500*400 || d.Estimate.Requests != 10 || d.Executor != "api" {
		t.Errorf("diversity %+v", d)
	}
	checkNear(t, "diversity usd", d.Estimate.USD, 500*400*0.02/1e6)

	// Perplexity: 300 items × 402 tokens at 10,000 tokens/s plus the
	// server's start, on 2 GPUs; the model defaults to student.base.
	pp := step(t, p, "perplexity.api.math-ig.n1000.free-form.s42")
	checkNear(t, "perplexity gpu-h", pp.Estimate.GPUHours, (300*402/10000.0/3600+serverOverheadHours)*2)
	if !strings.Contains(string(pp.Inputs), `"model":"meta-llama/Llama-3.1-8B"`) || pp.Executor != "vllm" {
		t.Errorf("perplexity %s %s", pp.Executor, pp.Inputs)
	}

	// Reward: 1000 items at 10/s plus the load, on 2 GPUs.
	r := step(t, p, "reward.api.math-ig.n1000.free-form.s42")
	checkNear(t, "reward gpu-h", r.Estimate.GPUHours, (1000/10.0/3600+evalOverheadHours)*2)
	if r.Executor != "local" {
		t.Errorf("reward executor %s", r.Executor)
	}

	// Metric steps count against the data's generator.
	var sum plan.Estimate
	for _, s := range p.Steps {
		if s.Generator == "api" {
			sum.Add(s.Estimate)
		}
	}
	checkNear(t, "api usd", p.Totals.ByGenerator["api"].USD, sum.USD)
	checkNear(t, "api gpu-h", p.Totals.ByGenerator["api"].GPUHours, sum.GPUHours)
	// In tokens too, so that the rows of the cost table add up to the total.
	if g := p.Totals.ByGenerator["api"]; g.InputTokens != sum.InputTokens || g.OutputTokens != sum.OutputTokens {
		t.Errorf("api tokens %d in, %d out; its steps' %d in, %d out", g.InputTokens, g.OutputTokens, sum.InputTokens, sum.OutputTokens)
	}
	var rowIn, rowOut int64
	for _, g := range p.Totals.ByGenerator {
		rowIn, rowOut = rowIn+g.InputTokens, rowOut+g.OutputTokens
	}
	if rowIn+p.Totals.Shared.InputTokens != p.Totals.InputTokens || rowOut+p.Totals.Shared.OutputTokens != p.Totals.OutputTokens {
		t.Errorf("rows %d+%d in, %d+%d out; total %d in, %d out", rowIn, p.Totals.Shared.InputTokens, rowOut, p.Totals.Shared.OutputTokens, p.Totals.InputTokens, p.Totals.OutputTokens)
	}
	// Metric steps come before training in the plan (and so start first).
	lastMetric := 0
	for i, s := range p.Steps {
		if s.Kind == plan.KindReward {
			lastMetric = i
		}
	}
	for i, s := range p.Steps {
		if s.Kind == plan.KindTrain && i < lastMetric {
			t.Errorf("train step %s comes before a reward step", s.Address)
		}
	}
}

func TestMetricIDs(t *testing.T) {
	id := func(src string) string {
		return step(t, compileSrc(t, src, ""), "judge.api.math-ig.n1000.free-form.s42").ID
	}
	base := id(metricsSpec)
	// The judge's name is not an input; its model, the sample and the
	// seed are.
	renamed := strings.Replace(strings.Replace(metricsSpec, `	judge: {provider`, `	renamed: {provider`, 1), `generator: "judge"`, `generator: "renamed"`, 1)
	if got := id(renamed); got != base {
		t.Errorf("renaming the judge changed the step id")
	}
	for _, change := range [][2]string{{`sample: 200`, `sample: 201`}, {`j-model`, `j-model-2`}, {`output_tokens: 300}`, `output_tokens: 300, seed: 1}`}} {
		if got := id(strings.Replace(metricsSpec, change[0], change[1], 1)); got == base {
			t.Errorf("%s → %s kept the judge step's id", change[0], change[1])
		}
	}
}

func TestMetricBudgets(t *testing.T) {
	// The metrics' dollars count against the data generator's budget.
	p := compileSrc(t, metricsSpec+"budgets: per_generator: api: usd: 10\n", "")
	var b plan.Budget
	for _, x := range p.Budgets {
		if x.Name == "usd:api" {
			b = x
		}
	}
	var metricUSD, all float64
	for _, s := range p.Steps {
		if s.Generator != "api" {
			continue
		}
		all += s.Estimate.USD
		if s.Kind == plan.KindJudge || s.Kind == plan.KindDiversity {
			metricUSD += s.Estimate.USD
		}
	}
	if b.OK || metricUSD <= 0 {
		t.Errorf("budget %+v; metric steps cost %v", b, metricUSD)
	}
	checkNear(t, "usd:api estimate", b.Estimate, all)
}

// TestRewardBuiltinInputs: a reward metric without a command runs agora's
// built-in job, whose digest is an input of the step (a change of the
// scoring makes a new step); with a command, the digest is not there.
func TestRewardBuiltinInputs(t *testing.T) {
	const addr = "reward.api.math-ig.n1000.free-form.s42"
	withCmd := step(t, compileSrc(t, metricsSpec, ""), addr)
	builtin := step(t, compileSrc(t, strings.Replace(metricsSpec, `command: "score {{.Data}} {{.Output}}", `, "", 1), ""), addr)
	var in RewardInputs
	if err := json.Unmarshal(builtin.Inputs, &in); err != nil {
		t.Fatal(err)
	}
	if in.Command != "" || in.Builtin != metrics.RewardJobDigest() || len(in.Builtin) != 64 {
		t.Errorf("built-in reward inputs %s", builtin.Inputs)
	}
	if strings.Contains(string(withCmd.Inputs), "builtin") || withCmd.ID == builtin.ID {
		t.Errorf("command inputs %s (id %s, built-in %s)", withCmd.Inputs, withCmd.ID, builtin.ID)
	}
}

// TestSecondJudge: judge_2 adds its own steps (judge_2.…), with its
// suffix, template digest and system-message choice among the inputs,
// estimated on its own template; the first judge's steps keep their IDs.
func TestSecondJudge(t *testing.T) {
	src := strings.Replace(metricsSpec, "	diversity:", `	judge_2: {provider: openai: {}, model: "prom", price: {input: 1, output: 1}, template: "prometheus", system: "prepend", sample: 200}
	diversity:`, 1)
	one, two := compileSrc(t, metricsSpec, ""), compileSrc(t, src, "")
	got := addresses(stepsOf(two, plan.KindJudge))
	want := []string{"judge.api.math-ig.n1000.free-form.s42", "judge_2.api.math-ig.n1000.free-form.s42",
		"judge.api.if-rg.n1000.free-form.s42", "judge_2.api.if-rg.n1000.free-form.s42"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("judge steps %v, want %v", got, want)
	}
	first := "judge.api.math-ig.n1000.free-form.s42"
	if step(t, one, first).ID != step(t, two, first).ID {
		t.Error("adding judge_2 changed judge's step ID")
	}
	j2 := step(t, two, "judge_2.api.math-ig.n1000.free-form.s42")
	var in JudgeInputs
	if err := json.Unmarshal(j2.Inputs, &in); err != nil {
		t.Fatal(err)
	}
	prom, _ := metrics.BuiltinJudgeTemplate(metrics.TemplatePrometheus)
	if in.Suffix != "_2" || in.System != "prepend" || in.Rubric != prom.Digest() || in.Judge.Model != "prom" || j2.Executor != "api" {
		t.Errorf("judge_2 inputs %s", j2.Inputs)
	}
	if strings.Contains(string(step(t, one, first).Inputs), "suffix") {
		t.Errorf("judge's inputs name a suffix: %s", step(t, one, first).Inputs)
	}
	// The estimate counts the Prometheus layout's own text: system and
	// user message, 16 tokens of overhead, the item.
	tok := &tokens.Counter{}
	var wantIn int64
	for _, a := range []string{"instruction_difficulty", "response_quality"} {
		sys, user, _ := prom.Messages(a, "math", "", "")
		n, _ := tok.Count("prom", sys+"\n"+user)
		item := int64(400)
		if a == "instruction_difficulty" {
			item /= 2
		}
		wantIn += 200 * (int64(n) + 16 + item)
	}
	if e := j2.Estimate; e.InputTokens != wantIn || e.Requests != 400 || e.OutputTokens != 400*300 {
		t.Errorf("judge_2 estimate %+v, want %d input tokens", e, wantIn)
	}
	// A changed template or system choice is a new step.
	for _, change := range [][2]string{{`template: "prometheus", system: "prepend"`, `template: "prometheus"`}, {`template: "prometheus", `, ``}} {
		p := compileSrc(t, strings.Replace(src, change[0], change[1], 1), "")
		if step(t, p, "judge_2.api.math-ig.n1000.free-form.s42").ID == j2.ID {
			t.Errorf("%q → %q kept judge_2's step ID", change[0], change[1])
		}
	}
}
