package retry

import "sync/atomic"

// Stats are a policy's counters since New, for progress lines.
type Stats struct {
	Calls     int64 // calls started (Do and Reject)
	Succeeded int64 // calls that ended in a success
	Attempts  int64 // attempts sent
	InFlight  int64 // attempts in flight now
	// Concurrency is the effective concurrency limit now (AIMD), at most
	// Config.Concurrency.
	Concurrency int
	Retries     Retries
	Permanent   int64 // calls failed by a permanent error
	Outages     int64 // calls failed after exhausting retries
}

// Retries count failed attempts that were retried or ended in an outage,
// by cause.
type Retries struct {
	RateLimited int64 // 429
	ServerError int64 // 5xx, 408, 409, 425
	Timeout     int64 // per-attempt timeout
	Connection  int64 // refused, reset or dropped connections
	Malformed   int64 // responses without a usable body
}

// Total is the number of failed attempts of all causes.
func (r Retries) Total() int64 {
	return r.RateLimited + r.ServerError + r.Timeout + r.Connection + r.Malformed
}

type counters struct {
	calls, succeeded, attempts, inFlight, permanent, outages atomic.Int64
	rateLimited, server, timeout, connection, malformed      atomic.Int64
}

func (s *counters) count(c Cause) {
	switch c {
	case RateLimit:
		s.rateLimited.Add(1)
	case Server:
		s.server.Add(1)
	case Timeout:
		s.timeout.Add(1)
	case Connection:
		s.connection.Add(1)
	case Malformed:
		s.malformed.Add(1)
	}
}

// Stats returns a snapshot of the policy's counters.
func (p *Policy) Stats() Stats {
	s := &p.stats
	return Stats{
		Calls:       s.calls.Load(),
		Succeeded:   s.succeeded.Load(),
		Attempts:    s.attempts.Load(),
		InFlight:    s.inFlight.Load(),
		Concurrency: int(p.sem.current.Load()),
		Retries: Retries{
			RateLimited: s.rateLimited.Load(),
			ServerError: s.server.Load(),
			Timeout:     s.timeout.Load(),
			Connection:  s.connection.Load(),
			Malformed:   s.malformed.Load(),
		},
		Permanent: s.permanent.Load(),
		Outages:   s.outages.Load(),
	}
}
