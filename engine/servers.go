package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
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
// stop them) are ended first: Slurm ones are cancelled, all are recorded
// CANCELLED.
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
	if len(ids) > 0 {
		if err := e.slurmClient().Cancel(ctx, ids...); err != nil {
			return err
		}
	}
	for _, j := range jobs {
		if strings.HasPrefix(j.Executor, serverPrefix) {
			if err := e.jobs.SetJobStatus(record(ctx), j.JobID, string(slurm.Cancelled)); err != nil {
				return err
			}
		}
	}
	return nil
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
