package host_test

import (
	"context"
	"testing"

	"github.com/agorabench/agora/spec"
)

// TestCompleteSampled: a request's own sampling reaches the plugin (the
// fake plugin cuts its echo at max_tokens × 4 characters), and the next
// request is the generator's again.
func TestCompleteSampled(t *testing.T) {
	h, _ := newHost(t)
	c, err := h.Client(context.Background(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.CompleteSampled(context.Background(), user("a rather long question"), spec.Sampling{MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "echo: a " || r.FinishReason != "length" {
		t.Errorf("with max_tokens 2: %+v", r)
	}
	if r, err = c.Complete(context.Background(), user("a rather long question")); err != nil || r.Text != "echo: a rather long question" || r.FinishReason != "stop" {
		t.Errorf("with the generator's sampling: %+v %v", r, err)
	}
	if _, err := c.CompleteSampled(context.Background(), user("x"), spec.Sampling{MaxTokens: 5, Extra: map[string]any{"f": func() {}}}); err == nil {
		t.Errorf("unencodable sampling accepted")
	}
}
