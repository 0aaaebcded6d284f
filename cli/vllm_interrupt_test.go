//go:build unix

package cli_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/vllm/vllmtest"
	"github.com/agorabench/agora/internal/syncbuf"
	"github.com/agorabench/agora/state"
)

// TestApplyInterruptStopsVLLMServers interrupts the real agora binary
// while a vllm generator's servers (the stand-in) serve a step: once (a
// clean stop: the servers are stopped and their GPU time recorded) and
// twice (quit at once: the servers are killed on the way out). Neither
// leaves a server process, and a last apply completes the step and leaves
// no job active in the state.
func TestApplyInterruptStopsVLLMServers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agora binary")
	}
	bin := buildAgora(t)
	stub := vllmtest.Build(t)
	dir := t.TempDir()
	spec := `generators: llama: {
	provider: vllm: {replicas: 2}
	model: "meta-llama/Llama-3.1-8B-Instruct"
	limits: concurrency: 4
	sampling: max_tokens: 256
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: 300
	benchmarks: ["gsm8k"]
}
`
	if err := os.WriteFile(filepath.Join(dir, "agora.cue"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(`{"instruction": "What is 1 + 2?", "response": "3"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	servers := filepath.Join(dir, ".agora", "servers")
	env := append(os.Environ(), "PATH="+stub+string(os.PathListSeparator)+os.Getenv("PATH"), "AGORA_STUB_LATENCY=100ms")

	run := func(interrupts int) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, "apply", "-auto-approve", "agora.cue")
		cmd.Dir, cmd.Env = dir, env
		var stdout, stderr syncbuf.Buffer // read while agora runs
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if interrupts > 0 {
			if !stderr.WaitFor("vLLM servers ready", 30*time.Second) {
				cmd.Process.Kill()
				t.Fatalf("the servers did not start:\n%s", stderr.String())
			}
			time.Sleep(500 * time.Millisecond)
			for i := 0; i < interrupts; i++ {
				cmd.Process.Signal(syscall.SIGINT)
				time.Sleep(20 * time.Millisecond)
			}
		}
		var err error
		select {
		case err = <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("agora did not finish:\n%s", stderr.String())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	}
	noServers := func(when string) {
		t.Helper()
		// A killed group's processes are reaped by init a moment later.
		deadline := time.Now().Add(5 * time.Second)
		for {
			ps := serverProcesses(servers, stub)
			if len(ps) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: server processes left:\n%s", when, strings.Join(ps, "\n"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	jobs := func() []state.Job {
		t.Helper()
		st, err := state.Open(context.Background(), filepath.Join(dir, ".agora"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		active, err := st.ActiveJobs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return active
	}

	code, stderr := run(1)
	if code != 130 || !strings.Contains(stderr, "interrupted") {
		t.Fatalf("one interrupt: exit %d\n%s", code, stderr)
	}
	noServers("after one interrupt")
	if a := jobs(); len(a) != 0 {
		t.Errorf("after a clean stop, jobs still active: %+v", a)
	}

	code, stderr = run(2)
	if code != 130 {
		t.Fatalf("two interrupts: exit %d\n%s", code, stderr)
	}
	noServers("after quitting")

	code, stderr = run(0)
	// Exit 4: the generate step is done; the train and evaluate steps
	// cannot run here (no accelerate or lm_eval in PATH).
	if code != 4 {
		t.Fatalf("last apply: exit %d\n%s", code, stderr)
	}
	noServers("after completing")
	if a := jobs(); len(a) != 0 {
		t.Errorf("jobs still active after the last apply: %+v", a)
	}
}

// serverProcesses lists live processes whose command line mentions dir.
func serverProcesses(dirs ...string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !mentions(e.Name(), string(b), dirs) {
			continue
		}
		if st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); strings.Contains(string(st), ") Z ") {
			continue
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

// mentions reports whether process pid's command line or executable is
// under one of dirs.
func mentions(pid, cmdline string, dirs []string) bool {
	exe, _ := os.Readlink(filepath.Join("/proc", pid, "exe"))
	for _, d := range dirs {
		if strings.Contains(cmdline, d) || strings.HasPrefix(exe, d+"/") {
			return true
		}
	}
	return false
}
