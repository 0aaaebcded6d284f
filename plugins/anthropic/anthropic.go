// Package anthropic is an agora provider for Anthropic's Messages API
// (POST /v1/messages), served as the plugin agora-provider-anthropic
// (cmd/agora-provider-anthropic). It reads its key from
// $ANTHROPIC_API_KEY and sends it as x-api-key with the anthropic-version
// header; system and developer messages become the top-level system
// field; stop_reason maps to OpenAI's finish reasons (end_turn and
// stop_sequence: stop; max_tokens: length; tool_use: tool_calls; refusal:
// content_filter); 429 and 529 (overloaded) are rate limits with their
// retry-after, 5xx retryable, other errors permanent. Token counting uses
// /v1/messages/count_tokens.
//
// It takes batches (sdk.Batcher, batches.go) through the Message Batches
// API at half price, as anthropic-sdk-go v1.60.0 and anthropic-sdk-python
// v0.121.0 call it (no beta header). The API keeps no metadata on a batch,
// so every custom_id is "KEY_CUSTOMID", agora's batch key first; FindBatch
// finds a batch whose creation's answer was lost by listing the batches
// since then with as many requests and reading their first result, and
// answers Unknown while such a batch is still running. Results are read
// from results_url only on the base URL's own scheme and host, bounded and
// checked line by line.
package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/agorabench/agora/plugins/sdk"
)

// Version is the anthropic-version header sent with every request.
const Version = "2023-06-01"

// DefaultBaseURL is the API's address; $ANTHROPIC_BASE_URL overrides it.
const DefaultBaseURL = "https://api.anthropic.com"

// prices are list prices in dollars per million tokens (input, output) at
// the time of writing; a spec's price takes precedence.
var prices = map[string][2]float64{
	"claude-opus-4-1":         {15, 75},
	"claude-opus-4-0":         {15, 75},
	"claude-sonnet-4-5":       {3, 15},
	"claude-sonnet-4-0":       {3, 15},
	"claude-haiku-4-5":        {1, 5},
	"claude-3-5-haiku-latest": {0.8, 4},
}

// Provider talks to the Messages API.
type Provider struct {
	BaseURL, Key string
	HTTP         *http.Client
	// MaxResultLine and MaxResultBytes bound a batch's results: one line,
	// and all of them (DefaultMaxResultLine and DefaultMaxResultBytes
	// when zero).
	MaxResultLine  int
	MaxResultBytes int64
}

// FromEnv configures a provider from $ANTHROPIC_API_KEY and
// $ANTHROPIC_BASE_URL.
func FromEnv() *Provider {
	base := os.Getenv("ANTHROPIC_BASE_URL")
	if base == "" {
		base = DefaultBaseURL
	}
	// agora may send hundreds of requests at once: keep as many
	// connections (the default transport keeps two idle per host).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 1024
	return &Provider{BaseURL: strings.TrimRight(base, "/"), Key: os.Getenv("ANTHROPIC_API_KEY"), HTTP: &http.Client{Transport: tr}}
}

var (
	_ sdk.Provider     = (*Provider)(nil)
	_ sdk.TokenCounter = (*Provider)(nil)
)

// Describe lists the models the key can use (GET /v1/models) with the
// known prices. Without a key it describes the models whose prices it
// knows and says it cannot serve (agora lists it, and refuses to run
// through it). When the list cannot be had it describes no models (agora
// then checks none) and logs why.
func (p *Provider) Describe(ctx context.Context) (sdk.Description, error) {
	d := sdk.Description{Name: "anthropic"}
	if p.Key == "" {
		d.Unavailable = noKey
		for id, pr := range prices {
			d.Models = append(d.Models, sdk.Model{ID: id, InputPrice: pr[0], OutputPrice: pr[1], BatchDiscount: BatchDiscount})
		}
		sort.Slice(d.Models, func(i, j int) bool { return d.Models[i].ID < d.Models[j].ID })
		return d, nil
	}
	ids, err := p.listModels(ctx)
	if err != nil {
		sdk.Log.Warn("listing models failed; describing none", "error", err)
	}
	for _, id := range ids {
		m := sdk.Model{ID: id, BatchDiscount: BatchDiscount}
		if pr, ok := price(id); ok {
			m.InputPrice, m.OutputPrice = pr[0], pr[1]
		}
		d.Models = append(d.Models, m)
	}
	return d, nil
}

const noKey = "environment variable ANTHROPIC_API_KEY is not set: it must hold the API key"

// price finds a model's price, dated versions (claude-sonnet-4-5-20250929)
// included.
func price(id string) ([2]float64, bool) {
	for prefix, pr := range prices {
		if id == prefix || strings.HasPrefix(id, prefix+"-") {
			return pr, true
		}
	}
	return [2]float64{}, false
}

func (p *Provider) listModels(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var ids []string
	after := ""
	for range 20 { // pages
		url := p.BaseURL + "/v1/models?limit=1000"
		if after != "" {
			url += "&after_id=" + after
		}
		var page struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
			HasMore bool   `json:"has_more"`
			LastID  string `json:"last_id"`
		}
		if err := p.do(ctx, http.MethodGet, url, nil, &page); err != nil {
			return nil, err
		}
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		if !page.HasMore || page.LastID == "" {
			break
		}
		after = page.LastID
	}
	return ids, nil
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// split moves system and developer messages into the top-level system
// prompt.
func split(msgs []sdk.Message) (system string, out []message) {
	var sys []string
	for _, m := range msgs {
		if m.Role == "system" || m.Role == "developer" {
			sys = append(sys, m.Content)
			continue
		}
		out = append(out, message{Role: m.Role, Content: m.Content})
	}
	return strings.Join(sys, "\n\n"), out
}

// Complete makes one Messages API call.
func (p *Provider) Complete(ctx context.Context, req sdk.Request) (sdk.Completion, error) {
	if p.Key == "" {
		return sdk.Completion{}, errors.New(noKey)
	}
	var out messageOut
	if err := p.do(ctx, http.MethodPost, p.BaseURL+"/v1/messages", messagesBody(req), &out); err != nil {
		return sdk.Completion{}, err
	}
	return out.completion(), nil
}

// messagesBody is req as a Messages API request body: system and
// developer messages in the top-level system field, the sampling
// parameters in the API's names, the spec's extra entries as they are.
// Complete sends it, and SubmitBatch sends it as each request's params.
func messagesBody(req sdk.Request) map[string]any {
	body := map[string]any{"model": req.Model}
	system, msgs := split(req.Messages)
	if system != "" {
		body["system"] = system
	}
	body["messages"] = msgs
	s := req.Sampling
	maxTokens := s.MaxTokens
	if maxTokens <= 0 {
		maxTokens = 4096 // required by the API
	}
	body["max_tokens"] = maxTokens
	if s.Temperature != nil {
		body["temperature"] = *s.Temperature
	}
	if s.TopP != nil {
		body["top_p"] = *s.TopP
	}
	if len(s.Stop) > 0 {
		body["stop_sequences"] = s.Stop
	}
	for k, v := range s.Extra { // top_k, metadata, …
		body[k] = v
	}
	return body
}

// messageOut is the part of a Message agora uses.
type messageOut struct {
	ID         string `json:"id"`
	Model      string `json:"model"`
	StopReason string `json:"stop_reason"`
	Content    []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

// completion is the message's text blocks, its stop reason in OpenAI's
// terms, and its usage.
func (m messageOut) completion() sdk.Completion {
	var text strings.Builder
	for _, c := range m.Content {
		if c.Type == "text" {
			text.WriteString(c.Text)
		}
	}
	return sdk.Completion{Text: text.String(), FinishReason: FinishReason(m.StopReason), Model: m.Model, ID: m.ID,
		Usage: sdk.Usage{InputTokens: m.Usage.InputTokens, OutputTokens: m.Usage.OutputTokens}}
}

// FinishReason maps a stop_reason to OpenAI's finish reasons.
func FinishReason(stop string) string {
	switch stop {
	case "end_turn", "stop_sequence":
		return "stop"
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return stop
}

// CountTokens counts a prompt's input tokens with
// /v1/messages/count_tokens (free of charge, rate limited separately).
func (p *Provider) CountTokens(ctx context.Context, model string, msgs []sdk.Message) (int, error) {
	body := map[string]any{"model": model}
	system, ms := split(msgs)
	if system != "" {
		body["system"] = system
	}
	body["messages"] = ms
	var out struct {
		InputTokens int `json:"input_tokens"`
	}
	if err := p.do(ctx, http.MethodPost, p.BaseURL+"/v1/messages/count_tokens", body, &out); err != nil {
		return 0, err
	}
	return out.InputTokens, nil
}

// do sends one request and decodes a 2xx answer into out; failures come
// back as *sdk.Error. A []byte body is sent as it is (JSON already).
func (p *Provider) do(ctx context.Context, method, url string, body, out any) error {
	res, err := p.send(ctx, method, url, body)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return sdk.Retryable(fmt.Errorf("reading the response: %v", redact(err.Error(), p.Key)))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &sdk.Error{Message: "malformed response body: " + err.Error(), Retryable: true, Status: res.StatusCode}
	}
	return nil
}

// send sends one request with the key and the version headers; a non-2xx
// answer comes back as *sdk.Error, a 2xx one for the caller to read and
// close.
func (p *Provider) send(ctx context.Context, method, url string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return nil, fmt.Errorf("encode request: %v", err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("base URL %s: %v", p.BaseURL, err)
	}
	req.Header.Set("x-api-key", p.Key)
	req.Header.Set("anthropic-version", Version)
	if body != nil {
		req.Header.Set("content-type", "application/json")
	}
	res, err := p.HTTP.Do(req)
	if err != nil {
		return nil, sdk.Retryable(fmt.Errorf("%s %s: %v", method, p.BaseURL, redact(err.Error(), p.Key)))
	}
	if res.StatusCode/100 != 2 {
		defer res.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		var e struct {
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		json.Unmarshal(raw, &e)
		msg := redact(e.Error.Message, p.Key)
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		se := sdk.HTTPError(res.StatusCode, res.Header, e.Error.Type, msg)
		if res.StatusCode == http.StatusUnauthorized {
			se.Message += ": check the key in $ANTHROPIC_API_KEY"
		}
		return nil, se
	}
	return res, nil
}

func redact(s, key string) string {
	if len(key) >= 4 {
		s = strings.ReplaceAll(s, key, "[REDACTED]")
	}
	return s
}
