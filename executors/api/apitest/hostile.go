package apitest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Hostile is a deliberate misbehaviour of the server's chat completions:
// each mode is one way a buggy or hostile provider has been seen to break
// a client's budget, memory or messages (docs/budgets.md). Set it with
// Options.Hostile or SetHostile; HostileNone answers honestly.
type Hostile int

// The hostile modes.
const (
	HostileNone Hostile = iota
	// HostileNegativeUsage reports prompt_tokens -100000000.
	HostileNegativeUsage
	// HostileFractionalUsage reports prompt_tokens 12.5.
	HostileFractionalUsage
	// HostileHugeUsage reports completion_tokens 1e12.
	HostileHugeUsage
	// HostileOverReport reports OverReportTokens prompt tokens (20,000
	// when zero), beyond what the prompt's bytes allow.
	HostileOverReport
	// HostileZeroUsage reports zero usage for a non-empty completion.
	HostileZeroUsage
	// HostileEndlessBody answers 200 with a chunked body that never ends
	// (until the client goes away).
	HostileEndlessBody
	// HostileHugeBody answers 200 with a well-formed completion of
	// HugeBodyBytes bytes (100 MB when zero).
	HostileHugeBody
	// HostileRetryAfterOverflow answers 429 with Retry-After: 9200000000.
	HostileRetryAfterOverflow
	// HostileErrorIn200 answers 200 with an error object, an invalid key
	// that echoes the key, instead of a completion.
	HostileErrorIn200
	// HostileRateLimitIn200 answers 200 with a rate-limit error object.
	HostileRateLimitIn200
)

// SetHostile switches the server's hostile mode.
func (s *Server) SetHostile(h Hostile) {
	s.mu.Lock()
	s.opts.Hostile = h
	s.mu.Unlock()
}

func (s *Server) hostile() Hostile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Hostile
}

// hostileUsage rewrites the usage of an honest answer; ok is false when
// the mode is not about usage.
func (s *Server) hostileUsage(h Hostile, prompt, completion int) (json.RawMessage, bool) {
	var p, c string
	switch h {
	case HostileNegativeUsage:
		p, c = "-100000000", strconv.Itoa(completion)
	case HostileFractionalUsage:
		p, c = "12.5", strconv.Itoa(completion)
	case HostileHugeUsage:
		p, c = strconv.Itoa(prompt), "1e12"
	case HostileOverReport:
		n := s.opts.OverReportTokens
		if n == 0 {
			n = 20000
		}
		p, c = strconv.Itoa(n), strconv.Itoa(completion)
	case HostileZeroUsage:
		p, c = "0", "0"
	default:
		return nil, false
	}
	return json.RawMessage(`{"prompt_tokens":` + p + `,"completion_tokens":` + c + `}`), true
}

// serveHostileBody answers the modes that are about the response itself;
// it reports whether it answered.
func (s *Server) serveHostileBody(h Hostile, w http.ResponseWriter, r *http.Request) bool {
	switch h {
	case HostileEndlessBody:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"id":"chatcmpl-endless","choices":[{"index":0,"message":{"role":"assistant","content":"`))
		chunk := []byte(strings.Repeat("a", 64<<10))
		fl, _ := w.(http.Flusher)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				break
			}
			if fl != nil {
				fl.Flush()
			}
		}
		s.outcomes[OutcomeAbandoned].Add(1)
		return true
	case HostileHugeBody:
		n := s.opts.HugeBodyBytes
		if n == 0 {
			n = 100 << 20
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"id":"chatcmpl-huge","model":"` + DefaultModel + `","choices":[{"index":0,"message":{"role":"assistant","content":"`))
		chunk := []byte(strings.Repeat("a", 64<<10))
		for left := n; left > 0 && r.Context().Err() == nil; left -= len(chunk) {
			if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
				return true
			}
		}
		w.Write([]byte(`"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":` + strconv.Itoa(n/4) + `}}`))
		s.outcomes[OutcomeOK].Add(1)
		return true
	case HostileRetryAfterOverflow:
		s.outcomes[OutcomeRateLimited].Add(1)
		w.Header().Set("Retry-After", "9200000000")
		writeError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached. Please try again later.")
		return true
	case HostileErrorIn200:
		s.outcomes[OutcomeUnauthorized].Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"error": map[string]any{
			"message": "Incorrect API key provided: " + r.Header.Get("Authorization") + ". You can find your API key at your provider's dashboard.",
			"type":    "invalid_request_error", "code": "invalid_api_key"}})
		return true
	case HostileRateLimitIn200:
		s.outcomes[OutcomeRateLimited].Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"error": map[string]any{
			"message": "Rate limit reached for requests per min. Please try again in 20ms.",
			"type":    "requests", "code": "rate_limit_exceeded"}})
		return true
	}
	return false
}
