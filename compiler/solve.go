package compiler

import (
	"fmt"
	"strings"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// solveInputs identify a solve step: the generator as its generate steps
// identify it (provider, endpoint, model, sampling; not its name or
// price), and the benchmark as its evaluate steps do, with the number of
// problems answered.
type solveInputs struct {
	Kind      string        `json:"kind"`
	Provider  string        `json:"provider"`
	Endpoint  string        `json:"endpoint,omitempty"`
	Model     string        `json:"model"`
	Sampling  spec.Sampling `json:"sampling"`
	Benchmark string        `json:"benchmark"`
	Harness   string        `json:"harness"`
	Items     int           `json:"items"`
	Judge     string        `json:"judge,omitempty"`
}

// solveSteps adds one solve step per generator and benchmark the spec's
// problem_solving block asks for (spec.Experiment.SolveTasks).
func (c *compiler) solveSteps() {
	tasks, skipped := c.exp.SolveTasks()
	for _, b := range skipped {
		c.warn(fmt.Sprintf("problem_solving: benchmark %s runs a command template on a checkpoint, which a generator behind an API cannot answer: no solve step for it", b))
	}
	for _, t := range tasks {
		g := c.exp.Generators[t.Generator]
		b := c.exp.Evaluation.Benchmarks[t.Benchmark]
		in := solveInputs{Kind: plan.KindSolve, Provider: g.Provider.Kind(), Endpoint: endpointOf(g), Model: g.Model,
			Sampling: g.Sampling, Benchmark: b.Name, Harness: b.Harness, Items: t.Items}
		if b.Judge != nil {
			in.Judge = b.Judge.Model
		}
		c.add(plan.Step{
			Address:   fmt.Sprintf("solve.%s.%s", t.Generator, t.Benchmark),
			Kind:      plan.KindSolve,
			Generator: t.Generator,
			Benchmark: t.Benchmark,
			Instances: t.Items,
			// The harness runs on this machine, against agora's own
			// proxy in front of the generator's provider.
			Executor: spec.ExecutorLocal,
			Estimate: c.estimateSolve(g, b, t.Items),
			Inputs:   c.canonical(in),
		}, t.Generator)
	}
}

// endpointOf is the endpoint part of a generator's identity, as generate
// steps record it.
func endpointOf(g *spec.Generator) string {
	switch {
	case g.Provider.OpenAI != nil:
		return strings.TrimRight(g.Provider.OpenAI.BaseURL, "/")
	case g.Provider.VLLM != nil:
		return "vllm:" + g.Provider.VLLM.Path + ":" + g.Provider.VLLM.DType
	}
	return ""
}

// estimateSolve: one request per problem, carrying the benchmark's
// prompt_tokens and returning its output_tokens (at most the generator's
// max_tokens), at the generator's prices; the worst case has every answer
// run to max_tokens. A vllm generator's answers take GPU-hours as its
// generation does; a judged benchmark adds the judge's tokens at its
// price to the dollars (the token counts stay the generator's).
func (c *compiler) estimateSolve(g *spec.Generator, b *spec.Benchmark, items int) plan.Estimate {
	n := int64(items)
	out := int64(min(b.OutputTokens, g.Sampling.MaxTokens))
	e := plan.Estimate{
		InputTokens:  n * int64(b.PromptTokens),
		OutputTokens: n * out,
		Requests:     n,
	}
	if p := g.Price; p != nil {
		e.USD = usd(e.InputTokens, e.OutputTokens, p.Input, p.Output)
		e.WorstUSD = usd(e.InputTokens, n*int64(g.Sampling.MaxTokens), p.Input, p.Output)
	}
	if v := g.Provider.VLLM; v != nil {
		wall := float64(e.OutputTokens)/(v.ThroughputTokensPerS*float64(v.Replicas))/3600 + serverOverheadHours
		e.GPUHours = wall * float64(v.GPUs*v.Replicas)
	}
	if j := b.Judge; j != nil {
		judge := usd(n*int64(j.InputTokens), n*int64(j.OutputTokens), j.Price.Input, j.Price.Output)
		e.USD += judge
		e.WorstUSD += judge
	}
	return e
}
