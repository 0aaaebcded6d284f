package compiler

import (
	"math"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// The fixed parts of the cost model, documented in docs/estimates.md.
const (
	// trainOverheadHours is the wall time of a training job beyond its
	// FLOPs: loading the base model, tokenising, saving the checkpoint.
	trainOverheadHours = 0.25
	// evalOverheadHours is the wall time of an evaluation beyond decoding:
	// starting vLLM, loading weights, the harness's own setup and scoring.
	evalOverheadHours = 0.15
	// serverOverheadHours is the start-up of one vLLM generator replica.
	serverOverheadHours = 0.1
	// chatOverheadTokens are the chat template's tokens around a training
	// example.
	chatOverheadTokens = 16
)

func (c *compiler) assumptions() plan.Assumed {
	st := c.exp.Student
	return plan.Assumed{
		TrainUtilization:  st.Hardware.Utilization,
		TrainPeakTFLOPS:   spec.PeakTFLOPS(st.Hardware),
		TrainOverheadH:    trainOverheadHours,
		EvalThroughput:    c.exp.Evaluation.ThroughputTokensPerS,
		EvalOverheadH:     evalOverheadHours,
		ServerOverheadH:   serverOverheadHours,
		StudentParamsBill: st.ParamsBillion,
	}
}

// estimateGenerate: every request carries the template's static text and
// the setting's seed material and returns the setting's expected
// completion length; N accepted instances take N / acceptance requests.
// The worst case has every completion run to max_tokens.
func (c *compiler) estimateGenerate(g *spec.Generator, s *spec.Setting, cl cell, tpl *template) plan.Estimate {
	promptTokens, method := c.tok.Count(g.Model, tpl.static)
	perIn := int64(promptTokens + s.Estimate.InputTokens)
	perOut := int64(min(s.Estimate.OutputTokens, g.Sampling.MaxTokens))
	requests := requestsFor(cl.Instances, s.Estimate.Acceptance)
	e := plan.Estimate{
		InputTokens:  requests * perIn,
		OutputTokens: requests * perOut,
		Requests:     requests,
		Tokenizer:    method,
	}
	if p := g.Price; p != nil {
		mult := 1.0
		if g.BatchMode().On {
			mult = 1 - p.BatchDiscount
		}
		e.USD = usd(e.InputTokens, e.OutputTokens, p.Input, p.Output) * mult
		e.WorstUSD = usd(e.InputTokens, requests*int64(g.Sampling.MaxTokens), p.Input, p.Output) * mult
	}
	if b := g.BatchMode(); b.On {
		e.BatchWindow = b.Window
		e.Batches = (requests + int64(b.MaxRequests) - 1) / int64(max(b.MaxRequests, 1))
	}
	if v := g.Provider.VLLM; v != nil {
		wall := float64(e.OutputTokens)/(v.ThroughputTokensPerS*float64(v.Replicas))/3600 + serverOverheadHours
		e.GPUHours = wall * float64(v.GPUs*v.Replicas)
	}
	return e
}

// requestsFor is ceil(n / acceptance), read in decimal: binary floating
// point makes 700 / 0.7 come out as 1000.0000000000001, which must not
// cost a request more.
func requestsFor(n int, acceptance float64) int64 {
	q := float64(n) / acceptance
	if r := math.Round(q); math.Abs(q-r) <= 1e-12*r {
		return int64(r)
	}
	return int64(math.Ceil(q))
}

func usd(in, out int64, priceIn, priceOut float64) float64 {
	return (float64(in)*priceIn + float64(out)*priceOut) / 1e6
}

// estimateTrain: FLOPs ≈ 6 × parameters × tokens seen, at the hardware's
// peak times its utilisation, plus a fixed overhead; GPU-hours are wall
// hours times the job's GPUs.
func (c *compiler) estimateTrain(s *spec.Setting, cl cell) plan.Estimate {
	st := c.exp.Student
	examples := int64(cl.Instances)
	if s.Method == spec.MethodInstance {
		examples += int64(s.SeedData.Size)
	}
	perExample := s.Estimate.OutputTokens + chatOverheadTokens
	if s.Method == spec.MethodResponse {
		perExample += s.Estimate.InputTokens
	}
	perExample = min(perExample, st.Hyperparameters.MaxSeqLength)
	tokensSeen := float64(examples) * float64(perExample) * float64(st.Hyperparameters.Epochs)
	flops := 6 * st.ParamsBillion * 1e9 * tokensSeen
	gpus := float64(st.Hardware.GPUs())
	if gpus == 0 {
		return plan.Estimate{} // a CPU job: no GPU-hours
	}
	rate := gpus * spec.PeakTFLOPS(st.Hardware) * 1e12 * st.Hardware.Utilization
	wall := flops/rate/3600 + trainOverheadHours
	return plan.Estimate{GPUHours: wall * gpus}
}

// estimateEval: decoding the benchmark's answers at the evaluation
// throughput plus a fixed overhead, on the evaluation's GPUs; judged
// benchmarks add the judge's tokens at its price.
func (c *compiler) estimateEval(b *spec.Benchmark) plan.Estimate {
	ev := c.exp.Evaluation
	wall := float64(b.Items*b.OutputTokens)/ev.ThroughputTokensPerS/3600 + evalOverheadHours
	e := plan.Estimate{GPUHours: wall * float64(ev.GPUs)}
	if j := b.Judge; j != nil {
		in, out := int64(b.Items*j.InputTokens), int64(b.Items*j.OutputTokens)
		e.InputTokens, e.OutputTokens = in, out
		e.Requests = int64(b.Items)
		e.USD = usd(in, out, j.Price.Input, j.Price.Output)
		e.WorstUSD = e.USD
	}
	return e
}
