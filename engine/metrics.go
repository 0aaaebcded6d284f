package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/agorabench/agora/metrics"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// The metric steps (docs/metrics.md): judge, diversity and perplexity
// call a model through the same engine.provider path as generation (its
// limits, retries, servers and checks), reserving the worst case of every
// paid request in the ledger against the data's generator and making
// each response durable before settling; reward runs a job like an
// evaluation. Each step reads the accepted items of the generate step it
// needs, looks at a seeded sample of them, and records its results in the
// state's metrics table under the report's feature names.

// Embedder is a provider that can embed texts (POST /v1/embeddings).
type Embedder interface {
	Embed(ctx context.Context, texts []string) (vecs [][]float32, promptTokens int, err error)
}

// Scorer is a provider that returns a prompt's token log-probabilities
// (POST /v1/completions with echo and logprobs).
type Scorer interface {
	Logprobs(ctx context.Context, prompt string) (lp metrics.Logprobs, promptTokens, completionTokens int, err error)
}

// MetricStore is what the metric steps need of the state beyond Store.
type MetricStore interface {
	RecordJudgement(ctx context.Context, j state.Judgement) error
	Judgements(ctx context.Context, stepID string) ([]state.Judgement, error)
	RecordEmbeddings(ctx context.Context, stepID, field string, slots []int, vecs [][]float32, inputTokens int, cost float64) error
	Embeddings(ctx context.Context, stepID, field string) (map[int][]float32, error)
	RecordItemValues(ctx context.Context, stepID string, vs []state.ItemValue, inputTokens, outputTokens int, cost float64) error
	ItemValues(ctx context.Context, stepID, name string) ([]state.ItemValue, error)
	RecordMetrics(ctx context.Context, ms []state.Metric) error
}

var _ MetricStore = (*state.Store)(nil)

// Feature names of the metrics (docs/analysis.md, docs/metrics.md).
const (
	FeatureInstructionDiversity = "instruction_diversity"
	FeatureResponseDiversity    = "response_diversity"
	FeaturePerplexity           = "response_perplexity"
	FeatureReward               = "response_reward"
	// centroidSuffix names the second diversity measure.
	centroidSuffix = "_centroid"
)

// Item values the metric steps keep per item.
const (
	valueNLL    = "nll"
	valueReward = "reward"
)

// unreadableRun fails a judge step when its first judgements are all
// unreadable: the judge does not follow the format, and asking on would
// only spend.
const unreadableRun = 20

// metricItem is one accepted instance of a data set.
type metricItem struct {
	slot                  int
	instruction, response string
}

// metricRunner holds what the metric runners share.
type metricRunner struct{ e *Engine }

func (r metricRunner) store() (MetricStore, error) {
	if r.e.metrics == nil {
		return nil, errors.New("this state cannot record metrics")
	}
	return r.e.metrics, nil
}

// items returns the sample of the data set of step s (its only need)
// that a metric looks at: k items chosen by seed, every item when k is 0.
func (r metricRunner) items(ctx context.Context, s plan.Step, k, seed int) ([]metricItem, error) {
	if len(s.Needs) != 1 {
		return nil, fmt.Errorf("%s: want one generate step to measure, have %d", s.Kind, len(s.Needs))
	}
	data := s.Needs[0]
	var all []metricItem
	err := r.e.gens.Accepted(ctx, data, func(g state.Generation) error {
		all = append(all, metricItem{slot: g.Slot, instruction: g.Instruction, response: g.Response})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the data: %w", err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("the data of %s has no accepted items", data)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].slot < all[j].slot })
	idx := metrics.Sample(len(all), k, seed, data)
	out := make([]metricItem, len(idx))
	for i, j := range idx {
		out[i] = all[j]
	}
	return out, nil
}

// apiMetric is what a metric that asks a model starts from: the store,
// the sampled items and the model's provider, whose release the runner
// defers.
type apiMetric struct {
	ms      MetricStore
	items   []metricItem
	prov    Provider
	release func()
}

// open gathers an apiMetric for step s: the sample of its data (k items
// by seed) and generator g's provider.
func (r metricRunner) open(ctx context.Context, s plan.Step, k, seed int, g *spec.Generator) (apiMetric, error) {
	ms, err := r.store()
	if err != nil {
		return apiMetric{}, err
	}
	items, err := r.items(ctx, s, k, seed)
	if err != nil {
		return apiMetric{}, err
	}
	prov, release, err := r.model(ctx, s, g)
	if err != nil {
		return apiMetric{}, err
	}
	return apiMetric{ms: ms, items: items, prov: prov, release: release}, nil
}

// model returns the metric's model and its provider, with the model's
// servers' GPU-hours held against the budget while the step runs.
func (r metricRunner) model(ctx context.Context, s plan.Step, g *spec.Generator) (Provider, func(), error) {
	if g == nil {
		return nil, nil, fmt.Errorf("the spec has no %s metric: the plan is stale", s.Kind)
	}
	release := func() {}
	if g.Provider.VLLM != nil {
		rel, err := r.e.reserveGPU(ctx, s)
		if err != nil {
			return nil, nil, err
		}
		release = rel
	}
	p, err := r.e.provider(ctx, g, s.ID)
	if err != nil {
		release()
		return nil, nil, err
	}
	return p, release, nil
}

func (r metricRunner) begin(ctx context.Context, s plan.Step, target int) error {
	if err := r.e.steps.BeginStep(ctx, state.StepInfo{ID: s.ID, Kind: s.Kind, Address: s.Address, Generator: s.Generator, Setting: s.Setting, Target: target}); err != nil {
		return fmt.Errorf("record step: %w", err)
	}
	return nil
}

// finish records the step's metrics and returns its output.
func (r metricRunner) finish(ctx context.Context, ms MetricStore, s plan.Step, out string, results []state.Metric) (string, error) {
	for i := range results {
		results[i].StepID = s.ID
	}
	if err := ms.RecordMetrics(ctx, results); err != nil {
		return "", err
	}
	return out, nil
}

// parallel runs fn over n tasks with conc workers; the first error stops
// the feeding and is returned. fn sees the soft context's stop through
// the engine.
func (r metricRunner) parallel(ctx context.Context, n, conc int, fn func(i int) error) error {
	if conc <= 0 {
		conc = defaultConcurrency
	}
	conc = min(conc, max(n, 1))
	tasks := make(chan int)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	quit := make(chan struct{})
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tasks {
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						close(quit)
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		if r.e.stopped() {
			break
		}
		select {
		case tasks <- i:
		case <-quit:
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(tasks)
	wg.Wait()
	switch {
	case firstErr != nil:
		return firstErr
	case ctx.Err() != nil || r.e.stopped():
		return errStopped
	}
	return nil
}

// reserve holds a request's worst case against the data generator's
// budget; sending has stopped when it returns errStopped.
func (r metricRunner) reserve(s plan.Step, usd float64) (*Reservation, error) {
	res, err := r.e.ledger.Reserve(r.e.soft, s.Generator, usd)
	if err != nil && r.e.soft.Err() != nil {
		return nil, errStopped
	}
	return res, err
}

// metricServer names the generator whose servers a step uses: the step's
// generator for a generate or solve step, the metric's model for a judge,
// diversity or perplexity step, "" otherwise. Apply closes a generator's
// servers once no step that uses them is left.
func metricServer(exp *spec.Experiment, s plan.Step) string {
	if s.Kind == plan.KindGenerate || s.Kind == plan.KindSolve {
		return s.Generator
	}
	if g := metricServerGen(exp, s); g != nil {
		return g.Name
	}
	return ""
}

// metricServerGen is the generator whose servers step s uses (as
// metricServer), nil if none.
func metricServerGen(exp *spec.Experiment, s plan.Step) *spec.Generator {
	if s.Kind == plan.KindGenerate || s.Kind == plan.KindSolve {
		return exp.Generators[s.Generator]
	}
	m := exp.Metrics
	if m == nil {
		return nil
	}
	var g *spec.Generator
	switch {
	case s.Kind == plan.KindJudge:
		if j := m.JudgeBySuffix(judgeSuffix(s)); j != nil {
			g = j.Gen
		}
	case s.Kind == plan.KindDiversity && m.Diversity != nil:
		g = m.Diversity.Gen
	case s.Kind == plan.KindPerplexity && m.Perplexity != nil:
		g = m.Perplexity.Gen
	}
	return g
}

// judgeSuffix is the suffix of the judge a judge step calls ("" for
// metrics.judge, "_2" for metrics.judge_2), from its inputs.
func judgeSuffix(s plan.Step) string {
	var in struct {
		Suffix string `json:"suffix"`
	}
	_ = json.Unmarshal(s.Inputs, &in)
	return in.Suffix
}
