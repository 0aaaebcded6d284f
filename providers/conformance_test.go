package providers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/plugins/anthropic/anthropictest"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/plugins/plugintest"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
)

// The conformance suite: every provider, built in or plugin, behaves the
// same behind engine.Provider. It runs against the OpenAI-compatible
// client (executors/api against apitest) and against each plugin (the
// real binary, against its stand-in server).

// fault is an injected failure, in the suite's terms.
type fault int

const (
	faultRateLimit   fault = iota // 429 asking for 1s
	faultServerError              // 500
	faultTruncated                // a completion cut off by max_tokens
	faultHang                     // no answer until the client gives up
)

// backend is a stand-in server as the suite drives it.
type backend interface {
	enqueue(f ...fault)
	requests() int64
	maxInFlight() int64
	hold()
	release()
	lastTemperature() (float64, bool)
	close()
}

// harness makes a backend and a generator provider talking to it.
type harness struct {
	name string
	// model served and reportedModel as the backend reports it.
	model, reportedModel string
	newBackend           func(t *testing.T) backend
	// generator returns the generator for model with the provider block
	// pointing at b.
	generator func(t *testing.T, b backend, model string) *spec.Generator
	// plugins, when set, builds the provider with a plugin host.
	plugins func(t *testing.T) *host.Host
}

var conformanceHarnesses = []harness{
	{
		name: "openai-compatible", model: apitest.DefaultModel, reportedModel: apitest.DefaultModel + "-2025-01-01",
		newBackend: func(t *testing.T) backend { return newAPIBackend() },
		generator: func(t *testing.T, b backend, model string) *spec.Generator {
			s := b.(*apiBackend).srv
			t.Setenv("CONFORMANCE_KEY", s.APIKey())
			return &spec.Generator{Name: "g", Model: model,
				Provider: spec.Provider{OpenAI: &spec.OpenAI{BaseURL: s.URL(), APIKeyEnv: "CONFORMANCE_KEY"}}}
		},
	},
	{
		name: "plugin anthropic", model: anthropictest.DefaultModel, reportedModel: anthropictest.ReportedModel,
		newBackend: func(t *testing.T) backend {
			return &anthropicBackend{anthropictest.New(anthropictest.Options{Models: []string{anthropictest.DefaultModel, "claude-haiku-4-5"}})}
		},
		generator: func(t *testing.T, b backend, model string) *spec.Generator {
			s := b.(*anthropicBackend).srv
			t.Setenv("ANTHROPIC_BASE_URL", s.URL())
			t.Setenv("ANTHROPIC_API_KEY", s.APIKey())
			return &spec.Generator{Name: "g", Model: model, Provider: spec.Provider{Plugin: "anthropic"}}
		},
		plugins: func(t *testing.T) *host.Host {
			h := host.New(host.Options{Dirs: []string{pluginDir(t)}})
			t.Cleanup(h.Close)
			return h
		},
	},
}

var (
	buildOnce sync.Once
	binDir    string
)

func pluginDir(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "agora-conformance-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = plugintest.Build(t, dir, "anthropic")
	})
	if binDir == "" {
		t.Fatal("plugins not built")
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

type setup struct {
	model       string
	concurrency int
	attempt     time.Duration
	maxRetries  int
	maxTokens   int
	temperature *float64
}

func (h harness) provider(t *testing.T, b backend, s setup) engine.Provider {
	t.Helper()
	if s.model == "" {
		s.model = h.model
	}
	if s.attempt == 0 {
		s.attempt = 10 * time.Second
	}
	if s.maxTokens == 0 {
		s.maxTokens = 200
	}
	g := h.generator(t, b, s.model)
	g.Limits.Concurrency = s.concurrency
	g.Sampling = spec.Sampling{MaxTokens: s.maxTokens, Temperature: s.temperature}
	tu := providers.Tuning{AttemptTimeout: s.attempt, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		MaxRetries: s.maxRetries, OutageAfter: time.Minute}
	if h.plugins != nil {
		tu.Plugins = h.plugins(t)
	}
	p, err := providers.New(tu)(g)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func msgs(s string) []engine.Message {
	return []engine.Message{{Role: "system", Content: "You write test data."}, {Role: "user", Content: s}}
}

func retries(p engine.Provider) int64 {
	if r, ok := p.(interface{ Retries() int64 }); ok {
		return r.Retries()
	}
	return -1
}

func TestConformance(t *testing.T) {
	for _, h := range conformanceHarnesses {
		t.Run(h.name, func(t *testing.T) { conformance(t, h) })
	}
}

func conformance(t *testing.T, h harness) {
	ctx := context.Background()
	run := func(name string, f func(t *testing.T, b backend)) {
		t.Run(name, func(t *testing.T) {
			b := h.newBackend(t)
			defer b.close()
			f(t, b)
		})
	}

	run("completion", func(t *testing.T, b backend) {
		temp := 0.25
		p := h.provider(t, b, setup{temperature: &temp})
		if c, ok := p.(interface{ Check(context.Context) error }); !ok {
			t.Error("no Check: the engine cannot verify the endpoint before a run")
		} else if err := c.Check(ctx); err != nil {
			t.Fatalf("check: %v", err)
		}
		c, err := p.Complete(ctx, msgs("a haiku about rain"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(c.Text, "a haiku about rain") || c.FinishReason != "stop" || c.Model != h.reportedModel ||
			c.ID == "" || c.PromptTokens <= 0 || c.CompletionTokens <= 0 {
			t.Errorf("completion %+v", c)
		}
		if got, ok := b.lastTemperature(); !ok || got != temp {
			t.Errorf("temperature %v %v did not arrive", got, ok)
		}
		if b.requests() != 1 || retries(p) != 0 {
			t.Errorf("%d requests, %d retries", b.requests(), retries(p))
		}
	})

	run("truncated completion returned, not retried", func(t *testing.T, b backend) {
		p := h.provider(t, b, setup{})
		b.enqueue(faultTruncated)
		c, err := p.Complete(ctx, msgs("a long story"))
		if err != nil || c.FinishReason != "length" || b.requests() != 1 {
			t.Errorf("completion %+v err %v after %d requests", c, err, b.requests())
		}
	})

	run("rate limit honours retry-after", func(t *testing.T, b backend) {
		p := h.provider(t, b, setup{})
		b.enqueue(faultRateLimit)
		start := time.Now()
		if _, err := p.Complete(ctx, msgs("x")); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("retried after %v, before the 1s the server asked for", d)
		}
		if b.requests() != 2 || retries(p) != 1 {
			t.Errorf("%d requests, %d retries", b.requests(), retries(p))
		}
	})

	run("server errors retried", func(t *testing.T, b backend) {
		p := h.provider(t, b, setup{})
		b.enqueue(faultServerError, faultServerError)
		if _, err := p.Complete(ctx, msgs("x")); err != nil {
			t.Fatal(err)
		}
		if b.requests() != 3 || retries(p) != 2 {
			t.Errorf("%d requests, %d retries", b.requests(), retries(p))
		}
	})

	run("outage after retries", func(t *testing.T, b backend) {
		p := h.provider(t, b, setup{maxRetries: 2})
		b.enqueue(faultServerError, faultServerError, faultServerError, faultServerError)
		_, err := p.Complete(ctx, msgs("x"))
		if err == nil || !strings.HasPrefix(err.Error(), "generator g: gave up on ") || !strings.Contains(err.Error(), "after 3 attempts") {
			t.Errorf("err %v", err)
		}
		if b.requests() != 3 {
			t.Errorf("%d requests", b.requests())
		}
	})

	run("hang cut off by the attempt timeout", func(t *testing.T, b backend) {
		p := h.provider(t, b, setup{attempt: 300 * time.Millisecond})
		b.enqueue(faultHang)
		start := time.Now()
		if _, err := p.Complete(ctx, msgs("x")); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
			t.Errorf("took %v", d)
		}
		if b.requests() != 2 {
			t.Errorf("%d requests", b.requests())
		}
	})

	run("unknown model is permanent", func(t *testing.T, b backend) {
		p := h.provider(t, b, setup{model: "no-such-model"})
		if err := p.(interface{ Check(context.Context) error }).Check(ctx); err == nil || !strings.Contains(err.Error(), "no-such-model") {
			t.Errorf("check: %v", err)
		}
		_, err := p.Complete(ctx, msgs("x"))
		if err == nil || !strings.HasPrefix(err.Error(), "generator g: ") || !strings.Contains(err.Error(), "no-such-model") {
			t.Errorf("err %v", err)
		}
		if b.requests() != 1 {
			t.Errorf("a permanent error was retried: %d requests", b.requests())
		}
	})

	run("concurrency limit", func(t *testing.T, b backend) {
		p := h.provider(t, b, setup{concurrency: 3})
		b.hold()
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := p.Complete(ctx, msgs("x")); err != nil {
					failed.Add(1)
				}
			}()
		}
		for deadline := time.Now().Add(5 * time.Second); b.requests() < 3 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		b.release()
		wg.Wait()
		if m := b.maxInFlight(); m != 3 || failed.Load() != 0 {
			t.Errorf("max in flight %d (want 3), %d failed", m, failed.Load())
		}
	})

	run("cancelled context", func(t *testing.T, b backend) {
		p := h.provider(t, b, setup{})
		b.hold()
		defer b.release()
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := p.Complete(cctx, msgs("x"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v, want ctx's", err)
		}
	})
}

// apiBackend drives apitest.
type apiBackend struct {
	srv   *apitest.Server
	hangs atomic.Int64
}

func newAPIBackend() *apiBackend {
	b := &apiBackend{}
	b.srv = apitest.New(apitest.Options{
		ModelAliases: map[string]string{apitest.DefaultModel: apitest.DefaultModel + "-2025-01-01"},
		LatencyFunc: func(apitest.ChatRequest) time.Duration {
			if b.hangs.Add(-1) >= 0 {
				return time.Hour
			}
			b.hangs.Store(0)
			return 0
		},
	})
	return b
}

func (b *apiBackend) enqueue(fs ...fault) {
	for _, f := range fs {
		switch f {
		case faultRateLimit:
			b.srv.Enqueue(apitest.FaultRateLimit)
		case faultServerError:
			b.srv.Enqueue(apitest.FaultServerError)
		case faultTruncated:
			b.srv.Enqueue(apitest.FaultTruncated)
		case faultHang:
			b.hangs.Add(1)
		}
	}
}
func (b *apiBackend) requests() int64    { return b.srv.Stats().Requests }
func (b *apiBackend) maxInFlight() int64 { return b.srv.Stats().MaxInFlight }
func (b *apiBackend) hold()              { b.srv.Hold() }
func (b *apiBackend) release()           { b.srv.Release() }
func (b *apiBackend) close()             { b.srv.Close() }
func (b *apiBackend) lastTemperature() (float64, bool) {
	r, ok := b.srv.LastRequest()
	if !ok || r.Temperature == nil {
		return 0, false
	}
	return *r.Temperature, true
}

// anthropicBackend drives anthropictest.
type anthropicBackend struct{ srv *anthropictest.Server }

func (b *anthropicBackend) enqueue(fs ...fault) {
	for _, f := range fs {
		b.srv.Enqueue(map[fault]anthropictest.Fault{faultRateLimit: anthropictest.FaultRateLimit, faultServerError: anthropictest.FaultServerError,
			faultTruncated: anthropictest.FaultTruncated, faultHang: anthropictest.FaultHang}[f])
	}
}
func (b *anthropicBackend) requests() int64    { return b.srv.Stats().Requests }
func (b *anthropicBackend) maxInFlight() int64 { return b.srv.Stats().MaxInFlight }
func (b *anthropicBackend) hold()              { b.srv.Hold() }
func (b *anthropicBackend) release()           { b.srv.Release() }
func (b *anthropicBackend) close()             { b.srv.Close() }
func (b *anthropicBackend) lastTemperature() (float64, bool) {
	r, ok := b.srv.Last()
	if !ok {
		return 0, false
	}
	var v float64
	if raw, ok := r.Body["temperature"]; ok && len(raw) > 0 {
		if _, err := fmt.Sscan(string(raw), &v); err == nil {
			return v, true
		}
	}
	return 0, false
}
