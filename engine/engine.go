// Package engine applies a plan: it walks the plan's DAG with bounded
// parallelism, runs each step through the runner for its kind, records
// every step and every paid response in the state before counting it,
// enforces the dollar budgets at run time, shows progress, and stops
// cleanly on interrupt. Rerunning resumes where the state says it stopped.
//
// The engine knows no provider: generate steps reach models through the
// small Provider interface defined here.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agorabench/agora/eta"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// Message is one chat message.
type Message struct{ Role, Content string }

// Completion is a provider's answer to one request.
type Completion struct {
	Text, FinishReason, Model, SystemFingerprint, ID string
	PromptTokens, CompletionTokens                   int
}

// Provider completes chat requests. Complete returns at most one billable
// completion per call; transient failures are retried inside it, and an
// error means the step cannot go on (bad key, unknown model, outage) or ctx
// ended.
type Provider interface {
	Complete(ctx context.Context, msgs []Message) (Completion, error)
}

// Store is what the engine needs of the state, in one value: the state
// (*state.Store) is all of these. Each part is what one consumer uses.
type Store interface {
	StepStore
	GenerationStore
	JobStore
	ScoreStore
}

// StepStore is the walker's (Apply): which steps are done, and how each
// step it meets ends, recorded once with its reason. Runners return their
// output or an error and never end a step; a metric step begins its step
// again with the target it knows once it has sampled its items.
type StepStore interface {
	Completed(ctx context.Context, ids []string) (map[string]bool, error)
	BeginStep(ctx context.Context, info state.StepInfo) error
	EndStep(ctx context.Context, info state.StepInfo, status, reason, output string) error
	InterruptRunning(ctx context.Context, reason string) ([]string, error)
}

// GenerationStore holds every paid response of generate, solve and metric
// steps, recorded before it is counted, and the accepted data that train
// and metric steps read.
type GenerationStore interface {
	Append(ctx context.Context, g state.Generation) error
	AcceptedSlots(ctx context.Context, stepID string) (map[int]bool, error)
	LastAttempts(ctx context.Context, stepID string) (map[int]int, error)
	Accepted(ctx context.Context, stepID string, fn func(state.Generation) error) error
	RecordSeed(ctx context.Context, ref, digest string) error
}

// JobStore is the job runners' and the servers': every job recorded right
// after its submission, its status and its runs' time, the GPU-hours used.
type JobStore interface {
	RecordJob(ctx context.Context, stepID, executor, jobID string, attempt int) error
	UpdateJob(ctx context.Context, jobID, status string, gpuHours float64) error
	UpdateJobRun(ctx context.Context, jobID, status string, elapsed time.Duration, gpuHours float64) error
	SetJobStatus(ctx context.Context, jobID, status string) error
	Jobs(ctx context.Context, stepID string) ([]state.Job, error)
	ActiveJobs(ctx context.Context) ([]state.Job, error)
	GPUHours(ctx context.Context) (float64, error)
}

// ScoreStore is the evaluate, score and solve steps': benchmark scores
// and PGRs, and the train step an evaluation reads.
type ScoreStore interface {
	Step(ctx context.Context, id string) (state.StepState, bool, error)
	RecordScore(ctx context.Context, stepID, benchmark, model string, value float64) error
	RecordPGR(ctx context.Context, stepID string, perBenchmark map[string]float64, pgr float64) error
	Scores(ctx context.Context) ([]state.Score, error)
}

// Options configure an apply.
type Options struct {
	// Dir is the state directory (.agora); datasets go to Dir/datasets.
	Dir string
	// Parallelism, when set, bounds the steps running at once and
	// replaces the resource-aware limits (schedule.go): no job slot is
	// counted. Zero: every ready step starts, each held by its own
	// resources (its generator's limits, its executor's slots).
	Parallelism int
	// Machine is what local jobs may use; nil: DetectMachine.
	Machine *Machine
	// MaxAttempts bounds the requests per instance before it is given up
	// (default 10).
	MaxAttempts int
	// Providers returns the provider of a generator.
	Providers func(g *spec.Generator) (Provider, error)
	// Seeds loads a setting's seed items.
	Seeds SeedLoader
	// Stop is closed to stop sending new requests (the first Ctrl-C);
	// requests in flight finish and are recorded. Cancelling Apply's ctx
	// abandons them (the second Ctrl-C).
	Stop <-chan struct{}
	// Progress receives progress lines; nil for none.
	Progress io.Writer
	// TTY redraws progress in place instead of printing periodic lines.
	TTY bool
	// Interval between progress updates (default 1 s on a TTY, 10 s
	// otherwise).
	Interval time.Duration

	// Slurm runs the Slurm commands of train and evaluate steps whose
	// executor is slurm; nil: the commands in PATH.
	Slurm *slurm.Client
	// PollInterval is the time between two polls of the Slurm jobs, one
	// squeue call for all of them (default 5 s).
	PollInterval time.Duration
	// Resubmits bounds the submissions of a failed job beyond its first
	// (default 2; negative: none).
	Resubmits int
}

// Result says what an apply did. Every step of the plan that was not
// done before the apply is in exactly one of Done, Failed and Skipped, and
// the state records the same outcome with the same reason.
type Result struct {
	Done   []string          // addresses completed in this run
	Failed map[string]string // steps that failed, and their errors
	// Skipped holds every other step that did not finish (interrupted,
	// blocked by a step that failed or cannot run, not run), and why.
	Skipped map[string]string
	// Unavailable holds the steps that cannot run on this machine (a tool
	// is not in PATH) or need one that cannot: a subset of Skipped.
	Unavailable map[string]string
	// Blocked holds the steps not run because a step they need failed: a
	// subset of Skipped.
	Blocked map[string]string
	Budget  *BudgetError // the budget that stopped the run, if any
	Stopped bool         // interrupted
}

// Err summarises a result in which a step failed or that a budget or an
// interrupt stopped as an error that names every step that did not finish
// and why, grouped by reason (NotRun). Steps not run only because they
// cannot run here are no error (nil): see NotRun and Unavailable.
func (r *Result) Err() error {
	var lines []string
	if r.Budget != nil {
		lines = append(lines, r.Budget.Error())
	}
	for _, a := range sortedKeys(r.Failed) {
		lines = append(lines, fmt.Sprintf("step %s failed: %s", a, r.Failed[a]))
	}
	if r.Stopped {
		lines = append(lines, "interrupted: what was received is recorded; run agora apply again to resume")
	}
	if len(lines) == 0 {
		return nil
	}
	lines = append(lines, r.NotRun()...)
	return errors.New(strings.Join(lines, "\n"))
}

// NotRun describes every skipped step, grouped by reason: a header line
// "N steps not run:", then each reason followed by its steps, indented.
func (r *Result) NotRun() []string {
	n := len(r.Skipped)
	if n == 0 {
		return nil
	}
	// Reasons in the order of their first step's address.
	byWhy := map[string][]string{}
	var whys []string
	for _, a := range sortedKeys(r.Skipped) {
		why := r.Skipped[a]
		if byWhy[why] == nil {
			whys = append(whys, why)
		}
		byWhy[why] = append(byWhy[why], a)
	}
	lines := []string{fmt.Sprintf("%d step%s not run:", n, plural(n))}
	for _, why := range whys {
		addrs := byWhy[why]
		if len(addrs) == 1 {
			lines = append(lines, fmt.Sprintf("  %s: %s", addrs[0], why))
			continue
		}
		lines = append(lines, fmt.Sprintf("  %s (%d steps):", why, len(addrs)))
		for _, a := range addrs {
			lines = append(lines, "    "+a)
		}
	}
	return lines
}

// runner runs one kind of step: it returns the step's output (a data
// set, a model or results directory; "" for none) or why it did not
// finish. It never records the step's outcome: the walker does (Apply).
type runner interface {
	run(ctx context.Context, s plan.Step) (output string, err error)
}

// Engine applies one plan.
type Engine struct {
	exp  *spec.Experiment
	plan *plan.Plan
	// The state, by consumer (Store); metrics is nil when the state keeps
	// no metrics.
	steps   StepStore
	gens    GenerationStore
	jobs    JobStore
	scores  ScoreStore
	metrics MetricStore
	// batchStore is nil when the state keeps no batches (batch.go).
	batchStore BatchStore
	ledger     *Ledger
	opts       Options
	prog       *progress
	soft       context.Context // ends when sending must stop
	// noSend closes at the first interrupt or budget crossing (bounds.go).
	sendOnce sync.Once
	noSend   <-chan struct{}

	mu        sync.Mutex
	providers map[string]Provider
	provLocks map[string]*sync.Mutex // one per generator: creating its provider
	servers   map[string]ServerProvider
	serverErr map[string]error // a generator whose servers did not start
	closing   sync.WaitGroup   // servers being stopped
	staleOnce sync.Once
	staleErr  error
	poller    *poller // Slurm jobs; created on first use
	sched     *scheduler
	gpuHeld   float64 // GPU-hours reserved by jobs in flight
	// enqueued holds the prompt tokens of the batches in flight, by
	// enqueued-token pool (an endpoint and model) and batch key
	// (batch.go).
	enqueued map[string]map[string]int64
	// enqueuedFreed is closed (and replaced) when a batch releases its
	// enqueued tokens: a step of another generator in the same pool may
	// wait for it.
	enqueuedFreed chan struct{}
	poolLocks     map[string]*sync.Mutex
	// batchFlight counts the batches followed at a provider.
	batchFlight atomic.Int64
}

// New prepares an apply of p, compiled from exp, against store. spent and
// spentBy are the dollars the state has already recorded.
func New(exp *spec.Experiment, p *plan.Plan, store Store, spent float64, spentBy map[string]float64, opts Options) *Engine {
	if opts.Parallelism < 0 {
		opts.Parallelism = 0
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	per := map[string]float64{}
	for name, b := range exp.Budgets.PerGenerator {
		if b.USD > 0 {
			per[name] = b.USD
		}
	}
	e := &Engine{
		exp: exp, plan: p, steps: store, gens: store, jobs: store, scores: store, opts: opts,
		ledger:    NewLedger(exp.Budgets.USD, per, spent, spentBy),
		providers: map[string]Provider{},
		provLocks: map[string]*sync.Mutex{},
		servers:   map[string]ServerProvider{},
		serverErr: map[string]error{},
		prog:      newProgress(opts.Progress, opts.TTY, opts.Interval, exp.Budgets.USD),
	}
	e.metrics, _ = store.(MetricStore)
	e.batchStore, _ = store.(BatchStore)
	m := opts.Machine
	if m == nil {
		d := DetectMachine()
		m = &d
	}
	e.sched = newScheduler(*m, nil, p)
	e.prog.spent = func() float64 {
		total, _ := e.ledger.Spent("")
		return total
	}
	e.prog.retries = func(gen string) int64 {
		e.mu.Lock()
		p := e.providers[gen]
		e.mu.Unlock()
		if r, ok := p.(interface{ Retries() int64 }); ok {
			return r.Retries()
		}
		return 0
	}
	return e
}

// Apply runs every step of the plan that is not done and that has a
// runner, in dependency order, and records in the state how each step it
// meets ends, with why: done, failed, interrupted, blocked, or not run.
// Steps an earlier apply left running (it was killed) are recorded as
// interrupted first.
func (e *Engine) Apply(ctx context.Context) (*Result, error) {
	res := &Result{Failed: map[string]string{}, Skipped: map[string]string{}, Unavailable: map[string]string{}, Blocked: map[string]string{}}
	ids := make([]string, len(e.plan.Steps))
	byID := map[string]plan.Step{}
	for i, s := range e.plan.Steps {
		ids[i] = s.ID
		byID[s.ID] = s
	}
	if _, err := e.steps.InterruptRunning(ctx, errKilled); err != nil {
		return nil, err
	}
	inPlan := make(map[string]bool, len(ids))
	for _, id := range ids {
		inPlan[id] = true
	}
	if err := e.holdOrphans(ctx, inPlan); err != nil {
		return nil, err
	}
	done, err := e.steps.Completed(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	// Ready work starts in decreasing critical path (eta), which keeps
	// every step after those it needs.
	times := eta.Plan(e.exp, e.plan, done)
	e.sched.prio = times.Path
	order := make([]plan.Step, 0, len(ids))
	for _, id := range times.Order(e.plan) {
		order = append(order, byID[id])
	}
	// One runner per step kind, each in its own file (the metric
	// runners share metrics.go).
	runners := map[string]runner{
		plan.KindGenerate: &generateRunner{e: e},          // generate.go
		plan.KindTrain:    &trainRunner{e: e, byID: byID}, // train.go
		plan.KindEvaluate: &evaluateRunner{e: e},          // evaluate.go
		plan.KindScore:    &scoreRunner{e: e},             // score.go
		plan.KindSolve:    &solveRunner{e: e},             // solve.go
		// Intrinsic metrics: judge.go, diversity.go, perplexity.go, reward.go.
		plan.KindJudge:      judgeRunner{metricRunner{e}},
		plan.KindDiversity:  diversityRunner{metricRunner{e}},
		plan.KindPerplexity: perplexityRunner{metricRunner{e}},
		plan.KindReward:     rewardRunner{metricRunner{e}},
	}

	// soft ends when sending must stop: the first interrupt, or ctx.
	soft, cancelSoft := context.WithCancel(ctx)
	defer cancelSoft()
	if e.opts.Stop != nil {
		go func() {
			select {
			case <-e.opts.Stop:
				cancelSoft()
			case <-soft.Done():
			}
		}()
	}
	e.soft = soft

	e.prog.start()
	defer e.prog.stop()
	// No server outlives the apply, whatever ended it.
	defer e.closeAllServers(ctx)

	// end records how a step ended, once, here: the state and the result
	// say the same. The state is written even after ctx ended.
	ended := map[string]bool{}
	end := func(s plan.Step, status, why, output string) {
		ended[s.ID] = true
		if err := e.steps.EndStep(record(ctx), stepInfo(s), status, why, output); err != nil {
			if status == state.StatusDone {
				status, why = state.StatusFailed, err.Error()
			} else {
				why += " (" + err.Error() + ")"
			}
		}
		switch status {
		case state.StatusDone:
			done[s.ID] = true
			res.Done = append(res.Done, s.Address)
		case state.StatusFailed:
			res.Failed[s.Address] = why
		default:
			res.Skipped[s.Address] = why
		}
	}

	type outcome struct {
		id     string
		output string
		err    error
	}
	results := make(chan outcome)
	started := map[string]bool{}
	// blocked: steps that will not run in this apply, and why; cause: the
	// step whose failure or absence of tools is why (for those two).
	blocked := map[string]string{}
	cause := map[string]string{}
	unavailable := map[string]bool{}
	running := 0
	stopping := false
	for {
		if !stopping && e.stopped() {
			stopping = true
			res.Stopped = true
		}
		// Start every ready step (up to -parallelism when set), the
		// longest critical path first.
		for _, s := range order {
			if stopping || res.Budget != nil || (e.opts.Parallelism > 0 && running >= e.opts.Parallelism) {
				break
			}
			if done[s.ID] || started[s.ID] || blocked[s.ID] != "" {
				continue
			}
			ready, settled := true, true
			for _, n := range s.Needs {
				if !done[n] {
					ready = false
					settled = settled && cause[n] != ""
				}
			}
			if !ready && settled {
				// Every need not done failed or cannot run: blocked, by
				// the first that failed, else the first that cannot run.
				var c, d string // the cause, and the need through which
				for _, n := range s.Needs {
					if cn := cause[n]; !done[n] && (c == "" || unavailable[c] && !unavailable[cn]) {
						c, d = cn, n
					}
				}
				cause[s.ID] = c
				why := "needs " + byID[c].Address
				if d != c {
					why = fmt.Sprintf("needs %s, blocked by %s", byID[d].Address, byID[c].Address)
				}
				if unavailable[c] {
					blocked[s.ID] = fmt.Sprintf("%s, which cannot run here: %s", why, blocked[c])
					res.Unavailable[s.Address] = blocked[s.ID]
				} else {
					blocked[s.ID] = why + ", which failed"
					res.Blocked[s.Address] = blocked[s.ID]
				}
				end(s, state.StatusBlocked, blocked[s.ID], "")
			}
			if !ready {
				continue
			}
			r, ok := runners[s.Kind]
			if !ok {
				why := fmt.Sprintf("no %s executor in this version of agora", s.Kind)
				blocked[s.ID], cause[s.ID], unavailable[s.ID] = why, s.ID, true
				res.Unavailable[s.Address] = why
				end(s, state.StatusNotRun, why, "")
				continue
			}
			if err := e.steps.BeginStep(ctx, stepInfo(s)); err != nil {
				return nil, fmt.Errorf("record step %s: %w", s.Address, err)
			}
			started[s.ID] = true
			running++
			go func(s plan.Step) {
				out, err := r.run(ctx, s)
				results <- outcome{s.ID, out, err}
			}(s)
		}
		if running == 0 {
			break
		}
		o := <-results
		running--
		s := byID[o.id]
		var be *BudgetError
		var ua *unavailableError
		switch {
		case o.err == nil:
			end(s, state.StatusDone, "", o.output)
		case errors.As(o.err, &be):
			res.Budget = be
			blocked[o.id] = "budget"
			end(s, state.StatusInterrupted, "stopped by the budget: "+be.Error(), "")
		case errors.Is(o.err, errQueued):
			res.Stopped = true
			blocked[o.id] = "interrupted"
			end(s, state.StatusNotRun, "not started: interrupted", "")
		case errors.As(o.err, &ua):
			blocked[o.id], cause[o.id], unavailable[o.id] = ua.why, o.id, true
			res.Unavailable[s.Address] = ua.why
			end(s, state.StatusNotRun, ua.why, "")
		case errors.Is(o.err, errStopped) || ctx.Err() != nil:
			res.Stopped = true
			blocked[o.id] = "interrupted"
			end(s, state.StatusInterrupted, "interrupted: run agora apply again to resume", "")
		default:
			blocked[o.id], cause[o.id] = "failed", o.id
			end(s, state.StatusFailed, o.err.Error(), "")
		}
		if gen := metricServer(e.exp, s); gen != "" && !serversNeeded(e.plan, e.exp, gen, done, started, blocked, !stopping && res.Budget == nil && !e.stopped()) {
			e.closeServers(ctx, gen)
		}
	}
	// A budget a settlement crossed: the spend once the requests in
	// flight were settled too.
	res.Budget = e.ledger.Final(res.Budget)
	// The steps never started: each is recorded with why.
	for _, s := range e.plan.Steps {
		if done[s.ID] || ended[s.ID] {
			continue
		}
		why := "not started"
		switch {
		case res.Budget != nil:
			why = "not started: the " + res.Budget.Budget + " budget is spent"
		case res.Stopped:
			why = "not started: interrupted"
		}
		end(s, state.StatusNotRun, why, "")
	}
	return res, nil
}

// errKilled is the reason recorded for a step an earlier apply left
// running: it ended without recording how the step ended.
const errKilled = "interrupted: the apply running it ended without recording how (killed?)"

// stepInfo is what the state records of a plan step: its target is the
// instances a generate step makes or a solve step answers (a metric step
// records its own when it begins).
func stepInfo(s plan.Step) state.StepInfo {
	info := state.StepInfo{ID: s.ID, Kind: s.Kind, Address: s.Address, Generator: s.Generator, Setting: s.Setting}
	if s.Kind == plan.KindGenerate || s.Kind == plan.KindSolve {
		info.Target = s.Instances
	}
	return info
}

// unavailableError says a step cannot run on this machine (a tool its
// local job needs is not installed): the step is not run, which is not a
// failure.
type unavailableError struct{ why string }

func (u *unavailableError) Error() string { return u.why }

// errStopped ends a step because sending was stopped.
var errStopped = errors.New("stopped")

func (e *Engine) stopped() bool {
	if e.opts.Stop == nil {
		return false
	}
	select {
	case <-e.opts.Stop:
		return true
	default:
		return false
	}
}

// checker is implemented by providers that can verify their endpoint
// (reachable, key accepted, model served) before the first request.
type checker interface {
	Check(ctx context.Context) error
}

// provider returns the generator's provider, one per generator so its
// rate limits hold across steps, checked once before first use. A
// provider that runs servers (ServerProvider) has them started first, for
// step stepID. Only the generator's own lock is held meanwhile: a server
// may take minutes to start.
func (e *Engine) provider(ctx context.Context, g *spec.Generator, stepID string) (Provider, error) {
	e.mu.Lock()
	if p, ok := e.providers[g.Name]; ok {
		e.mu.Unlock()
		return p, nil
	}
	l := e.provLocks[g.Name]
	if l == nil {
		l = &sync.Mutex{}
		e.provLocks[g.Name] = l
	}
	e.mu.Unlock()
	l.Lock()
	defer l.Unlock()
	e.mu.Lock()
	p, ok := e.providers[g.Name]
	serr := e.serverErr[g.Name]
	e.mu.Unlock()
	if ok {
		return p, nil
	}
	if serr != nil {
		return nil, serr // not tried again for every step
	}
	if e.opts.Providers == nil {
		return nil, fmt.Errorf("no provider for generator %s", g.Name)
	}
	p, err := e.opts.Providers(g)
	if err != nil {
		return nil, err
	}
	sp, servers := p.(ServerProvider)
	if servers {
		if err := e.startServers(ctx, sp, g, stepID); err != nil {
			return nil, err
		}
	}
	if c, ok := p.(checker); ok {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := c.Check(cctx)
		cancel()
		if err != nil {
			if servers {
				e.closeServers(ctx, g.Name)
			}
			return nil, err
		}
	}
	e.mu.Lock()
	e.providers[g.Name] = p
	e.mu.Unlock()
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
