package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/harness"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// SolveKeyEnv is the environment variable through which a solve step's
// harness receives the key of agora's proxy. The key is made for one run
// of the step and is worthless after it.
const SolveKeyEnv = "AGORA_SOLVE_KEY"

// SamplingProvider is implemented by providers that can send one request
// with other decoding parameters than the generator's. A solve step's
// proxy asks such a provider with the harness's decoding; any other
// provider answers with the generator's own sampling.
type SamplingProvider interface {
	CompleteSampled(ctx context.Context, msgs []Message, s spec.Sampling) (Completion, error)
}

// solveMaxConcurrency caps the requests a harness keeps in flight; the
// generator's own limits.concurrency caps them further inside its provider.
const solveMaxConcurrency = 128

// solveInputs mirror the compiler's inputs of a solve step.
type solveInputs struct {
	Benchmark string `json:"benchmark"`
	Harness   string `json:"harness"`
	Items     int    `json:"items"`
	Judge     string `json:"judge"`
}

// solveTools are the commands a harness's API command runs.
var solveTools = map[string][]string{
	harness.LMEval:     {"lm_eval"},
	harness.EvalPlus:   {"evalplus.evaluate"},
	harness.AlpacaEval: {"python", "alpaca_eval"},
	harness.ArenaHard:  {"python"},
}

// solveRunner runs solve steps: the generator answers a benchmark itself.
// The benchmark's harness runs as a local job against a proxy that agora
// serves on 127.0.0.1 for the duration of the job: an OpenAI-compatible
// API backed by the generator's Provider, so that its rate limits,
// retries, plugin or vLLM servers apply, and every request is reserved on
// the dollar ledger at its worst case, recorded in the state, and settled
// at its actual cost, like a generate step's.
type solveRunner struct{ e *Engine }

func (r *solveRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in solveInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("solve inputs: %w", err)
	}
	g := e.exp.Generators[s.Generator]
	b := e.exp.Evaluation.Benchmarks[in.Benchmark]
	if g == nil || b == nil {
		return "", fmt.Errorf("the spec has no generator %q or benchmark %q: the plan is stale", s.Generator, in.Benchmark)
	}
	if !spec.Solvable(in.Harness) {
		return "", fmt.Errorf("solve: benchmark %s (harness %q) cannot be answered through an API", in.Benchmark, in.Harness)
	}
	if err := needTools(spec.ExecutorLocal, "answer "+in.Benchmark+" with "+in.Harness, solveTools[in.Harness]...); err != nil {
		return "", err
	}
	dir, err := e.runDir(s.ID)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, EvalOutput)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	name := harness.ServedName(g.Name)
	done, err := e.completedJob(ctx, s.ID)
	if err != nil {
		return "", err
	}
	score, perr := parseSolve(in, out, name)
	if !done || perr != nil {
		if err := r.answer(ctx, s, g, b, in, dir, out, name); err != nil {
			return "", err
		}
		if score, err = parseSolve(in, out, name); err != nil {
			return "", fmt.Errorf("solve: the job exited 0 but its results cannot be read: %w", err)
		}
	}
	if err := e.scores.RecordScore(ctx, s.ID, in.Benchmark, s.Generator, score); err != nil {
		return "", err
	}
	return out, nil
}

// answer serves the generator through the proxy and runs the harness
// against it until the job ends.
func (r *solveRunner) answer(ctx context.Context, s plan.Step, g *spec.Generator, b *spec.Benchmark, in solveInputs, dir, out, name string) error {
	e := r.e
	prov, err := e.provider(ctx, g, s.ID)
	if err != nil {
		return err
	}
	// The job ends early when the proxy cannot go on (budget, stop,
	// a permanent provider error): the harness would only fail slower.
	jobCtx, cancelJob := context.WithCancel(ctx)
	defer cancelJob()
	// The answers' progress beside the job's: requests, tokens, dollars.
	sp := e.prog.add(s.Address+" (answers)", s.Instances, 0, s.Generator)
	defer e.prog.remove(sp)
	px, err := startProxy(ctx, e, s, g, prov, name, cancelJob, sp)
	if err != nil {
		return err
	}
	limit := 0
	if s.Instances < b.Items {
		limit = s.Instances
	}
	conc := g.Limits.Concurrency
	if conc <= 0 {
		conc = defaultConcurrency
	}
	keyEnv := harness.DefaultJudgeKeyEnv
	if b.Judge != nil && b.Judge.APIKeyEnv != "" {
		keyEnv = b.Judge.APIKeyEnv
	}
	tasks, err := writeLMEvalTasks(in.Harness, dir)
	if err != nil {
		px.close(ctx)
		return fmt.Errorf("solve: %w", err)
	}
	script, err := harness.APICommand(in.Harness, in.Benchmark, harness.APIParams{BaseURL: px.url, Model: name, KeyEnv: SolveKeyEnv,
		OutputDir: out, Limit: limit, Of: b.Items, Concurrency: min(conc, solveMaxConcurrency), JudgeModel: in.Judge, JudgeKeyEnv: keyEnv,
		TaskDir: tasks})
	if err != nil {
		px.close(ctx)
		return fmt.Errorf("solve: %w", err)
	}
	env := e.jobEnv(keyEnv, "HF_TOKEN", "HF_HOME", harness.ArenaHardDirEnv)
	env[SolveKeyEnv] = px.key
	j := slurm.Job{Name: "agora-solve-" + shortID(s.ID), Dir: dir, Script: script,
		Hardware: spec.Hardware{Nodes: 1, TimeLimit: evalTimeLimit}, Env: env}
	// A local job: the proxy listens on this machine only. A vllm
	// generator's servers record their own GPU-hours; the step's estimate
	// is held against budgets.gpu_hours meanwhile.
	runErr := e.runJob(jobCtx, plan.Step{ID: s.ID, Address: s.Address, Kind: s.Kind, Executor: spec.ExecutorLocal, Estimate: s.Estimate}, j, 0)
	px.close(ctx)
	if perr := px.err(); perr != nil {
		return perr
	}
	if runErr != nil {
		if ctx.Err() != nil {
			return errStopped
		}
		return wrapJobErr("solve", runErr)
	}
	return nil
}

// parseSolve reads the score the harness left in out.
func parseSolve(in solveInputs, out, name string) (float64, error) {
	o := harness.DefaultOptions()
	if in.Harness == harness.AlpacaEval || in.Harness == harness.ArenaHard {
		o.Model = name
	}
	sc, err := harness.ParseWith(in.Harness, in.Benchmark, out, o)
	if err != nil {
		return 0, err
	}
	return sc.Value, nil
}

// proxy is the OpenAI-compatible API a solve step's harness talks to:
// POST /v1/chat/completions and GET /v1/models on 127.0.0.1, behind a key
// made for the run.
type proxy struct {
	e    *Engine
	step plan.Step
	g    *spec.Generator
	prov Provider
	name string
	key  string
	url  string
	ctx  context.Context // Apply's: a request in flight is abandoned only when it ends
	stop func()          // ends the harness's job
	prog *stepProgress   // the answers' progress line; nil for none

	srv  *http.Server
	done chan struct{}

	mu       sync.Mutex
	slot     int   // the next request's slot in the state
	firstErr error // what ended the step, if the proxy did
}

// startProxy listens on a random port of 127.0.0.1 and serves the
// generator's provider until close.
func startProxy(ctx context.Context, e *Engine, s plan.Step, g *spec.Generator, prov Provider, name string, stop func(), prog *stepProgress) (*proxy, error) {
	last, err := e.gens.LastAttempts(ctx, s.ID)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	next := 0
	for slot := range last {
		next = max(next, slot+1)
	}
	var kb [24]byte
	if _, err := rand.Read(kb[:]); err != nil {
		return nil, fmt.Errorf("solve: proxy key: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("solve: start the proxy: %w", err)
	}
	p := &proxy{e: e, step: s, g: g, prov: prov, name: name, key: "agora-" + hex.EncodeToString(kb[:]), ctx: ctx, stop: stop, prog: prog,
		url: "http://" + ln.Addr().String() + "/v1", slot: next, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/models", p.models)
	mux.HandleFunc("/v1/chat/completions", p.chat)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "not_found", fmt.Sprintf("agora's proxy serves POST /v1/chat/completions and GET /v1/models, not %s %s", r.Method, r.URL.Path))
	})
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// close stops accepting requests and waits for those in flight to be
// answered and recorded (all of them abandoned if ctx ends).
func (p *proxy) close(ctx context.Context) {
	if err := p.srv.Shutdown(ctx); err != nil {
		p.srv.Close()
	}
	<-p.done
}

func (p *proxy) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstErr
}

// fail records what ends the step and stops the harness.
func (p *proxy) fail(err error) {
	p.mu.Lock()
	if p.firstErr == nil {
		p.firstErr = err
	}
	p.mu.Unlock()
	p.stop()
}

func (p *proxy) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") == "Bearer "+p.key {
		return true
	}
	apiError(w, http.StatusUnauthorized, "invalid_api_key", "agora's proxy: missing or wrong API key (the harness gets it from "+SolveKeyEnv+")")
	return false
}

func (p *proxy) models(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(w, r) {
		return
	}
	if r.Method != http.MethodGet {
		apiError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET /v1/models")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
		{"id": p.name, "object": "model", "created": 0, "owned_by": "agora"}}})
}

// chatRequest is the part of a chat completion request the proxy reads:
// the messages, and the decoding parameters it passes on (sampling).
type chatRequest struct {
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream              bool            `json:"stream"`
	N                   *int            `json:"n"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"`
	Seed                *int            `json:"seed"`
	RepetitionPenalty   *float64        `json:"repetition_penalty"`
}

// sampling is the decoding of one request: the generator's sampling with
// the harness's temperature, top_p, stop and seed where it sends them,
// and its max_tokens (or max_completion_tokens) capped at the generator's
// max_tokens, so that the plan's worst case still bounds the step. A
// repetition_penalty is passed on to vllm generators only (OpenAI's API
// rejects the field).
func (r chatRequest) sampling(g *spec.Generator) (spec.Sampling, error) {
	s := g.Sampling
	s.Extra = make(map[string]any, len(g.Sampling.Extra))
	for k, v := range g.Sampling.Extra {
		s.Extra[k] = v
	}
	if r.Temperature != nil {
		s.Temperature = r.Temperature
	}
	if r.TopP != nil {
		s.TopP = r.TopP
	}
	if r.Seed != nil {
		s.Seed = r.Seed
	}
	limit := r.MaxTokens
	if r.MaxCompletionTokens != nil {
		limit = r.MaxCompletionTokens
	}
	if limit != nil && *limit > 0 {
		s.MaxTokens = min(*limit, g.Sampling.MaxTokens)
	}
	if _, ok := s.Extra["max_completion_tokens"]; ok {
		s.Extra["max_completion_tokens"] = s.MaxTokens
	}
	if len(r.Stop) > 0 && string(r.Stop) != "null" {
		var one string
		if err := json.Unmarshal(r.Stop, &one); err == nil {
			s.Stop = []string{one}
		} else if err := json.Unmarshal(r.Stop, &s.Stop); err != nil {
			return spec.Sampling{}, errors.New("stop must be a string or a list of strings")
		}
	}
	if r.RepetitionPenalty != nil && g.Provider.VLLM != nil {
		s.Extra["repetition_penalty"] = *r.RepetitionPenalty
	}
	if len(s.Extra) == 0 {
		s.Extra = nil
	}
	return s, nil
}

// text reads a message's content: a string, or a list of parts of which
// the text ones are joined.
func text(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or a list of text parts")
	}
	var b strings.Builder
	for _, pt := range parts {
		if pt.Type != "text" {
			return "", fmt.Errorf("content part of type %q: only text is supported", pt.Type)
		}
		b.WriteString(pt.Text)
	}
	return b.String(), nil
}

func (p *proxy) chat(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(w, r) {
		return
	}
	if r.Method != http.MethodPost {
		apiError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST /v1/chat/completions")
		return
	}
	var req chatRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20)).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "request body: "+err.Error())
		return
	}
	switch {
	case req.Stream:
		apiError(w, http.StatusBadRequest, "invalid_request_error", "agora's proxy does not stream: send stream: false")
		return
	case req.N != nil && *req.N != 1:
		apiError(w, http.StatusBadRequest, "invalid_request_error", "agora's proxy returns one choice: send n: 1")
		return
	case len(req.Messages) == 0:
		apiError(w, http.StatusBadRequest, "invalid_request_error", "no messages")
		return
	}
	msgs := make([]Message, len(req.Messages))
	for i, m := range req.Messages {
		t, err := text(m.Content)
		if err != nil {
			apiError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("messages[%d]: %v", i, err))
			return
		}
		msgs[i] = Message{Role: m.Role, Content: t}
	}
	e, g := p.e, p.g
	sampling, err := req.sampling(g)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	// After the first interrupt nothing new is sent (those in flight
	// finish and are recorded).
	if e.soft.Err() != nil {
		p.fail(errStopped)
		apiError(w, http.StatusServiceUnavailable, "stopped", "agora is stopping: run agora apply again to resume")
		return
	}
	sp, perRequest := p.prov.(SamplingProvider)
	bound := *g
	if perRequest {
		bound.Sampling = sampling
	}
	reserved := worstCase(msgs, &bound)
	res, err := e.ledger.Reserve(e.soft, g.Name, reserved)
	if err != nil {
		if e.soft.Err() != nil {
			err = errStopped
		}
		p.fail(err)
		apiError(w, http.StatusPaymentRequired, "budget_exhausted", "agora: "+err.Error())
		return
	}
	started := time.Now()
	// The harness hanging up does not abandon a request agora pays for:
	// only the end of the apply does.
	var c Completion
	if perRequest {
		c, err = sp.CompleteSampled(e.sending(p.ctx), msgs, sampling)
	} else {
		c, err = p.prov.Complete(e.sending(p.ctx), msgs)
	}
	if err != nil {
		res.Settle(0)
		if p.ctx.Err() != nil || errors.Is(err, retry.ErrStopped) {
			p.fail(errStopped)
			apiError(w, http.StatusServiceUnavailable, "stopped", "agora is stopping")
			return
		}
		p.fail(fmt.Errorf("solve: %w", err))
		// 424: not retried by OpenAI clients; the provider has retried.
		apiError(w, http.StatusFailedDependency, "provider_error", err.Error())
		return
	}
	v := judgeUsage(g, c, promptBound(g, msgs), bound.Sampling.MaxTokens, reserved)
	cost := v.cost
	c.PromptTokens, c.CompletionTokens = v.in, v.out
	p.mu.Lock()
	slot := p.slot
	p.slot++
	p.mu.Unlock()
	question := msgs[len(msgs)-1].Content
	rec := state.Generation{
		StepID: p.step.ID, Slot: slot, Attempt: 1, Accepted: v.reject == "", RejectReason: v.reject,
		Raw: capRaw(c.Text, v.reject == ""), Instruction: question, Response: c.Text,
		Model: c.Model, SystemFingerprint: c.SystemFingerprint, RequestID: c.ID, FinishReason: c.FinishReason,
		InputTokens: c.PromptTokens, OutputTokens: c.CompletionTokens, CostUSD: cost,
		StartedAt: started, Duration: time.Since(started),
	}
	// Durable before counted, as in a generate step.
	if err := e.gens.Append(context.WithoutCancel(p.ctx), rec); err != nil {
		res.Settle(cost)
		p.fail(fmt.Errorf("record response: %w", err))
		apiError(w, http.StatusInternalServerError, "state_error", "agora could not record the response")
		return
	}
	if err := settle(res, v); err != nil {
		p.fail(err)
		apiError(w, http.StatusFailedDependency, "provider_error", "agora: "+err.Error())
		return
	}
	if p.prog != nil {
		p.prog.record(c.PromptTokens, c.CompletionTokens, cost, true)
	}
	finish := c.FinishReason
	if finish == "" {
		finish = "stop"
	}
	model := c.Model
	if model == "" {
		model = p.name
	}
	id := c.ID
	if id == "" {
		id = fmt.Sprintf("agora-%s-%d", shortID(p.step.ID), slot)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "object": "chat.completion", "created": started.Unix(), "model": model,
		"system_fingerprint": c.SystemFingerprint,
		"choices": []map[string]any{{"index": 0, "message": map[string]any{"role": "assistant", "content": c.Text},
			"finish_reason": finish, "logprobs": nil}},
		"usage": map[string]int{"prompt_tokens": c.PromptTokens, "completion_tokens": c.CompletionTokens,
			"total_tokens": c.PromptTokens + c.CompletionTokens},
	})
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": code, "code": code}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
