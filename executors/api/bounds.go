package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/spec"
)

// What a provider sends is bounded before it is believed (docs/budgets.md,
// "What agora trusts a provider with"):
//
//   - A response body is read up to a cap derived from the request:
//     BodyEnvelope plus BytesPerToken for each token the request allows
//     (max_tokens, or max_completion_tokens, times n), or DefaultBodyCap
//     when the request sets no limit (and for embeddings, log-probabilities
//     and the model list). A longer body is a failed attempt (malformed),
//     whatever its status, and is never held whole in memory.
//   - Usage must be a non-negative whole number of tokens no larger than
//     MaxUsageTokens; anything else makes the response invalid: a permanent
//     error of the call, never settled (and never credited).
//   - A 200 whose body is an error object is classified by its content
//     like the status it stands for and shown with the provider's message.
const (
	// BytesPerToken bounds the bytes of one generated token in a body
	// (retry.BytesPerToken).
	BytesPerToken = retry.BytesPerToken
	// BodyEnvelope is what a body may hold beyond its tokens.
	BodyEnvelope = retry.ResponseEnvelope
	// DefaultBodyCap bounds a body whose request sets no token limit.
	DefaultBodyCap = retry.DefaultResponseCap
	// MaxUsageTokens bounds a plausible token count in a usage report
	// (2^50, about 10^15); a larger count is not a bill but garbage.
	MaxUsageTokens = 1 << 50
)

// errBodyTooLarge is the error of reading a body past its cap.
var errBodyTooLarge = errors.New("response body too large")

type bodyCapKey struct{}

// withBodyCap makes ctx carry the body cap of the request made with it.
func withBodyCap(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, bodyCapKey{}, n)
}

// BodyCap is the cap on the response body of a chat request with sampling
// s: BodyEnvelope + BytesPerToken per token it allows, or DefaultBodyCap
// when it sets no limit.
func BodyCap(s spec.Sampling) int64 {
	limit := int64(s.MaxTokens)
	if v, ok := s.Extra["max_completion_tokens"]; ok {
		limit = int64(number(v))
	}
	if limit <= 0 {
		return DefaultBodyCap
	}
	n := int64(1)
	if v, ok := s.Extra["n"]; ok && number(v) > 1 {
		n = int64(min(number(v), 1024))
	}
	return retry.ResponseCap(min(limit, 1<<24) * n)
}

// number reads a numeric extra; 0 when it is not one.
func number(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0
		}
		return x
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return 0
}

// capTransport caps the response bodies of the requests it carries at the
// cap their context holds (DefaultBodyCap when none).
type capTransport struct{ base http.RoundTripper }

func (t capTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(r)
	if err != nil || res == nil || res.Body == nil {
		return res, err
	}
	limit, ok := r.Context().Value(bodyCapKey{}).(int64)
	if !ok || limit <= 0 {
		limit = DefaultBodyCap
	}
	if res.ContentLength > limit {
		res.Body.Close()
		res.Body = io.NopCloser(errReader{fmt.Errorf("%w: %d bytes announced, the cap is %d", errBodyTooLarge, res.ContentLength, limit)})
		res.ContentLength = -1
		return res, nil
	}
	res.Body = &cappedBody{rc: res.Body, left: limit, limit: limit}
	return res, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// cappedBody reads at most limit bytes, then fails.
type cappedBody struct {
	rc          io.ReadCloser
	left, limit int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the cap from a longer one.
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: more than %d bytes (the cap for this request)", errBodyTooLarge, b.limit)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// wireUsage is a usage report as sent: numbers of any form, judged by
// tokenCount.
type wireUsage struct {
	PromptTokens     json.RawMessage `json:"prompt_tokens"`
	CompletionTokens json.RawMessage `json:"completion_tokens"`
}

// counts reads a usage report; an error says what is wrong with it.
func (u *wireUsage) counts() (prompt, completion int, err error) {
	if prompt, err = tokenCount("prompt_tokens", u.PromptTokens); err != nil {
		return 0, 0, err
	}
	if completion, err = tokenCount("completion_tokens", u.CompletionTokens); err != nil {
		return 0, 0, err
	}
	return prompt, completion, nil
}

// tokenCount reads one token count: absent or null is 0; otherwise a
// non-negative whole number (1e3 is 1000) of at most MaxUsageTokens.
func tokenCount(field string, raw json.RawMessage) (int, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, nil
	}
	shown := s
	if len(shown) > 40 {
		shown = shown[:40] + "…"
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("usage.%s is %s, not a number", field, shown)
	case err != nil || f > MaxUsageTokens:
		return 0, fmt.Errorf("usage.%s is %s, beyond any real bill (at most %d)", field, shown, int64(MaxUsageTokens))
	case f < 0:
		return 0, fmt.Errorf("usage.%s is %s: negative", field, shown)
	case f != math.Trunc(f):
		return 0, fmt.Errorf("usage.%s is %s, not a whole number of tokens", field, shown)
	}
	return int(f), nil
}

// wireError is the error object of an error body, also found in a 200.
type wireError struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
	Status  json.RawMessage `json:"status"`
}

// errorIn200 classifies a 2xx body that carries an error object instead
// of a completion, by its code, type, status and message, as the HTTP
// status it stands for would be: a rate limit, an authentication failure,
// a server error or a client error.
func (c *Client) errorIn200(raw json.RawMessage) *failure {
	var e wireError
	if err := json.Unmarshal(raw, &e); err != nil {
		// "error": "text"
		var s string
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw)
		}
		e.Message = s
	}
	code := strings.Trim(string(e.Code), `"`)
	if code == "null" {
		code = ""
	}
	status := strings.Trim(string(e.Status), `"`)
	msg := c.redact(e.Message)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	detail := "200 with an error"
	for _, s := range []string{code, e.Type} {
		if s != "" {
			detail += " " + s
			break
		}
	}
	if msg != "" {
		detail += ": " + msg
	}
	has := func(words ...string) bool {
		hay := strings.ToLower(code + " " + e.Type + " " + status + " " + e.Message)
		for _, w := range words {
			if strings.Contains(hay, w) {
				return true
			}
		}
		return false
	}
	f := &failure{status: http.StatusOK, code: code}
	switch {
	case has("insufficient_quota", "quota exceeded", "billing"):
		f.permanent = true
		f.msg = fmt.Sprintf("quota exhausted at %s (%s): check the account's plan and billing", c.shown, detail)
	case has("rate_limit", "rate limit", "ratelimit", "too many requests", "429", "resource_exhausted"):
		f.cause = retry.RateLimit
		f.msg = "rate limited (" + detail + ")"
	case has("invalid_api_key", "authentication", "unauthorized", "unauthenticated", "401", "permission", "forbidden", "403"):
		f.permanent = true
		f.msg = fmt.Sprintf("authentication failed at %s (%s): check the key in $%s", c.shown, detail, c.cfg.APIKeyEnv)
	case has("server_error", "internal", "overloaded", "unavailable", "timeout", "timed out", "500", "502", "503", "504"):
		f.cause = retry.Server
		f.msg = "server error (" + detail + ")"
	default:
		f.permanent = true
		f.msg = fmt.Sprintf("request for model %s rejected by %s (%s)", c.cfg.Model, c.shown, detail)
	}
	return f
}

// secondsDuration converts a number of seconds a header asked for into a
// duration, bounded by retry.MaxRetryAfter (no overflow).
func secondsDuration(s float64) time.Duration {
	if math.IsNaN(s) || s > retry.MaxRetryAfter.Seconds() {
		return retry.MaxRetryAfter
	}
	return time.Duration(s * float64(time.Second))
}
