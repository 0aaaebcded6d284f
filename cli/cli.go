// Package cli is agora's command line: it parses flags into option
// structs, calls spec, compiler and plan, and keeps the human and --json
// views apart. Every command returns an exit code: 0 success, 1 error, 2
// (plan with -detailed-exitcode) work to do.
package cli

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// Exit codes (docs/apply.md). An apply that did not finish every step
// exits with the first of ExitFailed, ExitInterrupted, ExitBudget and
// ExitNotRun that applies.
const (
	ExitOK    = 0
	ExitError = 1 // agora could not do what was asked (usage, spec, plan, lock, state)
	// ExitChanges: plan -detailed-exitcode found work to do.
	ExitChanges = 2
	// ExitFailed: a step failed (the steps needing it were blocked).
	ExitFailed = 3
	// ExitNotRun: no step failed, but some cannot run here (a tool not in
	// PATH, or they need a step that cannot).
	ExitNotRun = 4
	// ExitBudget: a budget stopped the apply.
	ExitBudget = 5
	// ExitInterrupted: an interrupt (Ctrl-C, SIGTERM) stopped the apply.
	ExitInterrupted = 130
)

// Version is agora's version, set at link time with
// -ldflags "-X github.com/agorabench/agora/cli.Version=…".
var Version = "devel"

const usage = `agora plans and runs experiments that compare language models as
synthetic-data generators (AgoraBench).

Usage:
  agora <command> [flags] [args]

Commands:
  plan          compile a spec into a costed execution plan
  apply         run a saved plan, or plan a spec and run it once approved
  status        show what the state records: steps, instances, spend
  export        write a generate step's dataset as JSONL
  force-unlock  remove a stale state lock
  report        PGR tables, cost-effectiveness, regressions, PCA; -html with plots
  plugins       list provider plugins; "plugins verify" checks a spec's pins
  tools         check the Python tools (TRL, lm-eval, …) where the plan's jobs run
  show          render a saved plan
  schema        print the CUE schema specs are checked against
  init          write a starter spec
  stage         put the models and data sets of an offline spec into its cache
  prompts       "prompts import DIR": the AgoraBench authors' prompts as templates
  version       print agora's version

Run "agora <command> -h" for a command's flags.
`

// Main runs agora with args (without the program name) and returns the
// exit code. It never panics: an internal error is reported as one.
func Main(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "agora: internal error: %v\nThis is a bug in agora; please report it with the command you ran.\n", r)
			if os.Getenv("AGORA_DEBUG") != "" {
				fmt.Fprintf(stderr, "%s", debug.Stack())
			}
			code = ExitError
		}
	}()
	// No signal handling here: planning is quick and an interrupt may kill
	// it; apply installs its own two-stage handler.
	ctx := context.Background()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitError
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "plan":
		return runPlan(ctx, rest, stdout, stderr)
	case "apply":
		return runApply(ctx, rest, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, stdout, stderr)
	case "export":
		return runExport(ctx, rest, stdout, stderr)
	case "force-unlock":
		return runForceUnlock(rest, stdout, stderr)
	case "report":
		return runReport(ctx, rest, stdout, stderr)
	case "plugins":
		return runPlugins(ctx, rest, stdout, stderr)
	case "tools":
		return runTools(ctx, rest, stdout, stderr)
	case "show":
		return runShow(rest, stdout, stderr)
	case "schema":
		return runSchema(rest, stdout, stderr)
	case "stage":
		return runStage(ctx, rest, stdout, stderr)
	case "init":
		return runInit(rest, stdout, stderr)
	case "prompts":
		return runPrompts(rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "agora %s\n", Version)
		return ExitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "agora: unknown command %q\n\n%s", cmd, usage)
	return ExitError
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: agora %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments, as
// in "agora plan agora.cue -json".
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func flagErr(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	return ExitError
}

type planOptions struct {
	spec             string
	out              string
	json             bool
	detailedExitCode bool
	pluginTokens     bool
	preflight        bool
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o planOptions
	fs := newFlags("plan", "plan [SPEC] [-out FILE] [-json] [-detailed-exitcode] [-preflight]", stderr)
	fs.BoolVar(&o.preflight, "preflight", false, "check what the plan needs, as apply does before approval (keys, endpoints, plugins, seed data, tools, Slurm)")
	fs.StringVar(&o.out, "out", "", "save the plan to `FILE` for `agora apply` and `agora show`")
	fs.BoolVar(&o.json, "json", false, "print the plan as JSON")
	fs.BoolVar(&o.detailedExitCode, "detailed-exitcode", false, "exit 2 when the plan has steps to run, 0 when it has none")
	fs.BoolVar(&o.pluginTokens, "plugin-tokens", false, "start the spec's plugins and count prompt tokens with those that offer it (see docs/plugins.md)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	switch len(pos) {
	case 0:
		o.spec = "agora.cue"
		if _, err := os.Stat(o.spec); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(stderr, `agora plan: no agora.cue in this directory: name a spec ("agora plan FILE") or write a starter with "agora init"`)
			return ExitError
		}
	case 1:
		o.spec = pos[0]
	default:
		fmt.Fprintf(stderr, "agora plan: want one spec file, got %d: %s\n", len(pos), strings.Join(pos, " "))
		return ExitError
	}
	p, code := compile(ctx, o.spec, o.pluginTokens, stderr)
	if p == nil {
		return code
	}
	// One write per tabwriter cell is thousands of system calls for a
	// large plan: buffer standard output.
	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	stdout = bw
	if o.json {
		if err := p.WriteJSON(stdout); err != nil {
			fmt.Fprintf(stderr, "agora plan: %v\n", err)
			return ExitError
		}
	} else if err := p.Render(stdout); err != nil {
		fmt.Fprintf(stderr, "agora plan: %v\n", err)
		return ExitError
	}
	if msg := p.BudgetError(); msg != "" {
		fmt.Fprintln(stderr, msg)
		if o.out != "" {
			fmt.Fprintf(stderr, "agora plan: not saving %s: the plan exceeds its budgets\n", o.out)
		}
		return ExitError
	}
	if o.preflight {
		bw.Flush()
		exp, ok := loadSpec(ctx, o.spec, stderr)
		if !ok {
			return ExitError
		}
		if !runPreflight(ctx, "plan", exp, p, stderr) {
			return ExitError
		}
	}
	if o.out != "" {
		if err := p.Save(o.out); err != nil {
			fmt.Fprintf(stderr, "agora plan: %v\n", err)
			return ExitError
		}
		if !o.json {
			fmt.Fprintf(stdout, "Saved the plan to %s; apply it exactly with \"agora apply %s\".\n", o.out, o.out)
		}
	}
	if o.detailedExitCode && p.ToRun() > 0 {
		return ExitChanges
	}
	return ExitOK
}

// compile loads and compiles a spec, printing diagnostics; it returns a
// nil plan and the exit code on failure.
// With pluginTokens, plugins that count tokens count the prompts.
func compile(ctx context.Context, path string, pluginTokens bool, stderr io.Writer) (*plan.Plan, int) {
	exp, ok := loadSpec(ctx, path, stderr)
	if !ok {
		return nil, ExitError
	}
	var opts compiler.Options
	if pluginTokens {
		counter, done, err := pluginCounter(ctx, exp, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "agora plan: -plugin-tokens: %v\n", err)
			return nil, ExitError
		}
		defer done()
		opts.Tokens = counter
	}
	// Steps the state records as done plan as noop.
	var serial int64
	dir := stateDir(exp)
	if err := state.Check(dir); err != nil {
		fmt.Fprintf(stderr, "agora: %v\n", err)
		return nil, ExitError
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); err == nil {
		store, err := state.Open(ctx, dir)
		if err != nil {
			fmt.Fprintf(stderr, "agora: %v\n", err)
			return nil, ExitError
		}
		defer store.Close()
		if serial, err = store.Serial(ctx); err != nil {
			fmt.Fprintf(stderr, "agora: %v\n", err)
			return nil, ExitError
		}
		opts.Recorded = store
	}
	p, err := compiler.Compile(ctx, exp, opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return nil, ExitError
	}
	p.StateSerial = serial
	if store, ok := opts.Recorded.(*state.Store); ok {
		warnOrphanBatches(ctx, store, p, stderr)
	}
	return p, ExitOK
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func runShow(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	fs := newFlags("show", "show PLANFILE [-json]", stderr)
	fs.BoolVar(&asJSON, "json", false, "print the plan as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "agora show: want one plan file (made by \"agora plan -out FILE\")")
		return ExitError
	}
	p, err := plan.Read(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "agora show: %v\n", err)
		return ExitError
	}
	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	stdout = bw
	if asJSON {
		err = p.WriteJSON(stdout)
	} else {
		err = p.Render(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agora show: %v\n", err)
		return ExitError
	}
	return ExitOK
}

func runSchema(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("schema", "schema", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) > 0 {
		fmt.Fprintln(stderr, "agora schema: takes no arguments")
		return ExitError
	}
	stdout.Write(spec.Schema())
	return ExitOK
}

//go:embed starter.cue
var starter []byte

func runInit(args []string, stdout, stderr io.Writer) int {
	var force bool
	fs := newFlags("init", "init [FILE] [-force]", stderr)
	fs.BoolVar(&force, "force", false, "overwrite FILE if it exists")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	path := "agora.cue"
	switch len(pos) {
	case 0:
	case 1:
		path = pos[0]
	default:
		fmt.Fprintln(stderr, "agora init: want at most one file name")
		return ExitError
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			fmt.Fprintf(stderr, "agora init: %s already exists; use -force to overwrite it\n", path)
		} else {
			fmt.Fprintf(stderr, "agora init: %v\n", err)
		}
		return ExitError
	}
	if _, err := f.Write(starter); err != nil {
		f.Close()
		fmt.Fprintf(stderr, "agora init: %v\n", err)
		return ExitError
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(stderr, "agora init: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "Wrote %s. Next: agora plan %s\n", path, path)
	return ExitOK
}
