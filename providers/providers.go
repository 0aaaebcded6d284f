// Package providers wires a spec's generators and seed data to the
// engine: it builds the engine.Provider of each generator (the
// OpenAI-compatible client of executors/api; vLLM servers of
// executors/vllm behind that client; or a plugin through plugins/host)
// and the engine's seed loader.
package providers

import (
	"context"
	"fmt"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/seeddata"
	"github.com/agorabench/agora/spec"
)

// Tuning adjusts the clients' retry timing; the zero value keeps the
// clients' defaults. Tests shorten it.
type Tuning struct {
	AttemptTimeout          time.Duration
	BackoffBase, BackoffMax time.Duration
	OutageAfter             time.Duration
	MaxRetries              int
	// Plugins runs the plugins of generators with provider: plugin; nil
	// refuses them.
	Plugins *host.Host
	// VLLM configures the servers of generators with provider: vllm.
	VLLM VLLM
	// BatchPoll, when > 0, replaces the batch mode's poll interval;
	// BatchCancelWait bounds the wait for a cancelled batch to end.
	BatchPoll, BatchCancelWait time.Duration
}

// New returns a function building the provider of a generator.
func New(t Tuning) func(g *spec.Generator) (engine.Provider, error) {
	return func(g *spec.Generator) (engine.Provider, error) {
		switch {
		case g.Provider.OpenAI != nil:
			o := g.Provider.OpenAI
			c, err := api.New(api.Config{Name: g.Name, BaseURL: o.BaseURL, APIKeyEnv: o.APIKeyEnv, Model: g.Model,
				Limits: g.Limits, Sampling: g.Sampling, AttemptTimeout: t.AttemptTimeout, MaxRetries: t.MaxRetries,
				OutageAfter: t.OutageAfter, BackoffBase: t.BackoffBase, BackoffMax: t.BackoffMax})
			if err != nil {
				return nil, err // names the generator already
			}
			if o.Batch.On {
				return newAPIBatchProvider(c, g, t), nil // batch.go
			}
			return apiProvider{c}, nil
		case g.Provider.VLLM != nil && g.Provider.VLLM.Batch:
			return &vllmBatchProvider{g: g, t: t}, nil
		case g.Provider.VLLM != nil:
			// The servers start when the engine calls Start.
			return &vllmProvider{g: g, t: t}, nil
		case g.Provider.Plugin != "":
			if t.Plugins == nil {
				return nil, fmt.Errorf("generator %s: no plugin host to run plugin %s", g.Name, g.Provider.Plugin)
			}
			c, err := t.Plugins.Client(context.Background(), host.Config{Generator: g.Name, Plugin: g.Provider.Plugin,
				SHA256: g.Provider.SHA256, Model: g.Model, Price: g.Price, Limits: g.Limits, Sampling: g.Sampling,
				Retry: retry.Config{AttemptTimeout: t.AttemptTimeout, MaxRetries: t.MaxRetries, OutageAfter: t.OutageAfter,
					BackoffBase: t.BackoffBase, BackoffMax: t.BackoffMax}})
			if err != nil {
				return nil, err // names the generator already
			}
			if g.Provider.Batch.On {
				return newPluginBatchProvider(c, g, t) // plugin_batch.go
			}
			return pluginProvider{c}, nil
		default:
			return nil, fmt.Errorf("generator %s: no provider: set one of openai, vllm or plugin", g.Name)
		}
	}
}

// apiProvider adapts the OpenAI-compatible client to the engine.
type apiProvider struct{ c *api.Client }

// Retries is the number of HTTP attempts beyond the first of each call,
// for progress lines.
func (p apiProvider) Retries() int64 {
	return p.c.Stats().Retries.Total()
}

// Check verifies the endpoint, the key and the model before a run.
func (p apiProvider) Check(ctx context.Context) error { return p.c.Check(ctx) }

func (p apiProvider) Complete(ctx context.Context, msgs []engine.Message) (engine.Completion, error) {
	return p.complete(ctx, msgs, nil)
}

// complete sends msgs with the client's sampling, or with s when set.
func (p apiProvider) complete(ctx context.Context, msgs []engine.Message, s *spec.Sampling) (engine.Completion, error) {
	req := api.Request{Messages: make([]api.Message, len(msgs)), Sampling: s}
	for i, m := range msgs {
		req.Messages[i] = api.Message{Role: m.Role, Content: m.Content}
	}
	r, err := p.c.Complete(ctx, req)
	if err != nil {
		return engine.Completion{}, err
	}
	return engine.Completion{Text: r.Text, FinishReason: r.FinishReason, Model: r.Model, SystemFingerprint: r.SystemFingerprint,
		ID: r.ID, PromptTokens: r.Usage.PromptTokens, CompletionTokens: r.Usage.CompletionTokens}, nil
}

// pluginProvider adapts a plugin's client to the engine.
type pluginProvider struct{ c *host.Client }

// Retries is the number of attempts beyond the first of each call, for
// progress lines.
func (p pluginProvider) Retries() int64 { return p.c.Stats().Retries.Total() }

// Check verifies that the plugin serves the model before a run.
func (p pluginProvider) Check(ctx context.Context) error { return p.c.Check(ctx) }

func (p pluginProvider) Complete(ctx context.Context, msgs []engine.Message) (engine.Completion, error) {
	return p.complete(ctx, msgs, nil)
}

// complete sends msgs with the generator's sampling, or with s when set.
func (p pluginProvider) complete(ctx context.Context, msgs []engine.Message, s *spec.Sampling) (engine.Completion, error) {
	in := make([]host.Message, len(msgs))
	for i, m := range msgs {
		in[i] = host.Message{Role: m.Role, Content: m.Content}
	}
	var (
		r   host.Response
		err error
	)
	if s != nil {
		r, err = p.c.CompleteSampled(ctx, in, *s)
	} else {
		r, err = p.c.Complete(ctx, in)
	}
	if err != nil {
		return engine.Completion{}, err
	}
	return engine.Completion{Text: r.Text, FinishReason: r.FinishReason, Model: r.Model, SystemFingerprint: r.SystemFingerprint,
		ID: r.ID, PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens}, nil
}

// Embed embeds texts through the plugin (engine.Embedder), for the
// diversity metric; a plugin that serves no embeddings says so.
func (p pluginProvider) Embed(ctx context.Context, texts []string) ([][]float32, int, error) {
	return p.c.Embed(ctx, texts)
}

var _ engine.Embedder = pluginProvider{}

// Seeds loads seed data relative to the spec's directory, caching hub
// downloads under CacheDir.
type Seeds struct{ Dir, CacheDir string }

var _ engine.SeedLoader = Seeds{}

// Load implements engine.SeedLoader.
func (l Seeds) Load(ctx context.Context, s *spec.Setting) ([]generation.SeedItem, string, error) {
	sd := s.SeedData
	ds, err := seeddata.Load(ctx, seeddata.Source{HF: sd.HF, Revision: sd.Revision, Split: sd.Split, Path: sd.Path},
		seeddata.Options{Dir: l.Dir, CacheDir: l.CacheDir})
	if err != nil {
		return nil, "", err
	}
	items := make([]generation.SeedItem, 0, len(ds.Items))
	for _, it := range ds.Items {
		if it.Instruction == "" {
			continue
		}
		items = append(items, generation.SeedItem{ID: it.ID, Instruction: it.Instruction, Response: it.Response})
	}
	return items, ds.Digest, nil
}
