package providers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/executors/vllm"
	"github.com/agorabench/agora/spec"
)

// VLLM configures the servers of generators with provider vllm.
type VLLM struct {
	// Dir holds each generator's server directory (Dir/<generator>:
	// scripts, logs, endpoint files, heartbeat). It must be absolute, and
	// seen by the compute nodes when servers run on Slurm.
	Dir string
	// SpecDir is the directory a relative vllm.path resolves against (made
	// absolute: the servers run in their own directory).
	SpecDir string
	// Slurm runs sbatch, squeue and scancel; nil: the commands in PATH.
	Slurm *slurm.Client
	// PollInterval and Heartbeat override executors/vllm's defaults
	// (tests shorten them); StartTimeout overrides the spec's.
	PollInterval, Heartbeat, StartTimeout time.Duration
	// BatchLinger overrides DefaultBatchLinger (batch: true).
	BatchLinger time.Duration
	// Env is more environment for the servers (the offline cache's
	// variables, docs/offline.md).
	Env map[string]string
}

// DefaultVLLMAttemptTimeout bounds one request to a vLLM server: a request
// may wait in vLLM's queue behind a full batch, and no one is billed for
// the wait, so it is far longer than an API's.
const DefaultVLLMAttemptTimeout = 10 * time.Minute

// vllmProvider serves a generator from vLLM servers agora runs: Start
// launches them (engine.ServerProvider), and requests go through the
// OpenAI-compatible client with the pool as its transport.
type vllmProvider struct {
	g *spec.Generator
	t Tuning

	mu   sync.Mutex
	pool *vllm.Pool
	c    *api.Client
}

var _ engine.ServerProvider = (*vllmProvider)(nil)

// Start starts the generator's servers and the client over them.
func (p *vllmProvider) Start(ctx context.Context, jobs engine.JobRecorder) error {
	g := p.g
	cfg, err := vllmConfig(g, p.t, jobs)
	if err != nil {
		return err
	}
	v, timeout := cfg.VLLM, cfg.StartTimeout
	n := max(v.Replicas, 1)
	jobs.Logf("generator %s: starting %d vLLM server%s (%s), up to %s each", g.Name, n, map[bool]string{true: "", false: "s"}[n == 1], v.Executor, timeout)
	pool, err := vllm.Start(ctx, cfg)
	if err != nil {
		return err
	}
	at := p.t.AttemptTimeout
	if at <= 0 {
		at = DefaultVLLMAttemptTimeout
	}
	c, err := api.New(api.Config{Name: g.Name, BaseURL: pool.BaseURL(), APIKey: pool.Key(), APIKeyEnv: "VLLM_API_KEY", Model: g.Model,
		Limits: g.Limits, Sampling: g.Sampling, Transport: pool, AttemptTimeout: at, MaxRetries: p.t.MaxRetries,
		OutageAfter: p.t.OutageAfter, BackoffBase: p.t.BackoffBase, BackoffMax: p.t.BackoffMax})
	if err != nil {
		_ = pool.Close(context.WithoutCancel(ctx))
		return err
	}
	jobs.Logf("generator %s: %d vLLM server%s ready: %s", g.Name, pool.Alive(), map[bool]string{true: "", false: "s"}[pool.Alive() == 1], strings.Join(pool.Addrs(), ", "))
	p.mu.Lock()
	p.pool, p.c = pool, c
	p.mu.Unlock()
	return nil
}

// dirName is a generator's name made safe as a directory name.
func dirName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 {
			return '_'
		}
		return r
	}, name)
}

func (p *vllmProvider) client() (*api.Client, *vllm.Pool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c == nil {
		return nil, nil, fmt.Errorf("generator %s: the vLLM servers are not running", p.g.Name)
	}
	return p.c, p.pool, nil
}

// Check verifies that the servers serve the model, through the client.
func (p *vllmProvider) Check(ctx context.Context) error {
	c, _, err := p.client()
	if err != nil {
		return err
	}
	return c.Check(ctx)
}

// Complete sends one request to the least loaded server. When the last
// server stops, calls waiting in the client's retries end at once with
// the pool's error, which carries the server's log tail.
func (p *vllmProvider) Complete(ctx context.Context, msgs []engine.Message) (engine.Completion, error) {
	return p.complete(ctx, msgs, nil)
}

// complete is Complete with the request's own sampling when s is set.
func (p *vllmProvider) complete(ctx context.Context, msgs []engine.Message, s *spec.Sampling) (engine.Completion, error) {
	c, pool, err := p.client()
	if err != nil {
		return engine.Completion{}, err
	}
	cctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(pool.Context(), func() { cancel(pool.Err()) })
	res, err := apiProvider{c}.complete(cctx, msgs, s)
	stop()
	cancel(nil)
	if err != nil && ctx.Err() == nil {
		if perr := pool.Err(); perr != nil {
			return engine.Completion{}, perr
		}
	}
	return res, err
}

// Retries is the number of HTTP attempts beyond the first of each call.
func (p *vllmProvider) Retries() int64 {
	c, _, err := p.client()
	if err != nil {
		return 0
	}
	return c.Stats().Retries.Total()
}

// Close stops the servers and records their GPU time.
func (p *vllmProvider) Close(ctx context.Context) error {
	p.mu.Lock()
	c, pool := p.c, p.pool
	p.c, p.pool = nil, nil
	p.mu.Unlock()
	if pool == nil {
		return nil
	}
	c.Close()
	return pool.Close(ctx)
}
