//go:build unix

package cli_test

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agorabench/agora/state"
)

// TestApplyInterrupt sends the real agora binary Ctrl-C (SIGINT) mid-run.
// The first interrupt stops sending and waits for the requests in flight:
// apply exits 1 saying it was interrupted, the lock is released, and
// everything the server served is recorded (the spend equals the server's
// tally exactly). A second run interrupted twice quits at once with status
// 130, leaving a consistent state and no lock. A last run completes.
func TestApplyInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agora binary")
	}
	bin := buildAgora(t)
	h := newCrashHarness(t)
	lockPath := filepath.Join(h.dir, ".agora", state.LockFile)

	interrupt := func(after int64, times int) (int, string, time.Duration) {
		t.Helper()
		h.startRun()
		cmd, out := h.command(bin, "apply", "-auto-approve", "agora.cue")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		for deadline := time.Now().Add(30 * time.Second); h.srv.Stats().Served < after; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("the server served only %d responses in 30s\n%s", h.srv.Stats().Served, out.stderr.String())
			}
		}
		sent := time.Now()
		for i := 0; i < times; i++ {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("agora did not stop within 30s of the interrupt\n%s", out.stderr.String())
		}
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.stderr.String(), time.Since(sent)
	}

	// One interrupt: a clean stop, nothing served is lost.
	code, stderr, _ := interrupt(40, 1)
	if code != 130 {
		t.Fatalf("exit status %d after one interrupt, want %d\n%s", code, 130, stderr)
	}
	for _, want := range []string{"Stopping: no new requests", "interrupted: what was received is recorded; run agora apply again to resume"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Errorf("the lock is still there after a clean stop: %v", err)
	}
	h.endRun(t)
	st := h.srv.Stats()
	served := crashPrice(int(st.PromptTokens), int(st.CompletionTokens))
	if got, _ := h.spend(t); math.Abs(got-served) > 1e-9 {
		t.Errorf("recorded $%.9f, the server served $%.9f: a clean stop must record everything in flight", got, served)
	}

	// Two interrupts: quit at once, state consistent, lock released.
	code, stderr, took := interrupt(st.Served+40, 2)
	if code != 130 {
		t.Fatalf("exit status %d after two interrupts, want 130\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "Quitting; run agora apply again to resume") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if took > 5*time.Second {
		t.Errorf("took %v to quit after the second interrupt", took)
	}
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Errorf("the lock is still there after quitting: %v", err)
	}
	h.endRun(t)

	h.startRun()
	// Exit 4: the generate step is done; the train and evaluate steps
	// cannot run here (no accelerate or lm_eval in PATH).
	if code, _, stderr := h.runAgora(t, bin, "apply", "-auto-approve", "agora.cue"); code != 4 {
		t.Fatalf("final apply: exit %d\n%s", code, stderr)
	}
	h.endRun(t)
	h.checkComplete(t)
}
