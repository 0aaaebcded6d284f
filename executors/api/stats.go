package api

import "sync/atomic"

// Stats are a client's counters since New, for progress lines.
type Stats struct {
	Calls     int64 // Complete calls started
	Succeeded int64 // calls that returned a response
	Attempts  int64 // HTTP attempts sent
	InFlight  int64 // HTTP attempts in flight now
	// Concurrency is the effective concurrency limit now (AIMD), at most
	// Config.Limits.Concurrency.
	Concurrency int
	Retries     Retries
	Permanent   int64 // calls failed by a permanent error
	Outages     int64 // calls failed after exhausting retries
	// PromptTokens and CompletionTokens sum the usage of the responses
	// returned.
	PromptTokens     int64
	CompletionTokens int64
}

// Retries count failed attempts that were retried or ended in an outage,
// by cause.
type Retries struct {
	RateLimited int64 // 429
	ServerError int64 // 5xx, 408, 409, 425
	Timeout     int64 // per-attempt timeout
	Connection  int64 // refused, reset or dropped connections
	Malformed   int64 // 200 without a usable body
}

// Total is the number of failed attempts of all causes.
func (r Retries) Total() int64 {
	return r.RateLimited + r.ServerError + r.Timeout + r.Connection + r.Malformed
}

type counters struct {
	calls, succeeded, attempts, inFlight, permanent, outages atomic.Int64
	promptTokens, completionTokens                           atomic.Int64
	rateLimited, server, timeout, connection, malformed      atomic.Int64
}

func (s *counters) count(c cause) {
	switch c {
	case causeRateLimit:
		s.rateLimited.Add(1)
	case causeServer:
		s.server.Add(1)
	case causeTimeout:
		s.timeout.Add(1)
	case causeConnection:
		s.connection.Add(1)
	case causeMalformed:
		s.malformed.Add(1)
	}
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	s := &c.stats
	return Stats{
		Calls:       s.calls.Load(),
		Succeeded:   s.succeeded.Load(),
		Attempts:    s.attempts.Load(),
		InFlight:    s.inFlight.Load(),
		Concurrency: int(c.sem.current.Load()),
		Retries: Retries{
			RateLimited: s.rateLimited.Load(),
			ServerError: s.server.Load(),
			Timeout:     s.timeout.Load(),
			Connection:  s.connection.Load(),
			Malformed:   s.malformed.Load(),
		},
		Permanent:        s.permanent.Load(),
		Outages:          s.outages.Load(),
		PromptTokens:     s.promptTokens.Load(),
		CompletionTokens: s.completionTokens.Load(),
	}
}
