package cli

import (
	"context"
	"fmt"
	"sort"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/seeddata"
	"github.com/agorabench/agora/spec"
)

// newProvider builds the provider of a generator for the engine.
func newProvider(g *spec.Generator) (engine.Provider, error) {
	switch {
	case g.Provider.OpenAI != nil:
		o := g.Provider.OpenAI
		c, err := api.New(api.Config{Name: g.Name, BaseURL: o.BaseURL, APIKeyEnv: o.APIKeyEnv, Model: g.Model,
			Limits: g.Limits, Sampling: g.Sampling})
		if err != nil {
			return nil, fmt.Errorf("generator %s: %w", g.Name, err)
		}
		return apiProvider{c}, nil
	case g.Provider.VLLM != nil:
		return nil, fmt.Errorf("generator %s: local vLLM generators are not supported by this version of agora yet", g.Name)
	default:
		return nil, fmt.Errorf("generator %s: plugin providers are not supported by this version of agora yet", g.Name)
	}
}

// apiProvider adapts the OpenAI-compatible client to the engine.
type apiProvider struct{ c *api.Client }

func (p apiProvider) Complete(ctx context.Context, msgs []engine.Message) (engine.Completion, error) {
	req := api.Request{Messages: make([]api.Message, len(msgs))}
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

// seedLoader loads seed data for the engine, caching hub downloads.
type seedLoader struct{ dir, cache string }

func (l seedLoader) Load(ctx context.Context, s *spec.Setting) ([]generation.SeedItem, string, error) {
	sd := s.SeedData
	ds, err := seeddata.Load(ctx, seeddata.Source{HF: sd.HF, Revision: sd.Revision, Split: sd.Split, Path: sd.Path},
		seeddata.Options{Dir: l.dir, CacheDir: l.cache})
	if err != nil {
		return nil, "", err
	}
	items := make([]generation.SeedItem, len(ds.Items))
	for i, it := range ds.Items {
		items[i] = generation.SeedItem{ID: it.ID, Instruction: it.Instruction, Response: it.Response}
	}
	return items, ds.Digest, nil
}

func sortStrings(xs []string) { sort.Strings(xs) }
