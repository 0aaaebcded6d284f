// Package eta is agora's model of time: how long a plan's steps take by
// the resources the spec gives them, and so which step the rest of the
// plan waits on longest (its critical path). The engine starts ready work
// in that order; `agora plan` shows the estimated wall-clock of
// generation and of the jobs, and `agora status` an ETA (docs/estimates.md,
// "Time").
//
// The model: every generator runs at once, each at its own limits, and
// the API steps of one generator share them, so that each of them ends
// when the generator's whole remaining work does. A generator serves
//
//	rate = min(concurrency / latency, rpm / 60, tpm / 60 / tokens_per_request)
//
// requests a second, where a request's latency is assumed
// (AssumedLatency) and takes prompt + max_tokens from the TPM bucket, as
// the client charges it. A job takes its estimated GPU-hours over the GPUs
// it asks for; a job with no GPU-hours takes no time here.
package eta

import (
	"math"
	"sort"
	"time"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// Assumptions of the model, for a generator that sets no limit.
const (
	// DefaultConcurrency is the requests in flight of a generator
	// without limits.concurrency (the client's default).
	DefaultConcurrency = 16
	// BaseLatency and OutputTokensPerSecond make a request's assumed
	// latency: BaseLatency + output tokens / OutputTokensPerSecond.
	BaseLatency           = time.Second
	OutputTokensPerSecond = 50
)

// AssumedLatency is how long a request producing out tokens is assumed to
// take.
func AssumedLatency(out float64) time.Duration {
	return BaseLatency + time.Duration(out/OutputTokensPerSecond*float64(time.Second))
}

// Rate is the requests per second a generator with limits l sustains when
// each request takes latency and charges tokens to the TPM bucket.
func Rate(l spec.Limits, latency time.Duration, tokens float64) float64 {
	conc := l.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	rate := math.Inf(1)
	if latency > 0 {
		rate = float64(conc) / latency.Seconds()
	}
	if l.RPM > 0 {
		rate = min(rate, float64(l.RPM)/60)
	}
	if l.TPM > 0 && tokens > 0 {
		rate = min(rate, float64(l.TPM)/60/tokens)
	}
	return rate
}

// Times are a plan's estimated durations, in seconds.
type Times struct {
	// Step is each step's own time; for an API step, the time of its
	// generator's whole remaining work, which its steps share.
	Step map[string]float64
	// Path is each step's time plus the longest path of steps after it
	// that need it: what the rest of the plan waits on it (its bottom
	// level). Ready work starts in decreasing Path.
	Path map[string]float64
	// Generators is each generator's API work at its limits.
	Generators map[string]float64
	// Generation is the longest of Generators: all run at once;
	// Slowest names it.
	Generation float64
	Slowest    string
	// Jobs is the longest chain of jobs (train, evaluate, reward) after
	// generation, on a cluster that runs every ready job at once.
	Jobs float64
	// Total is the longest path through the plan.
	Total float64
}

// Plan estimates the times of p's steps that are not done.
func Plan(exp *spec.Experiment, p *plan.Plan, done map[string]bool) Times {
	left := make(map[string]float64, len(done))
	for id, d := range done {
		if d {
			left[id] = 0
		}
	}
	return PlanLeft(exp, p, left)
}

// PlanLeft is Plan for steps partly done: left holds the share of a
// step's work still to do (0: done; a step not in it has all of it left).
func PlanLeft(exp *spec.Experiment, p *plan.Plan, left map[string]float64) Times {
	share := func(id string) float64 {
		if v, ok := left[id]; ok {
			return min(max(v, 0), 1)
		}
		return 1
	}
	done := map[string]bool{}
	for _, s := range p.Steps {
		if share(s.ID) == 0 {
			done[s.ID] = true
		}
	}
	t := Times{Step: map[string]float64{}, Path: map[string]float64{}, Generators: map[string]float64{}}
	// Each generator's remaining API work, in seconds.
	for _, s := range p.Steps {
		if done[s.ID] || !apiStep(s.Kind) || s.Generator == "" {
			continue
		}
		g := exp.Generators[s.Generator]
		if g == nil {
			continue
		}
		t.Generators[s.Generator] += requestSeconds(g, s.Estimate) * share(s.ID)
	}
	for name, v := range t.Generators {
		if v > t.Generation || v == t.Generation && name < t.Slowest {
			t.Generation, t.Slowest = v, name
		}
	}
	for _, s := range p.Steps {
		if done[s.ID] {
			continue
		}
		switch {
		case apiStep(s.Kind) && s.Generator != "":
			t.Step[s.ID] = t.Generators[s.Generator]
		case jobStep(s.Kind):
			t.Step[s.ID] = JobSeconds(s.Estimate.GPUHours, JobGPUs(exp, s)) * share(s.ID)
		}
	}
	// Bottom levels, from the last step back: the plan lists every step
	// after those it needs.
	after := map[string][]string{}
	for _, s := range p.Steps {
		for _, n := range s.Needs {
			after[n] = append(after[n], s.ID)
		}
	}
	jobs := map[string]float64{} // the longest job chain from a step on
	for i := len(p.Steps) - 1; i >= 0; i-- {
		s := p.Steps[i]
		if done[s.ID] {
			continue
		}
		var longest, longestJobs float64
		for _, c := range after[s.ID] {
			longest = max(longest, t.Path[c])
			longestJobs = max(longestJobs, jobs[c])
		}
		t.Path[s.ID] = t.Step[s.ID] + longest
		if jobStep(s.Kind) {
			longestJobs += t.Step[s.ID]
		}
		jobs[s.ID] = longestJobs
		t.Total = max(t.Total, t.Path[s.ID])
		t.Jobs = max(t.Jobs, longestJobs)
	}
	return t
}

// JobSeconds is the wall-clock of a job estimated at gpuHours on gpus.
func JobSeconds(gpuHours float64, gpus int) float64 {
	return gpuHours / float64(max(gpus, 1)) * 3600
}

// requestSeconds is an API step's requests at its generator's rate.
func requestSeconds(g *spec.Generator, e plan.Estimate) float64 {
	if e.Requests <= 0 {
		return 0
	}
	n := float64(e.Requests)
	in, out := float64(e.InputTokens)/n, float64(e.OutputTokens)/n
	charge := in + float64(g.Sampling.MaxTokens)
	if g.Sampling.MaxTokens <= 0 {
		charge = in + out
	}
	l := g.Limits
	if g.Provider.VLLM != nil && l.Concurrency <= 0 {
		l.Concurrency = 256 * max(g.Provider.VLLM.Replicas, 1)
	}
	return n / Rate(l, AssumedLatency(out), charge)
}

func apiStep(kind string) bool {
	switch kind {
	case plan.KindGenerate, plan.KindSolve, plan.KindJudge, plan.KindDiversity, plan.KindPerplexity:
		return true
	}
	return false
}

func jobStep(kind string) bool {
	switch kind {
	case plan.KindTrain, plan.KindEvaluate, plan.KindReward:
		return true
	}
	return false
}

// JobGPUs is the GPUs a job step asks for.
func JobGPUs(exp *spec.Experiment, s plan.Step) int {
	switch s.Kind {
	case plan.KindTrain:
		return exp.Student.Hardware.GPUs()
	case plan.KindEvaluate:
		return exp.Evaluation.GPUs
	}
	return 1
}

// Order returns the IDs of p's steps in the order ready work starts:
// decreasing Path, then plan order. It keeps every step after those it
// needs.
func (t Times) Order(p *plan.Plan) []string {
	ids := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		ids[i] = s.ID
	}
	sort.SliceStable(ids, func(i, j int) bool { return t.Path[ids[i]] > t.Path[ids[j]] })
	return ids
}

// Duration converts seconds to a duration, rounded to the second.
func Duration(seconds float64) time.Duration {
	if math.IsInf(seconds, 0) || math.IsNaN(seconds) || seconds > 1e9 {
		return time.Duration(1e9) * time.Second
	}
	return time.Duration(math.Round(seconds)) * time.Second
}
