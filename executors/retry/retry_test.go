package retry

import (
	"context"
	"errors"
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
