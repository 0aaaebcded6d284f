package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/agorabench/agora/analysis"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/state"
)

// scoreInputs mirror the compiler's inputs of a score step.
type scoreInputs struct {
	Student   []string `json:"student"`
	Base      []string `json:"base"`
	Reference []string `json:"reference"`
}

type scoreRunner struct{ e *Engine }

// run computes the PGR of each benchmark from the scores the step's
// evaluate steps recorded, and their mean, the step's PGR.
func (r *scoreRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in scoreInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("score inputs: %w", err)
	}
	all, err := e.scores.Scores(ctx)
	if err != nil {
		return "", err
	}
	byStep := map[string]state.Score{}
	for _, sc := range all {
		if sc.Model != state.ModelPGR {
			byStep[sc.StepID] = sc
		}
	}
	collect := func(ids []string, role string) (map[string]float64, error) {
		m := map[string]float64{}
		for _, id := range ids {
			sc, ok := byStep[id]
			if !ok {
				return nil, fmt.Errorf("score: no %s score recorded by evaluate step %s", role, id)
			}
			m[sc.Benchmark] = sc.Value
		}
		return m, nil
	}
	student, err := collect(in.Student, "student")
	if err != nil {
		return "", err
	}
	base, err := collect(in.Base, "base")
	if err != nil {
		return "", err
	}
	ref, err := collect(in.Reference, "reference")
	if err != nil {
		return "", err
	}
	per := map[string]float64{}
	var names []string
	for b := range student {
		names = append(names, b)
	}
	sort.Strings(names)
	sum := 0.0
	for _, b := range names {
		bv, ok1 := base[b]
		rv, ok2 := ref[b]
		if !ok1 || !ok2 {
			return "", fmt.Errorf("score: benchmark %s lacks the base or reference score", b)
		}
		p, err := analysis.PGR(student[b], bv, rv)
		if err != nil {
			return "", fmt.Errorf("score %s: %w", b, err)
		}
		per[b] = p
		sum += p
	}
	if len(names) == 0 {
		return "", fmt.Errorf("score: no benchmarks")
	}
	if err := e.scores.RecordPGR(ctx, s.ID, per, sum/float64(len(names))); err != nil {
		return "", err
	}
	return "", nil
}
