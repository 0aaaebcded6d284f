package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go"

	"github.com/agorabench/agora/executors/retry"
)

// failure is one failed attempt, described without the key.
type failure struct {
	cause      retry.Cause
	permanent  bool
	status     int
	code       string
	msg        string        // redacted
	retryAfter time.Duration // what a 429 asked for; 0 when it did not say
	wrapped    error         // a sentinel errors.Is should see (context.DeadlineExceeded)
}

// classify describes a failed openai-go call from its error and, when one
// arrived, the HTTP response. It never keeps openai-go's error string as
// is: apierror.Error's embeds the request.
func (c *Client) classify(err error, hres *http.Response, actx context.Context) *failure {
	if errors.Is(err, errBodyTooLarge) {
		f := &failure{cause: retry.Malformed, msg: c.redact(trimErr(unwrapTo(err, errBodyTooLarge)))}
		if hres != nil {
			f.status = hres.StatusCode
		}
		return f
	}
	if hres != nil && hres.StatusCode >= 400 {
		return c.statusFailure(err, hres)
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return &failure{cause: retry.Timeout, wrapped: context.DeadlineExceeded,
			msg: fmt.Sprintf("attempt timed out after %s", c.cfg.AttemptTimeout)}
	}
	if hres != nil {
		// A 2xx whose body could not be read (openai-go hands the body
		// over unparsed; decodeResponse judges it). For Check's typed
		// model list, a body that is not one.
		if strings.Contains(trimErr(err), "json") {
			return &failure{cause: retry.Malformed, status: hres.StatusCode,
				msg: c.redact(fmt.Sprintf("malformed response body (%d): %v", hres.StatusCode, trimErr(err)))}
		}
		return &failure{cause: retry.Connection, status: hres.StatusCode,
			msg: c.redact("connection error: response body lost: " + trimErr(err))}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &failure{cause: retry.Connection, msg: c.redact("connection error: " + trimErr(err))}
}

func (c *Client) statusFailure(err error, hres *http.Response) *failure {
	f := &failure{status: hres.StatusCode}
	var provider, typ string
	var ae *openai.Error
	if errors.As(err, &ae) {
		f.code, provider, typ = ae.Code, ae.Message, ae.Type
	}
	provider = c.redact(provider)
	if len(provider) > 300 {
		provider = provider[:300] + "…"
	}
	detail := strconv.Itoa(f.status)
	if f.code != "" {
		detail += " " + f.code
	} else if typ != "" {
		detail += " " + typ
	} else {
		detail += " " + http.StatusText(f.status)
	}
	if provider != "" {
		detail += ": " + provider
	}
	s := f.status
	switch {
	case s == http.StatusTooManyRequests && (f.code == "insufficient_quota" || typ == "insufficient_quota"):
		f.permanent = true
		f.msg = fmt.Sprintf("quota exhausted at %s (%s): check the account's plan and billing", c.shown, detail)
	case s == http.StatusTooManyRequests:
		f.cause = retry.RateLimit
		f.retryAfter, _ = retryAfter(hres.Header, time.Now())
		f.msg = "rate limited (" + detail + ")"
	case s == http.StatusRequestTimeout || s == http.StatusConflict || s == http.StatusTooEarly || s >= 500 ||
		hres.Header.Get("x-should-retry") == "true":
		f.cause = retry.Server
		f.msg = "server error (" + detail + ")"
	case s == http.StatusUnauthorized:
		f.permanent = true
		f.msg = fmt.Sprintf("authentication failed at %s: check the key in $%s", c.shown, c.cfg.APIKeyEnv)
	case s == http.StatusForbidden:
		f.permanent = true
		f.msg = fmt.Sprintf("access to model %s denied at %s (%s): check the key in $%s and its permissions", c.cfg.Model, c.shown, detail, c.cfg.APIKeyEnv)
	case s == http.StatusNotFound && (f.code == "model_not_found" || strings.Contains(strings.ToLower(provider), "model")):
		f.permanent = true
		f.msg = fmt.Sprintf("model %s is not served at %s (%s)", c.cfg.Model, c.shown, detail)
	case s == http.StatusNotFound:
		f.permanent = true
		f.msg = fmt.Sprintf("%s answered 404 (%s): is it an OpenAI-compatible base URL (usually ending in /v1)?", c.shown, detail)
	default:
		f.permanent = true
		f.msg = fmt.Sprintf("request for model %s rejected by %s (%s)", c.cfg.Model, c.shown, detail)
	}
	return f
}

// errorf makes the *Error of a failed call.
func (c *Client) errorf(f *failure, attempts int, outage bool) *Error {
	e := &Error{
		Status:    f.status,
		Code:      f.code,
		Permanent: f.permanent,
		Outage:    outage,
		Attempts:  attempts,
		Msg:       f.msg,
		generator: c.cfg.Name,
	}
	if outage {
		last := c.redact(f.msg)
		e.Msg = fmt.Sprintf("gave up on %s (model %s) after %d attempts: last error: %s", c.shown, c.cfg.Model, attempts, last)
		if f.wrapped != nil {
			e.cause = fmt.Errorf("%s: %w", last, f.wrapped)
		} else {
			e.cause = errors.New(last)
		}
	}
	e.Msg = c.redact(e.Msg)
	return e
}

// keyShaped matches strings that look like provider keys ("sk-…",
// "sk-proj-…"), masked or not.
var keyShaped = regexp.MustCompile(`\bsk-[A-Za-z0-9_\-*.]{4,}`)

// redact removes the key, in any encoding a message might carry it, and
// anything key-shaped.
func (c *Client) redact(s string) string {
	if len(c.key) >= 4 {
		s = strings.ReplaceAll(s, c.key, "[REDACTED]")
		if q := url.QueryEscape(c.key); q != c.key {
			s = strings.ReplaceAll(s, q, "[REDACTED]")
		}
		if q := strconv.Quote(c.key); q[1:len(q)-1] != c.key {
			s = strings.ReplaceAll(s, q[1:len(q)-1], "[REDACTED]")
		}
	}
	return keyShaped.ReplaceAllString(s, "sk-[REDACTED]")
}

// unwrapTo is the innermost error of err's chain that still wraps target:
// the cap's own message without openai-go's prefixes.
func unwrapTo(err, target error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil || !errors.Is(next, target) || next == target {
			return err
		}
		err = next
	}
}

func trimErr(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// retryAfter reads how long a 429 asks the client to wait: retry-after-ms,
// then Retry-After (seconds or an HTTP date), then the x-ratelimit-reset-*
// header of each exhausted limit (remaining 0, or not reported), the
// longest of them. ok is false when the response says nothing.
func retryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return secondsDuration(ms / 1000), true
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); (err == nil || errors.Is(err, strconv.ErrRange)) && s >= 0 {
			return secondsDuration(s), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(0, t.Sub(now)), true
		}
	}
	for _, limit := range []string{"requests", "tokens"} {
		v := h.Get("x-ratelimit-reset-" + limit)
		if v == "" {
			continue
		}
		if rem := h.Get("x-ratelimit-remaining-" + limit); rem != "" && rem != "0" {
			continue
		}
		if r, good := parseReset(v, now); good {
			d, ok = max(d, r), true
		}
	}
	return d, ok
}

// parseReset reads a reset header: a Go-style duration ("1s", "6m0s",
// "250ms"), seconds, or an RFC 3339 time.
func parseReset(v string, now time.Time) (time.Duration, bool) {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, true
	}
	if s, err := strconv.ParseFloat(v, 64); (err == nil || errors.Is(err, strconv.ErrRange)) && s >= 0 {
		return secondsDuration(s), true
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

// outcome is the failure as the retry policy sees it.
func (f *failure) outcome() retry.Outcome {
	return retry.Outcome{Cause: f.cause, Permanent: f.permanent, RetryAfter: f.retryAfter}
}
