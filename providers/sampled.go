package providers

import (
	"context"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/spec"
)

// The OpenAI-compatible client and vLLM servers can send one request with
// other decoding parameters than the generator's (solve steps ask with the
// benchmark harness's); plugins cannot yet (their protocol carries the
// sampling once, at start).
var (
	_ engine.SamplingProvider = apiProvider{}
	_ engine.SamplingProvider = (*vllmProvider)(nil)
)

// CompleteSampled implements engine.SamplingProvider.
func (p apiProvider) CompleteSampled(ctx context.Context, msgs []engine.Message, s spec.Sampling) (engine.Completion, error) {
	return p.complete(ctx, msgs, &s)
}

// CompleteSampled implements engine.SamplingProvider.
func (p *vllmProvider) CompleteSampled(ctx context.Context, msgs []engine.Message, s spec.Sampling) (engine.Completion, error) {
	return p.complete(ctx, msgs, &s)
}
