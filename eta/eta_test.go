package eta

import (
	"math"
	"testing"
	"time"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*max(1, math.Abs(b)) }

// TestRate: the tightest of concurrency over latency, rpm and tpm.
func TestRate(t *testing.T) {
	for _, c := range []struct {
		l      spec.Limits
		lat    time.Duration
		tokens float64
		want   float64
	}{
		{spec.Limits{Concurrency: 32}, 2 * time.Second, 1000, 16},
		{spec.Limits{Concurrency: 32, RPM: 600}, 2 * time.Second, 1000, 10},
		// agora.cue's Claude: 400,000 tpm at ~4,600 tokens a request.
		{spec.Limits{Concurrency: 32, RPM: 1000, TPM: 400000}, 2 * time.Second, 4600, 400000.0 / 60 / 4600},
		{spec.Limits{}, time.Second, 0, DefaultConcurrency},
	} {
		if got := Rate(c.l, c.lat, c.tokens); !near(got, c.want) {
			t.Errorf("Rate(%+v, %s, %g) = %g, want %g", c.l, c.lat, c.tokens, got, c.want)
		}
	}
}

// TestPlan: a generator's steps share its rate, each taking the
// generator's whole time; a job takes its GPU-hours over its GPUs; the
// critical path orders the steps, and done steps are left out.
func TestPlan(t *testing.T) {
	exp := &spec.Experiment{
		Generators: map[string]*spec.Generator{
			"slow": {Limits: spec.Limits{RPM: 60}, Sampling: spec.Sampling{MaxTokens: 100}},
			"fast": {Limits: spec.Limits{RPM: 600, Concurrency: 64}, Sampling: spec.Sampling{MaxTokens: 100}},
		},
		Student:    spec.Student{Hardware: spec.Hardware{GPUsPerNode: 4, Nodes: 1}},
		Evaluation: spec.Evaluation{GPUs: 1},
	}
	gen := func(id, g string, req int64) plan.Step {
		return plan.Step{ID: id, Kind: plan.KindGenerate, Generator: g, Estimate: plan.Estimate{Requests: req, InputTokens: req * 10, OutputTokens: req * 50}}
	}
	p := &plan.Plan{Steps: []plan.Step{
		{ID: "base", Kind: plan.KindEvaluate, Estimate: plan.Estimate{GPUHours: 0.5}},
		gen("f1", "fast", 600), gen("f2", "fast", 600),
		gen("s1", "slow", 120),
		{ID: "tf1", Kind: plan.KindTrain, Needs: []string{"f1"}, Estimate: plan.Estimate{GPUHours: 4}},
		{ID: "ts1", Kind: plan.KindTrain, Needs: []string{"s1"}, Estimate: plan.Estimate{GPUHours: 4}},
		{ID: "es1", Kind: plan.KindEvaluate, Needs: []string{"ts1"}, Estimate: plan.Estimate{GPUHours: 0.5}},
		{ID: "score", Kind: plan.KindScore, Needs: []string{"base", "es1"}},
	}}
	tm := Plan(exp, p, map[string]bool{"f2": true})
	// fast: 600 requests at 10/s (f2 is done); slow: 120 at 1/s.
	if !near(tm.Generators["fast"], 60) || !near(tm.Generators["slow"], 120) || !near(tm.Generation, 120) {
		t.Errorf("generators %v, generation %g", tm.Generators, tm.Generation)
	}
	if !near(tm.Step["tf1"], 3600) || !near(tm.Step["es1"], 1800) {
		t.Errorf("jobs %g %g, want 3600 and 1800", tm.Step["tf1"], tm.Step["es1"])
	}
	if want := 120.0 + 3600 + 1800; !near(tm.Path["s1"], want) || !near(tm.Total, want) {
		t.Errorf("path of s1 %g, total %g, want %g", tm.Path["s1"], tm.Total, want)
	}
	if !near(tm.Jobs, 5400) {
		t.Errorf("jobs %g, want 5400", tm.Jobs)
	}
	if _, ok := tm.Path["f2"]; ok {
		t.Error("a done step has a path")
	}
	order := tm.Order(p)
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	if order[0] != "s1" || pos["f1"] < pos["ts1"] || pos["base"] < pos["f1"] {
		t.Errorf("order %v: the slow generator first, then its training, before the fast one; base evaluation after", order)
	}
	for _, s := range p.Steps {
		for _, n := range s.Needs {
			if pos[n] > pos[s.ID] {
				t.Errorf("%s before %s, which it needs", s.ID, n)
			}
		}
	}
}
