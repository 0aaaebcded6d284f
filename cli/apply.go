package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/local"
	"github.com/agorabench/agora/executors/vllm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
	"github.com/agorabench/agora/toolchain"
)

// stateDir is where a spec's state lives: .agora beside it, as an
// absolute path so that what the state records does not depend on the
// directory agora ran in.
func stateDir(exp *spec.Experiment) string {
	dir := filepath.Join(exp.Source.Dir, ".agora")
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// isPlanFile reports whether path holds a saved plan rather than a spec.
func isPlanFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var probe struct {
		FormatVersion *string `json:"format_version"`
	}
	if err := json.NewDecoder(io.LimitReader(f, 64<<20)).Decode(&probe); err != nil {
		return false
	}
	return probe.FormatVersion != nil
}

// applyGCPercent is the garbage collector's target during an apply
// (docs/benchmarks.md, "Apply throughput").
const applyGCPercent = 200

type applyOptions struct {
	target      string
	autoApprove bool
	parallelism int
	maxAttempts int
	cancelJobs  bool
	resubmits   int
	skipTools   bool
	skipPre     bool
}

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o applyOptions
	fs := newFlags("apply", "apply [PLANFILE | SPEC] [-auto-approve] [-parallelism N]", stderr)
	fs.BoolVar(&o.autoApprove, "auto-approve", false, "apply without asking for approval")
	fs.IntVar(&o.parallelism, "parallelism", 0, "run at most `N` steps at once (default: every ready step, each held by its generator's limits or its executor's slots)")
	fs.IntVar(&o.maxAttempts, "max-attempts", 10, "give an instance up after `N` rejected completions")
	fs.IntVar(&o.resubmits, "resubmits", 2, "submit a failed training or evaluation job (FAILED, TIMEOUT, OUT_OF_MEMORY) again at most `N` times")
	fs.BoolVar(&o.skipTools, "skip-tools-check", false, "do not check the Python tools of the plan's jobs before approval (agora tools does it on its own)")
	fs.BoolVar(&o.skipPre, "skip-preflight", false, "do not check before approval what the plan needs besides its tools (key variables, endpoints, plugins, seed data, Slurm partitions; plan -preflight does it on its own)")
	fs.BoolVar(&o.cancelJobs, "cancel-jobs", false, "when interrupted, cancel the running Slurm jobs (scancel) instead of leaving them to run for the next apply to reattach to")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	// An apply is a long I/O loop over a small live heap (tens of MB,
	// whatever the run's size), where the collector's default pace costs
	// about a tenth of the CPU at high concurrency: trade a few times that
	// heap for fewer collections, unless the user set GOGC.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(applyGCPercent)
	}
	if o.parallelism < 0 {
		fmt.Fprintf(stderr, "agora apply: -parallelism %d: want at least 1 (or leave it out: every ready step, each held by its own resources)\n", o.parallelism)
		return ExitError
	}
	switch len(pos) {
	case 0:
		o.target = "agora.cue"
	case 1:
		o.target = pos[0]
	default:
		fmt.Fprintf(stderr, "agora apply: want one plan or spec file, got %d\n", len(pos))
		return ExitError
	}
	if _, err := os.Stat(o.target); err != nil {
		fmt.Fprintf(stderr, "agora apply: %s: no such file\n", o.target)
		return ExitError
	}

	// A saved plan is applied exactly; a spec is planned and approved first.
	var saved *plan.Plan
	specPath := o.target
	if isPlanFile(o.target) {
		saved, err = plan.Read(o.target)
		if err != nil {
			fmt.Fprintf(stderr, "agora apply: %v\n", err)
			return ExitError
		}
		specPath = saved.Spec.File
	}
	exp, ok := loadSpec(ctx, specPath, stderr)
	if !ok {
		return ExitError
	}
	if saved != nil && saved.Spec.Digest != exp.Source.Digest {
		fmt.Fprintf(stderr, "agora apply: %s is stale: %s changed since the plan was made; run \"agora plan -out %s\" again\n", o.target, specPath, o.target)
		return ExitError
	}

	dir := stateDir(exp)
	lock, err := state.AcquireLock(dir, "agora apply")
	if err != nil {
		fmt.Fprintf(stderr, "agora apply: %v\n", err)
		return ExitError
	}
	if t := lock.TookOver; t != nil {
		fmt.Fprintf(stderr, "agora apply: took over the lock of %q (pid %d, %s) since %s: that process is no longer running\n",
			t.Command, t.PID, t.Owner, t.Started.UTC().Format(time.RFC3339))
	}
	released := false
	release := func() {
		if !released {
			released = true
			lock.Release()
		}
	}
	defer release()
	store, err := state.Open(ctx, dir)
	if err != nil {
		fmt.Fprintf(stderr, "agora apply: %v\n", err)
		return ExitError
	}
	defer store.Close()

	serial, err := store.Serial(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "agora apply: %v\n", err)
		return ExitError
	}
	p := saved
	if p != nil {
		if p.StateSerial != serial {
			fmt.Fprintf(stderr, "agora apply: %s is stale: the state changed since the plan was made (serial %d, now %d); run \"agora plan -out %s\" again\n", o.target, p.StateSerial, serial, o.target)
			return ExitError
		}
	} else {
		p, err = compiler.Compile(ctx, exp, compiler.Options{Recorded: store})
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", specPath, err)
			return ExitError
		}
		p.StateSerial = serial
		if err := p.Render(stdout); err != nil {
			fmt.Fprintf(stderr, "agora apply: %v\n", err)
			return ExitError
		}
	}
	if msg := p.BudgetError(); msg != "" {
		fmt.Fprintln(stderr, msg)
		return ExitError
	}
	warnOrphanBatches(ctx, store, p, stderr)
	if p.ToRun() == 0 {
		fmt.Fprintln(stdout, "Nothing to do: every step is done.")
		return ExitOK
	}
	// Every problem found at once, before approval and any spend: what
	// the plan needs (preflight), the models and data an offline cluster
	// must have in its cache (docs/offline.md), and the Python tools of
	// its jobs, where they run.
	ready := o.skipPre || runPreflight(ctx, "apply", exp, p, stderr)
	if err := checkOffline(exp, p); err != nil {
		fmt.Fprintf(stderr, "agora apply: %v\n", err)
		ready = false
	}
	if !o.skipTools && os.Getenv(skipToolsEnv) != "1" {
		if err := checkTools(ctx, exp, toolchain.Needs(exp, p), stdout); err != nil {
			fmt.Fprintf(stderr, "agora apply: the plan's jobs cannot run (agora tools lists what they need; -skip-tools-check skips this):\n%v\n", err)
			ready = false
		}
	}
	if !ready {
		return ExitError
	}
	if saved == nil && !o.autoApprove {
		ok, err := approve(stdout)
		if err != nil {
			fmt.Fprintf(stderr, "agora apply: %v\n", err)
			return ExitError
		}
		if !ok {
			fmt.Fprintln(stderr, "agora apply: cancelled: only \"yes\" approves the plan")
			return ExitError
		}
	}

	spent, byGen, err := store.Spend(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "agora apply: %v\n", err)
		return ExitError
	}
	// Plugin providers run as child processes: ended when apply returns,
	// and on a second interrupt before exiting.
	plugins, closePlugins := newPluginHost(exp, dir)
	defer closePlugins()
	// The first interrupt stops sending and lets requests in flight land in
	// the state; the second quits at once (every write is a transaction, so
	// the state stays consistent).
	stop := make(chan struct{})
	hard, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// The engine, once made: on the second interrupt, batches at a
	// provider are cancelled there before agora quits.
	var running atomic.Pointer[engine.Engine]
	go func() {
		n := 0
		for range sigs {
			n++
			if n == 1 {
				fmt.Fprintln(stderr, "\nStopping: no new requests; waiting for those in flight to be recorded (interrupt again to quit at once)")
				close(stop)
				continue
			}
			if e := running.Load(); n == 2 && e != nil && e.BatchesInFlight() > 0 {
				// Batches are cancelled at the provider and what they
				// completed is recorded before apply returns.
				k := e.BatchesInFlight()
				fmt.Fprintf(stderr, "Cancelling %d batch%s at the provider and recording what %s completed (interrupt again to quit at once)\n",
					k, map[bool]string{true: "", false: "es"}[k == 1], map[bool]string{true: "it", false: "they"}[k == 1])
				local.KillAll()
				vllm.KillAll()
				cancel()
				continue
			}
			fmt.Fprintln(stderr, "Quitting; run agora apply again to resume")
			// Local jobs run in their own process groups: end them
			// before exiting, or they would outlive agora.
			local.KillAll()
			vllm.KillAll()
			closePlugins()
			cancel()
			release()
			os.Exit(130)
		}
	}()

	// vLLM servers keep their scripts, logs and heartbeat under
	// .agora/servers/<generator>.
	tuning := providers.Tuning{Plugins: plugins, VLLM: providers.VLLM{Dir: filepath.Join(dir, "servers"), SpecDir: exp.Source.Dir, Env: offlineEnv(exp)}}
	eng := engine.New(exp, p, store, spent, byGen, engine.Options{
		Dir:         dir,
		Parallelism: o.parallelism,
		MaxAttempts: o.maxAttempts,
		Resubmits:   resubmitsOption(o.resubmits),
		Providers:   providers.New(tuning),
		Seeds:       providers.Seeds{Dir: exp.Source.Dir, CacheDir: filepath.Join(dir, "cache", "hf")},
		Stop:        stop,
		Progress:    stderr,
		TTY:         isTerminal(stderr),
	})
	running.Store(eng)
	res, err := eng.Apply(hard)
	if err != nil {
		fmt.Fprintf(stderr, "agora apply: %v\n", err)
		return ExitError
	}
	if res.Stopped {
		cancelJobs := o.cancelJobs
		jobs, err := store.ActiveJobs(ctx)
		if err == nil && len(jobs) > 0 && !cancelJobs && isTerminal(os.Stdin) {
			// Interactive: ask; scripts decide with -cancel-jobs.
			fmt.Fprintf(stderr, "%d job%s still running. Cancel %s (scancel)? [y/N] ", len(jobs), plural(len(jobs)), map[bool]string{true: "it", false: "them"}[len(jobs) == 1])
			line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
			answer := strings.ToLower(strings.TrimSpace(line))
			cancelJobs = answer == "y" || answer == "yes"
		}
		if cancelJobs {
			ids, err := eng.CancelJobs(context.WithoutCancel(ctx))
			if err != nil {
				fmt.Fprintf(stderr, "agora apply: cancel jobs: %v\n", err)
			} else if len(ids) > 0 {
				fmt.Fprintf(stderr, "Cancelled Slurm job%s %s.\n", plural(len(ids)), strings.Join(ids, ", "))
			}
		} else if err == nil && len(jobs) > 0 {
			fmt.Fprintf(stderr, "%d job%s still running; the next agora apply reattaches to them (-cancel-jobs cancels them instead).\n", len(jobs), plural(len(jobs)))
		}
	}
	fmt.Fprintf(stdout, "\nApply finished: %d step%s done in this run.\n", len(res.Done), plural(len(res.Done)))
	// Every step that did not finish is named, with why.
	if err := res.Err(); err != nil {
		fmt.Fprintf(stderr, "agora apply: %v\n", err)
	} else if lines := res.NotRun(); len(lines) > 0 {
		fmt.Fprintf(stderr, "agora apply: %s\n", strings.Join(lines, "\n"))
	}
	return applyExitCode(res)
}

// applyExitCode is apply's exit status for what it did (docs/apply.md).
func applyExitCode(res *engine.Result) int {
	switch {
	case len(res.Failed) > 0:
		return ExitFailed
	case res.Stopped:
		return ExitInterrupted
	case res.Budget != nil:
		return ExitBudget
	case len(res.Skipped) > 0:
		return ExitNotRun
	}
	return ExitOK
}

// resubmitsOption maps the -resubmits flag to engine.Options.Resubmits,
// where 0 means the default and a negative number none.
func resubmitsOption(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// approve asks on stdin, terraform-style.
func approve(stdout io.Writer) (bool, error) {
	fmt.Fprint(stdout, "\nApply this plan? Only \"yes\" will be accepted: ")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read approval: %w", err)
	}
	if errors.Is(err, io.EOF) && strings.TrimSpace(line) == "" {
		return false, errors.New("no approval on standard input: answer \"yes\" or pass -auto-approve")
	}
	return strings.TrimSpace(line) == "yes", nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func printLoadError(stderr io.Writer, path string, err error) {
	var ds spec.Diagnostics
	if errors.As(err, &ds) {
		for _, d := range ds {
			fmt.Fprintln(stderr, d.String())
		}
		fmt.Fprintf(stderr, "agora: %s has %d error%s\n", path, len(ds), plural(len(ds)))
		return
	}
	fmt.Fprintf(stderr, "agora: %v\n", err)
}

// openState opens the state of the spec at specPath for reading.
func openState(ctx context.Context, specPath string) (*spec.Experiment, *state.Store, error) {
	exp, err := spec.Load(specPath)
	if err != nil {
		return nil, nil, err
	}
	dir := stateDir(exp)
	if err := state.Check(dir); err != nil {
		return exp, nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); err != nil {
		return exp, nil, fmt.Errorf("no state in %s yet: run agora apply first", dir)
	}
	store, err := state.Open(ctx, dir)
	if err != nil {
		return exp, nil, err
	}
	return exp, store, nil
}

// specArg parses the flags of a command taking at most one spec file
// (agora.cue by default). When ok is false the command exits with code.
func specArg(fs *flag.FlagSet, args []string, stderr io.Writer) (path string, code int, ok bool) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return "", flagErr(err), false
	}
	switch len(pos) {
	case 0:
		return "agora.cue", 0, true
	case 1:
		return pos[0], 0, true
	}
	fmt.Fprintf(stderr, "agora %s: want at most one spec file\n", fs.Name())
	return "", ExitError, false
}

func runForceUnlock(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("force-unlock", "force-unlock [SPEC] [-force]", stderr)
	force := fs.Bool("force", false, "remove the lock even when its holder is running on this host")
	specPath, code, ok := specArg(fs, args, stderr)
	if !ok {
		return code
	}
	exp, err := spec.Load(specPath)
	if err != nil {
		printLoadError(stderr, specPath, err)
		return ExitError
	}
	info, err := state.ForceUnlock(stateDir(exp), *force)
	if err != nil {
		fmt.Fprintf(stderr, "agora force-unlock: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "Removed the lock held by %q (pid %d, %s) since %s.\n", info.Command, info.PID, info.Owner, info.Started.Format("2006-01-02T15:04:05Z07:00"))
	return ExitOK
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var specPath, out string
	fs := newFlags("export", "export STEP [-spec SPEC] [-o FILE]", stderr)
	fs.StringVar(&specPath, "spec", "agora.cue", "the spec whose state holds the step")
	fs.StringVar(&out, "o", "", "write to `FILE` instead of standard output")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "agora export: name one generate step by address or ID prefix (see agora status)")
		return ExitError
	}
	_, store, err := openState(ctx, specPath)
	if err != nil {
		fmt.Fprintf(stderr, "agora export: %v\n", err)
		return ExitError
	}
	defer store.Close()
	steps, err := store.Steps(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "agora export: %v\n", err)
		return ExitError
	}
	var match []state.StepState
	for _, s := range steps {
		if s.Address == pos[0] || (len(pos[0]) >= 4 && strings.HasPrefix(s.ID, pos[0])) {
			match = append(match, s)
		}
	}
	switch {
	case len(match) == 0:
		fmt.Fprintf(stderr, "agora export: no recorded step %q (see agora status)\n", pos[0])
		return ExitError
	case len(match) > 1:
		fmt.Fprintf(stderr, "agora export: %q matches %d steps; give more of the ID\n", pos[0], len(match))
		return ExitError
	case match[0].Kind != plan.KindGenerate:
		fmt.Fprintf(stderr, "agora export: %s is a %s step; only generate steps have datasets\n", match[0].Address, match[0].Kind)
		return ExitError
	}
	m := match[0]
	step := plan.Step{ID: m.ID, Address: m.Address, Kind: m.Kind, Generator: m.Generator, Setting: m.Setting}
	w := stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			fmt.Fprintf(stderr, "agora export: %v\n", err)
			return ExitError
		}
		defer f.Close()
		w = f
	}
	if err := engine.WriteDataset(ctx, store, step, w); err != nil {
		fmt.Fprintf(stderr, "agora export: %v\n", err)
		return ExitError
	}
	if m.Accepted < m.Target {
		fmt.Fprintf(stderr, "agora export: %s is incomplete: %d of %d instances\n", m.Address, m.Accepted, m.Target)
	}
	return ExitOK
}

// warnOrphanBatches says, before approval, which batches of steps no
// longer in the plan may hold paid requests not recorded: the apply holds
// their worst case against the budgets, and only an apply of the spec
// they were made with records them.
func warnOrphanBatches(ctx context.Context, store *state.Store, p *plan.Plan, stderr io.Writer) {
	steps := make(map[string]bool, len(p.Steps))
	for _, s := range p.Steps {
		steps[s.ID] = true
	}
	orphans, err := engine.OrphanBatches(ctx, store, steps)
	if err != nil || len(orphans) == 0 {
		return
	}
	total := 0.0
	for _, b := range orphans {
		total += b.ReservedUSD
	}
	es := "es"
	if len(orphans) == 1 {
		es = ""
	}
	fmt.Fprintf(stderr, "Warning: %d batch%s of steps not in this plan may hold paid requests that are not recorded (worst case %s, held against the budgets); apply the spec they were made with to record them:\n",
		len(orphans), es, plan.Dollars(total))
	for _, b := range orphans {
		id := b.BatchID
		if id == "" {
			id = "(no id seen) " + b.Key
		}
		fmt.Fprintf(stderr, "  %s  generator %s  %d requests  %s  step %s\n", id, b.Generator, len(b.Lines), b.Status, b.StepID)
	}
}
