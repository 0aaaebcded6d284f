//go:build linux

package cli_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/executors/slurm/slurmtest"
	"github.com/agorabench/agora/internal/syncbuf"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// TestApplyInterruptAsksToCancelJobs: agora apply on a terminal (a
// pseudo-terminal made by script(1)), interrupted with Ctrl-C typed at
// that terminal while a Slurm job of its is queued, asks whether to cancel
// the job; answering y cancels it with scancel.
func TestApplyInterruptAsksToCancelJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agora binary")
	}
	slurmtest.Require(t)
	if _, err := exec.LookPath("script"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("script(1) (util-linux) is not in PATH")
		}
		t.Skip("script(1) (util-linux) is not in PATH")
	}
	bin := buildAgora(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The generator's endpoint does not answer, so generation fails; the
	// base and reference models' evaluations, which need no data, are
	// Slurm jobs. The test node has no GPU, so an sbatch wrapper drops the
	// GPU request and submits the jobs held: they stay queued.
	realSbatch, err := exec.LookPath("sbatch")
	if err != nil {
		t.Fatal(err)
	}
	wrappers := t.TempDir()
	wrapper := "#!/bin/bash\nsed '/^#SBATCH --gpus-per-node/d' | exec " + realSbatch + " --hold --mem=100M \"$@\"\n"
	if err := os.WriteFile(filepath.Join(wrappers, "sbatch"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"seed.jsonl": `{"instruction": "What is 1 + 1?", "response": "2"}` + "\n",
		"agora.cue": `generators: g: {
	provider: openai: {base_url: "http://127.0.0.1:9/v1", api_key_env: "AGORA_PROMPT_TEST_KEY"}
	model: "m"
	price: {input: 1, output: 1}
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: 2
	benchmarks: ["gsm8k"]
}
evaluation: {executor: "slurm", gpus: 1}
budgets: usd: 100
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exp, err := spec.Load(filepath.Join(dir, "agora.cue"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var jobName, refName string
	for _, s := range p.Steps {
		switch {
		case s.Kind != plan.KindEvaluate:
		case strings.HasPrefix(s.Address, "evaluate.base."):
			jobName = "agora-eval-" + s.ID[:12]
		case strings.HasPrefix(s.Address, "evaluate.reference."):
			refName = "agora-eval-" + s.ID[:12]
		}
	}
	if jobName == "" || refName == "" {
		t.Fatal("the plan has no evaluation of the base or reference model")
	}

	// The preflight would refuse both (no endpoint, no GPU): skipped.
	cmd := exec.Command("script", "-qfec", bin+" apply -auto-approve -skip-preflight agora.cue", "/dev/null")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AGORA_PROMPT_TEST_KEY=not-a-real-key", "TERM=dumb",
		"PATH="+wrappers+string(os.PathListSeparator)+os.Getenv("PATH"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		slurmtest.Cancel(dir, []string{jobName, refName}) // only this test's jobs: see queued
	})
	waitUntil := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %v; agora's terminal shows:\n%s", what, d, out.String())
			}
		}
	}
	// queued returns the state of each of this test's jobs in the queue
	// (step ids are content addresses: other tests' jobs may share the
	// names, not the run directories).
	queued := func() map[string]string { return slurmtest.Jobs(dir, jobName, refName) }
	waitUntil("two queued jobs", time.Minute, func() bool { return len(queued()) == 2 })
	t.Logf("jobs: %v", queued())

	if _, err := io.WriteString(stdin, "\x03"); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	if !out.WaitFor("2 jobs still running. Cancel them (scancel)? [y/N]", 30*time.Second) {
		t.Fatalf("no question within 30s; agora's terminal shows:\n%s", out.String())
	}
	if _, err := io.WriteString(stdin, "y\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("agora did not exit after the answer:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Cancelled Slurm job") {
		t.Errorf("agora did not say it cancelled the job:\n%s", out.String())
	}
	waitUntil("cancellation in squeue", 30*time.Second, func() bool {
		for _, st := range queued() {
			if st != "CANCELLED" {
				return false
			}
		}
		return true
	})
}
