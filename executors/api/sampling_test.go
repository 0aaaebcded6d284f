package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/spec"
)

// TestRequestSampling: a request's own sampling replaces the client's for
// that request only; the model stays the client's.
func TestRequestSampling(t *testing.T) {
	s := newServer(t, apitest.Options{})
	cfg := testConfig(t, s)
	t1 := 1.0
	cfg.Sampling = spec.Sampling{MaxTokens: 256, Temperature: &t1, Extra: map[string]any{"presence_penalty": 0.5}}
	c := newClient(t, cfg)
	zero, topP, seed := 0.0, 0.95, 1234
	req := user("What is 2 + 2?")
	req.Sampling = &spec.Sampling{MaxTokens: 64, Temperature: &zero, TopP: &topP, Stop: []string{"Question:"}, Seed: &seed,
		Extra: map[string]any{"repetition_penalty": 1.03}}
	if _, err := c.Complete(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	got, _ := s.LastRequest()
	if got.Model != apitest.DefaultModel || *got.Temperature != 0 || *got.TopP != 0.95 || *got.MaxTokens != 64 ||
		!reflect.DeepEqual(got.Stop, []string{"Question:"}) || *got.Seed != 1234 {
		t.Errorf("request sent %+v", got)
	}
	var rp float64
	if err := json.Unmarshal(got.Fields["repetition_penalty"], &rp); err != nil || rp != 1.03 {
		t.Errorf("repetition_penalty %s", got.Fields["repetition_penalty"])
	}
	if _, ok := got.Fields["presence_penalty"]; ok {
		t.Errorf("the client's extra leaked into a request with its own sampling")
	}
	// The next request without its own sampling is the client's.
	if _, err := c.Complete(context.Background(), user("again")); err != nil {
		t.Fatal(err)
	}
	got, _ = s.LastRequest()
	if *got.Temperature != 1 || *got.MaxTokens != 256 || got.TopP != nil || got.Stop != nil {
		t.Errorf("second request sent %+v", got)
	}
	// Bad sampling is the request's error, not the client's.
	bad := user("x")
	bad.Sampling = &spec.Sampling{MaxTokens: 8, Extra: map[string]any{"f": func() {}}}
	var e *api.Error
	if _, err := c.Complete(context.Background(), bad); err == nil {
		t.Errorf("unencodable sampling accepted")
	} else if !errors.As(err, &e) || !e.Permanent {
		t.Errorf("error %v, want a permanent *api.Error", err)
	}
}
