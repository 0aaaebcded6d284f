package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/vllm"
	"github.com/agorabench/agora/spec"
)

// Batch collection of a vllm generator with batch: true.
const (
	// DefaultBatchLinger is how long a batch waits for more requests
	// after the last one arrived before it runs.
	DefaultBatchLinger = 2 * time.Second
	// batchMaxWait bounds the wait of the first request of a batch.
	batchMaxWait = 30 * time.Second
)

// vllmBatchProvider answers a vllm generator's requests offline: Complete
// adds each request to the batch being collected, and once no request
// has arrived for the linger time the batch is split over the replicas,
// each part answered by one `vllm run-batch` (executors/vllm.RunBatch);
// each caller gets its own answer. The engine's workers (limits.
// concurrency, 100,000 by default in batch mode) put every pending slot
// of a step in the first batch, and the retries of rejected ones in the
// next.
type vllmBatchProvider struct {
	g *spec.Generator
	t Tuning

	mu      sync.Mutex
	cfg     vllm.Config
	started bool
	pending []*batchCall
	first   time.Time
	timer   *time.Timer
	seq     int
	runs    sync.WaitGroup
	ctx     context.Context // ends at Close: stops the runs
	cancel  context.CancelFunc
}

type batchCall struct {
	id   string
	body []byte
	done chan struct{}
	c    engine.Completion
	err  error
}

var _ engine.ServerProvider = (*vllmBatchProvider)(nil)

// Start prepares the runs; nothing runs until requests arrive.
func (p *vllmBatchProvider) Start(ctx context.Context, jobs engine.JobRecorder) error {
	cfg, err := vllmConfig(p.g, p.t, jobs)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg, p.started = cfg, true
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return nil
}

// Complete waits for the answer to msgs from the batch it joins.
func (p *vllmBatchProvider) Complete(ctx context.Context, msgs []engine.Message) (engine.Completion, error) {
	return p.CompleteSampled(ctx, msgs, p.g.Sampling)
}

// CompleteSampled is Complete with the decoding parameters s instead of
// the generator's (engine.SamplingProvider): each line of a run-batch
// file carries its own.
func (p *vllmBatchProvider) CompleteSampled(ctx context.Context, msgs []engine.Message, s spec.Sampling) (engine.Completion, error) {
	body, err := chatBody(p.g.Model, s, msgs)
	if err != nil {
		return engine.Completion{}, fmt.Errorf("generator %s: %w", p.g.Name, err)
	}
	call := &batchCall{body: body, done: make(chan struct{})}
	p.mu.Lock()
	if !p.started || p.ctx.Err() != nil {
		p.mu.Unlock()
		return engine.Completion{}, fmt.Errorf("generator %s: the vLLM batch runner is not running", p.g.Name)
	}
	p.seq++
	call.id = "req-" + strconv.Itoa(p.seq)
	if len(p.pending) == 0 {
		p.first = time.Now()
	}
	p.pending = append(p.pending, call)
	linger := p.t.VLLM.BatchLinger
	if linger <= 0 {
		linger = DefaultBatchLinger
	}
	wait := min(linger, max(0, time.Until(p.first.Add(batchMaxWait))))
	if p.timer == nil {
		p.timer = time.AfterFunc(wait, p.flush)
	} else {
		p.timer.Reset(wait)
	}
	p.mu.Unlock()
	select {
	case <-call.done:
		return call.c, call.err
	case <-ctx.Done():
		return engine.Completion{}, ctx.Err()
	}
}

// flush runs the batch collected so far.
func (p *vllmBatchProvider) flush() {
	p.mu.Lock()
	calls := p.pending
	p.pending = nil
	cfg, ctx := p.cfg, p.ctx
	if len(calls) > 0 {
		p.runs.Add(1)
	}
	p.mu.Unlock()
	if len(calls) == 0 {
		return
	}
	defer p.runs.Done()
	parts := min(max(cfg.VLLM.Replicas, 1), len(calls))
	var wg sync.WaitGroup
	for k := 0; k < parts; k++ {
		var part []*batchCall
		for i := k; i < len(calls); i += parts {
			part = append(part, calls[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, cfg, part)
		}()
	}
	wg.Wait()
}

// run answers part with one run-batch and hands each caller its answer.
func (p *vllmBatchProvider) run(ctx context.Context, cfg vllm.Config, part []*batchCall) {
	reqs := make([]vllm.BatchRequest, len(part))
	for i, c := range part {
		reqs[i] = vllm.BatchRequest{ID: c.id, Body: c.body}
	}
	res, err := vllm.RunBatch(ctx, cfg, reqs)
	for _, c := range part {
		switch r, ok := res[c.id]; {
		case err != nil:
			c.err = err
		case !ok:
			c.err = fmt.Errorf("generator %s: vllm run-batch gave no answer to one request", p.g.Name)
		case r.Status != 200:
			c.err = fmt.Errorf("generator %s: vllm run-batch refused a request (%s)", p.g.Name, r.Err)
		default:
			c.c, c.err = parseCompletion(r.Body)
			if c.err != nil {
				c.err = fmt.Errorf("generator %s: vllm run-batch: %w", p.g.Name, c.err)
			}
		}
		close(c.done)
	}
}

// Close stops a run in progress and waits for it.
func (p *vllmBatchProvider) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.timer != nil {
		p.timer.Stop()
	}
	cancel := p.cancel
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, c := range pending {
		c.err = fmt.Errorf("generator %s: the vLLM batch runner was stopped", p.g.Name)
		close(c.done)
	}
	p.runs.Wait()
	return nil
}

// chatBody is the chat completion request of msgs with the model and the
// sampling s (Extra entries as top-level fields).
func chatBody(model string, s spec.Sampling, msgs []engine.Message) ([]byte, error) {
	body := map[string]any{}
	for k, v := range s.Extra {
		body[k] = v
	}
	m := make([]map[string]string, len(msgs))
	for i, x := range msgs {
		m[i] = map[string]string{"role": x.Role, "content": x.Content}
	}
	body["model"], body["messages"] = model, m
	if _, ok := s.Extra["max_completion_tokens"]; !ok && s.MaxTokens > 0 {
		body["max_tokens"] = s.MaxTokens
	}
	if s.Temperature != nil {
		body["temperature"] = *s.Temperature
	}
	if s.TopP != nil {
		body["top_p"] = *s.TopP
	}
	if len(s.Stop) > 0 {
		body["stop"] = s.Stop
	}
	if s.Seed != nil {
		body["seed"] = *s.Seed
	}
	return json.Marshal(body)
}

// parseCompletion reads a chat completion.
func parseCompletion(b []byte) (engine.Completion, error) {
	var r struct {
		ID                string `json:"id"`
		Model             string `json:"model"`
		SystemFingerprint string `json:"system_fingerprint"`
		Choices           []struct {
			FinishReason string `json:"finish_reason"`
			Message      struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return engine.Completion{}, fmt.Errorf("malformed completion: %v", err)
	}
	if len(r.Choices) == 0 {
		return engine.Completion{}, fmt.Errorf("a completion without choices")
	}
	return engine.Completion{Text: r.Choices[0].Message.Content, FinishReason: r.Choices[0].FinishReason, Model: r.Model,
		SystemFingerprint: r.SystemFingerprint, ID: r.ID, PromptTokens: r.Usage.PromptTokens, CompletionTokens: r.Usage.CompletionTokens}, nil
}

// vllmConfig is the executors/vllm configuration of a generator's servers
// or batch runs.
func vllmConfig(g *spec.Generator, t Tuning, jobs engine.JobRecorder) (vllm.Config, error) {
	o := t.VLLM
	v := *g.Provider.VLLM
	if o.Dir == "" {
		return vllm.Config{}, fmt.Errorf("generator %s: no directory for the vLLM servers' files", g.Name)
	}
	if v.Path != "" && !filepath.IsAbs(v.Path) {
		// The servers run in their own directory: a relative path would
		// name nothing there, and vLLM would look it up on the Hub.
		abs, err := filepath.Abs(filepath.Join(o.SpecDir, v.Path))
		if err != nil {
			return vllm.Config{}, fmt.Errorf("generator %s: vllm.path %q: %w", g.Name, v.Path, err)
		}
		v.Path = abs
	}
	timeout := v.StartWait()
	if o.StartTimeout > 0 {
		timeout = o.StartTimeout
	}
	cfg := vllm.Config{
		Name: g.Name, Model: g.Model, VLLM: v,
		Dir:          filepath.Join(o.Dir, dirName(g.Name)),
		Hardware:     spec.Hardware{Nodes: 1, GPUsPerNode: max(v.GPUs, 1), TimeLimit: v.TimeLimit},
		Client:       o.Slurm,
		StartTimeout: timeout, PollInterval: o.PollInterval, Heartbeat: o.Heartbeat,
		Recorder: jobs, Logf: jobs.Logf, Env: o.Env,
	}
	if v.Slurm != nil {
		cfg.Slurm = *v.Slurm
	}
	if w, ok := jobs.(vllm.JobWatcher); ok {
		cfg.Jobs = w // the engine's shared Slurm poller
	}
	return cfg, nil
}
