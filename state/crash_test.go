package state

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const crashEnv = "AGORA_STATE_CRASH_CHILD_DIR"

// TestCrashChild is the child of TestDurableAcrossKill: it appends records
// from many goroutines forever, resuming what an earlier child left, and
// prints "appended SLOT" once Append returned for it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("only run as the child of TestDurableAcrossKill")
	}
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	if err := s.BeginStep(ctx, StepInfo{ID: "crash", Kind: "generate", Address: "generate.crash", Generator: "g", Target: 1 << 30}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	done, err := s.AcceptedSlots(ctx, "crash")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var next atomic.Int64
	var mu sync.Mutex
	out := os.Stdout // unbuffered: each line is one write(2)
	fmt.Fprintln(out, "ready")
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				slot := int(next.Add(1) - 1)
				if done[slot] {
					continue
				}
				attempt, err := s.NextAttempt(ctx, "crash", slot)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				g := gen("crash", slot, attempt, true, 0.001)
				g.Raw = strings.Repeat("x", 300)
				if err := s.Append(ctx, g); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "appended %d\n", slot)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestDurableAcrossKill kills (SIGKILL) a child process that is appending
// at several points and checks that every record the child saw Append
// return for is in the state, that nothing is recorded twice across
// resumed runs, and that the database is intact.
func TestDurableAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := filepath.Join(t.TempDir(), ".agora")
	reported := map[int]bool{}
	for round, killAfter := range []int{1, 50, 400, 2000} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stdout)
		seen, killed := 0, false
		for {
			line, err := r.ReadString('\n')
			if err == io.EOF {
				break // a partial last line was not a report
			}
			if err != nil {
				t.Fatal(err)
			}
			if slot, ok := strings.CutPrefix(strings.TrimSpace(line), "appended "); ok {
				n, err := strconv.Atoi(slot)
				if err != nil {
					t.Fatalf("child printed %q", line)
				}
				if reported[n] {
					t.Errorf("round %d: slot %d appended again after a restart", round, n)
				}
				reported[n] = true
				seen++
				if seen == killAfter && !killed {
					cmd.Process.Kill() // SIGKILL
					killed = true
				}
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child exited before the kill: %v\n%s", round, err, stderr.String())
		}
		if stderr.Len() > 0 {
			t.Logf("child stderr: %s", stderr.String())
		}

		s, err := Open(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		var ok string
		if err := s.rdb.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("integrity: %s %v", ok, err)
		}
		slots, err := s.AcceptedSlots(context.Background(), "crash")
		if err != nil {
			t.Fatal(err)
		}
		lost := 0
		for n := range reported {
			if !slots[n] {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("round %d: %d of %d reported records lost", round, lost, len(reported))
		}
		var dups int
		if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM (SELECT slot FROM generations WHERE step_id = 'crash' GROUP BY slot HAVING COUNT(*) > 1)`).Scan(&dups); err != nil {
			t.Fatal(err)
		}
		if dups > 0 {
			t.Errorf("round %d: %d slots recorded twice", round, dups)
		}
		checkCounters(t, s)
		t.Logf("round %d: killed after %d reports (%d printed before it died); %d reported in all rounds, %d recorded (the rest were in flight)",
			round, killAfter, seen, len(reported), len(slots))
		s.Close()
	}
}
