package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/toolchain"
)

// skipToolsEnv set to 1 is apply's -skip-tools-check, for scripts that
// drive agora with steps they never mean to reach.
const skipToolsEnv = "AGORA_SKIP_TOOLS_CHECK"

// runTools is `agora tools [SPEC]`: every Python tool the plan's jobs
// need, checked where those jobs run (locally, or by a short Slurm job on
// the plan's partition), every mismatch at once.
func runTools(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("tools", "tools [SPEC] [-json] [-local-only] [-timeout D]", stderr)
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	localOnly := fs.Bool("local-only", false, "check only the steps that run on this machine (no Slurm probe job)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long a Slurm probe job may take, queueing included")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	path := "agora.cue"
	switch len(pos) {
	case 0:
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(stderr, `agora tools: no agora.cue in this directory: name a spec ("agora tools FILE")`)
			return ExitError
		}
	case 1:
		path = pos[0]
	default:
		fmt.Fprintf(stderr, "agora tools: want one spec file, got %d: %s\n", len(pos), strings.Join(pos, " "))
		return ExitError
	}
	p, code := compile(ctx, path, false, stderr)
	if p == nil {
		return code
	}
	exp, err := spec.Load(path)
	if err != nil {
		printLoadError(stderr, path, err)
		return ExitError
	}
	groups := toolchain.Needs(exp, p)
	if *localOnly {
		groups = localGroups(groups)
	}
	if !*asJSON {
		for _, g := range groups {
			if g.Site.Executor == spec.ExecutorSlurm && len(g.Needs) > 0 {
				fmt.Fprintf(stdout, "Submitting a probe job to %s (up to %v)...\n", g.Site, *timeout)
			}
		}
	}
	results := toolchain.Check(ctx, groups, toolchain.Options{Dir: filepath.Join(stateDir(exp), "tools"), Timeout: *timeout})
	if *asJSON {
		if err := writeToolsJSON(stdout, results); err != nil {
			fmt.Fprintf(stderr, "agora tools: %v\n", err)
			return ExitError
		}
	} else {
		printTools(stdout, results)
	}
	for _, r := range results {
		if !r.OK() {
			return ExitError
		}
	}
	return ExitOK
}

// localGroups keeps the groups of jobs that run on this machine.
func localGroups(groups []toolchain.Group) []toolchain.Group {
	var out []toolchain.Group
	for _, g := range groups {
		if g.Site.Executor != spec.ExecutorSlurm {
			out = append(out, g)
		}
	}
	return out
}

// printTools writes one block per site: each tool with the version found
// and what needs it, then the problems.
func printTools(w io.Writer, results []toolchain.Result) {
	if len(results) == 0 {
		fmt.Fprintln(w, "No step to run needs a Python tool.")
		return
	}
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: %d step%s\n", r.Group.Site, r.Group.Steps, plural(r.Group.Steps))
		if r.Err != nil {
			fmt.Fprintf(w, "  cannot check: %v\n", r.Err)
			continue
		}
		fmt.Fprintf(w, "  python %s (%s on %s)\n", r.Report.Python, r.Report.Executable, r.Report.Host)
		for _, n := range r.Group.Needs {
			found := "missing"
			if d := r.Report.Dists[n.Dist]; d != nil {
				found = d.Version
			}
			mark := "ok"
			for _, p := range r.Problems {
				if p.Dist == n.Dist {
					mark = "PROBLEM"
				}
			}
			fmt.Fprintf(w, "  %-8s %-14s %-12s wants %-12s for %s\n", mark, n.Dist, found, n.Range(), strings.Join(n.For, ", "))
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  problem: %s\n", p.Message)
		}
	}
	var bad int
	for _, r := range results {
		if !r.OK() {
			bad++
		}
	}
	if bad == 0 {
		fmt.Fprintln(w, "\nEvery tool the plan needs is present at an accepted version.")
	} else {
		fmt.Fprintf(w, "\n%d of %d site%s lack%s tools the plan needs (docs/toolchain.md says how to install them).\n", bad, len(results), plural(len(results)), map[bool]string{true: "s", false: ""}[bad == 1])
	}
}

type toolsJSON struct {
	Site     string             `json:"site"`
	Executor string             `json:"executor"`
	Steps    int                `json:"steps"`
	OK       bool               `json:"ok"`
	Error    string             `json:"error,omitempty"`
	Python   string             `json:"python,omitempty"`
	Host     string             `json:"host,omitempty"`
	Tools    []toolJSON         `json:"tools"`
	Problems []string           `json:"problems"`
	Commands map[string]*string `json:"commands,omitempty"`
}

type toolJSON struct {
	Dist     string   `json:"dist"`
	Found    string   `json:"found,omitempty"`
	Accepted string   `json:"accepted"`
	Pinned   string   `json:"pinned,omitempty"`
	For      []string `json:"for"`
}

func writeToolsJSON(w io.Writer, results []toolchain.Result) error {
	out := []toolsJSON{}
	for _, r := range results {
		j := toolsJSON{Site: r.Group.Site.String(), Executor: r.Group.Site.Executor, Steps: r.Group.Steps, OK: r.OK(), Problems: []string{}}
		if r.Err != nil {
			j.Error = r.Err.Error()
		}
		if r.Report != nil {
			j.Python, j.Host = r.Report.Python, r.Report.Host
			j.Commands = map[string]*string{}
			for name, c := range r.Report.Commands {
				if c != nil {
					p := c.Path
					j.Commands[name] = &p
				} else {
					j.Commands[name] = nil
				}
			}
		}
		for _, n := range r.Group.Needs {
			t := toolJSON{Dist: n.Dist, Accepted: n.Range(), Pinned: n.Pinned, For: n.For}
			if r.Report != nil {
				if d := r.Report.Dists[n.Dist]; d != nil {
					t.Found = d.Version
				}
			}
			j.Tools = append(j.Tools, t)
		}
		for _, p := range r.Problems {
			j.Problems = append(j.Problems, p.Message)
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// checkTools runs the toolchain check of every site the plan's jobs run
// at (a short probe job on Slurm) before apply asks for approval. It
// returns the problems as one error, nil when there are none.
func checkTools(ctx context.Context, exp *spec.Experiment, groups []toolchain.Group, stdout io.Writer) error {
	for _, g := range groups {
		if g.Site.Executor == spec.ExecutorSlurm && len(g.Needs) > 0 {
			fmt.Fprintf(stdout, "Checking the Python tools on %s with a probe job...\n", g.Site)
		}
	}
	results := toolchain.Check(ctx, groups, toolchain.Options{Dir: filepath.Join(stateDir(exp), "tools")})
	var lines []string
	for _, r := range results {
		if r.Err != nil {
			lines = append(lines, fmt.Sprintf("  %s: cannot check the tools: %v", r.Group.Site, r.Err))
		}
		for _, p := range r.Problems {
			lines = append(lines, fmt.Sprintf("  %s: %s", r.Group.Site, p.Message))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return errors.New(strings.Join(lines, "\n"))
}
