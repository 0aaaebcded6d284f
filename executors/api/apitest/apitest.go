// Package apitest is an in-process OpenAI-compatible server for tests and
// benchmarks. It listens on a real loopback port (net/http/httptest), so the
// client under test — agora's executors/api, through github.com/openai/openai-go —
// does real HTTP, connection pooling and timeouts included.
//
// It serves POST /v1/chat/completions and GET /v1/models, checks the bearer
// key (401) and the model (404 model_not_found), and can add latency, hold
// requests until released, enforce a requests-per-minute limit, and inject
// faults: 429 with Retry-After, 500, 503, dropped connections, malformed JSON
// bodies and truncated completions (finish_reason "length"). Faults are drawn
// with a seeded RNG, or scripted one by one with Enqueue.
//
// # The token tally
//
// Usage is deterministic: prompt tokens are ceil(bytes of all message contents
// / 4), completion tokens ceil(bytes of the completion text / 4). The server
// keeps a tally (Stats.PromptTokens, Stats.CompletionTokens) of the usage of
// every response it delivered with status 200 and a well-formed JSON body —
// truncated completions included, since a client receives and is billed for
// them — so a test can compare the cost a client recorded with what the
// server "billed".
//
// A malformed body is NOT counted as served: the client cannot parse the usage
// out of it and so cannot record it, and counting it would make "recorded
// spend equals the server's tally" impossible by construction. A real provider
// may well bill such a response; that is an unrecoverable loss outside any
// client's control, and it is tallied separately (Stats.UnservedPromptTokens,
// Stats.UnservedCompletionTokens) so a test can see its size. Likewise a
// request whose client went away before the server answered (a client-side
// timeout while the request is held or delayed) is counted as abandoned and
// not served. One race is inherent: a client that times out in the instant
// after the server wrote a complete response is tallied as served though the
// client discarded it; tests that compare tallies should not combine client
// timeouts with latency close to the timeout.
package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultAPIKey is the key the server accepts when Options.APIKey is empty.
const DefaultAPIKey = "sk-apitest-5f1d0c9e7b2a4c6d8e0f1a3b5c7d9e1f"

// DefaultModel is the model the server serves when Options.Models is empty.
const DefaultModel = "test-model"

// DefaultFingerprint is the system_fingerprint of every response unless
// Options.Fingerprint is set.
const DefaultFingerprint = "fp_apitest"

// Fault is an injected failure of one chat-completion request.
type Fault int

// The faults. FaultNone answers normally.
const (
	FaultNone        Fault = iota
	FaultRateLimit         // 429 with Retry-After and x-ratelimit-reset-requests
	FaultServerError       // 500
	FaultUnavailable       // 503
	FaultDrop              // the connection is hijacked and closed without a response
	FaultMalformed         // 200 with a JSON body cut in half
	FaultTruncated         // 200, completion cut short, finish_reason "length"
)

func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultRateLimit:
		return "rate_limit"
	case FaultServerError:
		return "server_error"
	case FaultUnavailable:
		return "unavailable"
	case FaultDrop:
		return "drop"
	case FaultMalformed:
		return "malformed"
	case FaultTruncated:
		return "truncated"
	}
	return "fault(" + strconv.Itoa(int(f)) + ")"
}

// Faults are the probabilities, each in [0, 1], that a chat-completion
// request meets each fault; one draw decides, so they should sum to at most 1.
type Faults struct {
	RateLimit   float64
	ServerError float64
	Unavailable float64
	Drop        float64
	Malformed   float64
	Truncated   float64

	// RetryAfter is what an injected 429 asks the client to wait; 1s when
	// zero. It is sent as Retry-After in whole seconds (rounded up), as
	// x-ratelimit-reset-requests in Go duration form ("250ms", "1s"), and,
	// when not a whole number of seconds, as retry-after-ms.
	RetryAfter time.Duration
	// RetryAfterDate sends Retry-After as an HTTP date instead of seconds.
	RetryAfterDate bool
}

// RateLimit makes the server answer 429 once a client exceeds RPM requests
// per minute.
type RateLimit struct {
	RPM int
	// Sliding counts requests in a strict sliding 60-second window. By
	// default the limit is a token bucket of RPM requests that starts full
	// and refills continuously at RPM/60 per second, the way OpenAI
	// describes its limits; a strict window rejects a client whose own
	// bucket starts full for most of the first minute.
	Sliding bool
}

// Options configure a Server. The zero value serves DefaultModel to
// DefaultAPIKey with no latency and no faults.
type Options struct {
	// APIKey is the bearer key required on every request; DefaultAPIKey
	// when empty.
	APIKey string
	// Models are the model ids served; {DefaultModel} when empty.
	Models []string
	// ModelAliases maps a requested model to the model the response
	// reports (as "gpt-4o" is answered by "gpt-4o-2024-08-06").
	ModelAliases map[string]string
	// Fingerprint is the system_fingerprint of responses; DefaultFingerprint
	// when empty.
	Fingerprint string

	// Latency delays every chat completion (not 401/404/429 answers);
	// LatencyFunc, when set, replaces it per request.
	Latency     time.Duration
	LatencyFunc func(ChatRequest) time.Duration

	// Faults are drawn per request from a RNG seeded with Seed.
	Faults Faults
	Seed   int64

	// RateLimit, when RPM > 0, rejects requests over the limit with 429.
	RateLimit RateLimit

	// Responder plays the model: it returns the completion text for a
	// request. It is called concurrently. The default echoes the last
	// message.
	Responder func(ChatRequest) string

	// LeakKey makes error bodies echo the presented key and authorization
	// header verbatim, the worst a provider could do, to test that clients
	// redact it.
	LeakKey bool

	// Log keeps every served response for Served.
	Log bool

	// Hostile makes every chat completion misbehave in one way
	// (hostile.go); OverReportTokens and HugeBodyBytes size two of the
	// modes.
	Hostile          Hostile
	OverReportTokens int
	HugeBodyBytes    int

	// Embedder returns the embedding of a text for /v1/embeddings;
	// DefaultEmbedding when nil. Scorer splits a prompt into tokens with
	// log-probabilities for /v1/completions; DefaultTokenize when nil
	// (metrics.go).
	Embedder func(model, text string) []float32
	Scorer   func(prompt string) []LogprobToken
}

// Message is one chat message of a request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatRequest is a decoded chat-completion request.
type ChatRequest struct {
	Model               string
	Messages            []Message
	Temperature         *float64
	TopP                *float64
	MaxTokens           *int
	MaxCompletionTokens *int
	Stop                []string
	Seed                *int64
	// Fields holds every top-level field of the body as sent, extras
	// (e.g. repetition_penalty) included.
	Fields map[string]json.RawMessage
	// Header is the request's header without Authorization.
	Header http.Header
}

// Served is one delivered response, kept when Options.Log is set.
type Served struct {
	ID               string
	Model            string
	Messages         []Message
	Text             string
	FinishReason     string
	PromptTokens     int
	CompletionTokens int
}

// Outcome classifies how the server answered a chat-completion request.
type Outcome int

// The outcomes.
const (
	OutcomeOK           Outcome = iota // 200, finish_reason "stop"
	OutcomeTruncated                   // 200, finish_reason "length" (injected or max_tokens reached)
	OutcomeUnauthorized                // 401
	OutcomeBadRequest                  // 400: body not a chat request
	OutcomeNotFound                    // 404 model_not_found
	OutcomeRateLimited                 // 429 injected
	OutcomeRPMExceeded                 // 429 from the RateLimit option
	OutcomeServerError                 // 500
	OutcomeUnavailable                 // 503
	OutcomeDropped                     // connection closed without a response
	OutcomeMalformed                   // 200 with a broken JSON body
	OutcomeAbandoned                   // the client went away first
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	"ok", "truncated", "unauthorized", "bad_request", "not_found", "rate_limited",
	"rpm_exceeded", "server_error", "unavailable", "dropped", "malformed", "abandoned",
}

func (o Outcome) String() string {
	if o >= 0 && o < numOutcomes {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Stats are the server's counters.
type Stats struct {
	// Requests counts chat-completion requests received.
	Requests int64
	// Outcomes counts them by outcome.
	Outcomes map[Outcome]int64
	// Served counts responses delivered with status 200 and well-formed
	// JSON (OutcomeOK + OutcomeTruncated); PromptTokens and
	// CompletionTokens are the tally of their usage.
	Served           int64
	PromptTokens     int64
	CompletionTokens int64
	// UnservedPromptTokens and UnservedCompletionTokens are the usage of
	// responses generated but delivered malformed.
	UnservedPromptTokens     int64
	UnservedCompletionTokens int64
	// InFlight is the number of chat-completion requests being handled;
	// MaxInFlight the most ever handled at once.
	InFlight    int64
	MaxInFlight int64
	// ModelRequests counts GET /v1/models requests.
	ModelRequests int64
	// Connections counts the TCP connections clients opened: a client
	// that reuses its connections opens about as many as its concurrency.
	Connections int64
}

// Server is a running stand-in provider. All methods are safe for
// concurrent use.
type Server struct {
	opts   Options
	srv    *httptest.Server
	key    string
	models map[string]bool

	mu       sync.Mutex
	rng      *rand.Rand
	faults   Faults
	script   []Fault
	gate     chan struct{}
	last     *ChatRequest
	served   []Served
	bucket   float64
	refilled time.Time
	window   []time.Time

	outcomes      [numOutcomes]atomic.Int64
	requests      atomic.Int64
	inFlight      atomic.Int64
	maxInFlight   atomic.Int64
	modelRequests atomic.Int64
	nServed       atomic.Int64
	prompt        atomic.Int64
	completion    atomic.Int64
	unPrompt      atomic.Int64
	unCompletion  atomic.Int64
	ids           atomic.Int64
	conns         atomic.Int64
	metrics       metricCounters
	batch         batchAPI // batch.go
}

// New starts a server; Close stops it.
func New(opts Options) *Server {
	s := &Server{
		opts:   opts,
		key:    opts.APIKey,
		models: map[string]bool{},
		rng:    rand.New(rand.NewSource(opts.Seed)),
		faults: opts.Faults,
	}
	if s.key == "" {
		s.key = DefaultAPIKey
	}
	if len(opts.Models) == 0 {
		s.opts.Models = []string{DefaultModel}
	}
	for _, m := range s.opts.Models {
		s.models[m] = true
	}
	if s.opts.Fingerprint == "" {
		s.opts.Fingerprint = DefaultFingerprint
	}
	if opts.RateLimit.RPM > 0 {
		s.bucket = float64(opts.RateLimit.RPM)
		s.refilled = time.Now()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("GET /v1/models", s.listModels)
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	mux.HandleFunc("POST /v1/completions", s.completions)
	s.batchRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url",
			fmt.Sprintf("Unknown request URL: %s %s.", r.Method, r.URL.Path))
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	return s
}

// URL is the base URL a client is configured with: "http://127.0.0.1:PORT/v1".
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// APIKey is the key the server accepts.
func (s *Server) APIKey() string { return s.key }

// Close releases held requests, then shuts the server down and waits for
// its handlers.
func (s *Server) Close() {
	s.Release()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// SetFaults replaces the fault probabilities.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Enqueue scripts the faults of the next requests, one each in arrival
// order, ahead of the random draws; FaultNone scripts a normal answer.
func (s *Server) Enqueue(f ...Fault) {
	s.mu.Lock()
	s.script = append(s.script, f...)
	s.mu.Unlock()
}

// Hold makes chat-completion requests wait, from now until Release, before
// answering; a request whose client goes away meanwhile is abandoned.
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

// LastRequest is the last chat-completion request that passed the key and
// model checks.
func (s *Server) LastRequest() (ChatRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return ChatRequest{}, false
	}
	return *s.last, true
}

// Served lists the delivered responses in order; it is empty unless
// Options.Log is set.
func (s *Server) Served() []Served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Served(nil), s.served...)
}

// InFlight is the number of chat-completion requests being handled now.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Count is the number of requests with outcome o.
func (s *Server) Count(o Outcome) int64 {
	if o < 0 || o >= numOutcomes {
		return 0
	}
	return s.outcomes[o].Load()
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Requests:                 s.requests.Load(),
		Outcomes:                 map[Outcome]int64{},
		Served:                   s.nServed.Load(),
		PromptTokens:             s.prompt.Load(),
		CompletionTokens:         s.completion.Load(),
		UnservedPromptTokens:     s.unPrompt.Load(),
		UnservedCompletionTokens: s.unCompletion.Load(),
		InFlight:                 s.inFlight.Load(),
		MaxInFlight:              s.maxInFlight.Load(),
		ModelRequests:            s.modelRequests.Load(),
		Connections:              s.conns.Load(),
	}
	for o := Outcome(0); o < numOutcomes; o++ {
		if n := s.outcomes[o].Load(); n > 0 {
			st.Outcomes[o] = n
		}
	}
	return st
}

// Tokens is the usage the server assigns to a text: ceil(bytes / 4).
func Tokens(text string) int { return (len(text) + 3) / 4 }

// PromptTokens is the usage the server assigns to a request's messages:
// ceil(bytes of all contents / 4).
func PromptTokens(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Content)
	}
	return (n + 3) / 4
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(h, "Bearer ")
	return ok && key == s.key
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	presented, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	msg := "Incorrect API key provided: " + mask(presented) + "."
	if presented == "" {
		msg = "You didn't provide an API key."
	}
	if s.opts.LeakKey {
		msg = fmt.Sprintf("Incorrect API key provided: %s (Authorization: %s).", presented, r.Header.Get("Authorization"))
	}
	writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", msg)
}

// mask shows a key the way OpenAI does: its last four characters.
func mask(key string) string {
	if len(key) <= 8 {
		return strings.Repeat("*", len(key))
	}
	return key[:3] + strings.Repeat("*", len(key)-7) + key[len(key)-4:]
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	s.modelRequests.Add(1)
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	out := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: []model{}}
	for _, m := range s.opts.Models {
		out.Data = append(out.Data, model{ID: m, Object: "model", Created: 1700000000, OwnedBy: "apitest"})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxInFlight.Load()
		if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}

	if !s.authorized(r) {
		s.outcomes[OutcomeUnauthorized].Add(1)
		s.unauthorized(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.outcomes[OutcomeAbandoned].Add(1)
		return
	}
	req, err := parseChat(body)
	if err != nil {
		s.outcomes[OutcomeBadRequest].Add(1)
		msg := err.Error()
		if s.opts.LeakKey {
			msg += " (Authorization: " + r.Header.Get("Authorization") + ")"
		}
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_body", msg)
		return
	}
	req.Header = r.Header.Clone()
	req.Header.Del("Authorization")
	if !s.models[req.Model] {
		s.outcomes[OutcomeNotFound].Add(1)
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", req.Model))
		return
	}

	s.mu.Lock()
	s.last = &req
	wait, limited := s.rateLimitLocked(time.Now())
	var fault Fault
	if !limited {
		fault = s.drawLocked()
	}
	gate := s.gate
	retryAfter := s.faults.RetryAfter
	retryDate := s.faults.RetryAfterDate
	s.mu.Unlock()

	if limited {
		s.outcomes[OutcomeRPMExceeded].Add(1)
		h := w.Header()
		setRetryAfter(h, wait, false)
		h.Set("x-ratelimit-limit-requests", strconv.Itoa(s.opts.RateLimit.RPM))
		h.Set("x-ratelimit-remaining-requests", "0")
		writeError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded",
			fmt.Sprintf("Rate limit reached for requests: limit %d per minute. Please try again in %s.", s.opts.RateLimit.RPM, wait))
		return
	}

	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			s.outcomes[OutcomeAbandoned].Add(1)
			return
		}
	}

	if fault == FaultRateLimit {
		s.outcomes[OutcomeRateLimited].Add(1)
		if retryAfter <= 0 {
			retryAfter = time.Second
		}
		setRetryAfter(w.Header(), retryAfter, retryDate)
		w.Header().Set("x-ratelimit-remaining-requests", "0")
		writeError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded",
			"Rate limit reached (injected). Please try again later.")
		return
	}

	latency := s.opts.Latency
	if s.opts.LatencyFunc != nil {
		latency = s.opts.LatencyFunc(req)
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.outcomes[OutcomeAbandoned].Add(1)
			return
		}
	}

	hostile := s.hostile()
	if s.serveHostileBody(hostile, w, r) {
		return
	}

	switch fault {
	case FaultServerError:
		s.outcomes[OutcomeServerError].Add(1)
		writeError(w, http.StatusInternalServerError, "server_error", "",
			"The server had an error while processing your request (injected).")
		return
	case FaultUnavailable:
		s.outcomes[OutcomeUnavailable].Add(1)
		writeError(w, http.StatusServiceUnavailable, "server_error", "",
			"The engine is currently overloaded, please try again later (injected).")
		return
	case FaultDrop:
		s.outcomes[OutcomeDropped].Add(1)
		drop(w)
		return
	}

	text := "echo: "
	if s.opts.Responder != nil {
		text = s.opts.Responder(req)
	} else if len(req.Messages) > 0 {
		text += req.Messages[len(req.Messages)-1].Content
	}
	finish := "stop"
	if fault == FaultTruncated {
		text = text[:len(text)/2]
		finish = "length"
	}
	limit := req.MaxTokens
	if req.MaxCompletionTokens != nil {
		limit = req.MaxCompletionTokens
	}
	if limit != nil && *limit > 0 && Tokens(text) > *limit {
		text = text[:*limit*4]
		finish = "length"
	}
	promptTokens, completionTokens := PromptTokens(req.Messages), Tokens(text)
	model := req.Model
	if a, ok := s.opts.ModelAliases[model]; ok {
		model = a
	}
	id := "chatcmpl-apitest-" + strconv.FormatInt(s.ids.Add(1), 10)
	var u any = usage{PromptTokens: promptTokens, CompletionTokens: completionTokens, TotalTokens: promptTokens + completionTokens}
	if raw, ok := s.hostileUsage(hostile, promptTokens, completionTokens); ok {
		u = raw
	}
	out, _ := json.Marshal(completion{
		ID:                id,
		Object:            "chat.completion",
		Created:           time.Now().Unix(),
		Model:             model,
		SystemFingerprint: s.opts.Fingerprint,
		Choices: []choice{{
			Message:      Message{Role: "assistant", Content: text},
			FinishReason: finish,
		}},
		Usage: u,
	})

	if r.Context().Err() != nil {
		s.outcomes[OutcomeAbandoned].Add(1)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("x-request-id", id)
	if fault == FaultMalformed {
		s.outcomes[OutcomeMalformed].Add(1)
		s.unPrompt.Add(int64(promptTokens))
		s.unCompletion.Add(int64(completionTokens))
		w.WriteHeader(http.StatusOK)
		w.Write(out[:len(out)/2])
		return
	}
	if finish == "length" {
		s.outcomes[OutcomeTruncated].Add(1)
	} else {
		s.outcomes[OutcomeOK].Add(1)
	}
	s.nServed.Add(1)
	s.prompt.Add(int64(promptTokens))
	s.completion.Add(int64(completionTokens))
	if s.opts.Log {
		s.mu.Lock()
		s.served = append(s.served, Served{
			ID: id, Model: model, Messages: req.Messages, Text: text, FinishReason: finish,
			PromptTokens: promptTokens, CompletionTokens: completionTokens,
		})
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// rateLimitLocked admits a request under the RPM limit, or says how long
// until one would be admitted.
func (s *Server) rateLimitLocked(now time.Time) (time.Duration, bool) {
	rpm := s.opts.RateLimit.RPM
	if rpm <= 0 {
		return 0, false
	}
	if s.opts.RateLimit.Sliding {
		cut := now.Add(-time.Minute)
		i := 0
		for i < len(s.window) && !s.window[i].After(cut) {
			i++
		}
		s.window = s.window[i:]
		if len(s.window) >= rpm {
			return s.window[0].Add(time.Minute).Sub(now), true
		}
		s.window = append(s.window, now)
		return 0, false
	}
	perSec := float64(rpm) / 60
	s.bucket = math.Min(float64(rpm), s.bucket+now.Sub(s.refilled).Seconds()*perSec)
	s.refilled = now
	if s.bucket >= 1 {
		s.bucket--
		return 0, false
	}
	return time.Duration((1 - s.bucket) / perSec * float64(time.Second)), true
}

// drawLocked picks the fault of the next request: scripted first, then
// drawn.
func (s *Server) drawLocked() Fault {
	if len(s.script) > 0 {
		f := s.script[0]
		s.script = s.script[1:]
		return f
	}
	f := s.faults
	if f.RateLimit+f.ServerError+f.Unavailable+f.Drop+f.Malformed+f.Truncated <= 0 {
		return FaultNone
	}
	u := s.rng.Float64()
	for _, c := range []struct {
		p float64
		f Fault
	}{
		{f.RateLimit, FaultRateLimit}, {f.ServerError, FaultServerError},
		{f.Unavailable, FaultUnavailable}, {f.Drop, FaultDrop},
		{f.Malformed, FaultMalformed}, {f.Truncated, FaultTruncated},
	} {
		if u < c.p {
			return c.f
		}
		u -= c.p
	}
	return FaultNone
}

func setRetryAfter(h http.Header, d time.Duration, date bool) {
	secs := int64(math.Ceil(d.Seconds()))
	if date {
		h.Set("Retry-After", time.Now().Add(time.Duration(secs)*time.Second).UTC().Format(http.TimeFormat))
	} else {
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if d%time.Second != 0 {
		h.Set("retry-after-ms", strconv.FormatInt(int64(math.Ceil(float64(d)/float64(time.Millisecond))), 10))
	}
	h.Set("x-ratelimit-reset-requests", d.Round(time.Millisecond).String())
}

// drop closes the connection without answering.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

type completion struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	SystemFingerprint string   `json:"system_fingerprint"`
	Choices           []choice `json:"choices"`
	Usage             any      `json:"usage"`
}

type choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	Logprobs     *int    `json:"logprobs"`
	FinishReason string  `json:"finish_reason"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// parseChat decodes a chat-completion body; message content may be a
// string or an array of text parts.
func parseChat(body []byte) (ChatRequest, error) {
	var req ChatRequest
	if err := json.Unmarshal(body, &req.Fields); err != nil {
		return req, fmt.Errorf("We could not parse the JSON body of your request: %v", err)
	}
	var raw struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Temperature         *float64        `json:"temperature"`
		TopP                *float64        `json:"top_p"`
		MaxTokens           *int            `json:"max_tokens"`
		MaxCompletionTokens *int            `json:"max_completion_tokens"`
		Stop                json.RawMessage `json:"stop"`
		Seed                *int64          `json:"seed"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return req, fmt.Errorf("Invalid request body: %v", err)
	}
	if raw.Model == "" {
		return req, fmt.Errorf("you must provide a model parameter")
	}
	if len(raw.Messages) == 0 {
		return req, fmt.Errorf("'messages' must contain at least one message")
	}
	req.Model = raw.Model
	req.Temperature, req.TopP, req.Seed = raw.Temperature, raw.TopP, raw.Seed
	req.MaxTokens, req.MaxCompletionTokens = raw.MaxTokens, raw.MaxCompletionTokens
	for _, m := range raw.Messages {
		text, err := content(m.Content)
		if err != nil {
			return req, err
		}
		req.Messages = append(req.Messages, Message{Role: m.Role, Content: text})
	}
	if len(raw.Stop) > 0 && !bytes.Equal(raw.Stop, []byte("null")) {
		var one string
		if json.Unmarshal(raw.Stop, &one) == nil {
			req.Stop = []string{one}
		} else if err := json.Unmarshal(raw.Stop, &req.Stop); err != nil {
			return req, fmt.Errorf("'stop' must be a string or an array of strings")
		}
	}
	return req, nil
}

func content(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("message content must be a string or an array of parts")
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	type apiError struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	e := apiError{Message: msg, Type: typ}
	if code != "" {
		e.Code = &code
	}
	writeJSON(w, status, struct {
		Error apiError `json:"error"`
	}{e})
}
