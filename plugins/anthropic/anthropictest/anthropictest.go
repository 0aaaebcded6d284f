// Package anthropictest is a local stand-in for Anthropic's Messages API,
// for testing agora-provider-anthropic over real HTTP: it checks the
// headers and the body as the API does (x-api-key, anthropic-version,
// max_tokens, a top-level system prompt, user/assistant roles), answers
// like the API (content blocks, stop_reason, usage, error objects), and
// injects faults: 429 and 529 with retry-after, 500, truncation, a hang.
package anthropictest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options' zero fields.
const (
	DefaultAPIKey = "sk-ant-test-0123456789abcdef"
	DefaultModel  = "claude-sonnet-4-5"
	// ReportedModel is how the server names DefaultModel in responses (a
	// dated version, as the API does).
	ReportedModel = "claude-sonnet-4-5-20250929"
)

// Fault is an injected failure of one /v1/messages request.
type Fault int

// The faults.
const (
	FaultNone        Fault = iota
	FaultRateLimit         // 429 rate_limit_error with retry-after
	FaultOverloaded        // 529 overloaded_error with retry-after
	FaultServerError       // 500 api_error
	FaultTruncated         // 200, stop_reason max_tokens
	FaultHang              // no answer until the client gives up
	FaultBadRequest        // 400 invalid_request_error
)

// Options configure a Server.
type Options struct {
	APIKey string
	// Models served; {DefaultModel} when empty.
	Models []string
	// Responder plays the model: the completion text for a system prompt
	// and the messages' texts. The default echoes the last message as
	// "echo: TEXT". It is called concurrently.
	Responder func(system string, texts []string) string
	// RetryAfter is what 429 and 529 ask for (1s when zero), sent as
	// retry-after in whole seconds.
	RetryAfter time.Duration
}

// Request is a received /v1/messages request.
type Request struct {
	Header http.Header
	Body   map[string]json.RawMessage
}

// Stats are the server's counters.
type Stats struct {
	Requests, Served, MaxInFlight int64
	InputTokens, OutputTokens     int64
}

// Server is a running stand-in.
type Server struct {
	opts   Options
	srv    *httptest.Server
	models map[string]bool

	mu     sync.Mutex
	script []Fault
	gate   chan struct{}
	last   *Request

	requests, served, inFlight, maxInFlight, in, out atomic.Int64
}

// New starts a server; Close stops it.
func New(o Options) *Server {
	if o.APIKey == "" {
		o.APIKey = DefaultAPIKey
	}
	if len(o.Models) == 0 {
		o.Models = []string{DefaultModel}
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	s := &Server{opts: o, models: map[string]bool{}}
	for _, m := range o.Models {
		s.models[m] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", s.messages)
	mux.HandleFunc("POST /v1/messages/count_tokens", s.countTokens)
	mux.HandleFunc("GET /v1/models", s.listModels)
	s.srv = httptest.NewServer(mux)
	return s
}

// URL is the base URL ($ANTHROPIC_BASE_URL).
func (s *Server) URL() string { return s.srv.URL }

// APIKey is the key the server accepts.
func (s *Server) APIKey() string { return s.opts.APIKey }

// Close stops the server.
func (s *Server) Close() {
	s.Release()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Enqueue makes the next requests meet these faults, in order.
func (s *Server) Enqueue(f ...Fault) {
	s.mu.Lock()
	s.script = append(s.script, f...)
	s.mu.Unlock()
}

// Hold makes requests wait until Release.
func (s *Server) Hold() {
	s.mu.Lock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
	s.mu.Unlock()
}

// Release lets held requests go on.
func (s *Server) Release() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

// Last is the last /v1/messages request received.
func (s *Server) Last() (Request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return Request{}, false
	}
	return *s.last, true
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), Served: s.served.Load(), MaxInFlight: s.maxInFlight.Load(),
		InputTokens: s.in.Load(), OutputTokens: s.out.Load()}
}

// Tokens is the stand-in's token count of a text: ceil(bytes / 4).
func Tokens(text string) int { return (len(text) + 3) / 4 }

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
}

// check validates the headers; false when it answered.
func (s *Server) check(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("x-api-key") != s.opts.APIKey {
		writeError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return false
	}
	if r.Header.Get("anthropic-version") == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return false
	}
	if r.Header.Get("authorization") != "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "use x-api-key, not Authorization")
		return false
	}
	return true
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type body struct {
	Model     string    `json:"model"`
	MaxTokens *int      `json:"max_tokens"`
	System    string    `json:"system"`
	Messages  []message `json:"messages"`
}

// parse decodes and validates a body; the text of each message.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, needMax bool) (body, []string, map[string]json.RawMessage, bool) {
	var b body
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20))
	if err := dec.Decode(&raw); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "body is not JSON: "+err.Error())
		return b, nil, nil, false
	}
	re, _ := json.Marshal(raw)
	if err := json.Unmarshal(re, &b); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return b, nil, nil, false
	}
	switch {
	case b.Model == "":
		writeError(w, http.StatusBadRequest, "invalid_request_error", "model: Field required")
		return b, nil, nil, false
	case needMax && (b.MaxTokens == nil || *b.MaxTokens < 1):
		writeError(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
		return b, nil, nil, false
	case len(b.Messages) == 0:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "messages: at least one message is required")
		return b, nil, nil, false
	case !s.models[b.Model]:
		writeError(w, http.StatusNotFound, "not_found_error", "model: "+b.Model)
		return b, nil, nil, false
	}
	texts := make([]string, len(b.Messages))
	for i, m := range b.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			writeError(w, http.StatusBadRequest, "invalid_request_error",
				fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant' (system prompts go in the top-level system field)", i))
			return b, nil, nil, false
		}
		if err := json.Unmarshal(m.Content, &texts[i]); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("messages.%d.content: want a string", i))
			return b, nil, nil, false
		}
	}
	if b.Messages[0].Role != "user" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "messages: first message must use the \"user\" role")
		return b, nil, nil, false
	}
	return b, texts, raw, true
}

func inputTokens(b body, texts []string) int {
	n := Tokens(b.System)
	for _, t := range texts {
		n += Tokens(t) + 3
	}
	return n
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxInFlight.Load()
		if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if !s.check(w, r) {
		return
	}
	b, texts, raw, ok := s.parse(w, r, true)
	if !ok {
		return
	}
	s.mu.Lock()
	h := r.Header.Clone()
	h.Del("x-api-key")
	s.last = &Request{Header: h, Body: raw}
	var f Fault
	if len(s.script) > 0 {
		f, s.script = s.script[0], s.script[1:]
	}
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	retry := strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds())))
	switch f {
	case FaultRateLimit:
		w.Header().Set("retry-after", retry)
		writeError(w, http.StatusTooManyRequests, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
		return
	case FaultOverloaded:
		w.Header().Set("retry-after", retry)
		writeError(w, 529, "overloaded_error", "Overloaded")
		return
	case FaultServerError:
		writeError(w, http.StatusInternalServerError, "api_error", "Internal server error")
		return
	case FaultBadRequest:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "injected bad request")
		return
	case FaultHang:
		<-r.Context().Done()
		return
	}
	text := "echo: " + texts[len(texts)-1]
	if s.opts.Responder != nil {
		text = s.opts.Responder(b.System, texts)
	}
	stop := "end_turn"
	switch {
	case f == FaultTruncated:
		text, stop = text[:len(text)/2], "max_tokens"
	case Tokens(text) > *b.MaxTokens:
		text, stop = text[:*b.MaxTokens*4], "max_tokens"
	}
	in, out := inputTokens(b, texts), Tokens(text)
	s.in.Add(int64(in))
	s.out.Add(int64(out))
	s.served.Add(1)
	model := b.Model
	if model == DefaultModel {
		model = ReportedModel
	}
	w.Header().Set("content-type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": fmt.Sprintf("msg_%06d", s.served.Load()), "type": "message", "role": "assistant", "model": model,
		"content":     []map[string]string{{"type": "text", "text": text}},
		"stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": in, "output_tokens": out},
	})
}

func (s *Server) countTokens(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	b, texts, _, ok := s.parse(w, r, false)
	if !ok {
		return
	}
	w.Header().Set("content-type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"input_tokens": inputTokens(b, texts)})
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	var data []map[string]string
	for _, m := range s.opts.Models {
		data = append(data, map[string]string{"type": "model", "id": m, "display_name": strings.ToUpper(m[:1]) + m[1:]})
	}
	w.Header().Set("content-type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"data": data, "has_more": false, "first_id": s.opts.Models[0], "last_id": s.opts.Models[len(s.opts.Models)-1]})
}
