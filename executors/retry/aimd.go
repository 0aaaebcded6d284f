package retry

import (
	"container/list"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// aimdStep is the number of successes that add one slot to the effective
// concurrency.
const aimdStep = 8

// aimd is a FIFO semaphore whose limit moves between 1 and its cap:
// halved on a 429 (once per epoch and cooldown), raised by one every
// aimdStep successes.
type aimd struct {
	mu        sync.Mutex
	cap       int
	limit     int
	inUse     int
	successes int
	epoch     uint64
	decreased time.Time
	cooldown  time.Duration
	waiters   list.List // of *waiter
	current   atomic.Int64
}

type waiter struct {
	ready chan struct{}
	epoch uint64
}

func newAIMD(capacity int, cooldown time.Duration) *aimd {
	a := &aimd{cap: capacity, limit: capacity, cooldown: cooldown}
	a.current.Store(int64(capacity))
	return a
}

// acquire takes a slot; it returns the epoch of the limit it was granted
// under.
func (a *aimd) acquire(ctx context.Context) (uint64, error) {
	a.mu.Lock()
	if a.inUse < a.limit && a.waiters.Len() == 0 {
		a.inUse++
		e := a.epoch
		a.mu.Unlock()
		return e, nil
	}
	w := &waiter{ready: make(chan struct{})}
	el := a.waiters.PushBack(w)
	a.mu.Unlock()
	select {
	case <-w.ready:
		return w.epoch, nil
	case <-ctx.Done():
		a.mu.Lock()
		select {
		case <-w.ready: // granted meanwhile: hand it on
			a.inUse--
			a.grantLocked()
		default:
			a.waiters.Remove(el)
		}
		a.mu.Unlock()
		return 0, ctx.Err()
	}
}

func (a *aimd) release() {
	a.mu.Lock()
	a.inUse--
	a.grantLocked()
	a.mu.Unlock()
}

func (a *aimd) grantLocked() {
	for a.inUse < a.limit && a.waiters.Len() > 0 {
		w := a.waiters.Remove(a.waiters.Front()).(*waiter)
		a.inUse++
		w.epoch = a.epoch
		close(w.ready)
	}
}

// success counts a success toward the next additive increase.
func (a *aimd) success() {
	a.mu.Lock()
	if a.limit < a.cap {
		a.successes++
		if a.successes >= aimdStep {
			a.successes = 0
			a.limit++
			a.current.Store(int64(a.limit))
			a.grantLocked()
		}
	}
	a.mu.Unlock()
}

// throttle halves the limit after a 429 to a request sent under the
// current limit, at most once per cooldown.
func (a *aimd) throttle(epoch uint64) {
	a.mu.Lock()
	now := time.Now()
	if epoch == a.epoch && a.limit > 1 && now.Sub(a.decreased) >= a.cooldown {
		a.limit = max(1, a.limit/2)
		a.epoch++
		a.successes = 0
		a.decreased = now
		a.current.Store(int64(a.limit))
	}
	a.mu.Unlock()
}

// backoff is the wait before retry n (from 1): full jitter over
// [0, min(BackoffMax, BackoffBase·2^(n-1))).
func (p *Policy) backoff(n int) time.Duration {
	ceil := p.cfg.BackoffBase
	for i := 1; i < n && ceil < p.cfg.BackoffMax; i++ {
		ceil *= 2
	}
	ceil = min(ceil, p.cfg.BackoffMax)
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil)
}

// sleep waits d or until ctx ends (its error) or stop is closed
// (ErrStopped).
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return ErrStopped
	}
}
