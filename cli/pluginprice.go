package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/spec"
)

// loadSpec loads a spec for planning or applying it: spec.Load, then the
// prices plugin generators leave to their plugins (pluginPrices).
func loadSpec(ctx context.Context, path string, stderr io.Writer) (*spec.Experiment, bool) {
	exp, err := spec.Load(path)
	if err != nil {
		printLoadError(stderr, path, err)
		return nil, false
	}
	if problems := pluginPrices(ctx, exp, true); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		fmt.Fprintf(stderr, "agora: %s has %d error%s\n", path, len(problems), plural(len(problems)))
		return nil, false
	}
	return exp, true
}

// pluginPrices fills in the price of each plugin generator, and of each
// metric's plugin model declared in place, whose spec gives none with the
// price its plugin advertises for the model (docs/plugins.md): the plan and the budgets then use it exactly as
// a spec's price. For a plugin generator in batch mode it checks that the
// plugin takes batches (protocol version 2 and the capability), bounds
// the spec's batch limits by the plugin's, and takes the plugin's batch
// discount when the spec's price gives none. It starts those plugins
// alone (their pins checked), asks each for its description once, and
// ends them before returning. It returns one positioned message per
// generator or model it cannot settle. Without batches (a report, which
// spends nothing), only the prices are settled: a priced generator's
// plugin is not started.
func pluginPrices(ctx context.Context, exp *spec.Experiment, batches bool) []string {
	// The plugin generators, then the metrics' plugin models declared in
	// place, that need their plugin asked.
	type use struct {
		name, label string // "g", "generators.g" or "metrics.judge"
		pos         string
		g           *spec.Generator
	}
	var uses []use
	for _, u := range pluginUses(exp) {
		g := u.g
		if g.Price != nil && !(batches && g.Provider.Batch.On && strings.HasPrefix(u.label, "generator ")) {
			continue
		}
		if n, ok := strings.CutPrefix(u.label, "generator "); ok {
			uses = append(uses, use{name: n, label: "generators." + n, pos: exp.Source.Locate("generators", n), g: g})
		} else {
			metric := strings.TrimPrefix(u.label, "metrics.")
			uses = append(uses, use{name: metric, label: u.label, pos: exp.Source.Locate("metrics", metric), g: g})
		}
	}
	if len(uses) == 0 {
		return nil
	}
	h := host.New(host.Options{Dirs: host.SearchPath(exp.Source.Dir), StartTimeout: 30 * time.Second})
	defer h.Close()
	var problems []string
	for _, u := range uses {
		g, pos, n := u.g, u.pos, u.name
		p, err := h.Open(ctx, g.Provider.Plugin, g.Provider.SHA256)
		if err != nil {
			msg, _, _ := strings.Cut(err.Error(), "\n")
			if g.Price == nil {
				problems = append(problems, fmt.Sprintf("%s: %s: missing price, and its plugin could not be asked for one: %s; set price: {input: …, output: …}", pos, u.label, msg))
			} else {
				problems = append(problems, fmt.Sprintf("%s: %s: batch is on, and its plugin could not be asked whether it takes batches: %s", pos, u.label, msg))
			}
			continue
		}
		m, ok := p.Description().Model(g.Model)
		if g.Price == nil {
			if !ok || (m.InputPrice == 0 && m.OutputPrice == 0) {
				problems = append(problems, fmt.Sprintf("%s: %s: missing price: plugin %s advertises no price for model %s; set price: {input: …, output: …} in dollars per 1M tokens", pos, u.label, g.Provider.Plugin, g.Model))
				continue
			}
			g.Price = &spec.Price{Input: m.InputPrice, Output: m.OutputPrice}
		}
		b := &g.Provider.Batch
		if !strings.HasPrefix(u.label, "generators.") || !b.On {
			continue // metrics call their models synchronously
		}
		if g.Price.BatchDiscount == 0 && ok {
			g.Price.BatchDiscount = m.BatchDiscount
		}
		if !batches {
			continue
		}
		bpos := exp.Source.Locate("generators", n, "provider", "batch")
		if err := p.BatchSupport(); err != nil {
			problems = append(problems, fmt.Sprintf("%s: generators.%s.provider.batch: %v", bpos, n, err))
			continue
		}
		l := p.Description().BatchLimits
		if l.MaxRequests > 0 && b.MaxRequests > l.MaxRequests {
			b.MaxRequests = l.MaxRequests
		}
		if l.MaxBytes > 0 && b.MaxBytes > l.MaxBytes {
			b.MaxBytes = l.MaxBytes
		}
	}
	return problems
}
