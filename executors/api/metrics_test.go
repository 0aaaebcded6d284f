package api_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/executors/api/apitest"
)

func TestEmbed(t *testing.T) {
	s := newServer(t, apitest.Options{Faults: apitest.Faults{RetryAfter: 20 * time.Millisecond}})
	c := newClient(t, testConfig(t, s))
	ctx := context.Background()
	// A 429, a 500 and a malformed body are retried; the answer comes in
	// reverse order and is placed by index.
	s.Enqueue(apitest.FaultRateLimit, apitest.FaultServerError, apitest.FaultMalformed)
	inputs := []string{"first text", "second", "third one here"}
	start := time.Now()
	e, err := c.Embed(ctx, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Error("Retry-After not waited for")
	}
	for i, in := range inputs {
		if !reflect.DeepEqual(e.Vectors[i], apitest.DefaultEmbedding(in)) {
			t.Errorf("vector %d = %v", i, e.Vectors[i])
		}
	}
	want := apitest.Tokens(inputs[0]) + apitest.Tokens(inputs[1]) + apitest.Tokens(inputs[2])
	if e.Attempts != 4 || e.PromptTokens != want || e.UsageEstimated {
		t.Errorf("attempts %d tokens %d (want 4, %d)", e.Attempts, e.PromptTokens, want)
	}
	if st := s.MetricStats(); st.EmbeddingRequests != 4 || st.Faulted != 3 || st.EmbeddingTokens != int64(want) {
		t.Errorf("server stats %+v", st)
	}

	// A vector of the wrong dimension is malformed; every attempt fails.
	bad := newServer(t, apitest.Options{Embedder: func(_, text string) []float32 {
		if text == "odd" {
			return []float32{1}
		}
		return []float32{1, 2}
	}})
	cfg := testConfig(t, bad)
	cfg.MaxRetries = 2
	_, err = newClient(t, cfg).Embed(ctx, []string{"even", "odd"})
	var ae *api.Error
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "malformed embeddings response: embedding 0 has 2 dimensions") || ae.Attempts != 3 {
		t.Errorf("got %v", err)
	}
	// An unknown model is permanent.
	cfg = testConfig(t, s)
	cfg.Model = "no-such-model"
	if _, err := newClient(t, cfg).Embed(ctx, []string{"x"}); !errors.As(err, &ae) || !ae.Permanent || ae.Status != 404 {
		t.Errorf("unknown model: %v", err)
	}
}

func TestLogprobs(t *testing.T) {
	s := newServer(t, apitest.Options{Faults: apitest.Faults{RetryAfter: 10 * time.Millisecond}})
	c := newClient(t, testConfig(t, s))
	s.Enqueue(apitest.FaultRateLimit, apitest.FaultMalformed)
	lp, err := c.Logprobs(context.Background(), "Où est 2+2?\n\nIt is 4")
	if err != nil {
		t.Fatal(err)
	}
	wantTokens := []string{"Où", " ", "est", " ", "2+2?", "\n\n", "It", " ", "is", " ", "4", " the"}
	if !reflect.DeepEqual(lp.Tokens, wantTokens) {
		t.Fatalf("tokens %q", lp.Tokens)
	}
	if !reflect.DeepEqual(lp.TextOffset, []int{0, 2, 3, 6, 7, 11, 13, 15, 16, 18, 19, 20}) {
		t.Errorf("offsets %v (characters, not bytes)", lp.TextOffset)
	}
	if lp.TokenLogprobs[0] != nil || *lp.TokenLogprobs[4] != -0.4 || *lp.TokenLogprobs[11] != -2 {
		t.Errorf("logprobs %v", lp.TokenLogprobs)
	}
	if lp.Attempts != 3 || lp.PromptTokens != 11 || lp.CompletionTokens != 1 {
		t.Errorf("attempts %d usage %d+%d", lp.Attempts, lp.PromptTokens, lp.CompletionTokens)
	}
}
