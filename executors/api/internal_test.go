package api

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/spec"
)

func TestRetryAfterHeaders(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"none", nil, 0, false},
		{"seconds", map[string]string{"Retry-After": "2"}, 2 * time.Second, true},
		{"fractional seconds", map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond, true},
		{"zero", map[string]string{"Retry-After": "0"}, 0, true},
		{"ms wins", map[string]string{"Retry-After": "1", "retry-after-ms": "250"}, 250 * time.Millisecond, true},
		{"http date", map[string]string{"Retry-After": now.Add(3 * time.Second).Format(http.TimeFormat)}, 3 * time.Second, true},
		{"past date", map[string]string{"Retry-After": now.Add(-time.Hour).Format(http.TimeFormat)}, 0, true},
		{"reset requests", map[string]string{"x-ratelimit-reset-requests": "1.5s", "x-ratelimit-remaining-requests": "0"}, 1500 * time.Millisecond, true},
		{"reset tokens exhausted", map[string]string{
			"x-ratelimit-reset-requests": "20ms", "x-ratelimit-remaining-requests": "59",
			"x-ratelimit-reset-tokens": "6m0s", "x-ratelimit-remaining-tokens": "0",
		}, 6 * time.Minute, true},
		{"reset without remaining: longest", map[string]string{"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "2s"}, 2 * time.Second, true},
		{"reset rfc3339", map[string]string{"x-ratelimit-reset-requests": now.Add(4 * time.Second).Format(time.RFC3339)}, 4 * time.Second, true},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0, false},
		{"overflowing seconds", map[string]string{"Retry-After": "9200000000"}, retry.MaxRetryAfter, true},
		{"absurd seconds", map[string]string{"Retry-After": "1e400"}, retry.MaxRetryAfter, true},
		{"absurd ms", map[string]string{"retry-after-ms": "1e300"}, retry.MaxRetryAfter, true},
	} {
		h := http.Header{}
		for k, v := range tc.header {
			h.Set(k, v)
		}
		got, ok := retryAfter(h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRedact(t *testing.T) {
	c := &Client{key: "secret+key/with=chars-123"}
	for _, in := range []string{
		"Bearer secret+key/with=chars-123",
		"q=secret%2Bkey%2Fwith%3Dchars-123",
		"Incorrect API key provided: sk-proj-abc***********wxyz.",
		"key sk-abcdefghijklmnop",
	} {
		out := c.redact(in)
		if strings.Contains(out, "secret") || strings.Contains(out, "abcdefgh") || strings.Contains(out, "wxyz") {
			t.Errorf("redact(%q) = %q", in, out)
		}
	}
	if got := c.redact("plain message"); got != "plain message" {
		t.Errorf("redact changed a clean message: %q", got)
	}
}

func TestEncodeBody(t *testing.T) {
	temp, seed := 0.5, 7
	prefix, with, err := encodePrefix("m", spec.Sampling{
		Temperature: &temp, MaxTokens: 100, Seed: &seed, Stop: []string{"<end>"},
		Extra: map[string]any{"top_k": 20, "temperature": 0.9},
	})
	if err != nil || !with {
		t.Fatal(err, with)
	}
	c := &Client{prefix: prefix, withMessages: with}
	b, err := c.encodeBody([]Message{{"system", "a<b & \"c\""}, {"user", "ü\n"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"m","max_tokens":100,"seed":7,"stop":["<end>"],"temperature":0.9,"top_k":20,` +
		`"messages":[{"role":"system","content":"a<b & \"c\""},{"role":"user","content":"ü\n"}]}`
	if string(b) != want {
		t.Errorf("body\n%s\nwant\n%s", b, want)
	}
	if _, err := c.encodeBody([]Message{{"tool", "x"}}); err == nil {
		t.Error("role tool accepted")
	}

	// max_completion_tokens replaces max_tokens; an extra "messages"
	// replaces the request's.
	prefix, with, _ = encodePrefix("m", spec.Sampling{MaxTokens: 100, Extra: map[string]any{"max_completion_tokens": 100, "messages": []any{}}})
	c = &Client{prefix: prefix, withMessages: with}
	b, _ = c.encodeBody([]Message{{"user", "x"}})
	if string(b) != `{"model":"m","max_completion_tokens":100,"messages":[]}` {
		t.Errorf("body %s", b)
	}

	if _, _, err := encodePrefix("m", spec.Sampling{Extra: map[string]any{"bad": math.NaN()}}); err == nil || !strings.Contains(err.Error(), "sampling.extra.bad") {
		t.Errorf("NaN extra: %v", err)
	}
}

// BenchmarkEncodeDecode is the CPU this package spends on a request's body
// and a response's, the HTTP aside.
func BenchmarkEncodeDecode(b *testing.B) {
	prefix, with, _ := encodePrefix("test-model", spec.Sampling{MaxTokens: 256})
	c := &Client{prefix: prefix, withMessages: with}
	msgs := []Message{{"system", "You generate math word problems."}, {"user", strings.Repeat("Write a new problem like this one. ", 3)}}
	raw := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"test-model","system_fingerprint":"fp","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("A new problem. ", 12) + `"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":183,"completion_tokens":176,"total_tokens":359}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.encodeBody(msgs); err != nil {
			b.Fatal(err)
		}
		if _, f := c.decodeResponse(raw); f != nil {
			b.Fatal(f.msg)
		}
	}
}
