package anthropic_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/plugins/anthropic"
	"github.com/agorabench/agora/plugins/anthropic/anthropictest"
	"github.com/agorabench/agora/plugins/sdk"
)

func provider(s *anthropictest.Server) *anthropic.Provider {
	return &anthropic.Provider{BaseURL: s.URL(), Key: s.APIKey(), HTTP: &http.Client{}}
}

func TestRequestShape(t *testing.T) {
	s := anthropictest.New(anthropictest.Options{})
	defer s.Close()
	temp, seed := 0.5, int64(3)
	c, err := provider(s).Complete(context.Background(), sdk.Request{Model: anthropictest.DefaultModel,
		Messages: []sdk.Message{{Role: "system", Content: "sys one"}, {Role: "developer", Content: "sys two"}, {Role: "user", Content: "hi"}},
		Sampling: sdk.Sampling{Temperature: &temp, MaxTokens: 50, Stop: []string{"END"}, Seed: &seed,
			Extra: map[string]json.RawMessage{"top_k": json.RawMessage("5")}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Text != "echo: hi" || c.FinishReason != "stop" || c.Model != anthropictest.ReportedModel || c.ID == "" ||
		c.Usage.InputTokens != 4+1+3 || c.Usage.OutputTokens != 2 {
		t.Errorf("completion %+v", c)
	}
	r, _ := s.Last()
	if r.Header.Get("anthropic-version") != anthropic.Version || r.Header.Get("content-type") != "application/json" {
		t.Errorf("headers %v", r.Header)
	}
	var keys []string
	for k := range r.Body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, " "); got != "max_tokens messages model stop_sequences system temperature top_k" {
		t.Errorf("body fields %s (seed has no Anthropic equivalent and must not be sent)", got)
	}
	if string(r.Body["system"]) != `"sys one\n\nsys two"` || string(r.Body["stop_sequences"]) != `["END"]` || string(r.Body["top_k"]) != "5" {
		t.Errorf("body %s %s %s", r.Body["system"], r.Body["stop_sequences"], r.Body["top_k"])
	}
}

func TestFinishReasons(t *testing.T) {
	for in, want := range map[string]string{"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
		"tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "pause_turn"} {
		if got := anthropic.FinishReason(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	s := anthropictest.New(anthropictest.Options{})
	defer s.Close()
	c, err := provider(s).Complete(context.Background(), sdk.Request{Model: anthropictest.DefaultModel,
		Messages: []sdk.Message{{Role: "user", Content: strings.Repeat("long ", 40)}}, Sampling: sdk.Sampling{MaxTokens: 10}})
	if err != nil || c.FinishReason != "length" || c.Usage.OutputTokens != 10 {
		t.Errorf("completion %+v err %v", c, err)
	}
}

func TestErrors(t *testing.T) {
	s := anthropictest.New(anthropictest.Options{RetryAfter: 2 * time.Second})
	defer s.Close()
	p := provider(s)
	req := sdk.Request{Model: anthropictest.DefaultModel, Messages: []sdk.Message{{Role: "user", Content: "x"}}, Sampling: sdk.Sampling{MaxTokens: 10}}
	for _, tc := range []struct {
		fault             anthropictest.Fault
		status            int
		retry, rateLimit  bool
		retryAfter        time.Duration
		code, msgContains string
	}{
		{anthropictest.FaultRateLimit, 429, true, true, 2 * time.Second, "rate_limit_error", "per-minute rate limit"},
		{anthropictest.FaultOverloaded, 529, true, true, 2 * time.Second, "overloaded_error", "Overloaded"},
		{anthropictest.FaultServerError, 500, true, false, 0, "api_error", "Internal server error"},
		{anthropictest.FaultBadRequest, 400, false, false, 0, "invalid_request_error", "injected"},
	} {
		s.Enqueue(tc.fault)
		_, err := p.Complete(context.Background(), req)
		var e *sdk.Error
		if !errors.As(err, &e) || e.Status != tc.status || e.Retryable != tc.retry || e.RateLimited != tc.rateLimit ||
			e.RetryAfter != tc.retryAfter || e.Code != tc.code || !strings.Contains(e.Message, tc.msgContains) {
			t.Errorf("fault %d: %+v", tc.fault, e)
		}
	}
	bad := provider(s)
	bad.Key = "sk-ant-wrong-key-123"
	_, err := bad.Complete(context.Background(), req)
	if err == nil || err.Error() != "401 authentication_error: invalid x-api-key: check the key in $ANTHROPIC_API_KEY" {
		t.Errorf("wrong key: %v", err)
	}
	bad.Key = ""
	if _, err := bad.Complete(context.Background(), req); err == nil || !strings.Contains(err.Error(), "ANTHROPIC_API_KEY is not set") {
		t.Errorf("no key: %v", err)
	}
	// A server that is not there: retryable.
	gone := &anthropic.Provider{BaseURL: "http://127.0.0.1:1", Key: "k", HTTP: &http.Client{}}
	_, err = gone.Complete(context.Background(), req)
	var e *sdk.Error
	if !errors.As(err, &e) || !e.Retryable {
		t.Errorf("unreachable: %v", err)
	}
}

func TestDescribeAndCount(t *testing.T) {
	s := anthropictest.New(anthropictest.Options{Models: []string{"claude-sonnet-4-5-20250929", "claude-new-model"}})
	defer s.Close()
	d, err := provider(s).Describe(context.Background())
	if err != nil || d.Name != "anthropic" || len(d.Models) != 2 {
		t.Fatalf("describe %+v %v", d, err)
	}
	if m := d.Models[0]; m.ID != "claude-sonnet-4-5-20250929" || m.InputPrice != 3 || m.OutputPrice != 15 {
		t.Errorf("dated model %+v", m)
	}
	if m := d.Models[1]; m.InputPrice != 0 {
		t.Errorf("unknown model priced %+v", m)
	}
	// Without a key the plugin cannot work: it says so, and describes
	// the models it knows the prices of, for agora plugins.
	d, err = (&anthropic.Provider{BaseURL: s.URL(), HTTP: &http.Client{}}).Describe(context.Background())
	if err != nil || d.Unavailable != "environment variable ANTHROPIC_API_KEY is not set: it must hold the API key" || len(d.Models) != 6 ||
		d.Models[0].ID != "claude-3-5-haiku-latest" || d.Models[0].InputPrice != 0.8 {
		t.Errorf("describe without a key: %+v %v", d, err)
	}
	// When the list cannot be had: no models, so that agora checks none.
	d, err = (&anthropic.Provider{BaseURL: "http://127.0.0.1:1", Key: "k", HTTP: &http.Client{}}).Describe(context.Background())
	if err != nil || len(d.Models) != 0 {
		t.Errorf("describe with the API unreachable: %+v %v", d, err)
	}
	n, err := provider(s).CountTokens(context.Background(), "claude-new-model", []sdk.Message{{Role: "system", Content: "12345678"}, {Role: "user", Content: "1234"}})
	if err != nil || n != 2+1+3 {
		t.Errorf("count %d %v", n, err)
	}
}
