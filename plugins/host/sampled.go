package host

import (
	"context"

	"github.com/agorabench/agora/spec"
)

// CompleteSampled is Complete with sampling s for this request instead of
// the generator's: the protocol carries the sampling with every request,
// so a generator answering a benchmark is asked with the harness's
// decoding.
func (c *Client) CompleteSampled(ctx context.Context, msgs []Message, s spec.Sampling) (Response, error) {
	sp, err := sampling(s)
	if err != nil {
		c.policy.Reject()
		return Response{}, &Error{Permanent: true, generator: c.cfg.Generator, Msg: err.Error()}
	}
	return c.complete(ctx, msgs, sp, s.MaxTokens)
}
