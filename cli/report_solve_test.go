package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agorabench/agora/cli"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/state"
)

// TestReportProblemSolvingFromState: the problem-solving regressions take
// each generator's own scores from the solve steps the state records. By
// hand, with base/reference gsm8k 40/80 and math 20/40:
//
//	generator  students (gsm8k, math)  PGR            solve (gsm8k, math)  x
//	a          60, 25                  (50+25)/2=37.5  80, 40               60
//	b          70, 30                  (75+50)/2=62.5  90, 50               70
//	c          50, 22                  (25+10)/2=17.5  70, 30               50
//
// x̄ = 60, ȳ = 39.1667; Sxx = 200, Sxy = 450: slope 2.25, intercept
// −95.8333; residuals −1.6667, 0.8333, 0.8333, SSE 4.1667, SST 1016.6667,
// R² = 0.995902.
func TestReportProblemSolvingFromState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agora.cue")
	src := `
generators: {
	a: {provider: openai: {}, model: "model-a", price: {input: 1, output: 2}}
	b: {provider: openai: {}, model: "model-b", price: {input: 1, output: 2}}
	c: {provider: openai: {}, model: "model-c", price: {input: 1, output: 2}}
}
settings: "math-rg": {instances: 10}
problem_solving: {}
`
	ctx := context.Background()
	p, store := plannedState(t, path, src)
	eval := map[[3]string]float64{
		{"base", "", "gsm8k"}: 40, {"reference", "", "gsm8k"}: 80, {"base", "", "math"}: 20, {"reference", "", "math"}: 40,
		{"student", "a", "gsm8k"}: 60, {"student", "a", "math"}: 25,
		{"student", "b", "gsm8k"}: 70, {"student", "b", "math"}: 30,
		{"student", "c", "gsm8k"}: 50, {"student", "c", "math"}: 22,
	}
	solve := map[[2]string]float64{
		{"a", "gsm8k"}: 80, {"a", "math"}: 40, {"b", "gsm8k"}: 90, {"b", "math"}: 50, {"c", "gsm8k"}: 70, {"c", "math"}: 30,
	}
	record := func(s plan.Step, model string, v float64) {
		t.Helper()
		if err := store.BeginStep(ctx, state.StepInfo{ID: s.ID, Kind: s.Kind, Address: s.Address, Generator: s.Generator, Setting: s.Setting}); err != nil {
			t.Fatal(err)
		}
		if err := store.RecordScore(ctx, s.ID, s.Benchmark, model, v); err != nil {
			t.Fatal(err)
		}
	}
	var solveSteps int
	for _, s := range p.Steps {
		switch s.Kind {
		case plan.KindEvaluate:
			if v, ok := eval[[3]string{s.Model, s.Generator, s.Benchmark}]; ok {
				record(s, s.Model, v)
			}
		case plan.KindSolve:
			solveSteps++
			// c's math score is recorded in a second pass below.
			if s.Generator == "c" && s.Benchmark == "math" {
				continue
			}
			record(s, s.Generator, solve[[2]string{s.Generator, s.Benchmark}])
		}
	}
	if solveSteps != 6 {
		t.Fatalf("%d solve steps, want 6", solveSteps)
	}
	store.Close()

	type regression struct {
		Name string
		Fit  *struct {
			N                    int
			Slope, Intercept, R2 float64
		}
		Points [][2]float64
		Left   []string `json:"left_out"`
		Error  string
	}
	report := func() []regression {
		t.Helper()
		var out, errb bytes.Buffer
		if code := cli.Main([]string{"report", path, "-format", "json"}, &out, &errb); code != 0 {
			t.Fatalf("agora report: exit %d\n%s", code, errb.String())
		}
		var rep struct {
			ProblemSolving []regression `json:"problem_solving"`
		}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.ProblemSolving) != 2 {
			t.Fatalf("problem-solving regressions: %+v", rep.ProblemSolving)
		}
		return rep.ProblemSolving
	}

	// With c's math answers not yet scored, c has no problem-solving
	// score: it is left out of the fit, which has too few points.
	regs := report()
	if regs[0].Fit != nil || !strings.Contains(strings.Join(regs[0].Left, "; "), "c: problem solving") {
		t.Errorf("per generator with c's math missing: %+v", regs[0])
	}

	store, err := state.Open(ctx, filepath.Join(dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if s.Kind == plan.KindSolve && s.Generator == "c" && s.Benchmark == "math" {
			record(s, "c", solve[[2]string{"c", "math"}])
		}
	}
	store.Close()
	regs = report()
	for _, r := range regs {
		if r.Fit == nil {
			t.Fatalf("%s: no fit: %s %v", r.Name, r.Error, r.Left)
		}
		if r.Fit.N != 3 || math.Abs(r.Fit.Slope-2.25) > 1e-9 || math.Abs(r.Fit.Intercept-(39.1666666667-135)) > 1e-6 ||
			math.Abs(r.Fit.R2-(1-4.1666666667/1016.6666666667)) > 1e-9 {
			t.Errorf("%s: fit %+v, want n 3, slope 2.25, intercept -95.8333, R² 0.995902", r.Name, *r.Fit)
		}
	}
	want := map[[2]float64]bool{{60, 37.5}: true, {70, 62.5}: true, {50, 17.5}: true}
	for _, pt := range regs[0].Points {
		if !want[pt] {
			t.Errorf("per-generator point %v, want one of (60, 37.5), (70, 62.5), (50, 17.5)", pt)
		}
	}
}

// TestReportProblemSolvingPerDomain: two settings of one domain that name
// different benchmarks still give the generator one problem-solving score
// for the domain: the mean over the domain's benchmarks it answered
// (gsm8k 80, math 40: 60 for both cells).
func TestReportProblemSolvingPerDomain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agora.cue")
	src := `
generators: a: {provider: openai: {}, model: "model-a", price: {input: 1, output: 2}}
settings: {
	"math-rg": {instances: 10}
	"math-ig": {instances: 10, benchmarks: ["gsm8k"]}
}
problem_solving: {}
`
	ctx := context.Background()
	p, store := plannedState(t, path, src)
	eval := map[[3]string]float64{
		{"base", "", "gsm8k"}: 40, {"reference", "", "gsm8k"}: 80, {"base", "", "math"}: 20, {"reference", "", "math"}: 40,
		{"student", "math-rg", "gsm8k"}: 60, {"student", "math-rg", "math"}: 25, {"student", "math-ig", "gsm8k"}: 60,
	}
	for _, s := range p.Steps {
		var v float64
		var ok bool
		model := s.Model
		switch s.Kind {
		case plan.KindEvaluate:
			v, ok = eval[[3]string{s.Model, s.Setting, s.Benchmark}]
		case plan.KindSolve:
			v, ok, model = map[string]float64{"gsm8k": 80, "math": 40}[s.Benchmark], true, s.Generator
		}
		if !ok {
			continue
		}
		if err := store.BeginStep(ctx, state.StepInfo{ID: s.ID, Kind: s.Kind, Address: s.Address, Generator: s.Generator, Setting: s.Setting}); err != nil {
			t.Fatal(err)
		}
		if err := store.RecordScore(ctx, s.ID, s.Benchmark, model, v); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"report", path, "-format", "json"}, &out, &errb); code != 0 {
		t.Fatalf("agora report: exit %d\n%s", code, errb.String())
	}
	var rep struct {
		ProblemSolving []struct {
			Points [][2]float64
		} `json:"problem_solving"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.ProblemSolving) != 2 {
		t.Fatalf("regressions %+v", rep.ProblemSolving)
	}
	got := rep.ProblemSolving[1].Points
	if len(got) != 2 || got[0][0] != 60 || got[1][0] != 60 {
		t.Errorf("per-cell points %v, want x = 60 for both cells", got)
	}
}
