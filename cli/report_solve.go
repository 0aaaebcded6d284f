package cli

import (
	"slices"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// solved holds the generators' own benchmark scores that solve steps
// recorded: asked[generator] lists the benchmarks the plan has solve
// steps for, score[generator][benchmark] those recorded.
type solved struct {
	asked map[string][]string
	score map[string]map[string]float64
}

// solveScores gathers the scores of the plan's solve steps from the
// state.
func solveScores(p *plan.Plan, scores []state.Score) solved {
	sv := solved{asked: map[string][]string{}, score: map[string]map[string]float64{}}
	byStep := map[string]plan.Step{}
	for _, s := range p.Steps {
		if s.Kind == plan.KindSolve {
			byStep[s.ID] = s
			sv.asked[s.Generator] = append(sv.asked[s.Generator], s.Benchmark)
		}
	}
	for _, sc := range scores {
		s, ok := byStep[sc.StepID]
		if !ok || sc.Benchmark != s.Benchmark {
			continue
		}
		if sv.score[s.Generator] == nil {
			sv.score[s.Generator] = map[string]float64{}
		}
		sv.score[s.Generator][s.Benchmark] = sc.Value
	}
	return sv
}

// of is a generator's problem-solving score on a setting's domain: the
// mean of its solve scores over the benchmarks of the spec's settings of
// that domain that it was asked to answer, once every one of them is
// recorded; nil before, or when it was asked none of them. One score per
// generator and domain, as the analysis requires, even where the
// domain's settings name different benchmarks.
func (sv solved) of(gen string, set *spec.Setting, exp *spec.Experiment) *float64 {
	if set == nil {
		return nil
	}
	var benchmarks []string
	for _, name := range spec.SettingOrder(exp.Settings) {
		if o := exp.Settings[name]; o.Domain == set.Domain {
			for _, b := range o.Benchmarks {
				if !slices.Contains(benchmarks, b) {
					benchmarks = append(benchmarks, b)
				}
			}
		}
	}
	sum, n := 0.0, 0
	for _, b := range benchmarks {
		if !slices.Contains(sv.asked[gen], b) {
			continue
		}
		v, ok := sv.score[gen][b]
		if !ok {
			return nil
		}
		sum += v
		n++
	}
	if n == 0 {
		return nil
	}
	mean := sum / float64(n)
	return &mean
}
