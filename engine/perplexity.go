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

// perplexityInputs mirror the compiler's inputs of a perplexity step.
type perplexityInputs struct {
	Sample int `json:"sample"`
	Seed   int `json:"seed"`
}

type perplexityRunner struct{ metricRunner }

// perplexityFlush is the number of items recorded per transaction.
const perplexityFlush = 32

func (r perplexityRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in perplexityInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("perplexity inputs: %w", err)
	}
	var g *spec.Generator
	if m := e.exp.Metrics; m != nil && m.Perplexity != nil {
		g = m.Perplexity.Gen
	}
	m, err := r.open(ctx, s, in.Sample, in.Seed, g)
	if err != nil {
		return "", err
	}
	defer m.release()
	ms, items, prov := m.ms, m.items, m.prov
	sc, ok := prov.(Scorer)
	if !ok {
		return "", fmt.Errorf("perplexity: %s (%s) cannot score prompts: it needs /v1/completions with echo and logprobs (a vllm server)", g.Name, g.Provider.Kind())
	}
	if err := r.begin(ctx, s, len(items)); err != nil {
		return "", err
	}
	prior, err := ms.ItemValues(ctx, s.ID, valueNLL)
	if err != nil {
		return "", err
	}
	done := map[int]state.ItemValue{}
	for _, v := range prior {
		done[v.Slot] = v
	}
	var todo []metricItem
	for _, it := range items {
		if _, ok := done[it.slot]; !ok {
			todo = append(todo, it)
		}
	}
	sp := e.prog.add(s.Address, len(items), len(items)-len(todo), s.Generator)
	defer e.prog.remove(sp)
	// Scored items are recorded in batches, with what they cost; each
	// item's reservation is settled once its batch is durable.
	type held struct {
		res  *Reservation
		cost float64
	}
	var (
		mu       sync.Mutex
		pending  []state.ItemValue
		holds    []held
		pin      int
		pout     int
		skipped  int
		lastSkip string
	)
	flush := func() error {
		if len(holds) == 0 {
			return nil
		}
		var cost float64
		for _, h := range holds {
			cost += h.cost
		}
		err := ms.RecordItemValues(context.WithoutCancel(ctx), s.ID, pending, pin, pout, cost)
		for _, h := range holds {
			h.res.Settle(h.cost)
		}
		for _, v := range pending {
			done[v.Slot] = v
		}
		pending, holds, pin, pout = nil, nil, 0, 0
		return err
	}
	err = r.parallel(ctx, len(todo), g.Limits.Concurrency, func(i int) error {
		it := todo[i]
		prefix := metrics.PerplexityPrefix(it.instruction)
		prompt := prefix + it.response
		reserved := price(g, len(prompt)+3, 1)
		res, err := r.reserve(s, reserved)
		if err != nil {
			return err
		}
		lp, ptoks, ctoks, err := sc.Logprobs(e.sending(ctx), prompt)
		if err != nil {
			res.Settle(0)
			if ctx.Err() != nil || errors.Is(err, retry.ErrStopped) {
				return errStopped
			}
			return err
		}
		if v := judgeUsage(g, Completion{PromptTokens: ptoks, CompletionTokens: ctoks}, len(prompt)+3, 1, reserved); v.err != nil {
			// Not used: booked as the verdict says, and the step stops.
			return settle(res, v)
		}
		cost := price(g, ptoks, ctoks)
		nll, err := metrics.ResponseNLL(lp, prefix, it.response)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			// Paid for but unusable (the response has no token of its
			// own): left out and counted; its cost is still recorded.
			holds = append(holds, held{res, cost})
			pin, pout = pin+ptoks, pout+ctoks
			skipped++
			lastSkip = fmt.Sprintf("item %d: %v", it.slot, err)
			sp.record(ptoks, ctoks, cost, false)
			return nil
		}
		sp.record(ptoks, ctoks, cost, true)
		pending = append(pending, state.ItemValue{Slot: it.slot, Name: valueNLL, Value: nll.Sum, Tokens: nll.Tokens})
		holds = append(holds, held{res, cost})
		pin, pout = pin+ptoks, pout+ctoks
		if len(pending) >= perplexityFlush {
			return flush()
		}
		return nil
	})
	mu.Lock()
	ferr := flush()
	mu.Unlock()
	if err == nil {
		err = ferr
	}
	if err != nil {
		return "", err
	}
	nlls := make([]metrics.ItemNLL, 0, len(items))
	for _, it := range items {
		if v, ok := done[it.slot]; ok {
			nlls = append(nlls, metrics.ItemNLL{Sum: v.Value, Tokens: v.Tokens})
		}
	}
	if len(nlls) == 0 {
		return "", fmt.Errorf("perplexity: no item could be scored (last: %s)", lastSkip)
	}
	agg, err := metrics.AggregatePerplexity(nlls)
	if err != nil {
		return "", err
	}
	detail, _ := json.Marshal(map[string]any{"model": g.Model, "corpus_perplexity": agg.Corpus, "tokens": agg.Tokens, "sd": agg.Items.SD,
		"left_out": skipped})
	return r.finish(ctx, ms, s, "", []state.Metric{{Name: FeaturePerplexity, Value: agg.Items.Mean, N: agg.Items.N,
		Low: &agg.Items.Low, High: &agg.Items.High, Detail: string(detail)}})
}
