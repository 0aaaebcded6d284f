// Package anthropictest is a local stand-in for Anthropic's Messages API,
// for testing agora-provider-anthropic over real HTTP: it checks the
// headers and the body as the API does (x-api-key, anthropic-version,
// max_tokens, a top-level system prompt, user/assistant roles), answers
// like the API (content blocks, stop_reason, usage, error objects), and
// injects faults: 429 and 529 with retry-after, 500, truncation, a hang.
//
// It also serves the Message Batches API (batches.go): batches kept in
// memory that end after Options.BatchPolls retrieves (or
// Options.BatchDuration), results at the batch's results_url, requests
// that end errored, expired or canceled on demand, faults on each batch
// endpoint (a creation whose answer is lost among them), and a tally of
// what the batches billed (BatchTally) for tests to price.
package anthropictest

import (
	"context"
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
	// "echo: TEXT". It is called concurrently; for a batch's requests,
	// with the server's lock held, as the batch ends (it must not call
	// the Server).
	Responder func(system string, texts []string) string
	// RetryAfter is what 429 and 529 ask for (1s when zero), sent as
	// retry-after in whole seconds.
	RetryAfter time.Duration

	// BatchPolls is how many retrieves of a batch find it in_progress
	// before it ends (0: the first retrieve finds it ended), unless
	// BatchDuration is set: then a batch ends that long after its
	// creation, whatever its retrieves.
	BatchPolls    int
	BatchDuration time.Duration
	// BatchCreateDelay holds a creation's answer this long after the
	// batch was made (a slow answer a client may give up on, or be
	// killed during).
	BatchCreateDelay time.Duration
	// CancelCompletes is how many of a canceled batch's requests (the
	// first ones) complete anyway; the others end canceled.
	CancelCompletes int
	// LineOutcome decides how a batch request ends, by its custom_id
	// (nil or "": it runs, and succeeds if its params are valid). It is
	// called with the server's lock held, once per request, when the
	// batch ends.
	LineOutcome func(customID string) Outcome
	// MaxBatchRequests and MaxBatchBytes bound a creation (the API's
	// 100,000 requests and 256 MB when zero).
	MaxBatchRequests int
	MaxBatchBytes    int64
	// Now is the server's clock (time.Now when nil), for created_at and
	// BatchDuration.
	Now func() time.Time
	// BatchHook, when set, is called as each request to a batch endpoint
	// arrives, before anything else (its ctx ends when the client goes);
	// id is the path's batch id, "" for create and list. A crash test
	// blocks in it to kill the client at that point.
	BatchHook func(ctx context.Context, op BatchOp, id string)
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

	// Batches (batches.go).
	batchScript map[BatchOp][]Fault
	lineScript  []Outcome
	batches     map[string]*batch
	batchOrder  []*batch
	seq, msgSeq int
	tally       BatchTally
	lastBatch   *BatchCreate

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
	if o.MaxBatchRequests <= 0 {
		o.MaxBatchRequests = 100_000
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 256_000_000
	}
	s := &Server{opts: o, models: map[string]bool{}}
	for _, m := range o.Models {
		s.models[m] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", s.messages)
	mux.HandleFunc("POST /v1/messages/count_tokens", s.countTokens)
	mux.HandleFunc("GET /v1/models", s.listModels)
	mux.HandleFunc("POST /v1/messages/batches", s.hooked(OpCreate, s.createBatch))
	mux.HandleFunc("GET /v1/messages/batches", s.hooked(OpList, s.listBatches))
	mux.HandleFunc("GET /v1/messages/batches/{id}", s.hooked(OpRetrieve, s.retrieveBatch))
	mux.HandleFunc("POST /v1/messages/batches/{id}/cancel", s.hooked(OpCancel, s.cancelBatch))
	mux.HandleFunc("GET /v1/messages/batches/{id}/results", s.hooked(OpResults, s.batchResults))
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
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20))
	if err := dec.Decode(&raw); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "body is not JSON: "+err.Error())
		return body{}, nil, nil, false
	}
	b, texts, e := s.validate(raw, needMax)
	if e != nil {
		writeError(w, e.status, e.typ, e.msg)
		return b, nil, nil, false
	}
	return b, texts, raw, true
}

// apiError is an error answer: its HTTP status, type and message.
type apiError struct {
	status   int
	typ, msg string
}

// validate checks a Messages request's body as the API does; the text of
// each message.
func (s *Server) validate(raw map[string]json.RawMessage, needMax bool) (body, []string, *apiError) {
	var b body
	bad := func(msg string) (body, []string, *apiError) {
		return b, nil, &apiError{http.StatusBadRequest, "invalid_request_error", msg}
	}
	re, _ := json.Marshal(raw)
	if err := json.Unmarshal(re, &b); err != nil {
		return bad(err.Error())
	}
	switch {
	case b.Model == "":
		return bad("model: Field required")
	case needMax && (b.MaxTokens == nil || *b.MaxTokens < 1):
		return bad("max_tokens: Field required")
	case len(b.Messages) == 0:
		return bad("messages: at least one message is required")
	case !s.models[b.Model]:
		return b, nil, &apiError{http.StatusNotFound, "not_found_error", "model: " + b.Model}
	}
	texts := make([]string, len(b.Messages))
	for i, m := range b.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return bad(fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant' (system prompts go in the top-level system field)", i))
		}
		if err := json.Unmarshal(m.Content, &texts[i]); err != nil {
			return bad(fmt.Sprintf("messages.%d.content: want a string", i))
		}
	}
	if b.Messages[0].Role != "user" {
		return bad("messages: first message must use the \"user\" role")
	}
	return b, texts, nil
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
	text, stop, in, out := s.reply(b, texts, f == FaultTruncated)
	s.in.Add(int64(in))
	s.out.Add(int64(out))
	s.served.Add(1)
	w.Header().Set("content-type", "application/json")
	json.NewEncoder(w).Encode(messageObject(fmt.Sprintf("msg_%06d", s.served.Load()), b.Model, text, stop, in, out))
}

// reply plays the model: the completion's text and stop reason, and the
// input and output tokens billed.
func (s *Server) reply(b body, texts []string, truncate bool) (text, stop string, in, out int) {
	text = "echo: " + texts[len(texts)-1]
	if s.opts.Responder != nil {
		text = s.opts.Responder(b.System, texts)
	}
	stop = "end_turn"
	switch {
	case truncate:
		text, stop = text[:len(text)/2], "max_tokens"
	case Tokens(text) > *b.MaxTokens:
		text, stop = text[:*b.MaxTokens*4], "max_tokens"
	}
	return text, stop, inputTokens(b, texts), Tokens(text)
}

// messageObject is a Message as the API returns it.
func messageObject(id, model, text, stop string, in, out int) map[string]any {
	if model == DefaultModel {
		model = ReportedModel
	}
	return map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": model,
		"content":     []map[string]string{{"type": "text", "text": text}},
		"stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": in, "output_tokens": out},
	}
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
