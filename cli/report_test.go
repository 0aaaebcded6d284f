package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agorabench/agora/cli"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/state"
)

const reportSpec = `
generators: {
	a: {provider: openai: {}, model: "model-a", price: {input: 1, output: 2}}
	b: {provider: openai: {}, model: "model-b", price: {input: 1, output: 2}}
}
settings: "math-rg": {instances: 10}
`

// TestReportPGR records scores for the evaluate steps of a small plan and
// checks the PGR table by hand:
//
//	gsm8k: base 40, reference 80; a's student 60 → PGR 50; b's 70 → 75
//	math:  base 20, reference 40; a's student 25 → PGR 25; b's missing
//	math-rg PGR: a (50+25)/2 = 37.5; b missing (one benchmark missing).
func TestReportPGR(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agora.cue")
	ctx := context.Background()
	p, store := plannedState(t, path, reportSpec)
	want := map[[3]string]float64{
		{"base", "", "gsm8k"}: 40, {"reference", "", "gsm8k"}: 80, {"student", "a", "gsm8k"}: 60, {"student", "b", "gsm8k"}: 70,
		{"base", "", "math"}: 20, {"reference", "", "math"}: 40, {"student", "a", "math"}: 25,
	}
	for _, s := range p.Steps {
		if s.Kind == plan.KindGenerate && s.Generator == "a" {
			// a's data cost $2.50, recorded as one generation.
			if err := store.BeginStep(ctx, state.StepInfo{ID: s.ID, Kind: s.Kind, Address: s.Address, Generator: s.Generator, Setting: s.Setting}); err != nil {
				t.Fatal(err)
			}
			if err := store.Append(ctx, state.Generation{StepID: s.ID, Attempt: 1, Accepted: true, CostUSD: 2.5}); err != nil {
				t.Fatal(err)
			}
		}
		if s.Kind != plan.KindEvaluate {
			continue
		}
		v, ok := want[[3]string{s.Model, s.Generator, s.Benchmark}]
		if !ok {
			continue
		}
		if err := store.BeginStep(ctx, state.StepInfo{ID: s.ID, Kind: s.Kind, Address: s.Address, Generator: s.Generator, Setting: s.Setting}); err != nil {
			t.Fatal(err)
		}
		if err := store.RecordScore(ctx, s.ID, s.Benchmark, s.Model, v); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()

	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := cli.Main(append([]string{"report"}, args...), &out, &errb); code != 0 {
			t.Fatalf("agora report %v: exit %d\n%s", args, code, errb.String())
		}
		return out.String()
	}
	md := run(path)
	for _, s := range []string{"math-rg", "37.5", "—"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	var rep struct {
		Table struct {
			Rows []struct {
				Generator string
				Settings  []struct {
					PGR *float64 `json:"pgr"`
				}
			}
		}
		ProblemSolving []struct {
			Error string
		} `json:"problem_solving"`
	}
	if err := json.Unmarshal([]byte(run(path, "-format", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	table := rep.Table
	// The spec asks for no solve steps, so the regressions say why they
	// are missing.
	if len(rep.ProblemSolving) != 2 || !strings.Contains(rep.ProblemSolving[0].Error, "no problem-solving scores") {
		t.Errorf("problem-solving regressions: %+v", rep.ProblemSolving)
	}
	got := map[string]*float64{}
	for _, r := range table.Rows {
		got[r.Generator] = r.Settings[0].PGR
	}
	if got["a"] == nil || *got["a"] != 37.5 {
		t.Errorf("PGR of a = %v, want 37.5", got["a"])
	}
	if p, ok := got["b"]; !ok || p != nil {
		t.Errorf("PGR of b = %v (present %v), want missing", p, ok)
	}
	// a: PGR 37.5 for $2.50 → 15 PGR points per dollar.
	if !strings.Contains(md, "| a | 1 / 2 | — | 37.5 | 2.50 | 15.000 |") {
		t.Errorf("markdown lacks a's cost and PGR per dollar:\n%s", md)
	}

	// A results file completes the state: another team's generator on
	// the same setting, and a setting agora did not run.
	results := filepath.Join(dir, "paper.csv")
	if err := os.WriteFile(results, []byte("generator,setting,pgr,cost_usd\npaper-gen,math-rg,44,9\na,code-ig,20,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	md = run(path, "-results", results)
	for _, want := range []string{
		"| generator | math-rg | code-ig | score |",
		"| a | 37.5 | 20.0 | 28.8 |",
		"| paper-gen | 44.0 | — | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("combined report lacks %q:\n%s", want, md)
		}
	}
	// The same cell in the state and a file is an error naming both.
	if err := os.WriteFile(results, []byte("generator,setting,pgr\na,math-rg,50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"report", path, "-results", results}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), results+":2:1: generator a, setting math-rg is given twice (also at agora's state)") {
		t.Errorf("clash: exit %d, stderr %q", code, errb.String())
	}

	csv := run(path, "-format", "csv")
	if !strings.Contains(csv, "a,math-rg,math,response_generation,37.5000,") || !strings.Contains(csv, "b,math-rg,math,response_generation,,") {
		t.Errorf("csv:\n%s", csv)
	}
}
