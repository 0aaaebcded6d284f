package retry

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func fast() Config {
	return Config{BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, MaxRetries: 3}
}

func TestDoRetriesTransientToSuccess(t *testing.T) {
	p := New(fast())
	n := 0
	r, err := p.Do(context.Background(), 1, func(context.Context) Outcome {
		n++
		if n < 3 {
			return Outcome{Cause: Server}
		}
		return Outcome{}
	})
	if err != nil || !r.Last.OK() || r.Attempts != 3 || r.Outage {
		t.Fatalf("result %+v err %v", r, err)
	}
	st := p.Stats()
	if st.Retries.ServerError != 2 || st.Succeeded != 1 || st.Attempts != 3 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDoPermanentNotRetried(t *testing.T) {
	p := New(fast())
	r, err := p.Do(context.Background(), 1, func(context.Context) Outcome { return Outcome{Permanent: true} })
	if err != nil || r.Attempts != 1 || !r.Last.Permanent || r.Outage {
		t.Fatalf("result %+v err %v", r, err)
	}
	if p.Stats().Permanent != 1 {
		t.Fatalf("stats %+v", p.Stats())
	}
}

func TestDoGivesUp(t *testing.T) {
	p := New(fast())
	r, err := p.Do(context.Background(), 1, func(context.Context) Outcome { return Outcome{Cause: Connection} })
	if err != nil || r.Attempts != 4 || !r.Outage || r.Last.Cause != Connection {
		t.Fatalf("result %+v err %v", r, err)
	}
	// Outage detection: nothing succeeded for OutageAfter.
	p = New(Config{BackoffBase: 20 * time.Millisecond, OutageAfter: 10 * time.Millisecond})
	r, _ = p.Do(context.Background(), 1, func(context.Context) Outcome { return Outcome{Cause: RateLimit, RetryAfter: time.Second} })
	if !r.Outage || r.Attempts != 1 {
		t.Fatalf("result %+v: a wait past OutageAfter must end the call", r)
	}
}

func TestDoHonoursRetryAfterAndTimeout(t *testing.T) {
	p := New(Config{AttemptTimeout: 20 * time.Millisecond, BackoffBase: time.Millisecond})
	var times []time.Time
	start := time.Now()
	r, err := p.Do(context.Background(), 1, func(actx context.Context) Outcome {
		times = append(times, time.Now())
		switch len(times) {
		case 1:
			return Outcome{Cause: RateLimit, RetryAfter: 100 * time.Millisecond}
		case 2:
			<-actx.Done() // a hung attempt is cut off by the attempt timeout
			return Outcome{Cause: Timeout}
		}
		return Outcome{}
	})
	if err != nil || !r.Last.OK() || r.Attempts != 3 {
		t.Fatalf("result %+v err %v", r, err)
	}
	if d := times[1].Sub(times[0]); d < 100*time.Millisecond {
		t.Errorf("retried after %v, before the Retry-After of 100ms", d)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestDoContextEnds(t *testing.T) {
	p := New(fast())
	ctx, cancel := context.WithCancel(context.Background())
	_, err := p.Do(ctx, 1, func(context.Context) Outcome {
		cancel()
		return Outcome{Cause: Connection}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

// A Retry-After that overflowed (negative) or asks for years must not
// turn into a storm of immediate retries: it is bounded by MaxRetryAfter,
// which is past OutageAfter here, so the call ends after one attempt.
func TestDoClampsRetryAfter(t *testing.T) {
	for _, ra := range []time.Duration{-5 * time.Second, time.Duration(math.MaxInt64), 9200000000 * time.Second / 1000 * 1000} {
		p := New(Config{BackoffBase: time.Millisecond, OutageAfter: time.Minute})
		start := time.Now()
		r, err := p.Do(context.Background(), 1, func(context.Context) Outcome { return Outcome{Cause: RateLimit, RetryAfter: ra} })
		if err != nil || r.Attempts != 1 || !r.Outage || time.Since(start) > time.Second {
			t.Fatalf("Retry-After %d: %+v, err %v, after %v: want one attempt, then an outage", ra, r, err, time.Since(start))
		}
	}
	if clampRetryAfter(time.Hour) != MaxRetryAfter || clampRetryAfter(time.Second) != time.Second {
		t.Fatal("clampRetryAfter")
	}
}

// After the stop signal no new attempt starts: not a retry waiting out
// its backoff, not a first attempt waiting for a slot.
func TestDoStopsRetrying(t *testing.T) {
	p := New(Config{BackoffBase: 10 * time.Second, BackoffMax: 10 * time.Second, Concurrency: 1})
	stop := make(chan struct{})
	ctx := WithStop(context.Background(), stop)
	attempts := 0
	go func() { time.Sleep(50 * time.Millisecond); close(stop) }()
	start := time.Now()
	_, err := p.Do(ctx, 1, func(context.Context) Outcome {
		attempts++
		return Outcome{Cause: Server}
	})
	if !errors.Is(err, ErrStopped) || attempts != 1 || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %d attempts in %v: want ErrStopped after 1", err, attempts, time.Since(start))
	}
	// A call that never got a slot makes no attempt.
	hold := make(chan struct{})
	go p.Do(context.Background(), 1, func(context.Context) Outcome { <-hold; return Outcome{} })
	time.Sleep(20 * time.Millisecond)
	stop2 := make(chan struct{})
	go func() { time.Sleep(20 * time.Millisecond); close(stop2) }()
	called := false
	_, err = p.Do(WithStop(context.Background(), stop2), 1, func(context.Context) Outcome { called = true; return Outcome{} })
	close(hold)
	if !errors.Is(err, ErrStopped) || called {
		t.Fatalf("err %v, called %v: want ErrStopped without an attempt", err, called)
	}
}

// TestBurst: a full bucket holds one window's allowance, rounded up, at
// least one.
func TestBurst(t *testing.T) {
	for _, c := range []struct {
		perMinute int
		window    time.Duration
		want      int
	}{
		{600, time.Second, 10}, {5000, time.Second, 84}, {30, time.Second, 1}, {1, time.Second, 1},
		{600, time.Minute, 600}, {400000, time.Second, 6667},
	} {
		if got := Burst(c.perMinute, c.window); got != c.want {
			t.Errorf("Burst(%d, %s) = %d, want %d", c.perMinute, c.window, got, c.want)
		}
	}
	if New(Config{}).Config().BurstWindow != time.Second {
		t.Error("the default window is not 1s")
	}
}

// TestBucketsBurstOneSecond: at 600 RPM the first 10 attempts leave at
// once, and the next 10 at 10 a second, not the minute's 600 at once (the
// providers enforce per-minute limits over shorter windows); at 600 TPM (a
// bucket of 10 tokens) an attempt charging 30 takes its 30, a bucketful at
// a time: the rate holds.
func TestBucketsBurstOneSecond(t *testing.T) {
	t.Parallel()
	p := New(Config{RPM: 600, Concurrency: 64})
	start := time.Now()
	var sent []time.Duration
	for range 20 {
		if _, err := p.Do(context.Background(), 1, func(context.Context) Outcome {
			sent = append(sent, time.Since(start))
			return Outcome{}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if sent[9] > 300*time.Millisecond {
		t.Errorf("the 10th attempt left after %v: the bucket should start with one second's 10", sent[9])
	}
	if sent[19] < 900*time.Millisecond {
		t.Errorf("the 20th attempt left after %v: 10 beyond the burst at 10/s take about 1s", sent[19])
	}

	p = New(Config{TPM: 600})
	start = time.Now()
	for range 2 {
		if _, err := p.Do(context.Background(), 30, func(context.Context) Outcome { return Outcome{} }); err != nil {
			t.Fatal(err)
		}
	}
	// 60 tokens at 10/s with 10 in the full bucket: 5 s at least.
	if el := time.Since(start); el < 4500*time.Millisecond || el > 9*time.Second {
		t.Errorf("two attempts of 30 tokens at 600 TPM took %v, want about 5s", el)
	}
}
