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
