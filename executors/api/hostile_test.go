package api_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/executors/api/apitest"
)

// The hostile stand-in's modes (apitest.Hostile), one test each: what a
// buggy or hostile provider sends is bounded or refused, never believed.

func hostileCall(t *testing.T, h apitest.Hostile, tune func(*api.Config)) (api.Response, error, *apitest.Server) {
	t.Helper()
	s := newServer(t, apitest.Options{Hostile: h})
	cfg := testConfig(t, s)
	cfg.MaxRetries = 2
	if tune != nil {
		tune(&cfg)
	}
	c := newClient(t, cfg)
	res, err := c.Complete(context.Background(), user("hello"))
	return res, err, s
}

func wantInvalidUsage(t *testing.T, err error, says string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || !e.Permanent || e.Code != "invalid_usage" || e.Attempts != 1 || !strings.Contains(e.Error(), says) {
		t.Fatalf("err %v (%+v): want a permanent invalid_usage error after one attempt saying %q", err, e, says)
	}
}

func TestHostileNegativeUsage(t *testing.T) {
	t.Parallel()
	res, err, _ := hostileCall(t, apitest.HostileNegativeUsage, nil)
	wantInvalidUsage(t, err, "usage.prompt_tokens is -100000000: negative")
	if res.Usage.PromptTokens < 0 {
		t.Fatalf("negative usage returned: %+v", res.Usage)
	}
}

func TestHostileFractionalUsage(t *testing.T) {
	t.Parallel()
	_, err, _ := hostileCall(t, apitest.HostileFractionalUsage, nil)
	wantInvalidUsage(t, err, "not a whole number of tokens")
}

// Huge but well-formed usage is returned as reported: the provider billed
// it, and the engine settles it as an anomaly (engine tests).
func TestHostileHugeUsage(t *testing.T) {
	t.Parallel()
	res, err, _ := hostileCall(t, apitest.HostileHugeUsage, nil)
	if err != nil || res.Usage.CompletionTokens != 1e12 {
		t.Fatalf("usage %+v, err %v: want 1e12 completion tokens as reported", res.Usage, err)
	}
}

// bodyBounded runs a call against a body mode and checks that it fails as
// a too-large body, within the attempt timeout, allocating a bounded
// amount (the cap is about 1 MiB for max_tokens 256).
func bodyBounded(t *testing.T, h apitest.Hostile) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err, _ := hostileCall(t, h, func(c *api.Config) { c.MaxRetries = -1 })
	runtime.ReadMemStats(&after)
	var e *api.Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), "response body too large") {
		t.Fatalf("err %v: want a too-large body", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v: the cap must end the attempt, not its timeout", d)
	}
	// TotalAlloc counts every test running in parallel: sequential here.
	// A -race build allocates more (41 MiB here, every run; see
	// race_test.go): the bound is checked without the race detector.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 && !raceEnabled {
		t.Fatalf("allocated %d MiB reading a capped body", alloc>>20)
	}
}

func TestHostileEndlessBody(t *testing.T) { bodyBounded(t, apitest.HostileEndlessBody) }

func TestHostileHugeBody(t *testing.T) { bodyBounded(t, apitest.HostileHugeBody) }

func TestBodyCap(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, newServer(t, apitest.Options{}))
	if got := api.BodyCap(cfg.Sampling); got != api.BodyEnvelope+256*api.BytesPerToken {
		t.Fatalf("BodyCap(max_tokens 256) = %d", got)
	}
	cfg.Sampling.MaxTokens = 0
	if got := api.BodyCap(cfg.Sampling); got != api.DefaultBodyCap {
		t.Fatalf("BodyCap(no limit) = %d", got)
	}
	cfg.Sampling.Extra = map[string]any{"max_completion_tokens": 100, "n": 2}
	if got := api.BodyCap(cfg.Sampling); got != api.BodyEnvelope+200*api.BytesPerToken {
		t.Fatalf("BodyCap(max_completion_tokens 100, n 2) = %d", got)
	}
	// An honest answer of max_tokens tokens fits its cap.
	s := newServer(t, apitest.Options{Responder: func(apitest.ChatRequest) string { return strings.Repeat("\x01", 4*256) }})
	cfg = testConfig(t, s)
	if _, err := newClient(t, cfg).Complete(context.Background(), user("x")); err != nil {
		t.Fatal(err)
	}
}

// Retry-After: 9200000000 seconds overflows a duration once jitter is
// added: it must end the call as an outage, not start a storm.
func TestHostileRetryAfterOverflow(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err, s := hostileCall(t, apitest.HostileRetryAfterOverflow, func(c *api.Config) { c.OutageAfter = time.Minute })
	var e *api.Error
	if !errors.As(err, &e) || !e.Outage {
		t.Fatalf("err %v: want an outage", err)
	}
	if n := s.Count(apitest.OutcomeRateLimited); n != 1 || time.Since(start) > time.Second {
		t.Fatalf("%d requests in %v: want one", n, time.Since(start))
	}
}

// An error object in a 200 is that error: classified by its content and
// shown with the provider's message (redacted), not retried as "no
// choices".
func TestHostileErrorIn200(t *testing.T) {
	t.Parallel()
	_, err, s := hostileCall(t, apitest.HostileErrorIn200, nil)
	var e *api.Error
	if !errors.As(err, &e) || !e.Permanent || e.Attempts != 1 {
		t.Fatalf("err %v: want a permanent error after one attempt", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "authentication failed") || !strings.Contains(msg, "Incorrect API key provided") ||
		strings.Contains(msg, s.APIKey()) || strings.Contains(msg, "no choices") {
		t.Fatalf("message %q: want the provider's message, redacted, classified as authentication", msg)
	}

	_, err, s = hostileCall(t, apitest.HostileRateLimitIn200, nil)
	if err == nil || !strings.Contains(err.Error(), "rate limited") || !strings.Contains(err.Error(), "Rate limit reached for requests per min") {
		t.Fatalf("err %v: want a rate limit with the provider's message", err)
	}
	if n := s.Count(apitest.OutcomeRateLimited); n < 2 {
		t.Fatalf("%d attempts: a rate limit in a 200 is retried like a 429", n)
	}
}
