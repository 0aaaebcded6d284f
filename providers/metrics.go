package providers

import (
	"context"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/metrics"
)

// The intrinsic metrics' calls (engine.Embedder, engine.Scorer) through
// the OpenAI-compatible client: /v1/embeddings and /v1/completions with
// echo and logprobs, for a hosted endpoint or agora's vLLM servers.

var (
	_ engine.Embedder = apiProvider{}
	_ engine.Scorer   = apiProvider{}
	_ engine.Embedder = (*vllmProvider)(nil)
	_ engine.Scorer   = (*vllmProvider)(nil)
)

// Embed embeds texts with the generator's model.
func (p apiProvider) Embed(ctx context.Context, texts []string) ([][]float32, int, error) {
	e, err := p.c.Embed(ctx, texts)
	if err != nil {
		return nil, 0, err
	}
	return e.Vectors, e.PromptTokens, nil
}

// Logprobs returns the log-probabilities of prompt's tokens.
func (p apiProvider) Logprobs(ctx context.Context, prompt string) (metrics.Logprobs, int, int, error) {
	lp, err := p.c.Logprobs(ctx, prompt)
	if err != nil {
		return metrics.Logprobs{}, 0, 0, err
	}
	return fromAPI(lp), lp.PromptTokens, lp.CompletionTokens, nil
}

func fromAPI(lp api.PromptLogprobs) metrics.Logprobs {
	return metrics.Logprobs{Tokens: lp.Tokens, TokenLogprobs: lp.TokenLogprobs, TextOffset: lp.TextOffset}
}

// withPool runs fn through the servers' client; when the last server
// stops, fn's call ends with the pool's error (its log tail).
func (p *vllmProvider) withPool(ctx context.Context, fn func(ctx context.Context, c *api.Client) error) error {
	c, pool, err := p.client()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(pool.Context(), func() { cancel(pool.Err()) })
	err = fn(cctx, c)
	stop()
	cancel(nil)
	if err != nil && ctx.Err() == nil {
		if perr := pool.Err(); perr != nil {
			return perr
		}
	}
	return err
}

// Embed embeds texts on the generator's vLLM servers (an embedding model
// served with the pooling task; docs/metrics.md).
func (p *vllmProvider) Embed(ctx context.Context, texts []string) (vecs [][]float32, tokens int, err error) {
	err = p.withPool(ctx, func(ctx context.Context, c *api.Client) error {
		vecs, tokens, err = apiProvider{c}.Embed(ctx, texts)
		return err
	})
	return vecs, tokens, err
}

// Logprobs scores prompt on the generator's vLLM servers.
func (p *vllmProvider) Logprobs(ctx context.Context, prompt string) (lp metrics.Logprobs, in, out int, err error) {
	err = p.withPool(ctx, func(ctx context.Context, c *api.Client) error {
		lp, in, out, err = apiProvider{c}.Logprobs(ctx, prompt)
		return err
	})
	return lp, in, out, err
}
