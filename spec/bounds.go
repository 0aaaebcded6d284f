package spec

import (
	"fmt"

	"cuelang.org/go/cue"
)

// DefaultMaxSteps bounds a plan's steps unless grid.max_steps raises it:
// 100,000 steps is twice the 10,000-cell benchmark grid (docs/benchmarks.md),
// and planning, printing and storing a plan grows with its steps.
const DefaultMaxSteps = 100_000

// stepsPerCell bounds the steps one cell of setting s adds: generate,
// train, score, an evaluation per benchmark and up to four metric steps.
func stepsPerCell(s *Setting, metrics bool) int {
	n := 3 + len(s.Benchmarks)
	if metrics {
		n += 4
	}
	return n
}

// checkPlanSize refuses, before anything is expanded, a grid whose plan
// would pass grid.max_steps: the count is computed from the grid's lists
// (an upper bound: grid.exclude is left out, and steps shared between
// cells count once per cell), so a spec of a few lines that expands to
// millions of steps costs nothing to refuse. The message names the count
// and the grid list that multiplies it most.
func (l *loader) checkPlanSize(exp *Experiment) {
	g := exp.Grid
	limit := g.MaxSteps
	if limit <= 0 {
		limit = DefaultMaxSteps
	}
	gens := len(g.Generators)
	if gens == 0 {
		gens = len(exp.Generators)
	}
	sets := g.Settings
	if len(sets) == 0 {
		sets = SettingOrder(exp.Settings)
	}
	seeds := max(len(g.Seeds), 1)
	metrics := exp.Metrics != nil
	var steps float64 // float: a product of five lists may overflow an int
	for _, sn := range sets {
		s := exp.Settings[sn]
		if s == nil {
			continue
		}
		counts := max(len(g.Instances), 1)
		variants := len(variantsOf(g.Variants, s))
		steps += float64(gens) * float64(counts) * float64(variants) * float64(seeds) * float64(stepsPerCell(s, metrics))
	}
	for _, inc := range g.Include {
		if s := exp.Settings[inc.Setting]; s != nil {
			steps += float64(stepsPerCell(s, metrics))
		}
	}
	if steps <= float64(limit) {
		return
	}
	if len(g.Exclude) > 0 && steps <= 20*float64(limit) {
		// Excludes may bring it under: count exactly.
		cells, _ := exp.expandGrid()
		exact := 0
		for _, c := range cells {
			exact += stepsPerCell(exp.Settings[c.Setting], metrics)
		}
		if exact <= limit {
			return
		}
		steps = float64(exact)
	}
	// The list that multiplies the plan most.
	where, most := []cue.Selector{cue.Str("grid")}, 0
	for _, f := range []struct {
		name string
		n    int
	}{{"generators", len(g.Generators)}, {"settings", len(g.Settings)}, {"instances", len(g.Instances)},
		{"variants", len(g.Variants)}, {"seeds", len(g.Seeds)}, {"include", len(g.Include)}} {
		if f.n > most {
			where, most = sel("grid", f.name), f.n
		}
	}
	if most == 0 || len(exp.Generators) > most {
		where = sel("generators")
	}
	l.at(where, "the plan would have about %s steps, more than grid.max_steps allows (%s): narrow the grid, "+
		"or raise grid.max_steps if you mean it (planning, printing and storing a plan grow with its steps)",
		count(steps), count(float64(limit)))
}

// count formats n with thousands separators, or in scientific notation
// beyond what an int holds exactly.
func count(n float64) string {
	if n >= 1e15 {
		return fmt.Sprintf("%.3g", n)
	}
	s := fmt.Sprintf("%.0f", n)
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
