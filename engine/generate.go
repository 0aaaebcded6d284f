package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// SeedLoader loads a setting's seed items and the digest of their data.
type SeedLoader interface {
	Load(ctx context.Context, s *spec.Setting) (items []generation.SeedItem, digest string, err error)
}

// defaultConcurrency is the number of requests a generate step keeps in
// flight when the generator sets no limit.
const defaultConcurrency = 16

// spareWorkerDivisor sizes the workers of a generate step beyond its
// concurrency: concurrency/spareWorkerDivisor more (docs/benchmarks.md).
const spareWorkerDivisor = 4

// perMessageOverhead bounds the tokens a chat template adds per message.
const perMessageOverhead = 8

type generateRunner struct{ e *Engine }

// exhaustedError says instances were given up after every attempt failed.
type exhaustedError struct {
	slots  int
	reason string
}

func (x *exhaustedError) Error() string {
	return fmt.Sprintf("%d instance%s rejected on every attempt (last reason: %s)", x.slots, plural(x.slots), x.reason)
}

func (r *generateRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	g, set := e.exp.Generators[s.Generator], e.exp.Settings[s.Setting]
	if g == nil || set == nil {
		return "", fmt.Errorf("the spec has no generator %q or setting %q: the plan is stale", s.Generator, s.Setting)
	}
	task, err := r.task(ctx, s, set)
	if err != nil {
		return "", err
	}
	if g.Provider.VLLM != nil {
		// The generator's servers hold GPUs: the step's estimate is
		// held against budgets.gpu_hours like a job's.
		release, err := e.reserveGPU(ctx, s)
		if err != nil {
			return "", err
		}
		defer release()
	}
	prov, err := e.provider(ctx, g, s.ID)
	if err != nil {
		return "", err
	}
	if bp, ok := prov.(BatchProvider); ok {
		return r.runBatches(ctx, s, g, task, bp) // batch.go
	}
	accepted, err := e.gens.AcceptedSlots(ctx, s.ID)
	if err != nil {
		return "", fmt.Errorf("read state: %w", err)
	}
	// Attempt numbers continue after those recorded, so a rerun never
	// repeats a request that was already paid for.
	last, err := e.gens.LastAttempts(ctx, s.ID)
	if err != nil {
		return "", fmt.Errorf("read state: %w", err)
	}
	var todo []int
	for slot := 0; slot < s.Instances; slot++ {
		if !accepted[slot] {
			todo = append(todo, slot)
		}
	}
	digest := task.Template.Digest() // once, not per request
	sampling, err := settingSampling(g, set, prov)
	if err != nil {
		return "", err
	}
	sp := e.prog.add(s.Address, s.Instances, len(accepted), s.Generator)
	defer e.prog.remove(sp)

	conc := g.Limits.Concurrency
	if conc <= 0 {
		conc = defaultConcurrency
	}
	// More workers than the concurrency: a worker whose response is
	// waiting for its group commit holds no connection, and the spare
	// workers, queued on the provider's own concurrency limit, keep the
	// connections busy meanwhile.
	workers := min(conc+conc/spareWorkerDivisor+1, len(todo))
	slots := make(chan int)
	var (
		mu        sync.Mutex
		firstErr  error
		exhausted int
		lastWhy   string
		wg        sync.WaitGroup
	)
	quit := make(chan struct{})
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case firstErr == nil:
			firstErr = err
			close(quit)
		case overshot(err) && !overshot(firstErr):
			// A crossed budget stops the run, not only the step.
			firstErr = err
		}
	}
	// Once the step fails (or the first interrupt comes) its calls make
	// no new attempt; those in flight finish and are recorded.
	stop, finished := make(chan struct{}), make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-quit:
		case <-e.noMoreSending():
		case <-finished:
		}
		close(stop)
	}()
	sctx := retry.WithStop(ctx, stop)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for slot := range slots {
				err := r.slot(sctx, stop, s, g, task, digest, prov, sampling, sp, slot, last[slot]+1)
				var x *exhaustedError
				switch {
				case err == nil:
				case errors.As(err, &x):
					mu.Lock()
					exhausted++
					lastWhy = x.reason
					mu.Unlock()
				default:
					fail(err)
				}
			}
		}()
	}
feed:
	for _, slot := range todo {
		select {
		case slots <- slot:
		case <-quit:
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(slots)
	wg.Wait()
	return e.endGenerate(ctx, s, firstErr, ctx.Err() != nil, exhausted, lastWhy)
}

// endGenerate ends a generate step, synchronous or in batches: its first
// error, a stop, the slots it gave up on (retried by the next apply), or
// else its dataset file, written from the state.
func (e *Engine) endGenerate(ctx context.Context, s plan.Step, firstErr error, stopped bool, exhausted int, lastWhy string) (string, error) {
	switch {
	case firstErr != nil:
		return "", firstErr
	case stopped:
		return "", errStopped
	case exhausted > 0:
		return "", fmt.Errorf("%w; run agora apply again to retry them", &exhaustedError{slots: exhausted, reason: lastWhy})
	}
	out := filepath.Join(e.opts.Dir, "datasets", s.ID+".jsonl")
	if err := writeDatasetFile(ctx, e.gens, s, out); err != nil {
		return "", err
	}
	return out, nil
}

// task prepares the generation task of a step: seed items and meta-prompt.
func (r *generateRunner) task(ctx context.Context, s plan.Step, set *spec.Setting) (*generation.Task, error) {
	e := r.e
	if e.opts.Seeds == nil {
		return nil, errors.New("no seed loader")
	}
	items, digest, err := e.opts.Seeds.Load(ctx, set)
	if err != nil {
		return nil, fmt.Errorf("seed data: %w", err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("seed data of %s has no items", set.Name)
	}
	if err := e.gens.RecordSeed(ctx, set.SeedData.Ref(), digest); err != nil {
		return nil, fmt.Errorf("record seed digest: %w", err)
	}
	variant := s.Variant
	if set.Prompt.File != "" {
		variant = spec.VariantFile
	}
	tpl, err := spec.MetaPrompt(set, variant)
	if err != nil {
		return nil, fmt.Errorf("meta-prompt: %w", err)
	}
	seed := int64(0)
	if s.Seed != nil {
		seed = int64(*s.Seed)
	}
	task := &generation.Task{Domain: set.Domain, Method: set.Method, Variant: s.Variant, Template: tpl,
		Seed: seed, Seeds: items, Instances: s.Instances, System: set.Prompt.System, Fixing: set.Prompt.Fixing,
		Topics: set.Prompt.Topics, Openings: set.Prompt.Openings}
	if set.Multilingual() {
		task.Languages = set.CodeLanguages()
	}
	return task, nil
}

// slot obtains one accepted instance for slot, starting at attempt and
// making at most MaxAttempts requests in this run (a rerun gives a slot
// given up before a fresh set of attempts, with new attempt numbers).
// Every response is recorded before its cost is booked.
func (r *generateRunner) slot(ctx context.Context, stop <-chan struct{}, s plan.Step, g *spec.Generator, task *generation.Task, promptDigest string, prov Provider, sampling *spec.Sampling, sp *stepProgress, slot, attempt int) error {
	e := r.e
	reason := "no attempts left"
	for n := 0; n < e.opts.MaxAttempts; n, attempt = n+1, attempt+1 {
		select {
		case <-stop:
			return errStopped
		default:
		}
		if e.stopped() || ctx.Err() != nil {
			return errStopped
		}
		req, err := task.Request(slot, attempt)
		if err != nil {
			return fmt.Errorf("build request: %w", err)
		}
		msgs := make([]Message, len(req.Messages))
		for i, m := range req.Messages {
			msgs[i] = Message{Role: m.Role, Content: m.Content}
		}
		reserved := worstCase(msgs, g)
		res, err := e.ledger.Reserve(e.soft, g.Name, reserved)
		if err != nil {
			if e.soft.Err() != nil {
				return errStopped
			}
			return err
		}
		started := time.Now()
		c, err := complete(ctx, prov, msgs, sampling)
		if err != nil {
			res.Settle(0)
			if ctx.Err() != nil || errors.Is(err, retry.ErrStopped) {
				return errStopped
			}
			return err
		}
		v := judgeUsage(g, c, promptBound(g, msgs), g.Sampling.MaxTokens, reserved)
		cost := v.cost
		rec, verr := answerRecord(task, req, c, v, cost, state.Generation{StepID: s.ID, Slot: slot, Attempt: attempt, PromptDigest: promptDigest, StartedAt: started})
		if verr != nil {
			reason = rec.RejectReason
		}
		// Durable before counted: the record survives a crash from here on.
		if err := e.gens.Append(context.WithoutCancel(ctx), rec); err != nil {
			res.Settle(cost)
			return fmt.Errorf("record response: %w", err)
		}
		serr := settle(res, v)
		sp.record(v.in, v.out, cost, verr == nil)
		if serr != nil {
			return serr
		}
		if verr == nil {
			return nil
		}
	}
	return &exhaustedError{slots: 1, reason: reason}
}

// answerRecord judges answer c to generate request req (the task's checks;
// a usage verdict's rejection overrides them) and completes base, which
// names the step, slot, attempt, prompt digest and start, into the
// state's record of it: the instance when accepted, the rejection's
// reason when not. It returns the record and the rejection.
func answerRecord(task *generation.Task, req generation.Request, c Completion, v usageVerdict, cost float64, base state.Generation) (state.Generation, error) {
	inst, verr := task.Result(req, generation.Completion{Text: c.Text, FinishReason: c.FinishReason})
	if v.reject != "" {
		verr = errors.New(v.reject)
	}
	g := base
	g.Accepted = verr == nil
	g.Raw = capRaw(c.Text, verr == nil)
	g.Model, g.SystemFingerprint, g.RequestID, g.FinishReason = c.Model, c.SystemFingerprint, c.ID, c.FinishReason
	g.SeedItemID = req.SeedItemID
	g.InputTokens, g.OutputTokens, g.CostUSD = v.in, v.out, cost
	g.Duration = time.Since(base.StartedAt)
	if verr == nil {
		g.Instruction, g.Response = inst.Instruction, inst.Response
		return g, nil
	}
	g.RejectReason = verr.Error()
	var rj *generation.Rejection
	if errors.As(verr, &rj) {
		g.RejectReason = rj.Reason
	}
	return g, verr
}

// worstCase bounds a request's cost before it is sent: the prompt's tokens
// are bounded by promptBound (the model's tokenizer where agora knows it,
// else the bytes: a byte-level BPE token covers at least one byte), the
// completion by max_tokens.
func worstCase(msgs []Message, g *spec.Generator) float64 {
	return price(g, promptBound(g, msgs), g.Sampling.MaxTokens)
}

// price is the dollar cost of a request at the generator's prices.
func price(g *spec.Generator, in, out int) float64 {
	if g.Price == nil {
		return 0
	}
	return (float64(in)*g.Price.Input + float64(out)*g.Price.Output) / 1e6
}

// DatasetRecord is one line of a generated dataset: chat format that
// trainers read unchanged, plus provenance.
type DatasetRecord struct {
	Messages          []Message `json:"messages"`
	Generator         string    `json:"generator"`
	Setting           string    `json:"setting"`
	Step              string    `json:"step"`
	Slot              int       `json:"slot"`
	Model             string    `json:"model"`
	SystemFingerprint string    `json:"system_fingerprint,omitempty"`
	PromptDigest      string    `json:"prompt_digest"`
	SeedItemID        string    `json:"seed_item_id,omitempty"`
	Usage             struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	CostUSD float64 `json:"cost_usd"`
}

// MarshalJSON writes messages with lowercase keys.
func (m Message) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}{m.Role, m.Content})
}

// WriteDataset writes the accepted instances of a generate step as JSONL.
func WriteDataset(ctx context.Context, store GenerationStore, s plan.Step, w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := store.Accepted(ctx, s.ID, func(g state.Generation) error {
		rec := DatasetRecord{
			Messages:  []Message{{Role: "user", Content: g.Instruction}, {Role: "assistant", Content: g.Response}},
			Generator: s.Generator, Setting: s.Setting, Step: s.ID, Slot: g.Slot, Model: g.Model,
			SystemFingerprint: g.SystemFingerprint, PromptDigest: g.PromptDigest, SeedItemID: g.SeedItemID, CostUSD: g.CostUSD,
		}
		rec.Usage.PromptTokens, rec.Usage.CompletionTokens = g.InputTokens, g.OutputTokens
		return enc.Encode(rec)
	})
	if err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	return bw.Flush()
}

// writeDatasetFile writes the dataset to path atomically.
func writeDatasetFile(ctx context.Context, store GenerationStore, s plan.Step, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dataset-*")
	if err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := WriteDataset(ctx, store, s, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write dataset: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	return nil
}

// settingSampling is the decoding of a setting's requests when it differs
// from the generator's: the setting's prompt.stop added to the
// generator's sampling.stop. nil means the generator's own.
func settingSampling(g *spec.Generator, set *spec.Setting, prov Provider) (*spec.Sampling, error) {
	if len(set.Prompt.Stop) == 0 {
		return nil, nil
	}
	if _, ok := prov.(SamplingProvider); !ok {
		return nil, fmt.Errorf("generator %s: its provider cannot send the stop sequences of setting %s", g.Name, set.Name)
	}
	s := g.Sampling
	s.Stop = slices.Clone(s.Stop)
	for _, x := range set.Prompt.Stop {
		if !slices.Contains(s.Stop, x) {
			s.Stop = append(s.Stop, x)
		}
	}
	return &s, nil
}

// complete sends msgs with the generator's sampling, or with s when set.
func complete(ctx context.Context, prov Provider, msgs []Message, s *spec.Sampling) (Completion, error) {
	if s == nil {
		return prov.Complete(ctx, msgs)
	}
	return prov.(SamplingProvider).CompleteSampled(ctx, msgs, *s)
}
