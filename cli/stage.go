package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/offline"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// runStage is `agora stage`: the hub artefacts the spec's jobs read, put
// into (or, with -check, looked for in) its offline cache
// (docs/offline.md).
func runStage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var check bool
	var python string
	fs := newFlags("stage", "stage [SPEC] [-check] [-python PATH]", stderr)
	fs.BoolVar(&check, "check", false, "only list what the cache holds and what it lacks; exit 1 when something is missing")
	fs.StringVar(&python, "python", "python3", "the `interpreter` that prepares the data sets (it needs the datasets library the jobs use)")
	path, code, ok := specArg(fs, args, stderr)
	if !ok {
		return code
	}
	exp, err := spec.Load(path)
	if err != nil {
		printLoadError(stderr, path, err)
		return ExitError
	}
	if exp.Offline == nil {
		fmt.Fprintf(stderr, "agora stage: %s has no offline block: the jobs download what they need themselves; add offline: cache_dir: \"DIR\" for compute nodes without internet (docs/offline.md)\n", path)
		return ExitError
	}
	// Every step, done or not: the cache serves reruns too.
	p, err := compiler.Compile(ctx, exp, compiler.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return ExitError
	}
	for i := range p.Steps {
		p.Steps[i].Action = plan.ActionCreate
	}
	dir := exp.Offline.CacheDir
	needs := offline.Needs(exp, p)
	if len(needs) == 0 {
		fmt.Fprintf(stdout, "Nothing to stage: no job of %s reads a model or data set from the hub.\n", path)
		return ExitOK
	}
	if check {
		missing := 0
		for _, a := range needs {
			status := "staged "
			if !offline.Present(dir, exp.Source.Dir, a) {
				status = "MISSING"
				missing++
			}
			fmt.Fprintf(stdout, "%s  %s  (%s)\n", status, a, strings.Join(a.For, ", "))
		}
		if missing > 0 {
			fmt.Fprintf(stderr, "agora stage: %d of %d artefacts are missing from %s: run \"agora stage %s\" where the hub is reachable\n", missing, len(needs), dir, path)
			return ExitError
		}
		fmt.Fprintf(stdout, "All %d artefacts are in %s.\n", len(needs), dir)
		return ExitOK
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "Staging %d artefacts into %s\n", len(needs), dir)
	if err := offline.Stage(ctx, dir, exp.Source.Dir, needs, offline.Options{Python: python, Log: stdout}); err != nil {
		fmt.Fprintf(stderr, "agora stage: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "All %d artefacts are in %s.\n", len(needs), dir)
	return ExitOK
}

// checkOffline is apply's check before anything runs: with an offline
// block, every artefact the steps to run read must be in the cache.
func checkOffline(exp *spec.Experiment, p *plan.Plan) error {
	if exp.Offline == nil {
		return nil
	}
	missing := offline.Missing(exp.Offline.CacheDir, exp.Source.Dir, offline.Needs(exp, p))
	if len(missing) == 0 {
		return nil
	}
	return &offline.MissingError{Dir: exp.Offline.CacheDir, Spec: exp.Source.File, Missing: missing}
}

// offlineEnv is the environment of the servers agora starts: the cache's
// with an offline block, none otherwise.
func offlineEnv(exp *spec.Experiment) map[string]string {
	if exp.Offline == nil {
		return nil
	}
	return offline.Env(exp.Offline.CacheDir)
}
