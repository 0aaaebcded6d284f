package syncbuf_test

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agorabench/agora/internal/syncbuf"
)

// TestReadWhileProcessWrites polls a process's output while exec.Cmd's
// copying goroutine writes it: under -race, a bytes.Buffer here fails.
func TestReadWhileProcessWrites(t *testing.T) {
	cmd := exec.Command("sh", "-c", `for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; sleep 0.01; done; echo done >&2; sleep 0.2`)
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	polls := 0
	for !out.Contains("line 5\n") {
		polls++
		_ = out.String()
		time.Sleep(time.Millisecond)
	}
	if !out.WaitFor("done\n", 10*time.Second) {
		t.Fatalf("no \"done\" within 10 s:\n%s", out.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	want := ""
	for i := 1; i <= 10; i++ {
		want += fmt.Sprintf("line %d\n", i)
	}
	if got := out.String(); got != want+"done\n" {
		t.Errorf("output %q, want %q", got, want+"done\n")
	}
	t.Logf("%d polls before line 5", polls)
}

// TestWaitFor: WaitFor wakes on the write that completes the text (which
// may span writes), several waiters at once, and gives up at its timeout.
func TestWaitFor(t *testing.T) {
	var b syncbuf.Buffer
	if b.WaitFor("x", 20*time.Millisecond) {
		t.Fatal("WaitFor found text in an empty buffer")
	}
	var wg sync.WaitGroup
	results := make([]bool, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = b.WaitFor("servers ready", 10*time.Second)
		}()
	}
	start := time.Now()
	for _, part := range []string{"starting\n", "servers re", "ady\n"} {
		time.Sleep(10 * time.Millisecond)
		fmt.Fprint(&b, part)
	}
	wg.Wait()
	for i, ok := range results {
		if !ok {
			t.Errorf("waiter %d did not see the text", i)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waiters woke after %v: the write did not wake them", d)
	}
	if !b.Contains("starting\nservers ready\n") || strings.Count(b.String(), "ready") != 1 {
		t.Errorf("content %q", b.String())
	}
	start = time.Now()
	if b.WaitFor("never", 50*time.Millisecond) {
		t.Error("WaitFor found text that was never written")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("WaitFor gave up after %v, before its timeout", d)
	}
}
