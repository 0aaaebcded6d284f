package engine_test

// The pipeline on the real Slurm that scripts/slurm-up.sh starts (one CPU
// node, no accounting). These tests skip when there is none, except with
// CI=true, where a missing Slurm is a failure.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/executors/slurm/slurmtest"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/state"
)

func requireSlurm(t *testing.T) {
	t.Helper()
	slurmtest.Require(t)
}

// sbatchCounter is an sbatch wrapper that logs the --job-name of every
// script it submits, then submits it with the real sbatch and a small
// memory request (the test node is shared with the other packages' jobs).
type sbatchCounter struct{ bin, log, squeue, squeueLog string }

func newSbatchCounter(t *testing.T) *sbatchCounter {
	t.Helper()
	real, err := exec.LookPath("sbatch")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &sbatchCounter{bin: filepath.Join(dir, "sbatch"), log: filepath.Join(dir, "submitted.log")}
	script := `#!/bin/bash
script=$(cat)
printf '%s\n' "$script" | sed -n 's/^#SBATCH --job-name=//p' >>` + c.log + `
printf '%s\n' "$script" | exec ` + real + ` --mem=100M --cpus-per-task=1 "$@"
`
	if err := os.WriteFile(c.bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// squeue is logged too: one line of job ids per call.
	realSqueue, err := exec.LookPath("squeue")
	if err != nil {
		t.Fatal(err)
	}
	c.squeue, c.squeueLog = filepath.Join(dir, "squeue"), filepath.Join(dir, "squeue.log")
	script = `#!/bin/bash
for a in "$@"; do case "$a" in --jobs=*) echo "${a#--jobs=}" >>` + c.squeueLog + `;; esac; done
exec ` + realSqueue + ` "$@"
`
	if err := os.WriteFile(c.squeue, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// polls returns the job ids of each squeue call.
func (c *sbatchCounter) polls() [][]string {
	b, _ := os.ReadFile(c.squeueLog)
	var out [][]string
	for _, l := range strings.Fields(string(b)) {
		out = append(out, strings.Split(l, ","))
	}
	return out
}

// submitted returns the job names submitted, in order.
func (c *sbatchCounter) submitted() []string {
	b, _ := os.ReadFile(c.log)
	return strings.Fields(string(b))
}

func (c *sbatchCounter) count(prefix string) int {
	n := 0
	for _, name := range c.submitted() {
		if strings.HasPrefix(name, prefix) {
			n++
		}
	}
	return n
}

// slurmPipeline is the pipeline fixture with both executors on Slurm and
// no GPUs requested (the test node has none).
func slurmPipeline(t *testing.T, extra ...string) (*fixture, *sbatchCounter, func(*engine.Options)) {
	t.Helper()
	requireSlurm(t)
	standIns(t)
	f := pipelineFixture(t, `student: executor: "slurm"
evaluation: executor: "slurm"
`+strings.Join(extra, "\n"))
	f.exp.Student.Hardware.GPUsPerNode = 0
	f.exp.Student.Hardware.TimeLimit = "00:10:00"
	f.exp.Evaluation.GPUs = 0
	// Job directories must be readable by the job (root here, as the
	// tests); t.TempDir is 0700 for its owner.
	if err := os.Chmod(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newSbatchCounter(t)
	return f, c, func(o *engine.Options) {
		o.Slurm = &slurm.Client{Sbatch: c.bin, Squeue: c.squeue}
		o.PollInterval = time.Second
	}
}

func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestPipelineSlurm: the whole pipeline on Slurm, one submission per
// train and evaluate step, ending in the stand-ins' PGR.
func TestPipelineSlurm(t *testing.T) {
	f, c, opts := slurmPipeline(t)
	start := time.Now()
	res, store := f.applyWith(withTimeout(t, 8*time.Minute), opts)
	elapsed := time.Since(start)
	checkPipeline(t, f, res, store, 6)
	// One squeue call per interval (1 s here) for all the jobs waited on.
	polls := c.polls()
	if limit := int(elapsed/time.Second) + 1; len(polls) > limit {
		t.Errorf("%d squeue calls in %v, want at most %d", len(polls), elapsed, limit)
	}
	most := 0
	for _, p := range polls {
		most = max(most, len(p))
	}
	if most < 2 {
		t.Errorf("no squeue call asked about several jobs at once: %v", polls)
	}
	// alpacaeval2 queries a model agora serves: one vLLM server job for
	// each of base, reference and student.
	if got := c.submitted(); len(got) != 13 || c.count("agora-train-") != 1 || c.count("agora-vllm-") != 3 {
		t.Errorf("submitted %v, want 1 train and 9 evaluate jobs, and 3 vLLM servers", got)
	}
	jobs, _ := store.Jobs(context.Background(), f.stepOf(plan.KindTrain, "").ID)
	if len(jobs) != 1 || jobs[0].Executor != "slurm" || jobs[0].Status != string(slurm.Completed) {
		t.Errorf("train jobs %+v", jobs)
	}
}

// TestPipelineSlurmResubmit: a training job that FAILED is submitted
// again, and the pipeline completes.
func TestPipelineSlurmResubmit(t *testing.T) {
	f, c, opts := slurmPipeline(t)
	t.Setenv("AGORA_STANDIN_FAIL_ONCE", filepath.Join(f.dir, "failed-once"))
	res, store := f.applyWith(withTimeout(t, 8*time.Minute), opts)
	checkPipeline(t, f, res, store, 6)
	if n := c.count("agora-train-"); n != 2 {
		t.Errorf("%d training submissions, want 2 (%v)", n, c.submitted())
	}
	jobs, _ := store.Jobs(context.Background(), f.stepOf(plan.KindTrain, "").ID)
	if len(jobs) != 2 || jobs[0].Status != string(slurm.Failed) || jobs[1].Status != string(slurm.Completed) || jobs[1].Attempt != 2 {
		t.Errorf("train jobs %+v", jobs)
	}
}

// TestPipelineSlurmReattach: agora stopped (its context cancelled) while
// the training job runs, then run again, polls the job recorded in the
// state instead of submitting a second one.
func TestPipelineSlurmReattach(t *testing.T) {
	f, c, opts := slurmPipeline(t)
	t.Setenv("AGORA_STANDIN_SLEEP", "6")
	train := f.stepOf(plan.KindTrain, "")
	run := filepath.Join(f.dir, ".agora", "runs", train.ID)
	ctx, cancel := context.WithCancel(withTimeout(t, 8*time.Minute))
	go func() {
		defer cancel()
		waitForLog(ctx, run, "trl stand-in: sleeping", 100*time.Millisecond)
	}()
	res, store := f.applyWith(ctx, opts)
	if !res.Stopped {
		t.Fatalf("the first apply was not interrupted: %+v", res)
	}
	jobs, err := store.Jobs(context.Background(), train.ID)
	if err != nil || len(jobs) != 1 || !state.IsActiveJob(jobs[0].Status) {
		t.Fatalf("after the interrupt: train jobs %+v %v", jobs, err)
	}
	store.Close()

	res, store = f.applyWith(withTimeout(t, 8*time.Minute), opts)
	checkPipeline(t, f, res, store, 6)
	if n := c.count("agora-train-"); n != 1 {
		t.Errorf("%d training submissions, want 1: the running job was not reattached (%v)", n, c.submitted())
	}
	if got := c.submitted(); len(got)-c.count("agora-vllm-") != 10 {
		t.Errorf("submitted %v, want 10 train and evaluate jobs in all", got)
	}
	after, _ := store.Jobs(context.Background(), train.ID)
	if len(after) != 1 || after[0].JobID != jobs[0].JobID || after[0].Status != string(slurm.Completed) {
		t.Errorf("train jobs %+v, want job %s completed", after, jobs[0].JobID)
	}
}

// TestPipelineSlurmStopAndCancel: the first interrupt (Options.Stop) does
// not wait for a Slurm job; CancelJobs then cancels it with scancel, and
// the next apply submits the training again.
func TestPipelineSlurmStopAndCancel(t *testing.T) {
	f, c, opts := slurmPipeline(t)
	t.Setenv("AGORA_STANDIN_SLEEP", "120")
	train := f.stepOf(plan.KindTrain, "")
	run := filepath.Join(f.dir, ".agora", "runs", train.ID)
	stop := make(chan struct{})
	ctx := withTimeout(t, 8*time.Minute)
	go func() {
		defer close(stop)
		waitForLog(ctx, run, "trl stand-in: sleeping", 100*time.Millisecond)
	}()
	start := time.Now()
	res, store := f.applyWith(ctx, func(o *engine.Options) { opts(o); o.Stop = stop })
	if !res.Stopped || time.Since(start) > time.Minute {
		t.Fatalf("stopped %v after %v (%v)", res.Stopped, time.Since(start), res.Err())
	}
	ids, err := f.eng.CancelJobs(context.Background())
	if err != nil || len(ids) == 0 {
		t.Fatalf("cancelled %v, %v", ids, err)
	}
	jobs, _ := store.Jobs(context.Background(), train.ID)
	if len(jobs) != 1 || jobs[0].Status != string(slurm.Cancelled) {
		t.Fatalf("train jobs %+v", jobs)
	}
	// Slurm agrees (squeue -t all still lists it for MinJobAge).
	id := jobs[0].JobID
	var last slurm.Status
	for deadline := time.Now().Add(30 * time.Second); ; {
		got, err := (&slurm.Client{}).Poll(context.Background(), []string{id})
		if err == nil {
			last = got[id]
			if last.State == slurm.Cancelled || last.State == slurm.Unknown {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not cancelled: slurm says %+v (%v)", id, last, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	store.Close()

	t.Setenv("AGORA_STANDIN_SLEEP", "")
	res, store = f.applyWith(withTimeout(t, 8*time.Minute), opts)
	checkPipeline(t, f, res, store, 6)
	if n := c.count("agora-train-"); n != 2 {
		t.Errorf("%d training submissions, want 2 (%v)", n, c.submitted())
	}
}

// TestPipelineSlurmCheckpointRequeue: USR1 to the batch shell, as
// --signal=B:USR1@N sends it before the time limit (scancel --batch here,
// since Slurm's own timer fires up to 30 s late). The trap tells the
// trainer, which saves a checkpoint and exits; the job requeues itself;
// its second run resumes from the checkpoint. The engine follows the
// requeued job: one submission, completed. With TRL and with axolotl.
func TestPipelineSlurmCheckpointRequeue(t *testing.T) {
	for _, trainer := range []string{"trl", "axolotl"} {
		t.Run(trainer, func(t *testing.T) { testSlurmCheckpointRequeue(t, trainer) })
	}
}

func testSlurmCheckpointRequeue(t *testing.T, trainer string) {
	f, c, opts := slurmPipeline(t, `student: trainer: "`+trainer+`"`)
	t.Setenv("AGORA_STANDIN_SLEEP", "12") // 4 steps of 3 s
	train := f.stepOf(plan.KindTrain, "")
	run := filepath.Join(f.dir, ".agora", "runs", train.ID)
	ctx := withTimeout(t, 8*time.Minute)
	wait := alongside(ctx, func(ctx context.Context) {
		waitForLog(ctx, run, trainer+" stand-in: sleeping", 100*time.Millisecond)
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(run, "agora_train.0.pid")); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ctx.Err() != nil {
			return // the apply ended first; it reports why
		}
		name := "agora-train-" + train.ID[:12]
		if err := slurmtest.Cancel(f.dir, []string{name}, "--batch", "--signal=USR1"); err != nil {
			t.Error(err)
		}
	})
	res, store := f.applyWith(ctx, opts)
	wait()
	checkPipeline(t, f, res, store, 6)
	if n := c.count("agora-train-"); n != 1 {
		t.Errorf("%d training submissions, want 1: the job requeues itself (%v)", n, c.submitted())
	}
	jobs, _ := store.Jobs(context.Background(), train.ID)
	if len(jobs) != 1 || jobs[0].Status != string(slurm.Completed) {
		t.Errorf("train jobs %+v, want one, completed", jobs)
	}
	log, _ := os.ReadFile(slurm.LogPath(run, jobs[0].JobID))
	for _, want := range []string{"agora: USR1", "checkpoint saved on SIGUSR1", "run 1 on", "agora: resuming from", "stand-in trainer: resumed at step"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the job's log lacks %q:\n%s", want, log)
		}
	}
}

// TestSlurmMaxJobs: evaluation.slurm.max_jobs: 1 keeps one evaluation
// job queued or running at once in the partition (the next is submitted
// once the last ended), while the training job, whose block sets no cap,
// is submitted as soon as it is ready.
func TestSlurmMaxJobs(t *testing.T) {
	requireSlurm(t)
	standIns(t)
	f := newFixture(t, fixtureOpts{instances: 6, concurrency: 4, method: "instance_generation", benchmarks: []string{"gsm8k", "humaneval"},
		extra: `student: executor: "slurm"
evaluation: {executor: "slurm", slurm: max_jobs: 1}`})
	f.exp.Student.Hardware.GPUsPerNode = 0
	f.exp.Student.Hardware.TimeLimit = "00:10:00"
	f.exp.Evaluation.GPUs = 0
	if err := os.Chmod(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newSbatchCounter(t)
	res, store := f.applyWith(withTimeout(t, 8*time.Minute), func(o *engine.Options) {
		o.Slurm = &slurm.Client{Sbatch: c.bin, Squeue: c.squeue}
		o.PollInterval = 500 * time.Millisecond
	})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	jobs, err := store.AllJobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, s := range f.plan.Steps {
		kinds[s.ID] = s.Kind
	}
	var evals []state.Job
	for _, j := range jobs {
		if kinds[j.StepID] == plan.KindEvaluate {
			evals = append(evals, j)
		}
	}
	// base and reference on 2 benchmarks, the student on 2.
	if len(evals) != 6 {
		t.Fatalf("%d evaluation jobs, want 6: %+v", len(evals), jobs)
	}
	for i, a := range evals {
		for _, b := range evals[i+1:] {
			if a.SubmittedAt.Before(b.UpdatedAt) && b.SubmittedAt.Before(a.UpdatedAt) {
				t.Errorf("evaluation jobs %s (%s to %s) and %s (%s to %s) were in Slurm at once past max_jobs 1",
					a.JobID, a.SubmittedAt.Format(time.StampMilli), a.UpdatedAt.Format(time.StampMilli),
					b.JobID, b.SubmittedAt.Format(time.StampMilli), b.UpdatedAt.Format(time.StampMilli))
			}
		}
	}
}
