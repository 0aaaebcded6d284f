package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/toolchain/toolchaintest"
)

// onlyKinds keeps the plan's steps of the given kinds: a test that runs
// the real trainer stops before the evaluations.
func (f *fixture) onlyKinds(kinds ...string) {
	keep := map[string]bool{}
	for _, k := range kinds {
		keep[k] = true
	}
	p := *f.plan
	p.Steps = nil
	for _, s := range f.plan.Steps {
		if keep[s.Kind] {
			p.Steps = append(p.Steps, s)
		}
	}
	f.plan = &p
}

// TestTrainRealTRL fine-tunes a tiny Llama-architecture model (random
// weights, a tokenizer built in the test: nothing downloaded) with agora's
// own train step through the real `accelerate launch` + TRL path on the
// CPU (gpus_per_node: 0), on the instances agora generated from the
// stand-in OpenAI-compatible server plus the seed data. SIGUSR1, as the
// job's trap sends it before a time limit, makes the real Trainer save a
// checkpoint and exit 75; the resubmitted job resumes from it and ends
// with a model directory that transformers loads, whose weights moved.
func TestTrainRealTRL(t *testing.T) {
	toolchaintest.Offline(t)
	base := toolchaintest.TinyModel(t, toolchaintest.Causal)
	f := newFixture(t, fixtureOpts{instances: 6, concurrency: 4, method: spec.MethodInstance, extra: fmt.Sprintf(`
student: {
	base: %q
	trainer: "trl"
	hardware: gpus_per_node: 0
	hyperparameters: {epochs: 3, max_seq_length: 256, per_device_batch_size: 2, gradient_accumulation_steps: 1, dtype: "float32", learning_rate: 1e-3}
}`, base)})
	f.onlyKinds(plan.KindGenerate, plan.KindTrain)
	train := f.stepOf(plan.KindTrain, "")
	run := filepath.Join(f.dir, ".agora", "runs", train.ID)

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// Ask for a checkpoint as soon as the first run's launcher is up.
	signalled := make(chan int, 1)
	go func() {
		defer close(signalled)
		for ctx.Err() == nil {
			b, err := os.ReadFile(filepath.Join(run, "agora_train.0.pid"))
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
				if err := syscall.Kill(pid, syscall.SIGUSR1); err == nil {
					signalled <- pid
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	res, store := f.applyWith(ctx, func(o *engine.Options) { o.PollInterval = 200 * time.Millisecond })
	t.Logf("generate + train (two runs) took %v", time.Since(start).Round(time.Millisecond))
	if <-signalled == 0 {
		t.Fatal("the launcher never wrote its pid file")
	}
	logs := jobLogs(t, run)
	if testing.Verbose() {
		t.Logf("job logs:\n%s", logs)
	}
	if err := res.Err(); err != nil {
		t.Fatalf("%v\nlogs:\n%s", err, logs)
	}
	jobs, err := store.Jobs(context.Background(), train.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].Status != "FAILED" || jobs[1].Status != "COMPLETED" {
		t.Fatalf("train jobs %+v, want the checkpointed run then the resumed one\nlogs:\n%s", jobs, logs)
	}
	for _, want := range []string{"checkpoint saved on SIGUSR1", "agora: resuming from " + filepath.Join(run, engine.ModelDir, "checkpoint-1")} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs lack %q:\n%s", want, logs)
		}
	}
	// The configuration is what the real TRL read: the CPU accelerate
	// file, the schedule and the warm-up as whole steps (56 examples in
	// batches of 2: 28 steps an epoch, 84 in all; 3% of them is 3 steps).
	sft, _ := os.ReadFile(filepath.Join(run, engine.SFTConfig))
	for _, want := range []string{"use_cpu: true\n", `lr_scheduler_type: "linear"` + "\n", "warmup_steps: 3\n", "max_length: 256\n"} {
		if !strings.Contains(string(sft), want) {
			t.Errorf("sft.yaml lacks %q:\n%s", want, sft)
		}
	}
	model := filepath.Join(run, engine.ModelDir)
	if left, _ := filepath.Glob(filepath.Join(model, "checkpoint-*")); len(left) != 0 {
		t.Errorf("checkpoints left after the end: %v", left)
	}
	// transformers loads the result, and training changed the weights.
	check := exec.Command(toolchaintest.Python(t), "-c", `
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
base = AutoModelForCausalLM.from_pretrained(sys.argv[1])
tuned = AutoModelForCausalLM.from_pretrained(sys.argv[2])
AutoTokenizer.from_pretrained(sys.argv[2])
moved = max((a - b).abs().max().item() for a, b in zip(base.parameters(), tuned.parameters()))
print("moved %.6g" % moved)
sys.exit(0 if moved > 1e-6 else 3)
`, base, model)
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("load the trained model: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

// jobLogs concatenates the job logs (slurm-*.out) of a run directory.
func jobLogs(t *testing.T, run string) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(run, "slurm-*.out"))
	var all strings.Builder
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		fmt.Fprintf(&all, "==> %s <==\n%s\n", filepath.Base(p), b)
	}
	return all.String()
}
