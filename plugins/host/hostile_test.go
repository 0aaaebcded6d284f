package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/plugins/host"
)

// The fake plugin's hostile modes: secrets redacted, bodies bounded, and
// usage handed over as reported for the engine to judge.

const fakeSecret = "fake-upstream-secret-0123456789"

// A plugin's error, panic and log lines carrying a secret of the
// environment reach neither the error nor the log.
func TestPluginSecretsRedacted(t *testing.T) {
	t.Setenv("FAKE_SECRET", fakeSecret)
	t.Setenv("ACME_API_KEY", fakeSecret)
	h, log := newHost(t)
	c, err := h.Client(context.Background(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Complete(context.Background(), user("LEAK"))
	if err == nil || strings.Contains(err.Error(), fakeSecret) || !strings.Contains(err.Error(), "invalid key [REDACTED]") {
		t.Fatalf("err %v: want the plugin's message with the secret redacted", err)
	}
	// Its stderr line and its log line arrive, redacted (each is copied
	// by a goroutine of its own: waited for).
	for _, want := range []string{"debug: using key [REDACTED]", "upstream rejected the key"} {
		if !log.WaitFor(want, 10*time.Second) {
			t.Fatalf("%q missing from the host's log after 10 s:\n%s", want, log.String())
		}
	}
	// The panic, twice: the final error carries the end of its stderr.
	for i := 0; i < 2; i++ {
		_, err = c.Complete(context.Background(), user("LEAKPANIC"))
	}
	if err == nil || strings.Contains(err.Error(), fakeSecret) || !strings.Contains(err.Error(), "upstream rejected key [REDACTED]") {
		t.Fatalf("err %v: want the panic's message with the secret redacted", err)
	}
	log.WaitFor("upstream rejected key [REDACTED]", 10*time.Second) // the panic's lines
	if l := log.String(); strings.Contains(l, fakeSecret) {
		t.Fatalf("the secret reached the log:\n%s", l)
	}
}

// A response larger than its cap (16 MiB for max_tokens 100) fails the
// attempt as too large, not as a rate limit, and is not retried forever.
func TestPluginHugeBody(t *testing.T) {
	h, _ := newHost(t)
	cfg := fakeConfig(t)
	cfg.Retry.MaxRetries = 1
	c, err := h.Client(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Complete(context.Background(), user("HUGEBODY"))
	var e *host.Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), "response too large") || e.Attempts != 2 || c.Stats().Retries.RateLimited != 0 {
		t.Fatalf("err %v (%+v, stats %+v): want a too-large response, retried once", err, e, c.Stats())
	}
}

// Usage is handed over as reported: the engine judges it (its tests).
func TestPluginUsageAsReported(t *testing.T) {
	h, _ := newHost(t)
	c, err := h.Client(context.Background(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	for msg, check := range map[string]func(host.Response) bool{
		"NEGUSAGE":  func(r host.Response) bool { return r.PromptTokens == -100000000 },
		"ZEROUSAGE": func(r host.Response) bool { return r.PromptTokens == 0 && r.CompletionTokens == 0 && r.Text != "" },
		"HUGEUSAGE": func(r host.Response) bool { return r.CompletionTokens == 1e12 },
	} {
		r, err := c.Complete(context.Background(), user(msg))
		if err != nil || !check(r) {
			t.Errorf("%s: %+v, %v", msg, r, err)
		}
	}
}
