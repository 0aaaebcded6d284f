package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"text/template"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/executors/slurm"
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
	ms, ok := r.e.store.(MetricStore)
	if !ok {
		return nil, errors.New("this state cannot record metrics")
	}
	return ms, nil
}

// items returns the sample of the data set of step s (its only need)
// that a metric looks at: k items chosen by seed, every item when k is 0.
func (r metricRunner) items(ctx context.Context, s plan.Step, k, seed int) ([]metricItem, error) {
	if len(s.Needs) != 1 {
		return nil, fmt.Errorf("%s: want one generate step to measure, have %d", s.Kind, len(s.Needs))
	}
	data := s.Needs[0]
	var all []metricItem
	err := r.e.store.Accepted(ctx, data, func(g state.Generation) error {
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
	if err := r.e.store.BeginStep(ctx, state.StepInfo{ID: s.ID, Kind: s.Kind, Address: s.Address, Generator: s.Generator, Setting: s.Setting, Target: target}); err != nil {
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

// judgeInputs mirror the compiler's inputs of a judge step.
type judgeInputs struct {
	Domain   string   `json:"domain"`
	Aspects  []string `json:"aspects"`
	Sample   int      `json:"sample"`
	Seed     int      `json:"seed"`
	Attempts int      `json:"attempts"`
}

type judgeRunner struct{ metricRunner }

// judgeDetail is the detail of a judge metric.
type judgeDetail struct {
	Model        string  `json:"model"`
	Distribution []int   `json:"distribution"`
	SD           float64 `json:"sd"`
	// Unreadable counts judgements that could not be read (each was
	// asked again); GivenUp the items left out after every attempt.
	Unreadable int `json:"unreadable"`
	GivenUp    int `json:"given_up"`
}

func (r judgeRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in judgeInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("judge inputs: %w", err)
	}
	var g *spec.Generator
	if m := e.exp.Metrics; m != nil && m.Judge != nil {
		g = m.Judge.Gen
	}
	ms, err := r.store()
	if err != nil {
		return "", err
	}
	items, err := r.items(ctx, s, in.Sample, in.Seed)
	if err != nil {
		return "", err
	}
	prov, release, err := r.model(ctx, s, g)
	if err != nil {
		return "", err
	}
	defer release()
	if err := r.begin(ctx, s, len(items)*len(in.Aspects)); err != nil {
		return "", err
	}
	type key struct {
		slot   int
		aspect string
	}
	prior, err := ms.Judgements(ctx, s.ID)
	if err != nil {
		return "", err
	}
	scores := map[key]int{}
	last := map[key]int{}
	unreadable := 0
	for _, j := range prior {
		k := key{j.Slot, j.Aspect}
		last[k] = max(last[k], j.Attempt)
		if j.Error == "" {
			scores[k] = j.Score
		} else {
			unreadable++
		}
	}
	var todo []key
	for _, a := range in.Aspects {
		for _, it := range items {
			if _, ok := scores[key{it.slot, a}]; !ok {
				todo = append(todo, key{it.slot, a})
			}
		}
	}
	bySlot := map[int]metricItem{}
	for _, it := range items {
		bySlot[it.slot] = it
	}
	sp := e.prog.add(s.Address, len(items)*len(in.Aspects), len(items)*len(in.Aspects)-len(todo), s.Generator)
	defer e.prog.remove(sp)

	var (
		mu              sync.Mutex
		givenUp         int
		readable        = len(scores)
		unreadableStart int // unreadable judgements before the first readable one in this run
		lastWhy         string
	)
	err = r.parallel(ctx, len(todo), g.Limits.Concurrency, func(i int) error {
		k := todo[i]
		it := bySlot[k.slot]
		prompt, err := metrics.JudgePrompt(k.aspect, in.Domain, it.instruction, it.response)
		if err != nil {
			return err
		}
		msgs := []Message{{Role: "user", Content: prompt}}
		for n := 0; n < in.Attempts; n++ {
			if e.stopped() || ctx.Err() != nil {
				return errStopped
			}
			reserved := worstCase(msgs, g)
			res, err := r.reserve(s, reserved)
			if err != nil {
				return err
			}
			c, err := prov.Complete(e.sending(ctx), msgs)
			if err != nil {
				res.Settle(0)
				if ctx.Err() != nil || errors.Is(err, retry.ErrStopped) {
					return errStopped
				}
				return err
			}
			v := judgeUsage(g, c, promptBound(msgs), g.Sampling.MaxTokens, reserved)
			cost := v.cost
			c.PromptTokens, c.CompletionTokens = v.in, v.out
			score, _, perr := metrics.ParseJudgement(c.Text)
			if v.reject != "" {
				perr = errors.New(v.reject)
			}
			mu.Lock()
			last[k]++
			attempt := last[k]
			mu.Unlock()
			rec := state.Judgement{StepID: s.ID, Slot: k.slot, Aspect: k.aspect, Attempt: attempt, Score: score, Raw: capRaw(c.Text, perr == nil),
				Model: c.Model, InputTokens: c.PromptTokens, OutputTokens: c.CompletionTokens, CostUSD: cost}
			if perr != nil {
				rec.Error = perr.Error()
			}
			if err := ms.RecordJudgement(context.WithoutCancel(ctx), rec); err != nil {
				res.Settle(cost)
				return err
			}
			if err := settle(res, v); err != nil {
				return err
			}
			sp.record(c.PromptTokens, c.CompletionTokens, cost, perr == nil)
			mu.Lock()
			if perr == nil {
				scores[k] = score
				readable++
				mu.Unlock()
				return nil
			}
			unreadable++
			lastWhy = perr.Error()
			if readable == 0 {
				unreadableStart++
			}
			bad := readable == 0 && unreadableStart >= unreadableRun
			mu.Unlock()
			if bad {
				return fmt.Errorf("judge %s: the first %d judgements could not be read (last: %s); see docs/metrics.md for the format it must follow", g.Name, unreadableRun, lastWhy)
			}
		}
		mu.Lock()
		givenUp++
		mu.Unlock()
		return nil
	})
	if err != nil {
		return "", err
	}
	var results []state.Metric
	for _, a := range in.Aspects {
		var xs []int
		for _, it := range items {
			if v, ok := scores[key{it.slot, a}]; ok {
				xs = append(xs, v)
			}
		}
		if len(xs) == 0 {
			return "", fmt.Errorf("judge %s: no readable %s judgement (last: %s)", g.Name, a, lastWhy)
		}
		sum, err := metrics.SummarizeScores(xs)
		if err != nil {
			return "", err
		}
		detail, _ := json.Marshal(judgeDetail{Model: g.Model, Distribution: sum.Distribution, SD: sum.SD, Unreadable: unreadable, GivenUp: givenUp})
		results = append(results, state.Metric{Name: a, Value: sum.Mean, N: sum.N, Low: &sum.Low, High: &sum.High, Detail: string(detail)})
	}
	return r.finish(ctx, ms, s, "", results)
}

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
	ms, err := r.store()
	if err != nil {
		return "", err
	}
	items, err := r.items(ctx, s, in.Sample, in.Seed)
	if err != nil {
		return "", err
	}
	prov, release, err := r.model(ctx, s, g)
	if err != nil {
		return "", err
	}
	defer release()
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
	ms, err := r.store()
	if err != nil {
		return "", err
	}
	items, err := r.items(ctx, s, in.Sample, in.Seed)
	if err != nil {
		return "", err
	}
	prov, release, err := r.model(ctx, s, g)
	if err != nil {
		return "", err
	}
	defer release()
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

// rewardInputs mirror the compiler's inputs of a reward step.
type rewardInputs struct {
	Model   string `json:"model"`
	Command string `json:"command"`
	Builtin string `json:"builtin"`
	Sample  int    `json:"sample"`
	Seed    int    `json:"seed"`
}

// RewardData and RewardOutput are the files of a reward step's run
// directory: the items to score and the job's scores (docs/metrics.md).
const (
	RewardData   = "reward-input.jsonl"
	RewardOutput = "rewards.jsonl"
)

// rewardTemplateData is what a reward command template sees.
type rewardTemplateData struct {
	// SpecDir is the directory of the spec, for scripts kept beside it;
	// Dir the step's run directory, where the job runs.
	Model, Data, Output, Dir, SpecDir string
	GPUs, Items                       int
}

type rewardRunner struct{ metricRunner }

func (r rewardRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in rewardInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("reward inputs: %w", err)
	}
	var rm *spec.RewardMetric
	if m := e.exp.Metrics; m != nil {
		rm = m.Reward
	}
	if rm == nil {
		return "", fmt.Errorf("the spec has no reward metric: the plan is stale")
	}
	if in.Command == "" {
		if err := needTools(s.Executor, "run the built-in reward job", "python3"); err != nil {
			return "", err
		}
	}
	ms, err := r.store()
	if err != nil {
		return "", err
	}
	items, err := r.items(ctx, s, in.Sample, in.Seed)
	if err != nil {
		return "", err
	}
	if err := r.begin(ctx, s, len(items)); err != nil {
		return "", err
	}
	dir, err := e.runDir(s.ID)
	if err != nil {
		return "", err
	}
	data, out := filepath.Join(dir, RewardData), filepath.Join(dir, RewardOutput)
	if err := writeRewardInput(data, items); err != nil {
		return "", err
	}
	done, err := e.completedJob(ctx, s.ID)
	if err != nil {
		return "", err
	}
	scores, perr := metrics.ReadRewards(out, len(items))
	if !done || perr != nil {
		script, err := r.script(in, rm, dir, data, out, len(items))
		if err != nil {
			return "", err
		}
		os.Remove(out) // a stale file must not pass for this job's
		j := slurm.Job{
			Name:     "agora-reward-" + shortID(s.ID),
			Dir:      dir,
			Script:   script,
			Hardware: spec.Hardware{Nodes: 1, GPUsPerNode: rm.GPUs, TimeLimit: rm.TimeLimit},
			Requeue:  true,
			Env:      e.jobEnv("HF_TOKEN", "HF_HOME"),
		}
		if rm.Slurm != nil {
			j.Slurm = *rm.Slurm
		}
		if err := e.runJob(ctx, s, j, rm.GPUs); err != nil {
			return "", wrapJobErr("reward", err)
		}
		if scores, err = metrics.ReadRewards(out, len(items)); err != nil {
			return "", fmt.Errorf("reward: the job exited 0 but its output cannot be read: %w", err)
		}
	}
	vals := make([]state.ItemValue, len(items))
	for i, it := range items {
		vals[i] = state.ItemValue{Slot: it.slot, Name: valueReward, Value: scores[i]}
	}
	if err := ms.RecordItemValues(ctx, s.ID, vals, 0, 0, 0); err != nil {
		return "", err
	}
	sum, err := metrics.Summarize(scores)
	if err != nil {
		return "", fmt.Errorf("reward: %w", err)
	}
	detail, _ := json.Marshal(map[string]any{"model": in.Model, "sd": sum.SD})
	return r.finish(ctx, ms, s, out, []state.Metric{{Name: FeatureReward, Value: sum.Mean, N: sum.N, Low: &sum.Low, High: &sum.High, Detail: string(detail)}})
}

// script is the reward job's body: the spec's command template, or
// agora's built-in scorer (metrics.RewardJobScript) written into dir.
func (r rewardRunner) script(in rewardInputs, rm *spec.RewardMetric, dir, data, out string, items int) (string, error) {
	if in.Command == "" {
		job := filepath.Join(dir, metrics.RewardJobFile)
		if err := os.WriteFile(job, metrics.RewardJobScript, 0o644); err != nil {
			return "", fmt.Errorf("reward: %w", err)
		}
		return fmt.Sprintf("python3 %s --model %s --data %s --output %s\n", shQuote(job), shQuote(in.Model), shQuote(data), shQuote(out)), nil
	}
	t, err := template.New("reward command").Option("missingkey=error").Parse(in.Command)
	if err != nil {
		return "", fmt.Errorf("metrics.reward.command: %w", err)
	}
	specDir, err := filepath.Abs(r.e.exp.Source.Dir)
	if err != nil {
		return "", err
	}
	var script bytes.Buffer
	if err := t.Execute(&script, rewardTemplateData{Model: in.Model, Data: data, Output: out, Dir: dir, SpecDir: specDir, GPUs: rm.GPUs, Items: items}); err != nil {
		return "", fmt.Errorf("metrics.reward.command: %w", err)
	}
	return script.String(), nil
}

// writeRewardInput writes the items a reward job scores, one
// metrics.RewardInput a line, index i being the item's line number from 0.
func writeRewardInput(path string, items []metricItem) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("reward input: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, it := range items {
		if err := enc.Encode(metrics.RewardInput{Index: i, Instruction: it.instruction, Response: it.response}); err != nil {
			f.Close()
			return fmt.Errorf("reward input: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("reward input: %w", err)
	}
	return f.Close()
}

// metricServer names the generator whose servers a step uses: the step's
// generator for a generate or solve step, the metric's model for a judge,
// diversity or perplexity step, "" otherwise. Apply closes a generator's
// servers once no step that uses them is left.
func metricServer(exp *spec.Experiment, s plan.Step) string {
	if s.Kind == plan.KindGenerate || s.Kind == plan.KindSolve {
		return s.Generator
	}
	m := exp.Metrics
	if m == nil {
		return ""
	}
	var g *spec.Generator
	switch {
	case s.Kind == plan.KindJudge && m.Judge != nil:
		g = m.Judge.Gen
	case s.Kind == plan.KindDiversity && m.Diversity != nil:
		g = m.Diversity.Gen
	case s.Kind == plan.KindPerplexity && m.Perplexity != nil:
		g = m.Perplexity.Gen
	}
	if g == nil {
		return ""
	}
	return g.Name
}
