package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agorabench/agora/executors/local"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/executors/vllm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// ServerProvider is a provider that runs servers of its own (the vLLM
// servers of a generator with provider vllm). The engine starts them
// before the generator's first request and closes them once no generate
// step of the generator is left to run in this apply, and before Apply
// returns, whatever happened.
type ServerProvider interface {
	Provider
	// Start starts the servers. jobs records each one as a job of the
	// step that needed them first, so that their GPU time counts against
	// budgets.gpu_hours like a train or evaluate job's.
	Start(ctx context.Context, jobs JobRecorder) error
	// Close stops the servers and records their GPU time.
	Close(ctx context.Context) error
}

// JobRecorder records a provider's servers as jobs: RecordJob as soon as
// a server's process or job exists, UpdateJob as it runs and when it ends.
// executor is "local" or "slurm".
type JobRecorder interface {
	RecordJob(ctx context.Context, executor, id string) error
	UpdateJob(ctx context.Context, id, status string, gpuHours float64) error
	// Logf reports an event (servers starting, one leaving the rotation)
	// with the progress lines.
	Logf(format string, args ...any)
}

// serverPrefix marks the executor of a server's job in the state
// ("server:local", "server:slurm"): CancelJobs and the train and evaluate
// runners, which reattach to jobs, leave these alone.
const serverPrefix = "server:"

// serverJobs records the servers started for one step, and follows their
// Slurm jobs through the engine's shared poller (Wait), so that they cost
// no squeue calls of their own.
type serverJobs struct {
	e       *Engine
	store   JobStore
	prog    *progress
	stepID  string
	mu      sync.Mutex
	attempt int
}

func (r *serverJobs) RecordJob(ctx context.Context, executor, id string) error {
	r.mu.Lock()
	r.attempt++
	n := r.attempt
	r.mu.Unlock()
	return r.store.RecordJob(ctx, r.stepID, serverPrefix+executor, id, n)
}

func (r *serverJobs) UpdateJob(ctx context.Context, id, status string, gpuHours float64) error {
	return r.store.UpdateJob(ctx, id, status, gpuHours)
}

func (r *serverJobs) Logf(format string, args ...any) { r.prog.note(fmt.Sprintf(format, args...)) }

// Wait returns the next status of Slurm job id that the shared poller
// learns.
func (r *serverJobs) Wait(ctx context.Context, id string) (slurm.Status, error) {
	return r.e.slurmPoller().wait(ctx, id)
}

// slurmPoller is the engine's shared poller of Slurm jobs.
func (e *Engine) slurmPoller() *poller {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.poller == nil {
		e.poller = newPoller(e.slurmClient(), e.opts.PollInterval)
	}
	return e.poller
}

// startServers starts a server provider's servers for step stepID. Server
// jobs that an earlier agora left active (it was killed before it could
// stop them) are ended first, their GPU time taken from the executor's
// own accounting (endStaleServers).
func (e *Engine) startServers(ctx context.Context, sp ServerProvider, g *spec.Generator, stepID string) error {
	e.staleOnce.Do(func() { e.staleErr = e.endStaleServers(ctx) })
	if e.staleErr != nil {
		return e.staleErr
	}
	if err := sp.Start(e.soft, &serverJobs{e: e, store: e.jobs, prog: e.prog, stepID: stepID}); err != nil {
		if e.stopped() || e.soft.Err() != nil {
			return errStopped
		}
		e.mu.Lock()
		e.serverErr[g.Name] = err
		e.mu.Unlock()
		return err
	}
	e.mu.Lock()
	e.servers[g.Name] = sp
	e.mu.Unlock()
	return nil
}

func (e *Engine) endStaleServers(ctx context.Context) error {
	jobs, err := e.jobs.ActiveJobs(ctx)
	if err != nil {
		return err
	}
	var ids []string
	for _, j := range jobs {
		if j.Executor == serverPrefix+spec.ExecutorSlurm {
			ids = append(ids, j.JobID)
		}
	}
	// Slurm's own accounting: how each job ended and how long it ran.
	var ended map[string]slurm.Status
	if len(ids) > 0 {
		if err := e.slurmClient().Cancel(ctx, ids...); err != nil {
			return err
		}
		ended = e.waitEnded(ctx, ids)
	}
	for _, j := range jobs {
		if !strings.HasPrefix(j.Executor, serverPrefix) {
			continue
		}
		gpus := e.serverGPUs(j.StepID)
		status, elapsed := string(slurm.Cancelled), time.Duration(0)
		if j.Executor == serverPrefix+spec.ExecutorSlurm {
			if st, ok := ended[j.JobID]; ok {
				if st.State.Done() && st.State != slurm.Unknown {
					status = string(st.State)
				}
				if !st.StartTime.IsZero() && st.EndTime.After(st.StartTime) {
					elapsed = st.EndTime.Sub(st.StartTime)
				}
			}
		} else {
			status, elapsed = e.endStaleLocal(j)
		}
		if elapsed > 0 && gpus > 0 {
			err = e.jobs.UpdateJobRun(record(ctx), j.JobID, status, elapsed, gpuHours(elapsed, gpus))
		} else {
			err = e.jobs.SetJobStatus(record(ctx), j.JobID, status)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// waitEnded polls cancelled Slurm jobs until each has ended (a server's
// script may take StopGrace to stop it), for at most a minute more.
func (e *Engine) waitEnded(ctx context.Context, ids []string) map[string]slurm.Status {
	deadline := time.Now().Add(vllm.StopGrace + time.Minute)
	var last map[string]slurm.Status
	for {
		st, err := e.slurmClient().Poll(ctx, ids)
		if err == nil {
			last = st
			done := true
			for _, id := range ids {
				if s, ok := st[id]; ok && !s.State.Done() {
					done = false
				}
			}
			if done {
				return last
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// endStaleLocal ends a local server job that a killed agora left: its
// process group, if it still runs, is stopped (SIGTERM, SIGKILL after
// StopGrace); the exit marker its script wrote tells how it ended and,
// by its time, how long it ran (from its recording).
func (e *Engine) endStaleLocal(j state.Job) (string, time.Duration) {
	dir := e.serverDir(j.JobID)
	if dir == "" {
		return string(slurm.Cancelled), 0
	}
	killed := false
	if pgid, alive := local.Outlived(dir, j.JobID); alive {
		killed = true
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		deadline := time.Now().Add(vllm.StopGrace)
		for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	end := time.Now()
	status := string(slurm.Cancelled)
	if fi, err := os.Stat(filepath.Join(dir, "slurm-"+j.JobID+".exit")); err == nil {
		if !killed {
			end = fi.ModTime()
			status = string(slurm.Failed)
			if code, ok, _ := slurm.ReadExitMarker(dir, j.JobID); ok && code == 0 {
				status = string(slurm.Completed)
			}
		}
	} else if !killed {
		// No marker and no process: it died with no word; what it ran
		// is unknown, the last figures stand.
		return status, 0
	}
	if end.Before(j.SubmittedAt) {
		return status, 0
	}
	return status, end.Sub(j.SubmittedAt)
}

// serverDir is the directory of local server job id's files: a
// generator's (.agora/servers/<generator>) or a served evaluation's
// (.agora/runs/<step>/server); "" when none holds its pid file.
func (e *Engine) serverDir(id string) string {
	if e.opts.Dir == "" {
		return ""
	}
	for _, pattern := range []string{
		filepath.Join(e.opts.Dir, "servers", "*", "job-"+id+".pid"),
		filepath.Join(e.opts.Dir, "runs", "*", "server", "job-"+id+".pid"),
	} {
		if m, _ := filepath.Glob(pattern); len(m) == 1 {
			return filepath.Dir(m[0])
		}
	}
	return ""
}

// serverGPUs is the GPUs of one server started for step stepID (a
// generator's, a metric model's, or a served evaluation's: "<id>/serve");
// 0 when the current plan does not say.
func (e *Engine) serverGPUs(stepID string) int {
	if strings.HasSuffix(stepID, "/serve") {
		return max(e.exp.Evaluation.GPUs, 1)
	}
	for _, s := range e.plan.Steps {
		if s.ID != stepID {
			continue
		}
		if g := metricServerGen(e.exp, s); g != nil && g.Provider.VLLM != nil {
			return max(g.Provider.VLLM.GPUs, 1)
		}
	}
	return 0
}

// serversNeeded reports whether a step using generator gen's servers (a
// generate or solve step of it, or a metric step it serves; metricServer)
// may still run in this apply: one not done and not blocked, that is running or may
// yet start.
func serversNeeded(p *plan.Plan, exp *spec.Experiment, gen string, done, started map[string]bool, blocked map[string]string, starting bool) bool {
	for _, s := range p.Steps {
		if metricServer(exp, s) == gen && !done[s.ID] && blocked[s.ID] == "" && (started[s.ID] || starting) {
			return true
		}
	}
	return false
}

// closeServers stops the servers of generator gen, if it has any, in the
// background; waitServers waits for every such close.
func (e *Engine) closeServers(ctx context.Context, gen string) {
	e.mu.Lock()
	sp := e.servers[gen]
	delete(e.servers, gen)
	delete(e.providers, gen)
	e.mu.Unlock()
	if sp == nil {
		return
	}
	e.closing.Add(1)
	go func() {
		defer e.closing.Done()
		if err := sp.Close(context.WithoutCancel(ctx)); err != nil {
			e.prog.note("stopping the servers of " + gen + ": " + err.Error())
		}
	}()
}

// closeAllServers stops every server still running and waits until all
// are stopped.
func (e *Engine) closeAllServers(ctx context.Context) {
	e.mu.Lock()
	var gens []string
	for g := range e.servers {
		gens = append(gens, g)
	}
	e.mu.Unlock()
	for _, g := range gens {
		e.closeServers(ctx, g)
	}
	e.closing.Wait()
}
