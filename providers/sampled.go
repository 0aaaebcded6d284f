package providers

import (
	"context"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/spec"
)

// Every provider can send one request with other decoding parameters than
// the generator's (solve steps ask with the benchmark harness's): the
// OpenAI-compatible client, vLLM servers, and plugins, whose protocol
// carries the sampling with each request.
var (
	_ engine.SamplingProvider = apiProvider{}
	_ engine.SamplingProvider = (*vllmProvider)(nil)
	_ engine.SamplingProvider = pluginProvider{}
	_ engine.SamplingProvider = (*vllmBatchProvider)(nil)
)

// CompleteSampled implements engine.SamplingProvider.
func (p apiProvider) CompleteSampled(ctx context.Context, msgs []engine.Message, s spec.Sampling) (engine.Completion, error) {
	return p.complete(ctx, msgs, &s)
}

// CompleteSampled implements engine.SamplingProvider.
func (p *vllmProvider) CompleteSampled(ctx context.Context, msgs []engine.Message, s spec.Sampling) (engine.Completion, error) {
	return p.complete(ctx, msgs, &s)
}

// CompleteSampled implements engine.SamplingProvider.
func (p pluginProvider) CompleteSampled(ctx context.Context, msgs []engine.Message, s spec.Sampling) (engine.Completion, error) {
	return p.complete(ctx, msgs, &s)
}
