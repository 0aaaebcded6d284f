package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// echoProvider answers with the last message's text and fixed usage; it
// implements SamplingProvider and remembers what it was asked.
type echoProvider struct {
	mu   sync.Mutex
	got  [][]Message
	samp []spec.Sampling
	err  error
}

func (p *echoProvider) Complete(ctx context.Context, msgs []Message) (Completion, error) {
	return p.CompleteSampled(ctx, msgs, spec.Sampling{})
}

func (p *echoProvider) CompleteSampled(_ context.Context, msgs []Message, s spec.Sampling) (Completion, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return Completion{}, p.err
	}
	p.got = append(p.got, msgs)
	p.samp = append(p.samp, s)
	return Completion{Text: "echo: " + msgs[len(msgs)-1].Content, FinishReason: "stop", Model: "m-1", ID: "r1",
		PromptTokens: 10, CompletionTokens: 5}, nil
}

// proxyFixture starts a proxy for step s of a generator priced $1/$2 per
// million tokens with max_tokens 100, against a fresh state, under a
// budget of usd (0 for none).
func proxyFixture(t *testing.T, prov Provider, usd float64) (*proxy, *state.Store, *atomic.Bool) {
	t.Helper()
	ctx := context.Background()
	store, err := state.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	g := &spec.Generator{Name: "g", Provider: spec.Provider{OpenAI: &spec.OpenAI{}}, Model: "m",
		Price: &spec.Price{Input: 1, Output: 2}, Sampling: spec.Sampling{MaxTokens: 100}}
	exp := &spec.Experiment{Generators: map[string]*spec.Generator{"g": g}, Budgets: spec.Budgets{USD: usd}}
	e := New(exp, &plan.Plan{}, store, 0, nil, Options{})
	e.soft = ctx
	s := plan.Step{ID: "solve-step", Address: "solve.g.gsm8k", Kind: plan.KindSolve, Generator: "g"}
	if err := store.BeginStep(ctx, state.StepInfo{ID: s.ID, Kind: s.Kind, Address: s.Address, Generator: "g"}); err != nil {
		t.Fatal(err)
	}
	// An answer recorded by an earlier run: this run's go after it.
	if err := store.Append(ctx, state.Generation{StepID: s.ID, Slot: 0, Attempt: 1, Accepted: true, CostUSD: 0}); err != nil {
		t.Fatal(err)
	}
	var stopped atomic.Bool
	p, err := startProxy(ctx, e, s, g, prov, "g", func() { stopped.Store(true) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.close(ctx) })
	return p, store, &stopped
}

func call(t *testing.T, p *proxy, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, strings.TrimSuffix(p.url, "/v1")+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, path, b)
	}
	return res.StatusCode, out
}

func errMsg(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func TestProxy(t *testing.T) {
	prov := &echoProvider{}
	p, store, stopped := proxyFixture(t, prov, 0)
	if !strings.HasPrefix(p.url, "http://127.0.0.1:") {
		t.Errorf("proxy at %s, want 127.0.0.1", p.url)
	}

	// The key is required on every path.
	if code, out := call(t, p, "GET", "/v1/models", "", ""); code != http.StatusUnauthorized || !strings.Contains(errMsg(out), "missing or wrong API key") {
		t.Errorf("no key: %d %v", code, out)
	}
	if code, _ := call(t, p, "POST", "/v1/chat/completions", "wrong", `{"messages":[{"role":"user","content":"x"}]}`); code != http.StatusUnauthorized {
		t.Errorf("wrong key: %d", code)
	}
	code, out := call(t, p, "GET", "/v1/models", p.key, "")
	if data, _ := out["data"].([]any); code != 200 || len(data) != 1 || data[0].(map[string]any)["id"] != "g" {
		t.Errorf("models: %d %v", code, out)
	}
	if code, out := call(t, p, "GET", "/v1/completions", p.key, ""); code != http.StatusNotFound || !strings.Contains(errMsg(out), "not GET /v1/completions") {
		t.Errorf("unknown path: %d %v", code, out)
	}

	// Requests it cannot serve are refused before the provider is asked.
	for body, want := range map[string]string{
		`{"messages":[{"role":"user","content":"x"}],"stream":true}`: "does not stream",
		`{"messages":[{"role":"user","content":"x"}],"n":2}`:         "one choice",
		`{"messages":[]}`: "no messages",
		`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`: `messages[0]: content part of type "image_url"`,
		`{"messages":[{"role":"user","content":"x"}],"stop":7}`:                                   "stop must be",
		`not json`: "request body",
	} {
		if code, out := call(t, p, "POST", "/v1/chat/completions", p.key, body); code != http.StatusBadRequest || !strings.Contains(errMsg(out), want) {
			t.Errorf("%s: %d %q, want 400 with %q", body, code, errMsg(out), want)
		}
	}
	if len(prov.got) != 0 {
		t.Fatalf("the provider was asked %d times", len(prov.got))
	}

	// A request: text parts joined, the harness's decoding passed on, the
	// answer in OpenAI's shape, recorded after the earlier run's.
	code, out = call(t, p, "POST", "/v1/chat/completions", p.key,
		`{"model":"anything","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"What is "},{"type":"text","text":"2 + 2?"}]}],"temperature":0,"max_tokens":50}`)
	if code != 200 {
		t.Fatalf("chat: %d %v", code, out)
	}
	choice := out["choices"].([]any)[0].(map[string]any)
	usage := out["usage"].(map[string]any)
	if choice["message"].(map[string]any)["content"] != "echo: What is 2 + 2?" || choice["finish_reason"] != "stop" ||
		usage["prompt_tokens"] != 10.0 || usage["completion_tokens"] != 5.0 || usage["total_tokens"] != 15.0 || out["model"] != "m-1" {
		t.Errorf("response %v", out)
	}
	if got := prov.got[0]; len(got) != 2 || got[0] != (Message{"system", "Be brief."}) {
		t.Errorf("provider got %+v", got)
	}
	if s := prov.samp[0]; s.Temperature == nil || *s.Temperature != 0 || s.MaxTokens != 50 {
		t.Errorf("sampling %+v", s)
	}
	var recs []state.Generation
	if err := store.Accepted(context.Background(), "solve-step", func(g state.Generation) error {
		recs = append(recs, g)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].Slot != 1 || recs[1].Instruction != "What is 2 + 2?" || recs[1].Response != "echo: What is 2 + 2?" ||
		recs[1].CostUSD != (10*1+5*2)/1e6 || recs[1].Model != "m-1" {
		t.Errorf("records %+v", recs)
	}
	if p.err() != nil || stopped.Load() {
		t.Errorf("proxy ended: %v", p.err())
	}

	// A provider error ends the step: 424, not retried by OpenAI clients.
	prov.err = errors.New("generator g: model not found")
	code, out = call(t, p, "POST", "/v1/chat/completions", p.key, `{"messages":[{"role":"user","content":"x"}]}`)
	if code != http.StatusFailedDependency || errMsg(out) != "generator g: model not found" || p.err() == nil || !stopped.Load() {
		t.Errorf("provider error: %d %v; proxy error %v, stopped %v", code, out, p.err(), stopped.Load())
	}
}

func TestProxyBudget(t *testing.T) {
	// Each request reserves (prompt bytes + overhead) × $1/M + 100 × $2/M,
	// about $0.00023, and costs $0.00002: a $0.0003 budget lets a few
	// through, then refuses with 402 and ends the step with the budget.
	prov := &echoProvider{}
	p, store, stopped := proxyFixture(t, prov, 0.0003)
	var codes []int
	for i := 0; i < 8; i++ {
		code, _ := call(t, p, "POST", "/v1/chat/completions", p.key, `{"messages":[{"role":"user","content":"What is 2 + 2?"}]}`)
		codes = append(codes, code)
	}
	if codes[0] != 200 || codes[len(codes)-1] != http.StatusPaymentRequired {
		t.Errorf("status codes %v: want 200s, then 402", codes)
	}
	var be *BudgetError
	if !errors.As(p.err(), &be) || be.Budget != "usd" || !stopped.Load() {
		t.Errorf("proxy error %v, stopped %v", p.err(), stopped.Load())
	}
	total, _, err := store.Spend(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if total > 0.0003 || math.Abs(total-float64(len(prov.got))*(10*1+5*2)/1e6) > 1e-12 {
		t.Errorf("spent %v for %d answers", total, len(prov.got))
	}
}
