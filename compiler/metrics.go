package compiler

import (
	"fmt"
	"math"
	"strings"

	"github.com/agorabench/agora/metrics"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// Metric steps: one per metric the spec asks for and generate step, each
// needing only its generate step, owned (for budgets) by the data's
// generator. docs/metrics.md defines them; docs/estimates.md costs them.

// metricModel identifies the model a metric calls: what it computes with,
// not what the spec calls it.
type metricModel struct {
	Provider string         `json:"provider"`
	Endpoint string         `json:"endpoint,omitempty"`
	Model    string         `json:"model"`
	Sampling *spec.Sampling `json:"sampling,omitempty"`
}

func modelOf(g *spec.Generator, withSampling bool) metricModel {
	m := metricModel{Provider: g.Provider.Kind(), Model: g.Model}
	switch {
	case g.Provider.OpenAI != nil:
		m.Endpoint = strings.TrimRight(g.Provider.OpenAI.BaseURL, "/")
	case g.Provider.VLLM != nil:
		m.Endpoint = "vllm:" + g.Provider.VLLM.Path + ":" + g.Provider.VLLM.DType
	}
	if withSampling {
		s := g.Sampling
		m.Sampling = &s
	}
	return m
}

// JudgeInputs are a judge step's canonical inputs.
type JudgeInputs struct {
	Kind     string      `json:"kind"`
	Data     string      `json:"data"`
	Judge    metricModel `json:"judge"`
	Rubric   string      `json:"rubric"`
	Domain   string      `json:"domain"`
	Aspects  []string    `json:"aspects"`
	Sample   int         `json:"sample"`
	Seed     int         `json:"seed"`
	Attempts int         `json:"attempts"`
	// Suffix is the judge's ("_2" for judge_2), added to its features'
	// names; System is how its template's system message is sent, when
	// the template has one. Both are left out when empty, so that the
	// steps of a spec with one agora-template judge keep their IDs.
	Suffix string `json:"suffix,omitempty"`
	System string `json:"system,omitempty"`
}

// DiversityInputs are a diversity step's canonical inputs.
type DiversityInputs struct {
	Kind     string      `json:"kind"`
	Data     string      `json:"data"`
	Embedder metricModel `json:"embedder"`
	Sample   int         `json:"sample"`
	Seed     int         `json:"seed"`
}

// PerplexityInputs are a perplexity step's canonical inputs.
type PerplexityInputs struct {
	Kind   string      `json:"kind"`
	Data   string      `json:"data"`
	Scorer metricModel `json:"scorer"`
	Format string      `json:"format"`
	Sample int         `json:"sample"`
	Seed   int         `json:"seed"`
}

// RewardInputs are a reward step's canonical inputs.
type RewardInputs struct {
	Kind    string `json:"kind"`
	Data    string `json:"data"`
	Model   string `json:"model"`
	Command string `json:"command"`
	// Builtin is the digest of agora's built-in reward job
	// (metrics.RewardJobDigest) when the spec gives no command.
	Builtin string `json:"builtin,omitempty"`
	Sample  int    `json:"sample"`
	Seed    int    `json:"seed"`
}

// perplexityFormat names how an item is laid out for scoring
// (metrics.PerplexityPrefix); it changes when the layout does.
const perplexityFormat = "instruction+blank-line+response"

// The fixed parts of the metrics' cost model (docs/estimates.md).
const (
	// judgeOverheadTokens are the tokens of the judge prompt besides the
	// rubric's text that tokens.Counter counts and the item itself.
	judgeOverheadTokens = 16
	// metricJobOverheadHours is a reward job's start: loading the model.
	metricJobOverheadHours = evalOverheadHours
)

// metricSteps adds the metric steps of the data set of generate step genID.
func (c *compiler) metricSteps(s *spec.Setting, cl cell, genID string) {
	m := c.exp.Metrics
	if m == nil {
		return
	}
	suffix := fmt.Sprintf("%s.%s.n%d.%s.s%d", cl.Generator, cl.Setting, cl.Instances, cl.Variant, cl.Seed)
	step := func(kind, executor string, e plan.Estimate, in any) plan.Step {
		name := kind
		if j, ok := in.(JudgeInputs); ok {
			name += j.Suffix
		}
		return plan.Step{
			Address: name + "." + suffix, Kind: kind, Needs: []string{genID},
			Generator: cl.Generator, Setting: cl.Setting, Instances: cl.Instances, Variant: cl.Variant, Seed: intPtr(cl.Seed),
			Executor: executor, Estimate: e, Inputs: c.canonical(in),
		}
	}
	item := itemTokens(s)
	for _, j := range m.Judges() {
		if j.Gen == nil || j.Prompt == nil {
			continue
		}
		n := sampled(cl.Instances, j.Sample)
		in := JudgeInputs{Kind: plan.KindJudge, Data: genID, Judge: modelOf(j.Gen, true), Rubric: j.Prompt.Digest(),
			Domain: s.Domain, Aspects: j.Aspects, Sample: j.Sample, Seed: j.Seed, Attempts: j.Attempts, Suffix: j.Suffix}
		if sys, _, _ := j.Prompt.Messages(spec.AspectDifficulty, s.Domain, "", ""); sys != "" {
			in.System = j.System
		}
		c.add(step(plan.KindJudge, executorOf(j.Gen), c.estimateJudge(j, s, n, item), in), cl.Generator)
	}
	if d := m.Diversity; d != nil && d.Gen != nil {
		n := sampled(cl.Instances, d.Sample)
		in := DiversityInputs{Kind: plan.KindDiversity, Data: genID, Embedder: modelOf(d.Gen, false), Sample: d.Sample, Seed: d.Seed}
		c.add(step(plan.KindDiversity, executorOf(d.Gen), estimateDiversity(d, n, item), in), cl.Generator)
	}
	if p := m.Perplexity; p != nil && p.Gen != nil {
		n := sampled(cl.Instances, p.Sample)
		in := PerplexityInputs{Kind: plan.KindPerplexity, Data: genID, Scorer: modelOf(p.Gen, false), Format: perplexityFormat,
			Sample: p.Sample, Seed: p.Seed}
		c.add(step(plan.KindPerplexity, executorOf(p.Gen), estimatePerplexity(p, n, item), in), cl.Generator)
	}
	if r := m.Reward; r != nil {
		n := sampled(cl.Instances, r.Sample)
		in := RewardInputs{Kind: plan.KindReward, Data: genID, Model: r.Model, Command: r.Command, Sample: r.Sample, Seed: r.Seed}
		if r.Command == "" {
			in.Builtin = metrics.RewardJobDigest()
		}
		c.add(step(plan.KindReward, r.Executor, estimateReward(r, n), in), cl.Generator)
	}
}

// sampled is the number of items a metric looks at: sample of n, or n.
func sampled(n, sample int) int {
	if sample > 0 && sample < n {
		return sample
	}
	return n
}

// itemTokens are the expected tokens of one instruction–response pair:
// the completion, plus the seed instruction for response generation
// (whose completion is the response alone).
func itemTokens(s *spec.Setting) int64 {
	t := int64(s.Estimate.OutputTokens)
	if s.Method == spec.MethodResponse {
		t += int64(s.Estimate.InputTokens)
	}
	return t
}

// estimateJudge: one request per item and aspect, carrying the rubric's
// text and the item (the instruction alone for difficulty, taken as half
// the item), returning output_tokens; the worst case has every judgement
// run to the judge's max_tokens. A vLLM judge adds GPU-hours as a vLLM
// generator does.
func (c *compiler) estimateJudge(j *spec.JudgeMetric, s *spec.Setting, n int, item int64) plan.Estimate {
	g := j.Gen
	var e plan.Estimate
	for _, a := range j.Aspects {
		sys, text, _ := j.Prompt.Messages(a, s.Domain, "", "")
		if sys != "" {
			text = sys + "\n" + text
		}
		static, method := c.tok.Count(g.Model, text)
		per := int64(static + judgeOverheadTokens)
		if a == spec.AspectDifficulty {
			per += item / 2
		} else {
			per += item
		}
		e.InputTokens += int64(n) * per
		e.Requests += int64(n)
		e.Tokenizer = method
	}
	out := int64(min(j.OutputTokens, g.Sampling.MaxTokens))
	e.OutputTokens = e.Requests * out
	if p := g.Price; p != nil {
		e.USD = usd(e.InputTokens, e.OutputTokens, p.Input, p.Output)
		e.WorstUSD = usd(e.InputTokens, e.Requests*int64(g.Sampling.MaxTokens), p.Input, p.Output)
	}
	if v := g.Provider.VLLM; v != nil {
		wall := float64(e.OutputTokens)/(v.ThroughputTokensPerS*float64(v.Replicas))/3600 + serverOverheadHours
		e.GPUHours = wall * float64(v.GPUs*v.Replicas)
	}
	return e
}

// estimateDiversity: every sampled instruction and response embedded
// once, batch texts a request, at the embedding model's input price.
func estimateDiversity(d *spec.DiversityMetric, n int, item int64) plan.Estimate {
	texts := int64(2 * n)
	e := plan.Estimate{InputTokens: int64(n) * item, Requests: int64(math.Ceil(float64(texts) / float64(d.Batch)))}
	if p := d.Gen.Price; p != nil {
		e.USD = usd(e.InputTokens, 0, p.Input, 0)
		e.WorstUSD = e.USD
	}
	if v := d.Gen.Provider.VLLM; v != nil {
		wall := float64(e.InputTokens)/(v.ThroughputTokensPerS*float64(v.Replicas))/3600 + serverOverheadHours
		e.GPUHours = wall * float64(v.GPUs*v.Replicas)
	}
	return e
}

// estimatePerplexity: one prompt per sampled item (its instruction and
// response), scored at throughput_tokens_per_s per replica by a vllm
// server agora runs; an endpoint the user runs costs nothing here.
func estimatePerplexity(p *spec.PerplexityMetric, n int, item int64) plan.Estimate {
	e := plan.Estimate{InputTokens: int64(n) * (item + 2), Requests: int64(n)}
	if v := p.Gen.Provider.VLLM; v != nil {
		wall := float64(e.InputTokens)/(p.ThroughputTokensPerS*float64(v.Replicas))/3600 + serverOverheadHours
		e.GPUHours = wall * float64(v.GPUs*v.Replicas)
	}
	if pr := p.Gen.Price; pr != nil {
		e.USD = usd(e.InputTokens, int64(n), pr.Input, pr.Output)
		e.WorstUSD = e.USD
	}
	return e
}

// estimateReward: the sampled items at throughput_items_per_s plus the
// model's loading, on the job's GPUs.
func estimateReward(r *spec.RewardMetric, n int) plan.Estimate {
	wall := float64(n)/r.ThroughputItemsPerS/3600 + metricJobOverheadHours
	return plan.Estimate{GPUHours: wall * float64(r.GPUs)}
}
