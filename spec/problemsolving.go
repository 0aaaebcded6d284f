package spec

import (
	"slices"
	"strings"
)

// ProblemSolving asks for the generators' own benchmark scores: one solve
// step per generator and benchmark, in which the generator answers the
// benchmark through its own provider.
type ProblemSolving struct {
	// Generators default to every generator in the grid.
	Generators []string `json:"generators,omitempty"`
	// Benchmarks default, per generator, to those of the settings it is
	// gridded with.
	Benchmarks []string `json:"benchmarks,omitempty"`
	// Items caps the problems of each benchmark (the first ones); 0 is
	// every problem.
	Items int `json:"items,omitempty"`
}

// SolveTask is one generator answering one benchmark.
type SolveTask struct {
	Generator string
	Benchmark string
	// Items is the number of problems answered: the benchmark's items, or
	// problem_solving.items when smaller.
	Items int
}

// SolveTasks lists the solve steps the spec asks for, generators in grid
// order and each generator's benchmarks in the order its settings name
// them. Benchmarks that no API-served model can answer (harness
// "command") are left out of the defaults and returned as skipped, for
// the plan's warnings; listed explicitly they are a load error.
func (e *Experiment) SolveTasks() (tasks []SolveTask, skipped []string) {
	ps := e.ProblemSolving
	if ps == nil {
		return nil, nil
	}
	cells := e.Cells()
	gens := ps.Generators
	if len(gens) == 0 {
		for _, c := range cells {
			if !slices.Contains(gens, c.Generator) {
				gens = append(gens, c.Generator)
			}
		}
	}
	for _, g := range gens {
		benches := ps.Benchmarks
		if len(benches) == 0 {
			benches = gridBenchmarks(e, cells, g)
		}
		for _, bn := range benches {
			b := e.Evaluation.Benchmarks[bn]
			if b == nil {
				continue
			}
			if !Solvable(b.Harness) {
				if !slices.Contains(skipped, bn) {
					skipped = append(skipped, bn)
				}
				continue
			}
			n := b.Items
			if ps.Items > 0 && ps.Items < n {
				n = ps.Items
			}
			tasks = append(tasks, SolveTask{Generator: g, Benchmark: bn, Items: n})
		}
	}
	return tasks, skipped
}

// Solvable reports whether a generator served through an OpenAI-compatible
// API can answer a benchmark of harness h: every built-in harness can; a
// command template evaluates a checkpoint only.
func Solvable(h string) bool { return h != HarnessCommand && h != "" }

// gridBenchmarks are the benchmarks of the settings generator g is gridded
// with, in order of first appearance.
func gridBenchmarks(e *Experiment, cells []GridCell, g string) []string {
	var out []string
	for _, c := range cells {
		if c.Generator != g {
			continue
		}
		if s := e.Settings[c.Setting]; s != nil {
			for _, b := range s.Benchmarks {
				if !slices.Contains(out, b) {
					out = append(out, b)
				}
			}
		}
	}
	return out
}

// checkProblemSolving checks the problem_solving block's references.
func (l *loader) checkProblemSolving(exp *Experiment) {
	ps := exp.ProblemSolving
	if ps == nil {
		return
	}
	gens := sortedKeys(exp.Generators)
	inGrid := map[string]bool{}
	for _, c := range exp.Cells() {
		inGrid[c.Generator] = true
	}
	for i, g := range ps.Generators {
		at := sel("problem_solving", "generators", i)
		switch {
		case exp.Generators[g] == nil:
			l.at(at, "unknown generator %q%s", g, didYouMean(g, gens))
		case slices.Contains(ps.Generators[:i], g):
			l.at(at, "generator %q is listed twice", g)
		case !inGrid[g] && len(ps.Benchmarks) == 0:
			l.at(at, "generator %q is in no grid cell, so it has no settings to take benchmarks from: list them under problem_solving.benchmarks", g)
		}
	}
	names := sortedKeys(exp.Evaluation.Benchmarks)
	for i, bn := range ps.Benchmarks {
		at := sel("problem_solving", "benchmarks", i)
		b := exp.Evaluation.Benchmarks[bn]
		switch {
		case b == nil:
			l.at(at, "unknown benchmark %q%s (built in: %s; declare others under evaluation.benchmarks)",
				bn, didYouMean(bn, names), strings.Join(BuiltinBenchmarks(), ", "))
		case slices.Contains(ps.Benchmarks[:i], bn):
			l.at(at, "benchmark %q is listed twice", bn)
		case !Solvable(b.Harness):
			l.at(at, "benchmark %q runs a command template on a checkpoint, which a generator behind an API cannot answer: use a benchmark of lm-eval, evalplus, alpaca_eval or arena-hard-auto", bn)
		}
	}
}
