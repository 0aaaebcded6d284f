// Command server runs the OpenAI-compatible stand-in server of
// executors/api/apitest on a loopback port for the apply benchmarks
// (bench/apply.sh, docs/benchmarks.md), in its own process so that the
// CPU time of a client under test is not mixed with the server's.
//
// It prints three lines on stdout and then serves until SIGINT or SIGTERM:
//
//	URL=http://127.0.0.1:PORT/v1      the base URL clients are given
//	KEY=sk-apitest-…                  the key it accepts
//	STATS=http://127.0.0.1:PORT2      its control listener
//
// The control listener (also on 127.0.0.1) answers GET /stats with the
// server's counters as JSON and POST /reset, which starts a new
// measurement window: the arrival time of every chat-completion request
// and the time of the last response are kept from the last reset on.
// GET /stats reports the window from the first arrival to the last
// response and the requests that arrived in it; GET /stats?tail=20s
// reports instead the arrivals of the last 20 seconds before the last
// arrival, the steady rate of a run whose start is a burst (a client's
// requests-per-minute bucket starts full); ?hist=100ms adds the
// arrivals per 100 ms from the first. Stats also carry the
// server process's own CPU time.
//
// The model is played by -respond: "math-instance" answers every request
// with a valid math instance-generation completion in agora's free-form
// format (generation.ExampleCompletion, varied over 256 instances), which
// agora's parser and validator accept whatever the prompt;
// "math-response" with a valid math response-generation completion;
// "echo" echoes the last message.
//
// With -lean it serves the same contract, counters and /stats from a
// minimal server (lean.go) instead of apitest, at about half apitest's
// CPU per request: the instrument competes for the CPU of the client
// under test on a small machine. -lean takes no faults, no -rpm and no
// echo.
//
//	go run ./bench/apply/server -latency 100ms
//	go run ./bench/apply/server -lean -latency 100ms
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/prompts"
)

func main() {
	var (
		latency  = flag.Duration("latency", 100*time.Millisecond, "delay of every chat completion")
		rpm      = flag.Int("rpm", 0, "answer 429 above this many requests per minute (server side; 0 = no limit)")
		respond  = flag.String("respond", "math-instance", "the model: math-instance, math-response or echo")
		seed     = flag.Int64("seed", 1, "seed of the fault draws")
		rate429  = flag.Float64("fault-429", 0, "probability of a 429 with Retry-After")
		rate500  = flag.Float64("fault-500", 0, "probability of a 500")
		drop     = flag.Float64("fault-drop", 0, "probability of a dropped connection")
		bad      = flag.Float64("fault-malformed", 0, "probability of a malformed JSON body")
		trunc    = flag.Float64("fault-truncated", 0, "probability of a truncated completion (finish_reason length)")
		retry    = flag.Duration("retry-after", 100*time.Millisecond, "what an injected 429 asks the client to wait")
		arrivals = flag.Int("max-arrivals", 1<<21, "arrival times kept per window (8 bytes each)")
		leanMode = flag.Bool("lean", false, "serve with the lean server (lean.go) instead of apitest: far less CPU per request; no faults, no -rpm, no echo")
	)
	flag.Parse()

	texts, err := completions(*respond)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(2)
	}
	w := &window{max: *arrivals}
	if *leanMode {
		if texts == nil || *rpm > 0 || *rate429+*rate500+*drop+*bad+*trunc > 0 {
			fmt.Fprintln(os.Stderr, "server: -lean serves math-instance or math-response, without -rpm or faults")
			os.Exit(2)
		}
		l := newLean(texts, *latency, w)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		go func() {
			err := l.serve(ln)
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}()
		run("http://"+ln.Addr().String()+"/v1", l.key, w, l.Stats)
		return
	}
	var n atomic.Uint64
	opts := apitest.Options{
		Seed: *seed,
		Faults: apitest.Faults{RateLimit: *rate429, ServerError: *rate500, Drop: *drop,
			Malformed: *bad, Truncated: *trunc, RetryAfter: *retry},
		RateLimit: apitest.RateLimit{RPM: *rpm},
		// LatencyFunc runs once per request that passed the key, body and
		// model checks, before the delay: the request's arrival.
		LatencyFunc: func(apitest.ChatRequest) time.Duration {
			w.arrive()
			return *latency
		},
	}
	if texts != nil {
		opts.Responder = func(apitest.ChatRequest) string {
			w.respond(time.Now())
			return texts[n.Add(1)%uint64(len(texts))]
		}
	} else {
		opts.Responder = func(r apitest.ChatRequest) string {
			w.respond(time.Now())
			return "echo: " + r.Messages[len(r.Messages)-1].Content
		}
	}
	srv := apitest.New(opts)
	defer srv.Close()
	run(srv.URL(), srv.APIKey(), w, srv.Stats)
}

// run serves the control listener, prints the three lines and waits for
// a signal.
func run(url, key string, w *window, serverStats func() apitest.Stats) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(rw http.ResponseWriter, r *http.Request) {
		var tail time.Duration
		if t := r.URL.Query().Get("tail"); t != "" {
			var err error
			if tail, err = time.ParseDuration(t); err != nil {
				http.Error(rw, err.Error(), http.StatusBadRequest)
				return
			}
		}
		out := w.stats(tail)
		if h := r.URL.Query().Get("hist"); h != "" {
			d, err := time.ParseDuration(h)
			if err != nil || d <= 0 {
				http.Error(rw, fmt.Sprintf("hist=%q: want a positive duration", h), http.StatusBadRequest)
				return
			}
			out.Histogram = w.histogram(d)
		}
		out.Server = serverStats()
		out.Outcomes = map[string]int64{}
		for o, k := range out.Server.Outcomes {
			out.Outcomes[o.String()] = k
		}
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
			out.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		}
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(out)
	})
	mux.HandleFunc("POST /reset", func(rw http.ResponseWriter, r *http.Request) {
		w.reset()
		rw.WriteHeader(http.StatusNoContent)
	})
	go http.Serve(ln, mux)

	fmt.Printf("URL=%s\nKEY=%s\nSTATS=http://%s\n", url, key, ln.Addr())
	os.Stdout.Sync()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
}

// completions returns the texts the model answers with; nil means echo.
func completions(respond string) ([]string, error) {
	var method string
	switch respond {
	case "echo":
		return nil, nil
	case "math-instance":
		method = generation.MethodInstance
	case "math-response":
		method = generation.MethodResponse
	default:
		return nil, fmt.Errorf("-respond %q: want math-instance, math-response or echo", respond)
	}
	tpl, err := prompts.Builtin(generation.DomainMath, method, generation.VariantFreeForm)
	if err != nil {
		return nil, err
	}
	task := &generation.Task{Domain: generation.DomainMath, Method: method, Variant: generation.VariantFreeForm,
		Template: tpl, Seeds: []generation.SeedItem{{ID: "0", Instruction: "What is 1 + 2?", Response: "3"}}, Instances: 1 << 20}
	texts := make([]string, 256)
	for i := range texts {
		texts[i] = generation.ExampleCompletion(task, generation.Request{Slot: i, Attempt: 1}, i)
		if texts[i] == "" {
			return nil, fmt.Errorf("no example completion for %s", method)
		}
	}
	return texts, nil
}

// window keeps the arrival times of requests and the time of the last
// response since the last reset.
type window struct {
	mu       sync.Mutex
	max      int
	arrivals []int64 // unix nanoseconds, in arrival order
	dropped  int64   // arrivals over max, not kept
	last     int64   // unix nanoseconds of the last response
}

// arrive stamps an arrival under the lock, so arrivals are in time order.
func (w *window) arrive() {
	w.mu.Lock()
	if len(w.arrivals) < w.max {
		w.arrivals = append(w.arrivals, time.Now().UnixNano())
	} else {
		w.dropped++
	}
	w.mu.Unlock()
}

func (w *window) respond(t time.Time) {
	ns := t.UnixNano()
	w.mu.Lock()
	w.last = max(w.last, ns)
	w.mu.Unlock()
}

func (w *window) reset() {
	w.mu.Lock()
	w.arrivals, w.dropped, w.last = nil, 0, 0
	w.mu.Unlock()
}

// Stats is the answer of GET /stats.
type Stats struct {
	// Arrivals counts the requests that arrived since the last reset.
	// Counted / WindowSeconds is the rate: Counted is the requests that
	// arrived in the window, or, with ?tail=D, the intervals between
	// successive arrivals in it.
	Arrivals int64 `json:"arrivals"`
	Counted  int64 `json:"counted"`
	// From and To bound the window (unix nanoseconds): the first arrival
	// and the last response, or, with ?tail=D, the first arrival of the
	// last D before the last arrival, and the last arrival. WindowSeconds
	// is To - From.
	From          int64   `json:"from_unix_ns"`
	To            int64   `json:"to_unix_ns"`
	WindowSeconds float64 `json:"window_s"`
	// CPUSeconds is this process's user + system CPU time so far.
	CPUSeconds float64          `json:"cpu_s"`
	Outcomes   map[string]int64 `json:"outcomes"`
	// Histogram, with ?hist=D, counts the window's arrivals in successive
	// stretches of D from the first: where a run ramps up, stalls or
	// trails off.
	Histogram []int `json:"histogram,omitempty"`
	// Server is apitest's counters (cumulative since start).
	Server apitest.Stats `json:"server"`
}

func (w *window) stats(tail time.Duration) Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.arrivals)
	out := Stats{Arrivals: int64(n) + w.dropped}
	if n == 0 || w.dropped > 0 {
		return out // no window (or an incomplete one)
	}
	if tail <= 0 {
		out.Counted, out.From, out.To = int64(n), w.arrivals[0], w.last
	} else {
		// The intervals between the arrivals of the last stretch: from
		// the first arrival in it to the last arrival.
		out.To = w.arrivals[n-1]
		i, _ := slices.BinarySearch(w.arrivals, out.To-int64(tail))
		out.From, out.Counted = w.arrivals[i], int64(n-1-i)
	}
	if out.To > out.From {
		out.WindowSeconds = float64(out.To-out.From) / 1e9
	}
	return out
}

// histogram counts the arrivals in successive stretches of d.
func (w *window) histogram(d time.Duration) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.arrivals) == 0 {
		return nil
	}
	var h []int
	t0 := w.arrivals[0]
	for _, a := range w.arrivals {
		i := int((a - t0) / int64(d))
		for len(h) <= i {
			h = append(h, 0)
		}
		h[i]++
	}
	return h
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
