package apitest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// The intrinsic metrics' endpoints: POST /v1/embeddings and POST
// /v1/completions with echo and logprobs (what vLLM serves). Both share
// the chat endpoint's key, models, scripted and drawn faults (Enqueue,
// SetFaults: a 429 with Retry-After, 500, 503, a dropped connection, a
// malformed body) and latency, and count their own requests
// (MetricStats).

// MetricStats count the metric endpoints' requests.
type MetricStats struct {
	// EmbeddingRequests and EmbeddingInputs count /v1/embeddings requests
	// and the texts embedded in answers delivered; EmbeddingTokens is
	// their usage (Tokens of each input).
	EmbeddingRequests, EmbeddingInputs, EmbeddingTokens int64
	// CompletionRequests counts /v1/completions requests,
	// CompletionServed the answers delivered.
	CompletionRequests, CompletionServed int64
	// Faulted counts requests of either endpoint answered with an
	// injected fault.
	Faulted int64
}

type metricCounters struct {
	embedReq, embedIn, embedTok, complReq, complServed, faulted atomic.Int64
}

// MetricStats returns the metric endpoints' counters.
func (s *Server) MetricStats() MetricStats {
	m := &s.metrics
	return MetricStats{EmbeddingRequests: m.embedReq.Load(), EmbeddingInputs: m.embedIn.Load(), EmbeddingTokens: m.embedTok.Load(),
		CompletionRequests: m.complReq.Load(), CompletionServed: m.complServed.Load(), Faulted: m.faulted.Load()}
}

// DefaultEmbedding is the embedding served when Options.Embedder is nil:
// eight components drawn from the FNV-1a hash of the text, in [-1, 1).
func DefaultEmbedding(text string) []float32 {
	v := make([]float32, 8)
	for i := range v {
		h := fnv.New64a()
		h.Write([]byte{byte(i)})
		h.Write([]byte(text))
		v[i] = float32(h.Sum64()%2000)/1000 - 1
	}
	return v
}

// LogprobToken is one token of a scored prompt.
type LogprobToken struct {
	Text    string
	Logprob float64
}

// DefaultTokenize splits a prompt into runs of spaces and runs of
// non-spaces, and gives each token the log-probability −0.1 × its length
// in characters: what the stand-in's /v1/completions echoes when
// Options.Scorer is nil.
func DefaultTokenize(prompt string) []LogprobToken {
	var out []LogprobToken
	start := 0
	for i, r := range prompt {
		if i > start {
			prev, _ := utf8.DecodeLastRuneInString(prompt[:i])
			if unicode.IsSpace(prev) != unicode.IsSpace(r) {
				out = append(out, LogprobToken{Text: prompt[start:i]})
				start = i
			}
		}
	}
	if start < len(prompt) {
		out = append(out, LogprobToken{Text: prompt[start:]})
	}
	for i := range out {
		out[i].Logprob = -0.1 * float64(utf8.RuneCountInString(out[i].Text))
	}
	return out
}

// metricPreamble does what every request needs before its answer: the
// key, the body, the model, the fault and the latency. It returns false
// when it has answered.
func (s *Server) metricPreamble(w http.ResponseWriter, r *http.Request, dst any) (Fault, bool) {
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return 0, false
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, false
	}
	var probe struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal(body, &probe); err != nil || json.Unmarshal(body, dst) != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_body", fmt.Sprintf("We could not parse the JSON body of your request: %v", err))
		return 0, false
	}
	if !s.models[probe.Model] {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", probe.Model))
		return 0, false
	}
	s.mu.Lock()
	fault := s.drawLocked()
	retryAfter := s.faults.RetryAfter
	s.mu.Unlock()
	switch fault {
	case FaultRateLimit:
		s.metrics.faulted.Add(1)
		if retryAfter <= 0 {
			retryAfter = time.Second
		}
		setRetryAfter(w.Header(), retryAfter, false)
		writeError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached (injected). Please try again later.")
		return fault, false
	case FaultServerError, FaultUnavailable:
		s.metrics.faulted.Add(1)
		status := http.StatusInternalServerError
		if fault == FaultUnavailable {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, "server_error", "", "The server had an error while processing your request (injected).")
		return fault, false
	case FaultDrop:
		s.metrics.faulted.Add(1)
		drop(w)
		return fault, false
	}
	if d := s.opts.Latency; d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return fault, false
		}
	}
	return fault, true
}

// reply writes a 200, cut in half for FaultMalformed.
func (s *Server) reply(w http.ResponseWriter, fault Fault, v any) bool {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if fault == FaultMalformed {
		s.metrics.faulted.Add(1)
		w.Write(b[:len(b)/2])
		return false
	}
	w.Write(b)
	return true
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	s.metrics.embedReq.Add(1)
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	fault, ok := s.metricPreamble(w, r, &req)
	if !ok {
		return
	}
	if len(req.Input) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_body", "'input' must be a non-empty array of strings")
		return
	}
	type datum struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	data := make([]datum, len(req.Input))
	tokens := 0
	for i, text := range req.Input {
		var v []float32
		if s.opts.Embedder != nil {
			v = s.opts.Embedder(req.Model, text)
		} else {
			v = DefaultEmbedding(text)
		}
		// Answered in reverse order: clients must place them by index.
		data[len(data)-1-i] = datum{Object: "embedding", Index: i, Embedding: v}
		tokens += Tokens(text)
	}
	out := map[string]any{"object": "list", "model": req.Model, "data": data,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}}
	if s.reply(w, fault, out) {
		s.metrics.embedIn.Add(int64(len(req.Input)))
		s.metrics.embedTok.Add(int64(tokens))
	}
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	s.metrics.complReq.Add(1)
	var req struct {
		Model     string `json:"model"`
		Prompt    string `json:"prompt"`
		Echo      bool   `json:"echo"`
		Logprobs  *int   `json:"logprobs"`
		MaxTokens *int   `json:"max_tokens"`
	}
	fault, ok := s.metricPreamble(w, r, &req)
	if !ok {
		return
	}
	if req.Prompt == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_body", "'prompt' must be a non-empty string")
		return
	}
	toks := DefaultTokenize(req.Prompt)
	if s.opts.Scorer != nil {
		toks = s.opts.Scorer(req.Prompt)
	}
	// One generated token after the prompt.
	toks = append(toks, LogprobToken{Text: " the", Logprob: -2})
	type logprobs struct {
		Tokens        []string   `json:"tokens"`
		TokenLogprobs []*float64 `json:"token_logprobs"`
		TextOffset    []int      `json:"text_offset"`
	}
	var lp *logprobs
	if req.Echo && req.Logprobs != nil {
		lp = &logprobs{}
		off := 0
		for i, t := range toks {
			lp.Tokens = append(lp.Tokens, t.Text)
			if i == 0 {
				lp.TokenLogprobs = append(lp.TokenLogprobs, nil)
			} else {
				v := t.Logprob
				lp.TokenLogprobs = append(lp.TokenLogprobs, &v)
			}
			lp.TextOffset = append(lp.TextOffset, off)
			off += utf8.RuneCountInString(t.Text)
		}
	}
	out := map[string]any{
		"id": "cmpl-apitest-" + strconv.FormatInt(s.ids.Add(1), 10), "object": "text_completion", "model": req.Model,
		"choices": []map[string]any{{"index": 0, "text": " the", "logprobs": lp, "finish_reason": "length"}},
		"usage":   map[string]int{"prompt_tokens": len(toks) - 1, "completion_tokens": 1, "total_tokens": len(toks)},
	}
	if s.reply(w, fault, out) {
		s.metrics.complServed.Add(1)
	}
}
