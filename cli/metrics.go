package cli

import (
	"context"

	"github.com/agorabench/agora/analysis"
	"github.com/agorabench/agora/state"
)

// metricFeatures returns the intrinsic features the state's metric steps
// recorded (docs/metrics.md), by step: only the names the report knows
// (analysis.KnownFeatures), so the second diversity measure, kept in the
// state, does not enter the PCA twice.
func metricFeatures(ctx context.Context, store *state.Store) (map[string]map[string]float64, error) {
	ms, err := store.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, f := range analysis.KnownFeatures() {
		known[f] = true
	}
	out := map[string]map[string]float64{}
	for _, m := range ms {
		if !known[m.Name] {
			continue
		}
		if out[m.StepID] == nil {
			out[m.StepID] = map[string]float64{}
		}
		out[m.StepID][m.Name] = m.Value
	}
	return out, nil
}
