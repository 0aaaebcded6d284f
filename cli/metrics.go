package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

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

// printMetrics lists the metric steps' results under the steps, for
// agora status: each value with its 95% interval and the items it is
// computed from. Nothing is printed when there are none.
func printMetrics(ctx context.Context, w io.Writer, store *state.Store, steps []state.StepState) error {
	ms, err := store.Metrics(ctx)
	if err != nil || len(ms) == 0 {
		return err
	}
	address := map[string]string{}
	for _, s := range steps {
		address[s.ID] = s.Address
	}
	sort.SliceStable(ms, func(i, j int) bool { return address[ms[i].StepID] < address[ms[j].StepID] })
	fmt.Fprintln(w, "\nMetrics (docs/metrics.md)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tMETRIC\tVALUE\t95% CI\tN")
	for _, m := range ms {
		ci := "—"
		if m.Low != nil && m.High != nil {
			ci = fmt.Sprintf("[%.3f, %.3f]", *m.Low, *m.High)
		}
		a := address[m.StepID]
		if a == "" {
			a = m.StepID
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%s\t%d\n", a, m.Name, m.Value, ci, m.N)
	}
	return tw.Flush()
}
