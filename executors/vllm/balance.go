package vllm

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
)

var _ http.RoundTripper = (*Pool)(nil)

// RoundTrip sends req to the live replica with the fewest requests in
// flight (ties rotate), rewriting its scheme and host. When the replica
// fails to answer and its /health confirms it is gone, it leaves the
// rotation and req goes to another; a replica that is still healthy
// passes the error up, for the client's retry policy. With no replica
// left, RoundTrip fails with the pool's error.
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	getBody := req.GetBody
	if req.Body != nil && req.Body != http.NoBody && getBody == nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	for attempt := 0; ; attempt++ {
		r := p.pick()
		if r == nil {
			if err := p.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s: no vLLM server is in the rotation", p.owner())
		}
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host, out.Host = "http", r.addr, r.addr
		if getBody != nil && (attempt > 0 || req.GetBody == nil) {
			body, err := getBody()
			if err != nil {
				r.inflight.Add(-1)
				return nil, err
			}
			out.Body = body
		}
		res, err := p.tr.RoundTrip(out)
		if err == nil {
			res.Body = &tracked{ReadCloser: res.Body, r: r}
			return res, nil
		}
		r.inflight.Add(-1)
		if req.Context().Err() != nil || attempt >= len(p.replicas) || p.healthy(req.Context(), r) {
			return nil, err
		}
		p.retire(r, fmt.Sprintf("stopped answering (%v)", err), nil)
	}
}

// pick takes the live replica with the fewest requests in flight and
// counts one more on it.
func (p *Pool) pick() *replica {
	p.pickMu.Lock()
	defer p.pickMu.Unlock()
	n := len(p.replicas)
	start := int(p.next.Add(1) % uint64(n))
	var best *replica
	for k := 0; k < n; k++ {
		r := p.replicas[(start+k)%n]
		if !p.alive(r) {
			continue
		}
		if best == nil || r.inflight.Load() < best.inflight.Load() {
			best = r
		}
	}
	if best != nil {
		best.inflight.Add(1)
	}
	return best
}

// tracked counts a response's request as in flight until its body is
// closed.
type tracked struct {
	io.ReadCloser
	r    *replica
	once sync.Once
}

func (t *tracked) Close() error {
	t.once.Do(func() { t.r.inflight.Add(-1) })
	return t.ReadCloser.Close()
}
