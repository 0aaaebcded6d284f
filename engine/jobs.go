package engine

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/agorabench/agora/executors/local"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// Defaults of the job runners.
const (
	// defaultPollInterval is the time between two polls of the Slurm
	// jobs: one squeue call per interval for all of them.
	defaultPollInterval = 5 * time.Second
	// defaultResubmits bounds the submissions of a failed job beyond the
	// first (FAILED, TIMEOUT, OUT_OF_MEMORY, or a non-zero exit locally).
	defaultResubmits = 2
	// logTailLines is how much of a job's log a failure message carries.
	logTailLines = 20
)

// jobRunner runs the job of a train or evaluate step to its end: nil when
// it exited 0, an error carrying the log's tail otherwise. Every job is in
// the state (RecordJob) before anything else is done with it, and a job
// the state shows as still active is reattached to, never submitted
// again. When ctx ends, run returns ctx's error.
type jobRunner interface {
	run(ctx context.Context, s plan.Step, j slurm.Job, gpus int) error
}

// jobRunner returns the runner of an executor name ("" is local).
func (e *Engine) jobRunner(executor string) (jobRunner, error) {
	switch executor {
	case "", spec.ExecutorLocal:
		return &localJobs{e: e}, nil
	case spec.ExecutorSlurm:
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.poller == nil {
			e.poller = newPoller(e.slurmClient(), e.opts.PollInterval)
		}
		return &slurmJobs{e: e, p: e.poller}, nil
	}
	return nil, fmt.Errorf("unknown executor %q (local or slurm)", executor)
}

func (e *Engine) slurmClient() *slurm.Client {
	if e.opts.Slurm != nil {
		return e.opts.Slurm
	}
	return &slurm.Client{}
}

func (e *Engine) resubmits() int {
	if e.opts.Resubmits < 0 {
		return 0
	}
	if e.opts.Resubmits == 0 {
		return defaultResubmits
	}
	return e.opts.Resubmits
}

// needTools returns an unavailableError when a local job would need a
// command that is not in PATH; Slurm jobs find their tools on the compute
// nodes, which agora cannot see.
func needTools(executor, what string, tools ...string) error {
	if executor == spec.ExecutorSlurm {
		return nil
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return &unavailableError{why: fmt.Sprintf("%s is not in PATH (needed to %s locally)", t, what)}
		}
	}
	return nil
}

// budgetGPUHours names the GPU-hour budget in a BudgetError.
const budgetGPUHours = "gpu_hours"

// reserveGPU holds a step's estimated GPU-hours against budgets.gpu_hours
// (when set) until release is called, after the job's use is recorded.
// The check counts what the state records as used plus what the jobs in
// flight hold, so it errs on the side of stopping early.
func (e *Engine) reserveGPU(ctx context.Context, s plan.Step) (release func(), err error) {
	limit := e.exp.Budgets.GPUHours
	if limit <= 0 {
		return func() {}, nil
	}
	used, err := e.jobs.GPUHours(ctx)
	if err != nil {
		return nil, err
	}
	est := s.Estimate.GPUHours
	e.mu.Lock()
	defer e.mu.Unlock()
	if used+e.gpuHeld+est > limit {
		return nil, &BudgetError{Budget: budgetGPUHours, Limit: limit, Spent: used + e.gpuHeld, Requested: est}
	}
	e.gpuHeld += est
	return func() {
		e.mu.Lock()
		e.gpuHeld -= est
		e.mu.Unlock()
	}, nil
}

// runJob runs a step's job on its executor within the GPU-hour budget.
func (e *Engine) runJob(ctx context.Context, s plan.Step, j slurm.Job, gpus int) error {
	jr, err := e.jobRunner(s.Executor)
	if err != nil {
		return err
	}
	// The slot first: the GPU-hours are held once the job can start.
	free, devices, err := e.slot(ctx, s, j, gpus)
	if err != nil {
		return err
	}
	defer free()
	if len(devices) > 0 {
		env := make(map[string]string, len(j.Env)+1)
		for k, v := range j.Env {
			env[k] = v
		}
		env["CUDA_VISIBLE_DEVICES"] = strings.Join(devices, ",")
		j.Env = env
	}
	release, err := e.reserveGPU(ctx, s)
	if err != nil {
		return err
	}
	defer release()
	sp := e.prog.addJob(s.Address, s.Executor)
	defer e.prog.remove(sp)
	return jr.run(ctx, s, j, gpus)
}

// wrapJobErr prefixes a job's error with the step kind; a budget error is
// returned as is, for Apply to recognise.
func wrapJobErr(kind string, err error) error {
	var be *BudgetError
	if errors.As(err, &be) {
		return be
	}
	return fmt.Errorf("%s: %w", kind, err)
}

// CancelJobs cancels every Slurm job the state records as active (scancel)
// and records it CANCELLED, so that the next apply submits it again
// rather than reattaching. Local jobs need no cancelling: they end with
// their agora. It returns the ids cancelled.
func (e *Engine) CancelJobs(ctx context.Context) ([]string, error) {
	jobs, err := e.jobs.ActiveJobs(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, j := range jobs {
		if j.Executor == spec.ExecutorSlurm {
			ids = append(ids, j.JobID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if err := e.slurmClient().Cancel(ctx, ids...); err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.Executor == spec.ExecutorSlurm {
			if err := e.jobs.SetJobStatus(ctx, j.JobID, string(slurm.Cancelled)); err != nil {
				return ids, err
			}
		}
	}
	return ids, nil
}

// gpuHours is elapsed × GPUs, in hours.
func gpuHours(elapsed time.Duration, gpus int) float64 {
	return elapsed.Hours() * float64(gpus)
}

// jobFailure is the error of a job that failed, naming its log, with the
// log's tail.
func jobFailure(j slurm.Job, id, what string) error {
	log := slurm.LogPath(j.Dir, id)
	msg := fmt.Sprintf("job %s %s; log %s", id, what, log)
	if tail := local.Tail(log, logTailLines); tail != "" {
		msg += ", which ends:\n" + tail
	}
	return errors.New(msg)
}

// record writes to the state even when ctx has just ended: what happened
// to a job must not be lost to an interrupt.
func record(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// localJobs runs jobs as local processes (executors/local).
type localJobs struct{ e *Engine }

func (r *localJobs) run(ctx context.Context, s plan.Step, j slurm.Job, gpus int) error {
	store := r.e.jobs
	jobs, err := store.Jobs(ctx, s.ID)
	if err != nil {
		return err
	}
	failures := 0
	for _, old := range jobs {
		switch {
		case state.IsActiveJob(old.Status):
			// A local job ends with the agora that ran it, unless that
			// agora was killed outright: then it runs on, and is waited
			// for rather than started a second time. What it left says
			// how it ended.
			if _, alive := local.Outlived(j.Dir, old.JobID); alive {
				sp := r.e.prog.addJob(s.Address+" (waiting for "+old.JobID+", left running by a killed agora)", s.Executor)
				err := local.WaitOutlived(r.e.soft, j.Dir, old.JobID)
				r.e.prog.remove(sp)
				if err != nil {
					if ctx.Err() == nil && r.e.stopped() {
						return errStopped
					}
					return err
				}
				elapsed := time.Since(old.SubmittedAt)
				if err := store.UpdateJobRun(record(ctx), old.JobID, old.Status, elapsed, gpuHours(elapsed, gpus)); err != nil {
					return err
				}
			}
			code, ok, err := slurm.ReadExitMarker(j.Dir, old.JobID)
			if err != nil {
				return err
			}
			switch {
			case ok && code == 0:
				return store.SetJobStatus(record(ctx), old.JobID, string(slurm.Completed))
			case ok:
				failures++
				if err := store.SetJobStatus(record(ctx), old.JobID, string(slurm.Failed)); err != nil {
					return err
				}
			default: // interrupted: not the job's fault
				if err := store.SetJobStatus(record(ctx), old.JobID, string(slurm.Cancelled)); err != nil {
					return err
				}
			}
		case old.Status == string(slurm.Failed):
			failures++
		}
	}
	attempt := len(jobs)
	for {
		// A local job started is waited for, even after the first
		// interrupt: it would die with agora.
		if r.e.stopped() {
			return errStopped
		}
		attempt++
		id := local.NewID()
		if err := store.RecordJob(record(ctx), s.ID, spec.ExecutorLocal, id, attempt); err != nil {
			return err
		}
		start := time.Now()
		code, err := local.Run(ctx, j, id)
		elapsed := time.Since(start)
		used := gpuHours(elapsed, gpus)
		switch {
		case ctx.Err() != nil:
			_ = store.UpdateJobRun(record(ctx), id, string(slurm.Cancelled), elapsed, used)
			return ctx.Err()
		case err != nil:
			_ = store.UpdateJobRun(record(ctx), id, string(slurm.Failed), elapsed, used)
			return err
		case code == 0:
			return store.UpdateJobRun(record(ctx), id, string(slurm.Completed), elapsed, used)
		}
		if err := store.UpdateJobRun(record(ctx), id, string(slurm.Failed), elapsed, used); err != nil {
			return err
		}
		failures++
		if failures > r.e.resubmits() {
			return jobFailure(j, id, fmt.Sprintf("exited with status %d (attempt %d; %d resubmission%s allowed)", code, attempt, r.e.resubmits(), plural(r.e.resubmits())))
		}
	}
}

// slurmJobs runs jobs on Slurm through the engine's shared poller.
type slurmJobs struct {
	e *Engine
	p *poller
}

func (r *slurmJobs) run(ctx context.Context, s plan.Step, j slurm.Job, gpus int) error {
	store, client := r.e.jobs, r.p.client
	jobs, err := store.Jobs(ctx, s.ID)
	if err != nil {
		return err
	}
	failures := 0
	id := ""
	for _, old := range jobs {
		switch {
		case state.IsActiveJob(old.Status) && old.Executor == spec.ExecutorSlurm:
			id = old.JobID // reattach
		case state.IsActiveJob(old.Status):
			_ = store.SetJobStatus(record(ctx), old.JobID, string(slurm.Cancelled))
		case slurm.Classify(slurm.State(old.Status)) == slurm.Resubmit:
			failures++
		}
	}
	attempt := len(jobs)
	submit := func() error {
		if r.e.stopped() {
			return errStopped
		}
		attempt++
		// An interrupt must not kill sbatch between the submission and
		// its reply: the job would run with its id unrecorded.
		newID, err := client.SubmitJob(record(ctx), j)
		if err != nil {
			return err
		}
		id = newID
		if err := store.RecordJob(record(ctx), s.ID, spec.ExecutorSlurm, id, attempt); err != nil {
			// A job the state does not know would be submitted again:
			// cancel it rather than let it run unrecorded.
			if cerr := client.Cancel(record(ctx), id); cerr != nil {
				return fmt.Errorf("%w (and cancelling the unrecorded job %s failed: %v)", err, id, cerr)
			}
			return err
		}
		return nil
	}
	if id == "" {
		if err := submit(); err != nil {
			return err
		}
	}
	for {
		// The first interrupt (Options.Stop) ends the wait too: the job
		// runs on, recorded, and the next apply reattaches to it (or
		// CancelJobs cancels it).
		st, err := r.p.wait(r.e.soft, id)
		if err != nil {
			if ctx.Err() == nil && r.e.stopped() {
				return errStopped
			}
			return err
		}
		if st.State == slurm.Unknown {
			if st, err = slurm.Resolve(j.Dir, st); err != nil {
				return err
			}
		}
		// A requeued job's clock starts again: the state adds its runs
		// up (UpdateJobRun).
		used := gpuHours(st.Elapsed, gpus)
		if err := store.UpdateJobRun(record(ctx), id, string(st.State), st.Elapsed, used); err != nil {
			return err
		}
		switch slurm.Classify(st.State) {
		case slurm.Wait:
			continue
		case slurm.Succeed:
			return nil
		case slurm.Requeue:
			if err := client.Requeue(ctx, id); err == nil {
				if err := store.UpdateJobRun(record(ctx), id, string(slurm.Requeued), st.Elapsed, used); err != nil {
					return err
				}
				continue
			}
			// Slurm refused: submit again, not counted as a failure.
			if err := submit(); err != nil {
				return err
			}
		case slurm.GiveUp:
			return jobFailure(j, id, "was cancelled (not retried)")
		default: // Resubmit, or Unknown without an exit marker
			failures++
			if failures > r.e.resubmits() {
				return jobFailure(j, id, fmt.Sprintf("ended %s with exit status %d (attempt %d; %d resubmission%s allowed)",
					st.State, st.ExitCode, attempt, r.e.resubmits(), plural(r.e.resubmits())))
			}
			if err := submit(); err != nil {
				return err
			}
		}
	}
}

// poller polls every Slurm job the engine waits on with one Client.Poll
// call per interval, and hands each waiter its job's status.
type poller struct {
	client   *slurm.Client
	interval time.Duration

	mu      sync.Mutex
	waiters map[string][]chan slurm.Status
	running bool
}

func newPoller(c *slurm.Client, interval time.Duration) *poller {
	if interval <= 0 {
		interval = defaultPollInterval
	}
	return &poller{client: c, interval: interval, waiters: map[string][]chan slurm.Status{}}
}

// wait returns the next status of job id that the poller learns.
func (p *poller) wait(ctx context.Context, id string) (slurm.Status, error) {
	ch := make(chan slurm.Status, 1)
	p.mu.Lock()
	p.waiters[id] = append(p.waiters[id], ch)
	if !p.running {
		p.running = true
		go p.loop()
	}
	p.mu.Unlock()
	select {
	case st := <-ch:
		return st, nil
	case <-ctx.Done():
		p.mu.Lock()
		ws := p.waiters[id]
		for i, w := range ws {
			if w == ch {
				p.waiters[id] = append(ws[:i:i], ws[i+1:]...)
				break
			}
		}
		if len(p.waiters[id]) == 0 {
			delete(p.waiters, id)
		}
		p.mu.Unlock()
		return slurm.Status{}, ctx.Err()
	}
}

// loop polls while anyone waits, then stops.
func (p *poller) loop() {
	for {
		time.Sleep(p.interval)
		p.mu.Lock()
		if len(p.waiters) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		ids := sortedKeys(p.waiters)
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		got, err := p.client.Poll(ctx, ids)
		cancel()
		if err != nil {
			continue // nothing learnt this time: poll again later
		}
		p.mu.Lock()
		for id, st := range got {
			for _, ch := range p.waiters[id] {
				ch <- st
			}
			delete(p.waiters, id)
		}
		p.mu.Unlock()
	}
}
