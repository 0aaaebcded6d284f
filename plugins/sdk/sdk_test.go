package sdk

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"
)

func TestHTTPError(t *testing.T) {
	h := http.Header{}
	h.Set("retry-after", "3")
	for _, tc := range []struct {
		status          int
		header          http.Header
		retry, limited  bool
		after           time.Duration
		code, msg, want string
	}{
		{429, h, true, true, 3 * time.Second, "rate_limit_error", "slow down", "429 rate_limit_error: slow down"},
		{529, http.Header{"Retry-After-Ms": {"250"}}, true, true, 250 * time.Millisecond, "overloaded_error", "", "529 overloaded_error"},
		{503, nil, true, false, 0, "", "", "503 Service Unavailable"},
		{408, nil, true, false, 0, "", "", "408 Request Timeout"},
		{400, nil, false, false, 0, "invalid_request_error", "bad", "400 invalid_request_error: bad"},
		{401, nil, false, false, 0, "", "", "401 Unauthorized"},
	} {
		e := HTTPError(tc.status, tc.header, tc.code, tc.msg)
		if e.Retryable != tc.retry || e.RateLimited != tc.limited || e.RetryAfter != tc.after || e.Error() != tc.want || e.Status != tc.status {
			t.Errorf("%d: %+v", tc.status, e)
		}
	}
	past := http.Header{"Retry-After": {time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}}
	if e := HTTPError(429, past, "", ""); e.RetryAfter != 0 {
		t.Errorf("a date in the past: %v", e.RetryAfter)
	}
}

func TestWireError(t *testing.T) {
	ctx := context.Background()
	if e := wireError(ctx, &Error{Message: "m", RateLimited: true, RetryAfter: time.Second, Status: 429}); !e.Retryable || !e.RateLimited || e.RetryAfterMs != 1000 {
		t.Errorf("rate limit: %+v", e)
	}
	if e := wireError(ctx, errors.New("plain")); e.Retryable || e.Message != "plain" {
		t.Errorf("a plain error is permanent: %+v", e)
	}
	dctx, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	if e := wireError(dctx, dctx.Err()); !e.Retryable || !e.TimedOut {
		t.Errorf("deadline: %+v", e)
	}
}

func TestWatchParent(t *testing.T) {
	exited := make(chan struct{})
	go watchParent(os.Getppid()+1, time.Millisecond, func() { close(exited) })
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("a changed parent was not noticed")
	}
	stayed := make(chan struct{})
	go watchParent(os.Getppid(), time.Millisecond, func() { close(stayed) })
	select {
	case <-stayed:
		t.Fatal("exited while the parent lives")
	case <-time.After(50 * time.Millisecond):
	}
}
