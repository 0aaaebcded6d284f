// Package examples holds runnable specs; its test keeps each one planning
// cleanly within its budgets.
package examples

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/spec"
)

func TestExamplesPlan(t *testing.T) {
	specs, err := filepath.Glob("*/agora.cue")
	if err != nil {
		t.Fatal(err)
	}
	specs = append(specs, "../agora.cue")
	if len(specs) < 4 {
		t.Fatalf("found only %v", specs)
	}
	for _, path := range specs {
		t.Run(path, func(t *testing.T) {
			exp, err := spec.Load(path)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if msg := p.BudgetError(); msg != "" {
				t.Errorf("over budget: %s", msg)
			}
			if len(p.Budgets) == 0 {
				t.Errorf("no budgets: every example should show how to set them")
			}
			if p.ToRun() == 0 {
				t.Errorf("plan has nothing to run")
			}
			if len(p.Warnings) > 0 {
				t.Errorf("warnings: %v", p.Warnings)
			}
		})
	}
}

// TestQuickstartIsStarter keeps `agora init`'s starter and the quickstart
// example the same file.
func TestQuickstartIsStarter(t *testing.T) {
	a, err := os.ReadFile("quickstart/agora.cue")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../cli/starter.cue")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("examples/quickstart/agora.cue and cli/starter.cue differ: keep them identical")
	}
}

func TestCostSweepCells(t *testing.T) {
	exp, err := spec.Load("cost-sweep/agora.cue")
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 3 settings × 3 sizes for gpt-4o-mini, plus 3 settings at 10K for gpt-4o.
	if got := p.Counts.Create["generate"]; got != 12 {
		t.Errorf("generate steps = %d, want 12", got)
	}
	if got := p.Totals.ByGenerator["gpt-4o-mini"].Instances; got != 3*(10000+25000+50000) {
		t.Errorf("gpt-4o-mini instances = %d", got)
	}
}

// TestReadmeSpec keeps the README's tour of a spec valid and within its
// budgets.
func TestReadmeSpec(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```cue\n")
	if !ok {
		t.Fatal("README has no cue block")
	}
	src, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README's cue block is not closed")
	}
	exp, err := spec.LoadBytes("README.md", []byte(src), ".")
	if err != nil {
		t.Fatalf("the README's spec does not load:\n%v", err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if msg := p.BudgetError(); msg != "" {
		t.Errorf("the README's spec is over budget: %s", msg)
	}
}
