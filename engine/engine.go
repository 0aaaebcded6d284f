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
	"time"

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

// Store is what the engine needs of the state.
type Store interface {
	Completed(ctx context.Context, ids []string) (map[string]bool, error)
	BeginStep(ctx context.Context, info state.StepInfo) error
	FinishStep(ctx context.Context, id, output string) error
	FailStep(ctx context.Context, id, msg string) error
	Append(ctx context.Context, g state.Generation) error
	AcceptedSlots(ctx context.Context, stepID string) (map[int]bool, error)
	LastAttempts(ctx context.Context, stepID string) (map[int]int, error)
	Accepted(ctx context.Context, stepID string, fn func(state.Generation) error) error
	RecordSeed(ctx context.Context, ref, digest string) error

	// Train, evaluate and score steps.
	Step(ctx context.Context, id string) (state.StepState, bool, error)
	RecordJob(ctx context.Context, stepID, executor, jobID string, attempt int) error
	UpdateJob(ctx context.Context, jobID, status string, gpuHours float64) error
	Jobs(ctx context.Context, stepID string) ([]state.Job, error)
	ActiveJobs(ctx context.Context) ([]state.Job, error)
	RecordScore(ctx context.Context, stepID, benchmark, model string, value float64) error
	RecordPGR(ctx context.Context, stepID string, perBenchmark map[string]float64, pgr float64) error
	Scores(ctx context.Context) ([]state.Score, error)
	GPUHours(ctx context.Context) (float64, error)
}

// Options configure an apply.
type Options struct {
	// Dir is the state directory (.agora); datasets go to Dir/datasets.
	Dir string
	// Parallelism bounds the steps running at once (default 8).
	Parallelism int
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

// Result says what an apply did.
type Result struct {
	Done    []string // addresses completed in this run
	Failed  map[string]string
	Skipped map[string]string // steps not run, and why
	Budget  *BudgetError      // the budget that stopped the run, if any
	Stopped bool              // interrupted
}

// Err summarises a result that did not complete every step as an error.
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
	if n := len(r.Skipped); n > 0 {
		lines = append(lines, fmt.Sprintf("%d step%s not run: %s", n, plural(n), strings.Join(firstN(sortedKeys(r.Skipped), 5), ", ")))
	}
	return errors.New(strings.Join(lines, "\n"))
}

// runner runs one kind of step.
type runner interface {
	run(ctx context.Context, s plan.Step) error
}

// Engine applies one plan.
type Engine struct {
	exp    *spec.Experiment
	plan   *plan.Plan
	store  Store
	ledger *Ledger
	opts   Options
	prog   *progress
	soft   context.Context // ends when sending must stop

	mu        sync.Mutex
	providers map[string]Provider
	provLocks map[string]*sync.Mutex // one per generator: creating its provider
	servers   map[string]ServerProvider
	serverErr map[string]error // a generator whose servers did not start
	closing   sync.WaitGroup   // servers being stopped
	staleOnce sync.Once
	staleErr  error
	poller    *poller // Slurm jobs; created on first use
	gpuHeld   float64 // GPU-hours reserved by jobs in flight
}

// New prepares an apply of p, compiled from exp, against store. spent and
// spentBy are the dollars the state has already recorded.
func New(exp *spec.Experiment, p *plan.Plan, store Store, spent float64, spentBy map[string]float64, opts Options) *Engine {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 8
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
		exp: exp, plan: p, store: store, opts: opts,
		ledger:    NewLedger(exp.Budgets.USD, per, spent, spentBy),
		providers: map[string]Provider{},
		provLocks: map[string]*sync.Mutex{},
		servers:   map[string]ServerProvider{},
		serverErr: map[string]error{},
		prog:      newProgress(opts.Progress, opts.TTY, opts.Interval, exp.Budgets.USD),
	}
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
// runner, in dependency order.
func (e *Engine) Apply(ctx context.Context) (*Result, error) {
	res := &Result{Failed: map[string]string{}, Skipped: map[string]string{}}
	ids := make([]string, len(e.plan.Steps))
	byID := map[string]plan.Step{}
	for i, s := range e.plan.Steps {
		ids[i] = s.ID
		byID[s.ID] = s
	}
	done, err := e.store.Completed(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	runners := map[string]runner{
		plan.KindGenerate: &generateRunner{e: e},
		plan.KindTrain:    &trainRunner{e: e, byID: byID},
		plan.KindEvaluate: &evaluateRunner{e: e},
		plan.KindScore:    &scoreRunner{e: e},
		plan.KindSolve:    &solveRunner{e: e},
		// Intrinsic metrics (metrics.go).
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

	type outcome struct {
		id  string
		err error
	}
	results := make(chan outcome)
	started := map[string]bool{}
	blocked := map[string]string{}
	running := 0
	stopping := false
	for {
		if !stopping && e.stopped() {
			stopping = true
			res.Stopped = true
		}
		// Start every ready step, up to the parallelism.
		for _, s := range e.plan.Steps {
			if stopping || res.Budget != nil || running >= e.opts.Parallelism {
				break
			}
			if done[s.ID] || started[s.ID] || blocked[s.ID] != "" {
				continue
			}
			ready := true
			for _, n := range s.Needs {
				if !done[n] {
					ready = false
					if why := blocked[n]; why != "" {
						blocked[s.ID] = "needs " + byID[n].Address
					}
				}
			}
			if !ready {
				continue
			}
			r, ok := runners[s.Kind]
			if !ok {
				blocked[s.ID] = fmt.Sprintf("no %s executor in this version of agora", s.Kind)
				continue
			}
			started[s.ID] = true
			running++
			go func(s plan.Step) {
				results <- outcome{s.ID, r.run(ctx, s)}
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
			done[o.id] = true
			res.Done = append(res.Done, s.Address)
		case errors.As(o.err, &be):
			res.Budget = be
			blocked[o.id] = "budget"
		case errors.As(o.err, &ua):
			blocked[o.id] = ua.why
		case errors.Is(o.err, errStopped) || ctx.Err() != nil:
			res.Stopped = true
			blocked[o.id] = "interrupted"
		default:
			res.Failed[s.Address] = o.err.Error()
			blocked[o.id] = "failed"
		}
		if gen := metricServer(e.exp, s); gen != "" && !serversNeeded(e.plan, e.exp, gen, done, started, blocked, !stopping && res.Budget == nil && !e.stopped()) {
			e.closeServers(ctx, gen)
		}
	}
	for _, s := range e.plan.Steps {
		if !done[s.ID] {
			if _, failed := res.Failed[s.Address]; failed {
				continue
			}
			why := blocked[s.ID]
			if why == "" {
				why = "not started"
			}
			res.Skipped[s.Address] = why
		}
	}
	return res, nil
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

func firstN(xs []string, n int) []string {
	if len(xs) > n {
		return append(xs[:n:n], fmt.Sprintf("and %d more", len(xs)-n))
	}
	return xs
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
