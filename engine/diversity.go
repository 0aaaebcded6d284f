package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/metrics"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// diversityInputs mirror the compiler's inputs of a diversity step.
type diversityInputs struct {
	Sample int `json:"sample"`
	Seed   int `json:"seed"`
}

type diversityRunner struct{ metricRunner }

// embedConcurrency caps the embedding requests of one step in flight.
const embedConcurrency = 4

func (r diversityRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in diversityInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("diversity inputs: %w", err)
	}
	var d *spec.DiversityMetric
	var g *spec.Generator
	if m := e.exp.Metrics; m != nil && m.Diversity != nil {
		d, g = m.Diversity, m.Diversity.Gen
	}
	m, err := r.open(ctx, s, in.Sample, in.Seed, g)
	if err != nil {
		return "", err
	}
	defer m.release()
	ms, items, prov := m.ms, m.items, m.prov
	emb, ok := prov.(Embedder)
	if !ok {
		return "", fmt.Errorf("diversity: %s (%s) cannot embed texts: use an OpenAI-compatible or vllm embedding model", g.Name, g.Provider.Kind())
	}
	if len(items) < 2 {
		return "", fmt.Errorf("diversity: the data has %d accepted item: at least 2 are needed", len(items))
	}
	if err := r.begin(ctx, s, 2*len(items)); err != nil {
		return "", err
	}
	var results []state.Metric
	for _, field := range []string{"instruction", "response"} {
		have, err := ms.Embeddings(ctx, s.ID, field)
		if err != nil {
			return "", err
		}
		var todo []metricItem
		for _, it := range items {
			if _, ok := have[it.slot]; !ok {
				todo = append(todo, it)
			}
		}
		var batches [][]metricItem
		for i := 0; i < len(todo); i += d.Batch {
			batches = append(batches, todo[i:min(i+d.Batch, len(todo))])
		}
		sp := e.prog.add(s.Address+" ("+field+"s)", len(items), len(items)-len(todo), s.Generator)
		var mu sync.Mutex
		err = r.parallel(ctx, len(batches), min(embedConcurrency, max(g.Limits.Concurrency, 1)), func(i int) error {
			b := batches[i]
			texts := make([]string, len(b))
			slots := make([]int, len(b))
			bound := 0
			for j, it := range b {
				texts[j], slots[j] = it.instruction, it.slot
				if field == "response" {
					texts[j] = it.response
				}
				bound += len(texts[j]) + 1 // a token covers at least one byte
			}
			reserved := price(g, bound, 0)
			res, err := r.reserve(s, reserved)
			if err != nil {
				return err
			}
			vecs, tokens, err := emb.Embed(e.sending(ctx), texts)
			if err != nil {
				res.Settle(0)
				if ctx.Err() != nil || errors.Is(err, retry.ErrStopped) {
					return errStopped
				}
				return err
			}
			v := judgeUsage(g, Completion{PromptTokens: tokens}, bound, 0, reserved)
			if v.err != nil {
				res.Settle(v.cost)
				return v.err
			}
			cost := v.cost
			if err := ms.RecordEmbeddings(context.WithoutCancel(ctx), s.ID, field, slots, vecs, tokens, cost); err != nil {
				res.Settle(cost)
				return err
			}
			if err := settle(res, v); err != nil {
				return err
			}
			mu.Lock()
			for j := range b {
				have[slots[j]] = vecs[j]
			}
			mu.Unlock()
			// One request, one accepted item per text: the tokens and
			// cost go with the first.
			sp.record(tokens, 0, cost, true)
			for range b[1:] {
				sp.record(0, 0, 0, true)
			}
			return nil
		})
		e.prog.remove(sp)
		if err != nil {
			return "", err
		}
		vecs := make([][]float64, len(items))
		for i, it := range items {
			v := have[it.slot]
			vecs[i] = make([]float64, len(v))
			for j, x := range v {
				vecs[i][j] = float64(x)
			}
		}
		div, err := metrics.CosineDiversity(vecs)
		if err != nil {
			return "", fmt.Errorf("diversity of the %ss: %w", field, err)
		}
		name := field + "_diversity"
		detail, _ := json.Marshal(map[string]any{"model": g.Model, "measure": "mean pairwise cosine distance", "to_centroid": div.ToCentroid})
		results = append(results,
			state.Metric{Name: name, Value: div.MeanPairwise, N: div.N, Detail: string(detail)},
			state.Metric{Name: name + centroidSuffix, Value: div.ToCentroid, N: div.N, Detail: `{"measure":"mean cosine distance to the centroid"}`})
	}
	return r.finish(ctx, ms, s, "", results)
}
