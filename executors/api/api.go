// Package api is agora's client for OpenAI-compatible chat-completion
// providers (OpenAI, Together, Fireworks, OpenRouter, a vLLM server, …). It
// talks to them through github.com/openai/openai-go's client over real HTTP
// (openai-go builds, authenticates and sends the request and parses error
// bodies; the chat body itself is encoded here, see wire.go) and adds
// what a long, paid, high-throughput run needs: a concurrency cap that backs
// off adaptively, requests- and tokens-per-minute buckets, Retry-After,
// exponential backoff with jitter, a per-attempt timeout, outage detection,
// clear errors, and counters for progress lines. The limits, retries and
// outage detection are executors/retry's Policy, shared with plugin
// providers; this package classifies HTTP outcomes for it.
//
// # At most one billable response per call
//
// Complete returns at most ONE response that carries usage, and it retries
// internally ONLY after attempts that produced no usable response: 429, 408,
// 5xx, per-attempt timeouts, dropped connections and malformed bodies. A
// response that parsed — whatever its content, a truncated completion
// (finish_reason "length") or an empty one included — is returned to the
// caller, never retried here: judging content is the caller's job, and its
// retry is a new call. So the engine may reserve the budget of one response
// (prompt tokens + max_tokens) per call and settle it on Response.Usage.
//
// What the client cannot see it cannot record: a provider may bill a
// completion whose response was lost in transit (a timeout or a dropped
// connection after generation) or arrived unparseable. No client can recover
// that spend; Stats counts such attempts by cause so it is visible.
//
// # Limits
//
// Config.Limits caps concurrency (16 when zero), requests per minute and
// tokens per minute (unlimited when zero). The RPM and TPM buckets hold
// one second's allowance, start full and refill continuously (see
// executors/retry: the providers enforce per-minute limits over shorter
// windows); every attempt, retries
// included, takes one request and its estimated prompt tokens + max_tokens
// from them before it is sent, which is also how OpenAI counts a request
// against TPM. On a 429 the client waits what the provider asks
// (retry-after-ms, Retry-After in seconds or as an HTTP date, or the
// x-ratelimit-reset-* header of the exhausted limit) and halves its
// effective concurrency (at most once per BackoffBase, and only for a 429 to
// a request sent under the current limit); every 8 successes add one slot
// back, never above the cap.
//
// # Secrets
//
// The key is read from the environment variable Config.APIKeyEnv and sent
// only as the Authorization header. No error this package returns carries
// it: errors are built from the status, the provider's error code and a
// redacted message, never from openai-go's error strings (which embed the
// request), and every message is scrubbed of the key and of anything
// shaped like an "sk-" key before it leaves.
package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/spec"
)

// Defaults of Config's zero fields (those of the shared retry policy).
const (
	DefaultConcurrency    = retry.DefaultConcurrency
	DefaultAttemptTimeout = retry.DefaultAttemptTimeout
	DefaultMaxRetries     = retry.DefaultMaxRetries
	DefaultOutageAfter    = retry.DefaultOutageAfter
	DefaultBackoffBase    = retry.DefaultBackoffBase
	DefaultBackoffMax     = retry.DefaultBackoffMax
)

// Config says how to reach one generator.
type Config struct {
	// Name is the generator's name in the spec, used in messages; the
	// model when empty.
	Name string
	// BaseURL is the provider's OpenAI-compatible base URL, such as
	// https://api.openai.com/v1.
	BaseURL string
	// APIKeyEnv names the environment variable holding the key.
	APIKeyEnv string
	// APIKey is the key itself, for endpoints agora runs (a vLLM server
	// started with a key of agora's making). When set, APIKeyEnv is not
	// read and may be empty.
	APIKey string
	// Transport, when set, carries the client's requests instead of its
	// own http.Transport (a vLLM pool spreads them over its replicas).
	Transport http.RoundTripper
	// Model is the model id sent with every request.
	Model string

	// Limits cap the client: RPM, TPM and Concurrency (0 = unlimited, but
	// concurrency defaults to 16).
	Limits spec.Limits
	// Sampling is sent with every request; Extra entries are sent as
	// additional top-level JSON fields (e.g. repetition_penalty). When Extra
	// holds max_completion_tokens, max_tokens is not sent.
	Sampling spec.Sampling

	// AttemptTimeout bounds one HTTP attempt; 120s when zero.
	AttemptTimeout time.Duration
	// MaxRetries bounds the retries of one call after transient errors
	// other than 429; 8 when zero, none when negative. 429s are bounded
	// separately (4×MaxRetries, at least 8) and by OutageAfter.
	MaxRetries int
	// OutageAfter fails a retrying call once no call of this client has
	// succeeded for this long (counted from the call's start at the
	// earliest); 10m when zero.
	OutageAfter time.Duration
	// BackoffBase and BackoffMax shape the exponential backoff with full
	// jitter between retries: a wait drawn from [0, min(BackoffMax,
	// BackoffBase·2^(n-1))) before retry n; 1s and 60s when zero.
	BackoffBase, BackoffMax time.Duration
}

// Message is one chat message; Role is system, developer, user or assistant.
type Message struct{ Role, Content string }

// Request is one chat completion to make.
type Request struct {
	Messages []Message
	// PromptTokens is the caller's count of the prompt's tokens, charged
	// against the TPM limit; when zero it is estimated as ceil(bytes / 4)
	// plus 4 per message.
	PromptTokens int
	// Sampling, when set, replaces the client's sampling for this request
	// (the model stays the client's): a generator answering a benchmark
	// is asked with the harness's decoding parameters.
	Sampling *spec.Sampling
}

// Usage is what the provider reported it billed.
type Usage struct{ PromptTokens, CompletionTokens int }

// Response is one completion.
type Response struct {
	Text         string
	FinishReason string // "stop", "length", …
	// Model is the model as the provider reported it (often a dated
	// version of the one asked for).
	Model             string
	SystemFingerprint string
	// ID is the provider's completion id.
	ID    string
	Usage Usage
	// UsageEstimated is set when the provider reported no usage and Usage
	// holds the client's estimate (prompt estimate, completion bytes / 4).
	UsageEstimated bool
	// Latency is the duration of the attempt that succeeded; Elapsed of
	// the whole call, waits for limits and retries included.
	Latency time.Duration
	Elapsed time.Duration
	// Attempts is the number of HTTP attempts made, the successful one
	// included.
	Attempts int
}

// Client makes chat completions for one generator. It is safe for
// concurrent use; its limits are shared by all its callers.
type Client struct {
	cfg     Config
	key     string
	base    string // BaseURL without a trailing slash
	shown   string // base as messages show it: without user info or query
	oc      openai.Client
	models  openai.ModelService
	files   openai.FileService  // the Batch API's input and result files (batch.go)
	batches openai.BatchService // the Batch API (batch.go)
	httpc   *http.Client

	// prefix is the request body up to the messages (see wire.go).
	prefix       []byte
	withMessages bool

	// policy applies the limits, retries and outage detection.
	policy *retry.Policy
	// promptTokens and completionTokens sum the usage of the responses
	// returned.
	promptTokens, completionTokens atomic.Int64
}

// New makes a client. It reads the key from the environment variable
// cfg.APIKeyEnv and fails, naming the variable, when it is unset or empty.
func New(cfg Config) (*Client, error) {
	if cfg.Name == "" {
		cfg.Name = cfg.Model
	}
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("generator %s: no base_url", cfg.Name)
	}
	if cfg.Model == "" {
		return nil, fmt.Errorf("generator %s: no model", cfg.Name)
	}
	if cfg.APIKeyEnv == "" && cfg.APIKey == "" {
		return nil, fmt.Errorf("generator %s: no api_key_env naming the environment variable that holds the key", cfg.Name)
	}
	shown := strings.TrimRight(cfg.BaseURL, "/")
	if u, err := url.Parse(shown); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("generator %s: base_url must be an http(s) URL such as https://api.openai.com/v1", cfg.Name)
	} else if u.User != nil || u.RawQuery != "" {
		u.User, u.RawQuery = nil, ""
		shown = u.String()
	}
	key := cfg.APIKey
	if key == "" {
		key = os.Getenv(cfg.APIKeyEnv)
	}
	if key == "" {
		return nil, fmt.Errorf("generator %s: environment variable %s is not set: it must hold the API key for %s", cfg.Name, cfg.APIKeyEnv, shown)
	}
	rc := retry.Config{Concurrency: cfg.Limits.Concurrency, RPM: cfg.Limits.RPM, TPM: cfg.Limits.TPM,
		AttemptTimeout: cfg.AttemptTimeout, MaxRetries: cfg.MaxRetries, OutageAfter: cfg.OutageAfter,
		BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax}.WithDefaults()
	cfg.Limits.Concurrency = rc.Concurrency
	cfg.AttemptTimeout, cfg.MaxRetries, cfg.OutageAfter = rc.AttemptTimeout, rc.MaxRetries, rc.OutageAfter
	cfg.BackoffBase, cfg.BackoffMax = rc.BackoffBase, rc.BackoffMax

	c := &Client{
		cfg:    cfg,
		key:    key,
		base:   strings.TrimRight(cfg.BaseURL, "/"),
		shown:  shown,
		policy: retry.New(rc),
	}
	var err error
	if c.prefix, c.withMessages, err = encodePrefix(cfg.Model, cfg.Sampling); err != nil {
		return nil, fmt.Errorf("generator %s: %v", cfg.Name, err)
	}

	conc := cfg.Limits.Concurrency
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          conc + 16,
		MaxIdleConnsPerHost:   conc + 16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
		// A chat request with its meta-prompt and demonstrations is
		// 4-12 KB: a write buffer that holds headers and body sends
		// each request in one write(2) instead of two (the default is
		// 4 KB), about 8 MB at concurrency 512.
		WriteBufferSize: 16 << 10,
	}
	// Every body is read through capTransport, up to its request's cap
	// (bounds.go).
	c.httpc = &http.Client{Transport: capTransport{tr}}
	if cfg.Transport != nil {
		c.httpc.Transport = capTransport{cfg.Transport}
	}
	// The client is built from these options alone, not by
	// openai.NewClient, which would also pick up OPENAI_* variables from
	// the environment (another key, organisation or base URL) behind the
	// spec's back. openai-go does not retry: this package does.
	opts := []option.RequestOption{
		option.WithBaseURL(c.base + "/"),
		option.WithAPIKey(key),
		option.WithHTTPClient(c.httpc),
		option.WithMaxRetries(0),
	}
	c.oc = openai.Client{Options: opts}
	c.models = openai.NewModelService(opts...)
	c.files = openai.NewFileService(opts...)
	c.batches = openai.NewBatchService(opts...)
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.httpc.CloseIdleConnections() }

// Config is the client's configuration with defaults applied.
func (c *Client) Config() Config { return c.cfg }

// Error is a failed call. Its message names the generator, the base URL
// and the model, and never the key.
type Error struct {
	// Status is the HTTP status of the last attempt; 0 when there was none.
	Status int
	// Code is the provider's error code, such as model_not_found.
	Code string
	// Permanent errors (400, 401, 403, 404, 422, …) fail at once: retrying
	// cannot help.
	Permanent bool
	// Outage is set when retries were exhausted (MaxRetries, or
	// OutageAfter without any success).
	Outage bool
	// Attempts is the number of HTTP attempts the call made.
	Attempts int
	// Msg is the message, without the generator prefix.
	Msg string

	generator string
	cause     error
}

func (e *Error) Error() string { return "generator " + e.generator + ": " + e.Msg }

// IsPermanent reports whether retrying cannot help: the provider refused
// the request with an answer.
func (e *Error) IsPermanent() bool { return e.Permanent }

// Unwrap is the last cause of an outage, redacted, so that errors.Is
// recognises context.DeadlineExceeded.
func (e *Error) Unwrap() error { return e.cause }

// Complete makes one chat completion, retrying transient failures, and
// returns at most one billable response (see the package documentation).
// It returns ctx's error when ctx ends first.
func (c *Client) Complete(ctx context.Context, req Request) (Response, error) {
	start := time.Now()
	if len(req.Messages) == 0 {
		c.policy.Reject()
		return Response{}, &Error{Permanent: true, generator: c.cfg.Name, Msg: "request has no messages"}
	}
	body, err := c.encodeRequest(req)
	if err != nil {
		c.policy.Reject()
		return Response{}, &Error{Permanent: true, generator: c.cfg.Name, Msg: c.redact(err.Error())}
	}
	prompt := req.PromptTokens
	if prompt <= 0 {
		prompt = estimatePrompt(req.Messages)
	}
	var (
		res Response
		f   *failure
	)
	sampling := c.cfg.Sampling
	if req.Sampling != nil {
		sampling = *req.Sampling
	}
	maxTokens := sampling.MaxTokens
	bodyCap := BodyCap(sampling)
	r, err := c.policy.Do(ctx, prompt+maxTokens, func(actx context.Context) retry.Outcome {
		res, f = c.attempt(withBodyCap(actx, bodyCap), body)
		if f != nil {
			return f.outcome()
		}
		return retry.Outcome{}
	})
	if err != nil { // ctx ended
		return Response{}, err
	}
	if !r.Last.OK() {
		return Response{}, c.errorf(f, r.Attempts, r.Outage)
	}
	if res.UsageEstimated {
		res.Usage.PromptTokens = prompt
	}
	c.promptTokens.Add(int64(res.Usage.PromptTokens))
	c.completionTokens.Add(int64(res.Usage.CompletionTokens))
	res.Attempts = r.Attempts
	res.Elapsed = time.Since(start)
	return res, nil
}

// attempt makes one HTTP attempt bounded by actx (the call's context with
// the attempt's timeout; when the call's context ends, the policy returns
// its error whatever attempt says). It returns a response or a failure.
func (c *Client) attempt(actx context.Context, body []byte) (Response, *failure) {
	t0 := time.Now()
	var (
		hres *http.Response
		raw  []byte
	)
	err := c.oc.Post(actx, "chat/completions", body, &raw, option.WithResponseInto(&hres))
	latency := time.Since(t0)
	if err == nil {
		res, f := c.decodeResponse(raw)
		res.Latency = latency
		return res, f
	}
	return Response{}, c.classify(err, hres, actx)
}

// Check verifies the endpoint before a run: that it is reachable, accepts
// the key and serves the model.
func (c *Client) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(c.cfg.AttemptTimeout, 30*time.Second))
	defer cancel()
	var hres *http.Response
	page, err := c.models.List(ctx, option.WithResponseInto(&hres))
	if err != nil {
		f := c.classify(err, hres, ctx)
		switch {
		case f.status == http.StatusUnauthorized || f.status == http.StatusForbidden:
			// classify's message already says it.
		case f.status == http.StatusNotFound:
			f.msg = fmt.Sprintf("%s/models answered 404: is %s an OpenAI-compatible base URL (usually ending in /v1)?", c.shown, c.shown)
		case f.cause == retry.Malformed:
			f.msg = fmt.Sprintf("%s/models did not return a model list: is %s an OpenAI-compatible base URL (usually ending in /v1)?", c.shown, c.shown)
		case f.cause == retry.Connection || f.cause == retry.Timeout:
			f.msg = fmt.Sprintf("cannot reach %s: %s", c.shown, f.msg)
		default:
			f.msg = fmt.Sprintf("listing models at %s failed: %s", c.shown, f.msg)
		}
		return c.errorf(f, 1, false)
	}
	for _, m := range page.Data {
		if m.ID == c.cfg.Model {
			return nil
		}
	}
	return &Error{Status: http.StatusOK, Code: "model_not_found", Permanent: true, Attempts: 1,
		generator: c.cfg.Name, Msg: fmt.Sprintf("model %s is not served at %s", c.cfg.Model, c.shown)}
}

// estimatePrompt guesses a prompt's tokens for the TPM bucket: ceil(bytes
// / 4) plus 4 per message for the chat format.
func estimatePrompt(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Content)
	}
	return (n+3)/4 + 4*len(msgs)
}
