package engine

import (
	"bytes"
	"strings"
	"testing"
)

// TestProgressTTY: on a terminal the live lines are redrawn in place
// (cursor up over the previous block, clear), and a finished step's last
// line is printed once, above the live block.
func TestProgressTTY(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, true, 0, 10)
	p.spent = func() float64 { return 1.5 }
	a := p.add("generate.a", 4, 0, "a")
	b := p.add("generate.b", 2, 0, "b")
	a.record(100, 50, 0.25, true)
	b.record(10, 5, 0.5, false)
	p.draw()
	first := buf.String()
	if !strings.Contains(first, "\x1b[J") || strings.Contains(first, "\x1b[3F") {
		t.Errorf("first draw: %q", first)
	}
	for _, want := range []string{"generate.a  1/4  ", "generate.b  0/2  ", "rejects 1", "spent $1.50 of $10.00"} {
		if !strings.Contains(first, want) {
			t.Errorf("first draw lacks %q: %q", want, first)
		}
	}
	buf.Reset()
	b.record(10, 5, 0.5, true)
	b.record(10, 5, 0.5, true)
	p.remove(b)
	p.draw()
	second := buf.String()
	if !strings.HasPrefix(second, "\x1b[3F\x1b[J") {
		t.Errorf("second draw does not redraw the 3 lines in place: %q", second)
	}
	done := strings.Index(second, "generate.b  2/2")
	live := strings.Index(second, "generate.a  1/4")
	if done < 0 || live < 0 || done > live {
		t.Errorf("the finished line should come once, above the live ones: %q", second)
	}
	buf.Reset()
	p.draw()
	if strings.Contains(buf.String(), "generate.b") {
		t.Errorf("the finished line was printed twice: %q", buf.String())
	}
	if !strings.HasPrefix(buf.String(), "\x1b[2F") {
		t.Errorf("third draw: %q", buf.String())
	}
}

func TestProgressJobLine(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, false, 0, 0)
	sp := p.addJob("train.g.s.n10.free-form.s42", "slurm")
	p.draw()
	if !strings.Contains(buf.String(), "train.g.s.n10.free-form.s42  job on slurm  0s elapsed") {
		t.Errorf("job line: %q", buf.String())
	}
	p.remove(sp)
}

// TestProgressBatches: a step's line shows each batch at the provider
// with its state and counts, and sums them by state when there are more
// than batchesListed.
func TestProgressBatches(t *testing.T) {
	p := newProgress(nil, false, 0, 0)
	sp := p.add("generate.a", 100, 0, "a")
	sp.batchState("k1", "batch_1", "in_progress", 50, 20, 2)
	sp.batchState("k2", "", "preparing", 50, 0, 0)
	if got, want := sp.batchLine(), "  batches: batch_1 in_progress 20/50 (2 failed), (not created) preparing 0/50"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	sp.batchState("k2", "batch_2", "validating", 50, 0, 0)
	sp.batchState("k3", "batch_3", "in_progress", 50, 10, 0)
	sp.batchState("k4", "batch_4", "finalizing", 50, 50, 0)
	if got, want := sp.batchLine(), "  batches: 1 validating 0/50, 2 in_progress 30/100 (2 failed), 1 finalizing 50/50"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		sp.batchDone(k)
	}
	if got := sp.batchLine(); got != "" {
		t.Errorf("no batches: %q", got)
	}
	if !strings.Contains(p.line(sp, sp.started), "generate.a  0/100") {
		t.Errorf("line %q", p.line(sp, sp.started))
	}
}
