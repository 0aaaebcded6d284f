package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agorabench/agora/executors/api/apitest"
)

// lean is the -lean server: the same contract as apitest for a client
// that behaves (POST /v1/chat/completions, GET /v1/models, the bearer
// key, apitest.DefaultModel, usage, the counters of apitest.Stats), at a
// fraction of its CPU per request, so that the instrument takes less of
// the CPU the client under test competes for. It does not decode the
// request: it reads the body into a pooled buffer and finds the few
// values it needs by scanning the JSON for their keys ("model",
// "max_tokens", "max_completion_tokens", every "content" string). A key
// followed by a colon can only be a key: inside a JSON string a quote is
// escaped. It has no faults, no rate limit and no request log, and it
// answers a body it cannot read with 400.
//
// Usage, as apitest assigns it, with one approximation: prompt tokens are
// ceil(bytes / 4) of the message contents as they appear in the body,
// JSON escapes included (a newline counts 2 bytes, not 1), so a little
// more than apitest's count of the decoded contents; completion tokens
// are ceil(bytes of the completion text / 4), exactly apitest's.
type lean struct {
	key     string
	model   string
	texts   []leanText // the completions, cycled through
	models  []byte     // the body of GET /v1/models
	latency time.Duration
	w       *window
	bufs    sync.Pool

	ids, requests, served, prompt, completion   atomic.Int64
	modelRequests, conns, inFlight, maxInFlight atomic.Int64
	outcomes                                    [16]atomic.Int64 // by apitest.Outcome
}

// leanText is a completion and its content as a JSON string literal.
type leanText struct {
	text string
	json []byte
}

func newLean(texts []string, latency time.Duration, w *window) *lean {
	l := &lean{key: apitest.DefaultAPIKey, model: apitest.DefaultModel, latency: latency, w: w}
	l.bufs.New = func() any { return new(bytes.Buffer) }
	for _, t := range texts {
		b, _ := json.Marshal(t)
		l.texts = append(l.texts, leanText{t, b})
	}
	l.models, _ = json.Marshal(map[string]any{"object": "list", "data": []map[string]any{
		{"id": l.model, "object": "model", "created": 1700000000, "owned_by": "apitest"}}})
	return l
}

// serve serves ln until it fails.
func (l *lean) serve(ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", l.chat)
	mux.HandleFunc("GET /v1/models", l.listModels)
	srv := &http.Server{Handler: mux, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			l.conns.Add(1)
		}
	}}
	return srv.Serve(ln)
}

// Stats are the counters in apitest's form.
func (l *lean) Stats() apitest.Stats {
	st := apitest.Stats{
		Requests: l.requests.Load(), Served: l.served.Load(),
		PromptTokens: l.prompt.Load(), CompletionTokens: l.completion.Load(),
		InFlight: l.inFlight.Load(), MaxInFlight: l.maxInFlight.Load(),
		ModelRequests: l.modelRequests.Load(), Connections: l.conns.Load(),
		Outcomes: map[apitest.Outcome]int64{},
	}
	for o := range l.outcomes {
		if n := l.outcomes[o].Load(); n != 0 {
			st.Outcomes[apitest.Outcome(o)] = n
		}
	}
	return st
}

func (l *lean) authorized(r *http.Request) bool {
	h := r.Header["Authorization"]
	return len(h) == 1 && len(h[0]) == len("Bearer ")+len(l.key) &&
		h[0][:len("Bearer ")] == "Bearer " && h[0][len("Bearer "):] == l.key
}

func (l *lean) listModels(w http.ResponseWriter, r *http.Request) {
	l.modelRequests.Add(1)
	if !l.authorized(r) {
		leanError(w, http.StatusUnauthorized, "invalid_api_key", "Incorrect API key provided.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(l.models)
}

func (l *lean) chat(w http.ResponseWriter, r *http.Request) {
	l.requests.Add(1)
	n := l.inFlight.Add(1)
	defer l.inFlight.Add(-1)
	for m := l.maxInFlight.Load(); n > m && !l.maxInFlight.CompareAndSwap(m, n); m = l.maxInFlight.Load() {
	}
	if !l.authorized(r) {
		l.outcomes[apitest.OutcomeUnauthorized].Add(1)
		leanError(w, http.StatusUnauthorized, "invalid_api_key", "Incorrect API key provided.")
		return
	}
	buf := l.bufs.Get().(*bytes.Buffer)
	defer l.bufs.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		l.outcomes[apitest.OutcomeAbandoned].Add(1)
		return
	}
	req, err := scanChat(buf.Bytes())
	if err != nil {
		l.outcomes[apitest.OutcomeBadRequest].Add(1)
		leanError(w, http.StatusBadRequest, "invalid_body", err.Error())
		return
	}
	if string(req.model) != l.model {
		l.outcomes[apitest.OutcomeNotFound].Add(1)
		leanError(w, http.StatusNotFound, "model_not_found", "The model does not exist or you do not have access to it.")
		return
	}

	l.w.arrive()
	if l.latency > 0 {
		t := time.NewTimer(l.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			l.outcomes[apitest.OutcomeAbandoned].Add(1)
			return
		}
	}
	l.w.respond(time.Now())

	id := l.ids.Add(1)
	t := l.texts[id%int64(len(l.texts))]
	content, finish := t.json, "stop"
	completionTokens := apitest.Tokens(t.text)
	if req.maxTokens > 0 && completionTokens > req.maxTokens {
		// Cut as apitest does; the rare case, so encoded here.
		cut := t.text[:req.maxTokens*4]
		content, _ = json.Marshal(cut)
		finish, completionTokens = "length", apitest.Tokens(cut)
	}
	promptTokens := (req.contentBytes + 3) / 4

	// The response, into the request's buffer (the body is not needed
	// any more).
	out := buf.AvailableBuffer()[:0]
	out = append(out, `{"id":"chatcmpl-apitest-`...)
	out = strconv.AppendInt(out, id, 10)
	out = append(out, `","object":"chat.completion","created":`...)
	out = strconv.AppendInt(out, time.Now().Unix(), 10)
	out = append(out, `,"model":"`...)
	out = append(out, l.model...)
	out = append(out, `","system_fingerprint":"","choices":[{"index":0,"message":{"role":"assistant","content":`...)
	out = append(out, content...)
	out = append(out, `},"logprobs":null,"finish_reason":"`...)
	out = append(out, finish...)
	out = append(out, `"}],"usage":{"prompt_tokens":`...)
	out = strconv.AppendInt(out, int64(promptTokens), 10)
	out = append(out, `,"completion_tokens":`...)
	out = strconv.AppendInt(out, int64(completionTokens), 10)
	out = append(out, `,"total_tokens":`...)
	out = strconv.AppendInt(out, int64(promptTokens+completionTokens), 10)
	out = append(out, "}}"...)

	if r.Context().Err() != nil {
		l.outcomes[apitest.OutcomeAbandoned].Add(1)
		return
	}
	h := w.Header()
	h["Content-Type"] = leanJSON
	h["Content-Length"] = []string{strconv.Itoa(len(out))}
	if finish == "length" {
		l.outcomes[apitest.OutcomeTruncated].Add(1)
	} else {
		l.outcomes[apitest.OutcomeOK].Add(1)
	}
	l.served.Add(1)
	l.prompt.Add(int64(promptTokens))
	l.completion.Add(int64(completionTokens))
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

var leanJSON = []string{"application/json"}

func leanError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": msg, "type": "invalid_request_error", "param": nil, "code": code}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// leanRequest is what the lean server reads of a chat request.
type leanRequest struct {
	model        []byte
	maxTokens    int // max_completion_tokens, else max_tokens; 0: none
	contentBytes int // bytes of the "content" strings in the body, escapes included
}

// scanChat finds the values of a chat request's keys without decoding it.
func scanChat(body []byte) (leanRequest, error) {
	var req leanRequest
	model, ok := stringAfter(body, `"model":`)
	if !ok || len(model) == 0 {
		return req, errors.New("you must provide a model parameter")
	}
	req.model = model
	req.maxTokens = intAfter(body, `"max_tokens":`)
	if n := intAfter(body, `"max_completion_tokens":`); n > 0 {
		req.maxTokens = n
	}
	messages := 0
	for rest := body; ; {
		i := bytes.Index(rest, []byte(`"content":`))
		if i < 0 {
			break
		}
		rest = rest[i+len(`"content":`):]
		s, ok := stringAfter(rest, "")
		if ok {
			req.contentBytes += len(s)
			messages++
		}
	}
	if messages == 0 {
		return req, errors.New("'messages' must contain at least one message")
	}
	return req, nil
}

// stringAfter returns the raw (still escaped) contents of the JSON string
// that follows the first occurrence of key in b, blanks allowed between.
func stringAfter(b []byte, key string) ([]byte, bool) {
	if key != "" {
		i := bytes.Index(b, []byte(key))
		if i < 0 {
			return nil, false
		}
		b = b[i+len(key):]
	}
	b = skipBlanks(b)
	if len(b) == 0 || b[0] != '"' {
		return nil, false
	}
	b = b[1:]
	for i := 0; i < len(b); {
		j := bytes.IndexAny(b[i:], `"\`)
		if j < 0 {
			return nil, false
		}
		i += j
		if b[i] == '"' {
			return b[:i], true
		}
		i += 2 // a backslash and the character it escapes
	}
	return nil, false
}

// intAfter returns the non-negative integer that follows key in b, or 0.
func intAfter(b []byte, key string) int {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0
	}
	b = skipBlanks(b[i+len(key):])
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func skipBlanks(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}
