// Package retry is the call policy shared by agora's provider clients
// (executors/api over HTTP, plugins/host over gRPC): a concurrency cap that
// backs off adaptively (AIMD), requests- and tokens-per-minute buckets, a
// per-attempt timeout, retries of transient failures with exponential
// backoff and full jitter, the provider's Retry-After on a rate limit, and
// outage detection. It knows no protocol: a client describes each attempt's
// outcome and the Policy decides what happens next.
//
// # Limits
//
// Config caps concurrency (16 when zero), requests per minute and tokens
// per minute (unlimited when zero). The RPM and TPM buckets refill
// continuously and hold one BurstWindow's allowance (1 s when zero):
// rpm/60 requests and tpm/60 tokens at 1 s, at least one request. Every
// attempt, retries included, takes one request and its tokens from them
// before it is sent; an attempt charging more tokens than the bucket
// holds takes them a bucketful at a time, so that the rate holds. The
// buckets start full.
//
// Why not a full minute's allowance: the providers enforce their
// per-minute limits over shorter windows. OpenAI says a per-minute limit
// may be enforced per second (60,000 requests a minute as 1,000 a
// second); Anthropic's limits are a continuously refilled bucket that may
// likewise be enforced over shorter intervals, so that a short burst at a
// high rate is refused even under the minute's limit; OpenAI-compatible
// hosts (Together, vLLM behind a gateway) follow OpenAI. A bucket that
// started with a full minute would send that minute's requests at once
// and collect 429s. One second's allowance is the convention all three
// accept; BurstWindow changes it. After a
// rate-limited attempt the Policy waits what the provider asked (plus up to
// 10% jitter) or backs off, and halves its effective concurrency (at most
// once per BackoffBase, and only for a rate limit on an attempt sent under
// the current limit); every 8 successes add one slot back, never above the
// cap.
//
// # Bounds
//
// A Retry-After is honoured up to MaxRetryAfter (10 minutes): a longer or
// nonsensical one (negative, overflowing) counts as MaxRetryAfter, which
// at the default OutageAfter ends the call as an outage rather than
// sleeping for days or, overflowed, not at all. A backoff never exceeds
// BackoffMax, and the jitter added to a Retry-After is at most 10% of it.
//
// # Stopping
//
// A context made by WithStop carries a stop signal (agora's first Ctrl-C):
// once it is closed, Do starts no new attempt — neither a first attempt
// still waiting for a slot or a bucket nor a retry — and returns
// ErrStopped, while an attempt already sent runs to its end so that its
// response is not lost.
package retry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Config's zero fields.
const (
	DefaultConcurrency    = 16
	DefaultAttemptTimeout = 120 * time.Second
	DefaultMaxRetries     = 8
	DefaultOutageAfter    = 10 * time.Minute
	DefaultBackoffBase    = time.Second
	DefaultBackoffMax     = 60 * time.Second
	DefaultBurstWindow    = time.Second
	// MaxRetryAfter bounds the wait a rate limit may ask for.
	MaxRetryAfter = 10 * time.Minute
)

// ErrStopped is returned by Do when the stop signal of its context (see
// WithStop) ended the call before an attempt succeeded.
var ErrStopped = errors.New("stopped: no new attempts after an interrupt")

type stopKey struct{}

// WithStop returns ctx carrying stop: once stop is closed, Do makes no new
// attempt of a call made with the returned context.
func WithStop(ctx context.Context, stop <-chan struct{}) context.Context {
	if stop == nil {
		return ctx
	}
	return context.WithValue(ctx, stopKey{}, stop)
}

// stopOf is the stop signal ctx carries; nil (never closed) when none.
func stopOf(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stopKey{}).(<-chan struct{})
	return ch
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// clampRetryAfter bounds what a provider asked for to [0, MaxRetryAfter].
func clampRetryAfter(d time.Duration) time.Duration {
	if d < 0 || d > MaxRetryAfter {
		return MaxRetryAfter
	}
	return d
}

// Config shapes a Policy.
type Config struct {
	// Concurrency caps the attempts in flight (16 when zero); RPM and TPM
	// cap requests and tokens per minute (unlimited when zero).
	Concurrency, RPM, TPM int
	// AttemptTimeout bounds one attempt; 120s when zero.
	AttemptTimeout time.Duration
	// MaxRetries bounds the retries of one call after transient failures
	// other than rate limits; 8 when zero, none when negative. Rate limits
	// are bounded separately (4×MaxRetries, at least 8) and by OutageAfter.
	MaxRetries int
	// OutageAfter fails a retrying call once no call of this Policy has
	// succeeded for this long (counted from the call's start at the
	// earliest); 10m when zero.
	OutageAfter time.Duration
	// BurstWindow is the span of allowance a full RPM or TPM bucket
	// holds (1s when zero; a minute is what the per-minute limit itself
	// allows, if the provider enforces it over whole minutes).
	BurstWindow time.Duration
	// BackoffBase and BackoffMax shape the exponential backoff with full
	// jitter between retries: a wait drawn from [0, min(BackoffMax,
	// BackoffBase·2^(n-1))) before retry n; 1s and 60s when zero.
	BackoffBase, BackoffMax time.Duration
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	} else if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	if c.OutageAfter <= 0 {
		c.OutageAfter = DefaultOutageAfter
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BurstWindow <= 0 {
		c.BurstWindow = DefaultBurstWindow
	}
	if c.BackoffMax < c.BackoffBase {
		c.BackoffMax = c.BackoffBase
	}
	return c
}

// Cause classifies a transient failure, for retry decisions and Stats.
type Cause int

// The causes of a transient failure.
const (
	None       Cause = iota
	RateLimit        // 429 or the provider's equivalent
	Server           // 5xx, 408, 409, 425, overloaded
	Timeout          // the attempt's timeout
	Connection       // no response: refused, reset, dropped, a crashed plugin
	Malformed        // a response without a usable body
)

// Outcome is what one attempt came to. The zero Outcome is a success.
type Outcome struct {
	// Cause of a transient failure; None for a success or a permanent
	// failure.
	Cause Cause
	// Permanent failures end the call at once: retrying cannot help.
	Permanent bool
	// RetryAfter is what a rate limit asked the client to wait; 0 when it
	// did not say.
	RetryAfter time.Duration
}

// OK reports whether the attempt succeeded.
func (o Outcome) OK() bool { return o.Cause == None && !o.Permanent }

// Result is how a call ended.
type Result struct {
	// Attempts made, the last one included.
	Attempts int
	// Last is the outcome of the last attempt: OK, permanent, or the
	// transient failure the call gave up on.
	Last Outcome
	// Outage is set when the call gave up on a transient failure (retries
	// exhausted, or OutageAfter without any success).
	Outage bool
}

// Policy applies a Config to the calls of one client. It is safe for
// concurrent use; its limits are shared by all its callers.
type Policy struct {
	cfg         Config
	sem         *aimd
	rpm, tpm    *rate.Limiter
	lastSuccess atomic.Int64 // unix nanos of the last success
	stats       counters
}

// New makes a Policy; cfg's zero fields take the defaults.
func New(cfg Config) *Policy {
	cfg = cfg.WithDefaults()
	p := &Policy{cfg: cfg, sem: newAIMD(cfg.Concurrency, cfg.BackoffBase)}
	if cfg.RPM > 0 {
		p.rpm = rate.NewLimiter(rate.Limit(float64(cfg.RPM)/60), Burst(cfg.RPM, cfg.BurstWindow))
	}
	if cfg.TPM > 0 {
		p.tpm = rate.NewLimiter(rate.Limit(float64(cfg.TPM)/60), Burst(cfg.TPM, cfg.BurstWindow))
	}
	return p
}

// Burst is what a full bucket of a per-minute limit holds: the allowance
// of window, rounded up, at least 1.
func Burst(perMinute int, window time.Duration) int {
	return max(1, int(math.Ceil(float64(perMinute)*window.Seconds()/60)))
}

// Config is the policy's configuration with defaults applied.
func (p *Policy) Config() Config { return p.cfg }

// Do makes one call: attempts of try, each under the limits and bounded by
// AttemptTimeout through the context try receives, until one succeeds or
// fails permanently, or the call gives up (Result.Outage). tokens is what
// each attempt takes from the TPM bucket. Do returns ctx's error when ctx
// ends first (a failed attempt while ctx has ended counts as ctx ending),
// and ErrStopped when ctx's stop signal (WithStop) ends it before an
// attempt succeeded.
func (p *Policy) Do(ctx context.Context, tokens int, try func(actx context.Context) Outcome) (Result, error) {
	start := time.Now()
	p.stats.calls.Add(1)
	stop := stopOf(ctx)
	var attempts, retries, throttled int
	for {
		attempts++
		o, err := p.attempt(ctx, stop, tokens, try)
		if err != nil { // ctx ended
			return Result{Attempts: attempts}, err
		}
		res := Result{Attempts: attempts, Last: o}
		if o.OK() {
			p.lastSuccess.Store(time.Now().UnixNano())
			p.stats.succeeded.Add(1)
			return res, nil
		}
		if o.Permanent {
			p.stats.permanent.Add(1)
			return res, nil
		}
		p.stats.count(o.Cause)
		var wait time.Duration
		if o.Cause == RateLimit {
			throttled++
			if throttled > max(8, 4*p.cfg.MaxRetries) {
				p.stats.outages.Add(1)
				res.Outage = true
				return res, nil
			}
			if o.RetryAfter != 0 {
				// The provider's word (bounded), plus up to 10% so
				// that the callers it stopped together do not return
				// together.
				ra := clampRetryAfter(o.RetryAfter)
				wait = ra + rand.N(ra/10+1)
			} else {
				wait = p.backoff(throttled)
			}
		} else {
			retries++
			if retries > p.cfg.MaxRetries {
				p.stats.outages.Add(1)
				res.Outage = true
				return res, nil
			}
			wait = p.backoff(retries)
		}
		// An outage: no call of this policy has succeeded for OutageAfter
		// (counted from this call's start at the earliest), or will not
		// have by the end of the wait.
		ref := time.Unix(0, max(p.lastSuccess.Load(), start.UnixNano()))
		if time.Since(ref)+wait > p.cfg.OutageAfter {
			p.stats.outages.Add(1)
			res.Outage = true
			return res, nil
		}
		if err := sleep(ctx, stop, wait); err != nil {
			return Result{Attempts: attempts}, err
		}
	}
}

// Reject counts a call refused before any attempt (a request that cannot
// be sent), as a permanent failure.
func (p *Policy) Reject() {
	p.stats.calls.Add(1)
	p.stats.permanent.Add(1)
}

// attempt makes one attempt under the limits. It returns its outcome, or
// ctx's error.
func (p *Policy) attempt(ctx context.Context, stop <-chan struct{}, tokens int, try func(context.Context) Outcome) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		return Outcome{}, err
	}
	if stopped(stop) {
		return Outcome{}, ErrStopped
	}
	// Waiting for a slot or a bucket ends with the stop signal too.
	wctx := ctx
	if stop != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-stop:
				cancel()
			case <-wctx.Done():
			}
		}()
	}
	// The slot is taken first and held while waiting for the buckets, so
	// that a request leaves as soon as its tokens are there.
	epoch, err := p.sem.acquire(wctx)
	if err != nil {
		return Outcome{}, stopErr(ctx, stop, err)
	}
	defer p.sem.release()
	if p.rpm != nil {
		if err := p.rpm.Wait(wctx); err != nil {
			return Outcome{}, stopErr(ctx, stop, ctxErr(wctx, err))
		}
	}
	if p.tpm != nil {
		// More than a bucketful: a bucketful at a time.
		for left := tokens; left > 0; {
			n := min(left, p.tpm.Burst())
			if err := p.tpm.WaitN(wctx, n); err != nil {
				return Outcome{}, stopErr(ctx, stop, ctxErr(wctx, err))
			}
			left -= n
		}
	}
	if stopped(stop) {
		return Outcome{}, ErrStopped
	}

	p.stats.attempts.Add(1)
	p.stats.inFlight.Add(1)
	actx, cancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
	o := try(actx)
	cancel()
	p.stats.inFlight.Add(-1)

	if o.OK() {
		p.sem.success()
		return o, nil
	}
	if ctx.Err() != nil {
		return Outcome{}, ctx.Err()
	}
	if o.Cause == RateLimit {
		p.sem.throttle(epoch)
	}
	return o, nil
}

// stopErr is ErrStopped when the stop signal, not ctx, ended a wait.
func stopErr(ctx context.Context, stop <-chan struct{}, err error) error {
	if ctx.Err() == nil && stopped(stop) {
		return ErrStopped
	}
	return err
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// rate.Limiter refuses a wait that would outlast ctx's deadline.
	return context.DeadlineExceeded
}

// The bound on a response's size, shared by the HTTP client and plugins
// (docs/budgets.md).
const (
	// BytesPerToken bounds the bytes one generated token can take in a
	// response: the longest tokens of the BPE vocabularies in use are
	// under 128 bytes, and JSON escapes a byte as at most 6 (\u00XX); 256
	// leaves room for both.
	BytesPerToken = 256
	// ResponseEnvelope is what a response may hold beyond its tokens: the
	// envelope, ids, usage, and the provider's extras.
	ResponseEnvelope = 1 << 20
	// DefaultResponseCap bounds a response whose request sets no token
	// limit.
	DefaultResponseCap = 64 << 20
)

// ResponseCap is the most bytes a response to a request allowing tokens
// new tokens (0: no limit) may take: ResponseEnvelope + BytesPerToken per
// token, or DefaultResponseCap.
func ResponseCap(tokens int64) int64 {
	if tokens <= 0 {
		return DefaultResponseCap
	}
	return ResponseEnvelope + min(tokens, 1<<26)*BytesPerToken
}
