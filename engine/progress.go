package engine

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// progress shows a line per running step: done/total, requests/s,
// tokens/s, dollars spent (of the budget), rejects and ETA. On a terminal
// the lines are redrawn in place; otherwise they are printed periodically.
type progress struct {
	w        io.Writer
	tty      bool
	interval time.Duration
	limit    float64
	spent    func() float64
	retries  func(generator string) int64

	mu    sync.Mutex
	steps []*stepProgress
	drawn int // lines drawn last time (TTY)
	// finished are the last lines of steps that ended since the last
	// redraw; on a terminal they are printed once, above the live lines.
	finished []string
	quit     chan struct{}
	doneCh   chan struct{}
}

type stepProgress struct {
	address, generator string
	total              int
	mu                 sync.Mutex
	accepted, rejected int
	requests           int
	tokens             int64
	cost               float64
	resumed            int
	started            time.Time
	// executor is set for a train or evaluate step: its line shows the
	// job's executor and elapsed time instead of request counters.
	executor string
	// batches are the step's batches in flight, by key: the provider's
	// status and counts (batch.go).
	batches map[string]batchProgress
}

type batchProgress struct {
	id, status               string
	total, completed, failed int
}

// batchState shows a batch's provider id ("" before its creation),
// status and counts.
func (sp *stepProgress) batchState(key, id, status string, total, completed, failed int) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.batches == nil {
		sp.batches = map[string]batchProgress{}
	}
	sp.batches[key] = batchProgress{id, status, total, completed, failed}
}

// batchesListed is the most batches a progress line shows one by one;
// more are summed by status.
const batchesListed = 3

// batchDone removes a batch whose results are recorded.
func (sp *stepProgress) batchDone(key string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	delete(sp.batches, key)
}

// batchLine sums the batches in flight by status: "batches: 2
// in_progress 340/1000 (3 failed), 1 validating 0/500"; "" when none.
func (sp *stepProgress) batchLine() string {
	if len(sp.batches) == 0 {
		return ""
	}
	if len(sp.batches) <= batchesListed {
		keys := make([]string, 0, len(sp.batches))
		for k := range sp.batches {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			b := sp.batches[k]
			id := b.id
			if id == "" {
				id = "(not created)"
			}
			p := fmt.Sprintf("%s %s %d/%d", id, b.status, b.completed, b.total)
			if b.failed > 0 {
				p += fmt.Sprintf(" (%d failed)", b.failed)
			}
			parts = append(parts, p)
		}
		return "  batches: " + strings.Join(parts, ", ")
	}
	type sum struct{ n, total, completed, failed int }
	by := map[string]*sum{}
	var order []string
	for _, st := range []string{"preparing", "validating", "in_progress", "finalizing", "cancelling", "completed", "expired", "cancelled", "failed"} {
		order = append(order, st)
	}
	for _, b := range sp.batches {
		x := by[b.status]
		if x == nil {
			x = &sum{}
			by[b.status] = x
			known := false
			for _, o := range order {
				known = known || o == b.status
			}
			if !known {
				order = append(order, b.status)
			}
		}
		x.n++
		x.total += b.total
		x.completed += b.completed
		x.failed += b.failed
	}
	var parts []string
	for _, st := range order {
		x := by[st]
		if x == nil {
			continue
		}
		p := fmt.Sprintf("%d %s %d/%d", x.n, st, x.completed, x.total)
		if x.failed > 0 {
			p += fmt.Sprintf(" (%d failed)", x.failed)
		}
		parts = append(parts, p)
	}
	return "  batches: " + strings.Join(parts, ", ")
}

func newProgress(w io.Writer, tty bool, interval time.Duration, limit float64) *progress {
	if interval <= 0 {
		interval = 10 * time.Second
		if tty {
			interval = time.Second
		}
	}
	return &progress{w: w, tty: tty, interval: interval, limit: limit}
}

func (p *progress) start() {
	if p.w == nil {
		return
	}
	p.quit = make(chan struct{})
	p.doneCh = make(chan struct{})
	go func() {
		defer close(p.doneCh)
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.quit:
				return
			}
		}
	}()
}

func (p *progress) stop() {
	if p.w == nil || p.quit == nil {
		return
	}
	close(p.quit)
	<-p.doneCh
	p.draw()
}

func (p *progress) add(address string, total, done int, generator string) *stepProgress {
	sp := &stepProgress{address: address, total: total, resumed: done, accepted: done, generator: generator, started: time.Now()}
	p.mu.Lock()
	p.steps = append(p.steps, sp)
	p.mu.Unlock()
	return sp
}

// addJob shows a train or evaluate step whose job runs on executor.
func (p *progress) addJob(address, executor string) *stepProgress {
	sp := &stepProgress{address: address, executor: executor, started: time.Now()}
	p.mu.Lock()
	p.steps = append(p.steps, sp)
	p.mu.Unlock()
	return sp
}

func (p *progress) remove(sp *stepProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range p.steps {
		if s == sp {
			p.steps = append(p.steps[:i], p.steps[i+1:]...)
			break
		}
	}
	if p.w == nil {
		return
	}
	if p.tty {
		// Kept above the live lines at the next redraw.
		p.finished = append(p.finished, p.line(sp, time.Now()))
		return
	}
	fmt.Fprintln(p.w, p.line(sp, time.Now()))
}

func (sp *stepProgress) record(in, out int, cost float64, ok bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.requests++
	sp.tokens += int64(in + out)
	sp.cost += cost
	if ok {
		sp.accepted++
	} else {
		sp.rejected++
	}
}

func (p *progress) line(sp *stepProgress, now time.Time) string {
	if sp.executor != "" {
		return fmt.Sprintf("%s  job on %s  %s elapsed", sp.address, sp.executor, now.Sub(sp.started).Round(time.Second))
	}
	l := sp.line(now)
	if p.retries != nil {
		l += fmt.Sprintf("  retries %d (%s)", p.retries(sp.generator), sp.generator)
	}
	return l
}

func (sp *stepProgress) line(now time.Time) string {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	el := now.Sub(sp.started).Seconds()
	if el <= 0 {
		el = 1e-9
	}
	rps := float64(sp.requests) / el
	tps := float64(sp.tokens) / el
	eta := "-"
	if gained := sp.accepted - sp.resumed; gained > 0 && sp.accepted < sp.total {
		left := time.Duration(float64(sp.total-sp.accepted) / (float64(gained) / el) * float64(time.Second))
		eta = left.Round(time.Second).String()
	} else if sp.accepted >= sp.total {
		eta = "done"
	}
	return fmt.Sprintf("%s  %d/%d  %.1f req/s  %.0f tok/s  $%.2f  rejects %d  ETA %s",
		sp.address, sp.accepted, sp.total, rps, tps, sp.cost, sp.rejected, eta) + sp.batchLine()
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var lines []string
	for _, s := range p.steps {
		lines = append(lines, p.line(s, now))
	}
	if p.spent != nil {
		budget := ""
		if p.limit > 0 {
			budget = fmt.Sprintf(" of $%.2f", p.limit)
		}
		lines = append(lines, fmt.Sprintf("spent $%.2f%s", p.spent(), budget))
	}
	if p.tty {
		var b strings.Builder
		if p.drawn > 0 {
			fmt.Fprintf(&b, "\x1b[%dF", p.drawn)
		}
		b.WriteString("\x1b[J")
		for _, l := range p.finished {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		p.finished = nil
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		io.WriteString(p.w, b.String())
		p.drawn = len(lines)
		return
	}
	if len(p.steps) == 0 {
		return
	}
	for _, l := range lines {
		fmt.Fprintln(p.w, l)
	}
}

// note shows a one-off line, such as a server leaving the rotation: on a
// terminal above the live lines at the next redraw, else at once.
func (p *progress) note(line string) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.finished = append(p.finished, line)
		return
	}
	fmt.Fprintln(p.w, line)
}
