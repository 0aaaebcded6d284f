package retry

import (
	"context"
	"testing"
	"time"
)

func TestAIMD(t *testing.T) {
	a := newAIMD(16, 0)
	e, err := a.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a.release()
	a.throttle(e)
	a.throttle(e) // same epoch: one decrease only
	if a.limit != 8 {
		t.Fatalf("limit %d after a burst of 429s from one epoch, want 8", a.limit)
	}
	e2, _ := a.acquire(context.Background())
	a.release()
	a.throttle(e2)
	if a.limit != 4 {
		t.Fatalf("limit %d, want 4", a.limit)
	}
	for range 100 * aimdStep {
		a.success()
	}
	if a.limit != 16 {
		t.Fatalf("limit %d after many successes, want the cap 16", a.limit)
	}

	// Cooldown: a second decrease within it is ignored.
	b := newAIMD(16, time.Hour)
	b.throttle(0)
	b.throttle(1)
	if b.limit != 8 {
		t.Fatalf("limit %d, want 8 (cooldown)", b.limit)
	}

	// Waiters are granted as the limit allows, and a cancelled waiter
	// gives back a slot granted at the moment it gave up.
	c := newAIMD(1, 0)
	c.acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.acquire(ctx); err == nil {
		t.Fatal("acquired past the limit")
	}
	done := make(chan struct{})
	go func() {
		c.acquire(context.Background())
		close(done)
	}()
	time.Sleep(10 * time.Millisecond)
	c.release()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("waiter not granted after release")
	}
	if c.inUse != 1 || c.waiters.Len() != 0 {
		t.Fatalf("inUse %d waiters %d", c.inUse, c.waiters.Len())
	}
}

func TestBackoff(t *testing.T) {
	c := New(Config{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	for n := 1; n < 40; n++ {
		ceil := min(50*time.Millisecond, 10*time.Millisecond<<min(n-1, 10))
		for range 20 {
			if d := c.backoff(n); d < 0 || d >= ceil {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", n, d, ceil)
			}
		}
	}
}
