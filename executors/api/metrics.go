package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/openai/openai-go/option"

	"github.com/agorabench/agora/executors/retry"
)

// Embeddings and prompt log-probabilities, for agora's intrinsic metrics
// (docs/metrics.md), through the same client, limits and retries as chat
// completions: POST /embeddings and POST /completions with echo and
// logprobs. Like Complete, each returns at most one billable response and
// retries only attempts that produced none.

// Embeddings is one /embeddings response.
type Embeddings struct {
	// Vectors holds one embedding per input, in the inputs' order.
	Vectors [][]float32
	// PromptTokens is the usage the provider reported; when it reported
	// none, the client's estimate (bytes / 4), with UsageEstimated set.
	PromptTokens   int
	UsageEstimated bool
	Model          string
	Attempts       int
}

type embedWire struct {
	Model string `json:"model"`
	Data  []struct {
		Index     *int      `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
	Usage *wireUsage `json:"usage"`
}

// Embed embeds inputs with the client's model. A response without one
// finite, non-empty vector of one common dimension per input is malformed
// and retried.
func (c *Client) Embed(ctx context.Context, inputs []string) (Embeddings, error) {
	if len(inputs) == 0 {
		return Embeddings{}, &Error{Permanent: true, generator: c.cfg.Name, Msg: "embeddings request has no inputs"}
	}
	body, err := json.Marshal(struct {
		Model          string   `json:"model"`
		Input          []string `json:"input"`
		EncodingFormat string   `json:"encoding_format"`
	}{c.cfg.Model, inputs, "float"})
	if err != nil {
		return Embeddings{}, &Error{Permanent: true, generator: c.cfg.Name, Msg: c.redact(err.Error())}
	}
	est := 0
	for _, s := range inputs {
		est += (len(s) + 3) / 4
	}
	var out Embeddings
	var f *failure
	r, err := c.policy.Do(ctx, est, func(actx context.Context) retry.Outcome {
		out, f = c.embedAttempt(actx, body, len(inputs))
		if f != nil {
			return f.outcome()
		}
		return retry.Outcome{}
	})
	if err != nil {
		return Embeddings{}, err
	}
	if !r.Last.OK() {
		return Embeddings{}, c.errorf(f, r.Attempts, r.Outage)
	}
	if out.UsageEstimated {
		out.PromptTokens = est
	}
	c.promptTokens.Add(int64(out.PromptTokens))
	out.Attempts = r.Attempts
	return out, nil
}

func (c *Client) embedAttempt(actx context.Context, body []byte, n int) (Embeddings, *failure) {
	var hres *http.Response
	var raw []byte
	if err := c.oc.Post(actx, "embeddings", body, &raw, option.WithResponseInto(&hres)); err != nil {
		return Embeddings{}, c.classify(err, hres, actx)
	}
	malformed := func(format string, args ...any) *failure {
		return &failure{cause: retry.Malformed, status: http.StatusOK, msg: c.redact("malformed embeddings response: " + fmt.Sprintf(format, args...))}
	}
	var w embedWire
	if err := json.Unmarshal(raw, &w); err != nil {
		return Embeddings{}, malformed("%v", err)
	}
	if len(w.Data) != n {
		return Embeddings{}, malformed("%d embeddings for %d inputs", len(w.Data), n)
	}
	out := Embeddings{Vectors: make([][]float32, n), Model: w.Model}
	for i, d := range w.Data {
		at := i
		if d.Index != nil {
			at = *d.Index
		}
		if at < 0 || at >= n || out.Vectors[at] != nil {
			return Embeddings{}, malformed("index %d is out of range or repeated", at)
		}
		if len(d.Embedding) == 0 || len(d.Embedding) != len(w.Data[0].Embedding) {
			return Embeddings{}, malformed("embedding %d has %d dimensions", at, len(d.Embedding))
		}
		for _, x := range d.Embedding {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return Embeddings{}, malformed("embedding %d is not finite", at)
			}
		}
		out.Vectors[at] = d.Embedding
	}
	if out.Model == "" {
		out.Model = c.cfg.Model
	}
	if w.Usage != nil {
		p, _, err := w.Usage.counts()
		if err != nil {
			return Embeddings{}, c.invalidUsage(err)
		}
		out.PromptTokens = p
	} else {
		out.UsageEstimated = true
	}
	return out, nil
}

// PromptLogprobs are the log-probabilities of a prompt's tokens as a
// /completions endpoint echoes them (echo: true, logprobs: 0 or more).
type PromptLogprobs struct {
	Tokens []string
	// TokenLogprobs[i] is token i's log-probability given the tokens
	// before it; nil for the first token.
	TokenLogprobs []*float64
	// TextOffset[i] is token i's offset in the prompt, in characters.
	TextOffset   []int
	PromptTokens int
	// CompletionTokens are the tokens generated after the prompt (one).
	CompletionTokens int
	Model            string
	Latency          time.Duration
	Attempts         int
}

type completionsWire struct {
	Model   string `json:"model"`
	Choices []struct {
		Logprobs *struct {
			Tokens        []string   `json:"tokens"`
			TokenLogprobs []*float64 `json:"token_logprobs"`
			TextOffset    []int      `json:"text_offset"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *wireUsage `json:"usage"`
}

// Logprobs asks the client's model to score prompt: a completion of one
// token with the prompt echoed and its tokens' log-probabilities
// (vLLM's and the legacy OpenAI /completions API). A response without
// logprobs for the echoed prompt is malformed and retried.
func (c *Client) Logprobs(ctx context.Context, prompt string) (PromptLogprobs, error) {
	body, err := json.Marshal(map[string]any{"model": c.cfg.Model, "prompt": prompt, "echo": true, "logprobs": 1,
		"max_tokens": 1, "temperature": 0})
	if err != nil {
		return PromptLogprobs{}, &Error{Permanent: true, generator: c.cfg.Name, Msg: c.redact(err.Error())}
	}
	var out PromptLogprobs
	var f *failure
	r, err := c.policy.Do(ctx, (len(prompt)+3)/4+1, func(actx context.Context) retry.Outcome {
		out, f = c.logprobsAttempt(actx, body)
		if f != nil {
			return f.outcome()
		}
		return retry.Outcome{}
	})
	if err != nil {
		return PromptLogprobs{}, err
	}
	if !r.Last.OK() {
		return PromptLogprobs{}, c.errorf(f, r.Attempts, r.Outage)
	}
	c.promptTokens.Add(int64(out.PromptTokens))
	c.completionTokens.Add(int64(out.CompletionTokens))
	out.Attempts = r.Attempts
	return out, nil
}

func (c *Client) logprobsAttempt(actx context.Context, body []byte) (PromptLogprobs, *failure) {
	var hres *http.Response
	var raw []byte
	t0 := time.Now()
	if err := c.oc.Post(actx, "completions", body, &raw, option.WithResponseInto(&hres)); err != nil {
		return PromptLogprobs{}, c.classify(err, hres, actx)
	}
	malformed := func(format string, args ...any) *failure {
		return &failure{cause: retry.Malformed, status: http.StatusOK, msg: c.redact("malformed completions response: " + fmt.Sprintf(format, args...))}
	}
	var w completionsWire
	if err := json.Unmarshal(raw, &w); err != nil {
		return PromptLogprobs{}, malformed("%v", err)
	}
	if len(w.Choices) == 0 || w.Choices[0].Logprobs == nil {
		return PromptLogprobs{}, malformed("no logprobs (does the endpoint support echo with logprobs?)")
	}
	lp := w.Choices[0].Logprobs
	if len(lp.Tokens) == 0 || len(lp.TokenLogprobs) != len(lp.Tokens) || len(lp.TextOffset) != len(lp.Tokens) {
		return PromptLogprobs{}, malformed("%d tokens, %d token_logprobs, %d text_offset", len(lp.Tokens), len(lp.TokenLogprobs), len(lp.TextOffset))
	}
	out := PromptLogprobs{Tokens: lp.Tokens, TokenLogprobs: lp.TokenLogprobs, TextOffset: lp.TextOffset, Model: w.Model, Latency: time.Since(t0)}
	if out.Model == "" {
		out.Model = c.cfg.Model
	}
	if w.Usage != nil {
		p, cpl, err := w.Usage.counts()
		if err != nil {
			return PromptLogprobs{}, c.invalidUsage(err)
		}
		out.PromptTokens, out.CompletionTokens = p, cpl
	} else {
		out.PromptTokens, out.CompletionTokens = max(len(lp.Tokens)-1, 0), 1
	}
	return out, nil
}
