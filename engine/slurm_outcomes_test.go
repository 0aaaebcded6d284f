package engine_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/executors/slurm/slurmtest"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/state"
)

// TestSlurmScancelTraining: a training job cancelled with scancel while
// it runs fails its step, not retried, with the job's log named; the
// steps needing it are blocked; no step is left running.
func TestSlurmScancelTraining(t *testing.T) {
	f, c, opts := slurmPipeline(t)
	t.Setenv("AGORA_STANDIN_SLEEP", "120")
	train := f.stepOf(plan.KindTrain, "")
	run := filepath.Join(f.dir, ".agora", "runs", train.ID)
	ctx := withTimeout(t, 8*time.Minute)
	wait := alongside(ctx, func(ctx context.Context) {
		waitForLog(ctx, run, "trl stand-in: sleeping", 100*time.Millisecond)
		if ctx.Err() != nil {
			return // the apply ended first; it reports why
		}
		if err := slurmtest.Cancel(f.dir, []string{"agora-train-" + train.ID[:12]}); err != nil {
			t.Error(err)
		}
	})
	res, store := f.applyWith(ctx, opts)
	wait()
	got := outcomes(t, f, store)
	st := got[train.Address]
	if st.Status != state.StatusFailed || !strings.Contains(st.Error, "was cancelled (not retried)") || !strings.Contains(st.Error, "; log "+run+"/slurm-") {
		t.Errorf("train step %s %q", st.Status, st.Error)
	}
	if res.Failed[train.Address] == "" {
		t.Errorf("not failed in the result: %v", res.Skipped)
	}
	if n := c.count("agora-train-"); n != 1 {
		t.Errorf("%d training submissions, want 1: a cancelled job is not retried", n)
	}
	for _, s := range f.plan.Steps {
		if s.Model == "student" && got[s.Address].Status != state.StatusBlocked {
			t.Errorf("%s: %s %q, want blocked", s.Address, got[s.Address].Status, got[s.Address].Error)
		}
	}
	jobs, _ := store.Jobs(context.Background(), train.ID)
	if len(jobs) != 1 || jobs[0].Status != string(slurm.Cancelled) {
		t.Errorf("train jobs %+v", jobs)
	}
}

// TestSlurmRequeueAddsUp: a running training job requeued with
// scontrol requeue runs again under its id, and Slurm restarts its
// elapsed clock: the state adds the runs up (two runs, the time of both)
// instead of keeping the last run's. GPU-hours are that time × GPUs (the
// test node has none, so they are zero here; state's TestJobRuns checks
// them).
func TestSlurmRequeueAddsUp(t *testing.T) {
	f, c, opts := slurmPipeline(t)
	t.Setenv("AGORA_STANDIN_SLEEP", "16")
	train := f.stepOf(plan.KindTrain, "")
	run := filepath.Join(f.dir, ".agora", "runs", train.ID)
	ctx := withTimeout(t, 8*time.Minute)
	wait := alongside(ctx, func(ctx context.Context) {
		waitForLog(ctx, run, "trl stand-in: sleeping", 100*time.Millisecond)
		select {
		case <-ctx.Done():
			return // the apply ended first; it reports why
		case <-time.After(10 * time.Second):
		}
		for id := range slurmtest.Jobs(f.dir, "agora-train-"+train.ID[:12]) {
			if out, err := exec.Command("scontrol", "requeue", id).CombinedOutput(); err != nil {
				t.Errorf("scontrol requeue %s: %v: %s", id, err, out)
			}
		}
	})
	start := time.Now()
	res, store := f.applyWith(ctx, opts)
	wall := time.Since(start)
	wait()
	checkPipeline(t, f, res, store, 6)
	if n := c.count("agora-train-"); n != 1 {
		t.Errorf("%d training submissions, want 1 (the job was requeued)", n)
	}
	jobs, _ := store.Jobs(context.Background(), train.ID)
	if len(jobs) != 1 {
		t.Fatalf("train jobs %+v", jobs)
	}
	j := jobs[0]
	// The first run: the 10 s before the requeue, as last polled; the
	// second at least the stand-in's 16 s (no checkpoint: scontrol
	// requeue sends no USR1). The last run alone would be under 20 s.
	if j.Runs != 2 || j.Elapsed < 22*time.Second || j.Elapsed > wall {
		t.Errorf("job %s: %d runs, %v in all (apply took %v); want 2 runs, of about 10 s and at least 16 s", j.JobID, j.Runs, j.Elapsed, wall)
	}
	t.Logf("job %s: %d runs, %v recorded in all; apply took %v", j.JobID, j.Runs, j.Elapsed, wall)
}
