package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/spec"
)

// envSeq makes one environment variable per client, so tests that set
// keys can run in parallel (t.Setenv forbids t.Parallel).
var envSeq atomic.Int64

func setKey(t testing.TB, key string) string {
	name := fmt.Sprintf("AGORA_APITEST_KEY_%d", envSeq.Add(1))
	os.Setenv(name, key)
	t.Cleanup(func() { os.Unsetenv(name) })
	return name
}

func newServer(t testing.TB, opts apitest.Options) *apitest.Server {
	s := apitest.New(opts)
	t.Cleanup(s.Close)
	return s
}

// testConfig is a client config for s with test-sized timings.
func testConfig(t testing.TB, s *apitest.Server) api.Config {
	return api.Config{
		Name:           "gen",
		BaseURL:        s.URL(),
		APIKeyEnv:      setKey(t, s.APIKey()),
		Model:          apitest.DefaultModel,
		Sampling:       spec.Sampling{MaxTokens: 256},
		AttemptTimeout: 5 * time.Second,
		BackoffBase:    time.Millisecond,
		BackoffMax:     10 * time.Millisecond,
	}
}

func newClient(t testing.TB, cfg api.Config) *api.Client {
	c, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func user(text string) api.Request {
	return api.Request{Messages: []api.Message{{Role: "user", Content: text}}}
}

// usageEqualsTally checks the client's recorded usage against the
// server's tally of what it served.
func usageEqualsTally(t *testing.T, c *api.Client, s *apitest.Server) {
	t.Helper()
	cs, ss := c.Stats(), s.Stats()
	if cs.PromptTokens != ss.PromptTokens || cs.CompletionTokens != ss.CompletionTokens || cs.Succeeded != ss.Served {
		t.Errorf("client recorded %d responses, %d+%d tokens; server served %d, %d+%d",
			cs.Succeeded, cs.PromptTokens, cs.CompletionTokens, ss.Served, ss.PromptTokens, ss.CompletionTokens)
	}
}

func TestCompleteSuccess(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{
		ModelAliases: map[string]string{apitest.DefaultModel: "test-model-2025-01-01"},
		Fingerprint:  "fp_123",
	})
	c := newClient(t, testConfig(t, s))
	req := api.Request{Messages: []api.Message{
		{Role: "system", Content: "You are terse."},
		{Role: "user", Content: "Write a haiku about rate limits."},
	}}
	res, err := c.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "echo: Write a haiku about rate limits." || res.FinishReason != "stop" {
		t.Errorf("text %q finish %q", res.Text, res.FinishReason)
	}
	if res.Model != "test-model-2025-01-01" || res.SystemFingerprint != "fp_123" || !strings.HasPrefix(res.ID, "chatcmpl-") {
		t.Errorf("model %q fingerprint %q id %q", res.Model, res.SystemFingerprint, res.ID)
	}
	wantPrompt := apitest.PromptTokens([]apitest.Message{{Content: "You are terse."}, {Content: "Write a haiku about rate limits."}})
	if res.Usage.PromptTokens != wantPrompt || res.Usage.CompletionTokens != apitest.Tokens(res.Text) || res.UsageEstimated {
		t.Errorf("usage %+v (estimated %v), want prompt %d", res.Usage, res.UsageEstimated, wantPrompt)
	}
	if res.Attempts != 1 || res.Latency <= 0 || res.Elapsed < res.Latency {
		t.Errorf("attempts %d latency %v elapsed %v", res.Attempts, res.Latency, res.Elapsed)
	}
	usageEqualsTally(t, c, s)
}

func TestSamplingArrives(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{})
	cfg := testConfig(t, s)
	temp, topP, seed := 0.7, 0.95, 42
	cfg.Sampling = spec.Sampling{
		Temperature: &temp, TopP: &topP, MaxTokens: 512, Seed: &seed,
		Stop:  []string{"</answer>", "\n\n\n"},
		Extra: map[string]any{"repetition_penalty": 1.1, "top_k": 40, "guided": map[string]any{"json": true}},
	}
	c := newClient(t, cfg)
	if _, err := c.Complete(context.Background(), user("hi")); err != nil {
		t.Fatal(err)
	}
	got, ok := s.LastRequest()
	if !ok {
		t.Fatal("no request recorded")
	}
	if got.Temperature == nil || *got.Temperature != 0.7 || got.TopP == nil || *got.TopP != 0.95 {
		t.Errorf("temperature %v top_p %v", got.Temperature, got.TopP)
	}
	if got.MaxTokens == nil || *got.MaxTokens != 512 || got.MaxCompletionTokens != nil {
		t.Errorf("max_tokens %v max_completion_tokens %v", got.MaxTokens, got.MaxCompletionTokens)
	}
	if got.Seed == nil || *got.Seed != 42 || strings.Join(got.Stop, "|") != "</answer>|\n\n\n" {
		t.Errorf("seed %v stop %q", got.Seed, got.Stop)
	}
	for field, want := range map[string]string{"repetition_penalty": "1.1", "top_k": "40", "guided": `{"json":true}`} {
		if string(got.Fields[field]) != want {
			t.Errorf("%s = %s, want %s", field, got.Fields[field], want)
		}
	}
	if got.Model != apitest.DefaultModel || len(got.Messages) != 1 || got.Messages[0] != (apitest.Message{Role: "user", Content: "hi"}) {
		t.Errorf("model %q messages %+v", got.Model, got.Messages)
	}

	// max_completion_tokens in extra replaces max_tokens.
	cfg.Sampling = spec.Sampling{MaxTokens: 100, Extra: map[string]any{"max_completion_tokens": 100}}
	c2 := newClient(t, cfg)
	if _, err := c2.Complete(context.Background(), user("hi")); err != nil {
		t.Fatal(err)
	}
	got, _ = s.LastRequest()
	if got.MaxTokens != nil || got.MaxCompletionTokens == nil || *got.MaxCompletionTokens != 100 {
		t.Errorf("max_tokens %v max_completion_tokens %v", got.MaxTokens, got.MaxCompletionTokens)
	}
	if _, ok := got.Fields["temperature"]; ok {
		t.Error("temperature sent though unset")
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		after time.Duration
	}{
		{"seconds", time.Second},                 // Retry-After: 1
		{"milliseconds", 300 * time.Millisecond}, // retry-after-ms: 300
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, apitest.Options{Faults: apitest.Faults{RetryAfter: tc.after}})
			s.Enqueue(apitest.FaultRateLimit)
			c := newClient(t, testConfig(t, s))
			start := time.Now()
			res, err := c.Complete(context.Background(), user("x"))
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el < tc.after || el > tc.after*2+time.Second {
				t.Errorf("took %v, want ≥ %v (Retry-After) and not much more", el, tc.after)
			}
			if res.Attempts != 2 || c.Stats().Retries.RateLimited != 1 {
				t.Errorf("attempts %d stats %+v", res.Attempts, c.Stats().Retries)
			}
			usageEqualsTally(t, c, s)
		})
	}
}

func TestTransientRetriedToSuccess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault apitest.Fault
		count func(api.Retries) int64
	}{
		{apitest.FaultServerError, func(r api.Retries) int64 { return r.ServerError }},
		{apitest.FaultUnavailable, func(r api.Retries) int64 { return r.ServerError }},
		{apitest.FaultDrop, func(r api.Retries) int64 { return r.Connection }},
		{apitest.FaultMalformed, func(r api.Retries) int64 { return r.Malformed }},
		{apitest.FaultRateLimit, func(r api.Retries) int64 { return r.RateLimited }},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			t.Parallel()
			s := newServer(t, apitest.Options{Faults: apitest.Faults{RetryAfter: 5 * time.Millisecond}})
			s.Enqueue(tc.fault, tc.fault)
			c := newClient(t, testConfig(t, s))
			res, err := c.Complete(context.Background(), user("retry me"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Attempts != 3 || res.Text != "echo: retry me" {
				t.Errorf("attempts %d text %q", res.Attempts, res.Text)
			}
			if n := tc.count(c.Stats().Retries); n != 2 {
				t.Errorf("retries %+v", c.Stats().Retries)
			}
			ss := s.Stats()
			if ss.Requests != 3 || ss.Served != 1 {
				t.Errorf("server saw %d requests, served %d", ss.Requests, ss.Served)
			}
			usageEqualsTally(t, c, s)
		})
	}
}

func TestTruncatedIsReturned(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{})
	s.Enqueue(apitest.FaultTruncated)
	c := newClient(t, testConfig(t, s))
	res, err := c.Complete(context.Background(), user("a long answer please"))
	if err != nil {
		t.Fatal(err)
	}
	if res.FinishReason != "length" || res.Attempts != 1 || res.Usage.CompletionTokens == 0 {
		t.Errorf("finish %q attempts %d usage %+v", res.FinishReason, res.Attempts, res.Usage)
	}
	if s.Count(apitest.OutcomeTruncated) != 1 || s.Stats().Requests != 1 {
		t.Errorf("server stats %+v", s.Stats())
	}
	usageEqualsTally(t, c, s)
}

// failureCase is one way a call fails; the conformance table below checks
// each for the error's shape and for the key.
type failureCase struct {
	name   string
	opts   apitest.Options
	setup  func(s *apitest.Server, cfg *api.Config)
	req    api.Request
	check  bool // call Check instead of Complete
	status int
	perm   bool
	outage bool
	want   []string // substrings of the message; URL stands for the base URL
}

func failureCases() []failureCase {
	leak := apitest.Options{LeakKey: true}
	return []failureCase{
		{name: "bad key", opts: leak, setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.APIKeyEnv = "" // replaced below by a wrong key
		}, status: 401, perm: true, want: []string{"generator gen:", "authentication failed at URL: check the key in $"}},
		{name: "bad key check", opts: leak, setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.APIKeyEnv = ""
		}, check: true, status: 401, perm: true, want: []string{"authentication failed at URL: check the key in $"}},
		{name: "unknown model", opts: leak, setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.Model = "no-such-model"
		}, status: 404, perm: true, want: []string{"model no-such-model is not served at URL", "model_not_found"}},
		{name: "unknown model check", setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.Model = "no-such-model"
		}, check: true, status: 200, perm: true, want: []string{"model no-such-model is not served at URL"}},
		{name: "bad request", opts: leak, setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.Sampling.Extra = map[string]any{"messages": []any{}} // the server rejects an empty list
		}, status: 400, perm: true, want: []string{"request for model test-model rejected by URL (400 invalid_body"}},
		{name: "bad role", req: api.Request{Messages: []api.Message{{Role: "robot", Content: "x"}}},
			perm: true, want: []string{`role "robot"`}},
		{name: "server errors", opts: apitest.Options{Faults: apitest.Faults{ServerError: 1}}, setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.MaxRetries = 3
		}, status: 500, outage: true, want: []string{"gave up on URL (model test-model) after 4 attempts", "500"}},
		{name: "dropped connections", opts: apitest.Options{Faults: apitest.Faults{Drop: 1}}, setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.MaxRetries = 2
		}, outage: true, want: []string{"after 3 attempts", "connection error"}},
		{name: "malformed bodies", opts: apitest.Options{Faults: apitest.Faults{Malformed: 1}}, setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.MaxRetries = 2
		}, status: 200, outage: true, want: []string{"after 3 attempts", "malformed response"}},
		{name: "rate limited past outage window", opts: apitest.Options{Faults: apitest.Faults{RateLimit: 1, RetryAfter: 20 * time.Millisecond}},
			setup: func(s *apitest.Server, cfg *api.Config) {
				cfg.OutageAfter = 200 * time.Millisecond
			}, status: 429, outage: true, want: []string{"gave up on URL", "rate limited (429 rate_limit_exceeded"}},
		{name: "attempt timeouts", setup: func(s *apitest.Server, cfg *api.Config) {
			s.Hold()
			cfg.AttemptTimeout = 50 * time.Millisecond
			cfg.MaxRetries = 2
		}, outage: true, want: []string{"after 3 attempts", "attempt timed out after 50ms"}},
		{name: "unreachable", setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.BaseURL = "http://127.0.0.1:1/v1" // nothing listens on port 1
			cfg.MaxRetries = 1
		}, outage: true, want: []string{"after 2 attempts", "connection error", "connection refused"}},
		{name: "unreachable check", setup: func(s *apitest.Server, cfg *api.Config) {
			cfg.BaseURL = "http://127.0.0.1:1/v1"
		}, check: true, want: []string{"cannot reach URL", "connection refused"}},
	}
}

// TestFailures is the conformance table of failing calls: each fails with
// the right *Error, after the right number of attempts, with a message
// naming the generator and base URL and never the key — even from a
// server that echoes the key in its error bodies.
func TestFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range failureCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, tc.opts)
			cfg := testConfig(t, s)
			key := s.APIKey()
			if tc.setup != nil {
				tc.setup(s, &cfg)
			}
			if cfg.APIKeyEnv == "" {
				key = "sk-wrong-9a8b7c6d5e4f3a2b1c0d"
				cfg.APIKeyEnv = setKey(t, key)
			}
			c := newClient(t, cfg)
			var err error
			if tc.check {
				err = c.Check(context.Background())
			} else {
				req := tc.req
				if req.Messages == nil {
					req = user("hello")
				}
				_, err = c.Complete(context.Background(), req)
			}
			var e *api.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T), want *api.Error", err, err)
			}
			if e.Status != tc.status || e.Permanent != tc.perm || e.Outage != tc.outage {
				t.Errorf("status %d permanent %v outage %v, want %d %v %v: %v", e.Status, e.Permanent, e.Outage, tc.status, tc.perm, tc.outage, err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "URL", cfg.BaseURL)
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			assertNoKey(t, err, key)
			if tc.perm && !tc.check && s.Stats().Requests > 1 {
				t.Errorf("permanent error retried: %d requests", s.Stats().Requests)
			}
		})
	}
}

// assertNoKey checks the key appears in no rendering of err or its chain.
func assertNoKey(t *testing.T, err error, key string) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		for _, text := range []string{e.Error(), fmt.Sprintf("%v", e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
			if strings.Contains(text, key) {
				t.Fatalf("the key appears in an error: %s", text)
			}
		}
		if b, _ := json.Marshal(e); strings.Contains(string(b), key) {
			t.Fatalf("the key appears in an error's JSON: %s", b)
		}
	}
}

func TestMissingKeyVariable(t *testing.T) {
	t.Parallel()
	unset := fmt.Sprintf("AGORA_APITEST_UNSET_%d", envSeq.Add(1))
	empty := setKey(t, "")
	for _, name := range []string{unset, empty} {
		_, err := api.New(api.Config{Name: "gen", BaseURL: "http://127.0.0.1:1/v1", APIKeyEnv: name, Model: "m"})
		if err == nil || !strings.Contains(err.Error(), "environment variable "+name+" is not set") {
			t.Errorf("New with $%s: %v", name, err)
		}
	}
}

func TestAttemptTimeoutThenRecovery(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{})
	cfg := testConfig(t, s)
	cfg.AttemptTimeout = 100 * time.Millisecond
	c := newClient(t, cfg)
	s.Hold()
	time.AfterFunc(250*time.Millisecond, s.Release)
	start := time.Now()
	res, err := c.Complete(context.Background(), user("slow"))
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("took %v, want the held attempts to time out first", el)
	}
	if res.Attempts < 3 || c.Stats().Retries.Timeout < 2 {
		t.Errorf("attempts %d retries %+v", res.Attempts, c.Stats().Retries)
	}
	if n := s.Count(apitest.OutcomeAbandoned); n < 2 {
		t.Errorf("server saw %d abandoned requests", n)
	}
	usageEqualsTally(t, c, s)
}

func TestOutageUnwrapsDeadline(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{})
	s.Hold()
	cfg := testConfig(t, s)
	cfg.AttemptTimeout = 30 * time.Millisecond
	cfg.MaxRetries = 1
	c := newClient(t, cfg)
	_, err := c.Complete(context.Background(), user("x"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not unwrap to context.DeadlineExceeded", err)
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{})
	s.Hold()
	c := newClient(t, testConfig(t, s))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Complete(ctx, user("x"))
	if err != context.DeadlineExceeded {
		t.Errorf("error %v, want ctx's own error", err)
	}
}

func TestConcurrencyCap(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{Latency: 20 * time.Millisecond})
	cfg := testConfig(t, s)
	cfg.Limits.Concurrency = 4
	c := newClient(t, cfg)
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if _, err := c.Complete(context.Background(), user("x")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if m := s.Stats().MaxInFlight; m != 4 {
		t.Errorf("server saw %d requests at once, want exactly the cap 4", m)
	}
}

// TestRPMBucket: the bucket starts with one second's allowance, not the
// minute's (retry.Config.BurstWindow: the providers enforce per-minute
// limits over shorter windows), so the first RPM/60 requests go at once,
// and then paces at RPM/60 per second; a server enforcing the same limit
// (with 2% slack for network jitter) never has to refuse one.
func TestRPMBucket(t *testing.T) {
	t.Parallel()
	const rpm = 300 // 5/s, 5 at once
	s := newServer(t, apitest.Options{RateLimit: apitest.RateLimit{RPM: rpm * 102 / 100}})
	cfg := testConfig(t, s)
	cfg.Limits = spec.Limits{RPM: rpm, Concurrency: 32}
	c := newClient(t, cfg)
	start := time.Now()
	run := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if _, err := c.Complete(context.Background(), user("x")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	run(5)
	// A full bucket: limited only by the machine (well under a second,
	// even under -race on a loaded machine).
	burst := time.Since(start)
	if burst > 5*time.Second {
		t.Errorf("the initial burst of 5 took %v: the bucket should start with one second's requests", burst)
	}
	// 15 requests need the 5 of the burst plus 10 refilled at 5/s: at
	// least 2 s from the start; a minute's burst would send all at once.
	run(10)
	if el := time.Since(start); el < 1800*time.Millisecond || el > max(burst, 2*time.Second)+3*time.Second {
		t.Errorf("15 requests took %v (the burst %v), want about 2s", el, burst)
	}
	if n := s.Count(apitest.OutcomeRPMExceeded); n != 0 {
		t.Errorf("server refused %d requests over its RPM", n)
	}
}

// TestTPMBucket: each request takes its prompt + max_tokens from the TPM
// bucket, which starts with one second's tokens.
func TestTPMBucket(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{})
	cfg := testConfig(t, s)
	cfg.Limits = spec.Limits{TPM: 60000} // 1000 tokens/s, 1000 at once
	cfg.Sampling.MaxTokens = 990
	c := newClient(t, cfg)
	req := user("x")
	req.PromptTokens = 10 // 1000 a request: 1 at once, then 1/s
	start := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, err := c.Complete(context.Background(), req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if el := time.Since(start); el < 1800*time.Millisecond || el > 4*time.Second {
		t.Errorf("3 requests of 1000 tokens at 60000 TPM took %v, want about 2s", el)
	}
}

// TestServerRateLimitRecovered: a client with no limits of its own against
// a server enforcing RPM is slowed by 429s (retry-after-ms and reset
// headers) and completes every call.
func TestServerRateLimitRecovered(t *testing.T) {
	t.Parallel()
	const rpm, n = 600, 625 // 10/s after 600: the last 25 wait ≈ 2.5s
	s := newServer(t, apitest.Options{RateLimit: apitest.RateLimit{RPM: rpm}})
	cfg := testConfig(t, s)
	cfg.Limits.Concurrency = 32
	c := newClient(t, cfg)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := c.Complete(context.Background(), user("x")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st := c.Stats()
	if st.Succeeded != n || st.Retries.RateLimited == 0 || s.Count(apitest.OutcomeRPMExceeded) == 0 {
		t.Errorf("client %+v; server refused %d", st, s.Count(apitest.OutcomeRPMExceeded))
	}
	usageEqualsTally(t, c, s)
}

// TestChaos: the fault mix; every call completes exactly once and
// the client's recorded usage equals the server's tally.
func TestChaos(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{Seed: 7, Log: true, Faults: apitest.Faults{
		RateLimit: 0.20, ServerError: 0.05, Drop: 0.02, Malformed: 0.01, Truncated: 0.02,
		RetryAfter: 10 * time.Millisecond,
	}})
	cfg := testConfig(t, s)
	cfg.Limits.Concurrency = 32
	cfg.MaxRetries = 20
	c := newClient(t, cfg)
	const n = 400
	var wg sync.WaitGroup
	var truncated atomic.Int64
	for i := range n {
		wg.Go(func() {
			res, err := c.Complete(context.Background(), user(fmt.Sprintf("item %d", i)))
			if err != nil {
				t.Error(err)
				return
			}
			if res.FinishReason == "length" {
				truncated.Add(1)
			}
		})
	}
	wg.Wait()
	usageEqualsTally(t, c, s)
	seen := map[string]int{}
	for _, r := range s.Served() {
		seen[r.Messages[0].Content]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct prompts served, want %d", len(seen), n)
	}
	for p, k := range seen {
		if k != 1 {
			t.Errorf("%q served %d times", p, k)
		}
	}
	ss := s.Stats()
	if truncated.Load() != ss.Outcomes[apitest.OutcomeTruncated] || ss.Outcomes[apitest.OutcomeRateLimited] == 0 ||
		ss.Outcomes[apitest.OutcomeMalformed]+ss.Outcomes[apitest.OutcomeDropped] == 0 {
		t.Errorf("server outcomes %v; client saw %d truncated", ss.Outcomes, truncated.Load())
	}
	t.Logf("server %v; client retries %+v", ss.Outcomes, c.Stats().Retries)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{Models: []string{"a", apitest.DefaultModel}})
	c := newClient(t, testConfig(t, s))
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Stats().ModelRequests != 1 {
		t.Errorf("GET /models not called")
	}
}

func TestCheckWrongBaseURL(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{})
	cfg := testConfig(t, s)
	cfg.BaseURL = strings.TrimSuffix(s.URL(), "/v1")
	c := newClient(t, cfg)
	err := c.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "usually ending in /v1") {
		t.Errorf("Check against a base URL without /v1: %v", err)
	}
}

func BenchmarkComplete(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s := newServer(b, apitest.Options{})
			cfg := testConfig(b, s)
			cfg.Limits.Concurrency = conc
			c := newClient(b, cfg)
			req := api.Request{Messages: []api.Message{
				{Role: "system", Content: "You generate math word problems."},
				{Role: "user", Content: strings.Repeat("Write a new problem like this one. ", 20)},
			}}
			b.ReportAllocs()
			b.ResetTimer()
			if conc == 1 {
				for b.Loop() {
					if _, err := c.Complete(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(max(1, conc/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := c.Complete(context.Background(), req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(s.Stats().Connections), "conns")
		})
	}
}

func TestBaseURLShownWithoutCredentials(t *testing.T) {
	t.Parallel()
	env := setKey(t, "sk-real-key-abcdef123456")
	c, err := api.New(api.Config{Name: "gen", BaseURL: "http://user:hunter2@127.0.0.1:1/v1?token=xyz", APIKeyEnv: env, Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach http://127.0.0.1:1/v1") || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "xyz") {
		t.Errorf("Check: %v", err)
	}
	if _, err := api.New(api.Config{Name: "gen", BaseURL: "api.openai.com/v1", APIKeyEnv: env, Model: "m"}); err == nil || !strings.Contains(err.Error(), "base_url must be an http(s) URL") {
		t.Errorf("New with a schemeless base URL: %v", err)
	}
}

// countingTransport forwards requests to http.DefaultTransport, counting
// them.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestKeyAndTransportGivenDirectly(t *testing.T) {
	t.Parallel()
	s := newServer(t, apitest.Options{})
	tr := &countingTransport{}
	cfg := testConfig(t, s)
	cfg.APIKeyEnv, cfg.APIKey, cfg.Transport = "", s.APIKey(), tr
	c := newClient(t, cfg)
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Complete(context.Background(), user("hello")); err != nil {
		t.Fatal(err)
	}
	if got := tr.n.Load(); got != 2 {
		t.Errorf("the transport carried %d requests, want 2 (models, chat)", got)
	}

	cfg.APIKey = "wrong"
	c = newClient(t, cfg)
	var ae *api.Error
	if _, err := c.Complete(context.Background(), user("hello")); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || strings.Contains(err.Error(), "wrong") {
		t.Errorf("with a wrong key given directly: %v", err)
	}
}
