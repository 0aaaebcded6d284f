package toolchain

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/spec"
)

//go:embed probe.py
var probeScript []byte

// maxReport bounds the probe's output that is read: it is a few hundred
// bytes, and a job's output is not trusted.
const maxReport = 1 << 20

// Report is what the probe found at a site.
type Report struct {
	Python     string                `json:"python"`
	Executable string                `json:"executable"`
	Host       string                `json:"host"`
	Commands   map[string]*Command   `json:"commands"`
	Dists      map[string]*DistFound `json:"dists"`
}

// Command is an executable found in PATH.
type Command struct {
	Path string `json:"path"`
	// Python is the interpreter of its shebang, when it is a Python script.
	Python string `json:"python"`
}

// DistFound is an installed distribution.
type DistFound struct {
	Version string `json:"version"`
	// Error says why its module did not import.
	Error string `json:"error,omitempty"`
	// Python is the interpreter it was found with.
	Python string `json:"python"`
}

// Problem is one mismatch.
type Problem struct {
	Dist, Command string
	// Message says what is wrong and what to do.
	Message string
}

// Result is a site's check.
type Result struct {
	Group    Group
	Report   *Report
	Problems []Problem
	// Err says why the probe could not run at all.
	Err error
}

// OK reports whether the site has every tool at an accepted version.
func (r Result) OK() bool { return r.Err == nil && len(r.Problems) == 0 }

// Compare lists every mismatch between what g needs and what r found, one
// problem per tool.
func Compare(g Group, r *Report) []Problem {
	var out []Problem
	for _, n := range g.Needs {
		for_ := strings.Join(n.For, ", ")
		d := r.Dists[n.Dist]
		cmdMissing := n.Command != "" && r.Commands[n.Command] == nil
		switch {
		case d == nil:
			out = append(out, Problem{Dist: n.Dist, Command: n.Command,
				Message: fmt.Sprintf("%s is not installed (needed to %s: %s; %s)", n.Dist, for_, n.Why, install(n.Tool))})
		case !n.Accepts(d.Version):
			out = append(out, Problem{Dist: n.Dist,
				Message: fmt.Sprintf("%s %s is installed, agora needs %s (to %s: %s; %s)", n.Dist, d.Version, n.Range(), for_, n.Why, install(n.Tool))})
		case d.Error != "":
			out = append(out, Problem{Dist: n.Dist,
				Message: fmt.Sprintf("%s %s does not load: %s (needed to %s)", n.Dist, d.Version, d.Error, for_)})
		case cmdMissing:
			out = append(out, Problem{Dist: n.Dist, Command: n.Command,
				Message: fmt.Sprintf("%s %s is installed (%s) but its command %s is not in PATH (needed to %s): put its environment's bin first in PATH", n.Dist, d.Version, d.Python, n.Command, for_)})
		}
	}
	return out
}

// install says how to get a tool at the version agora pins.
func install(t Tool) string {
	if t.Pinned != "" {
		return fmt.Sprintf("pip install %s==%s, or the pinned toolchain/%s", t.Dist, t.Pinned, pinFile(t))
	}
	return fmt.Sprintf("install a release %s that fits your CUDA", t.Range())
}

func pinFile(t Tool) string {
	switch t.Dist {
	case torch.Dist, transformers.Dist, trl.Dist, accelerate.Dist, datasets.Dist:
		return "train.txt"
	}
	return "eval.txt"
}

// request is the probe's argument.
func request(g Group) string {
	req := struct {
		Commands []string          `json:"commands"`
		Dists    []string          `json:"dists"`
		Imports  map[string]string `json:"imports"`
	}{Imports: map[string]string{}}
	seen := map[string]bool{}
	for _, n := range g.Needs {
		if n.Command != "" && !seen[n.Command] {
			seen[n.Command] = true
			req.Commands = append(req.Commands, n.Command)
		}
		req.Dists = append(req.Dists, n.Dist)
		if n.Import != "" {
			req.Imports[n.Dist] = n.Import
		}
	}
	sort.Strings(req.Commands)
	b, _ := json.Marshal(req)
	return string(b)
}

// Options configure Check.
type Options struct {
	// Dir is a directory for the probe's files; Slurm's compute nodes must
	// see it (agora uses .agora/tools/).
	Dir string
	// Slurm runs sbatch and squeue; nil: the commands in PATH.
	Slurm *slurm.Client
	// Timeout bounds a Slurm probe job, queueing included (default 10
	// minutes).
	Timeout time.Duration
	// Poll is the time between two looks at a probe job (default 2 s).
	Poll time.Duration
}

// Check probes every group's site and compares. Groups that need no
// Python tool (a command trainer or harness only) are not probed.
func Check(ctx context.Context, groups []Group, o Options) []Result {
	var out []Result
	for _, g := range groups {
		if len(g.Needs) == 0 {
			continue
		}
		res := Result{Group: g}
		var rep *Report
		var err error
		if g.Site.Executor == spec.ExecutorSlurm {
			rep, err = probeSlurm(ctx, g, o)
		} else {
			rep, err = probeLocal(ctx, g, o)
		}
		if err != nil {
			res.Err = err
		} else {
			res.Report = rep
			res.Problems = Compare(g, rep)
		}
		out = append(out, res)
	}
	return out
}

// python is the interpreter that runs the probe locally: python3 in PATH.
func python() (string, error) {
	for _, name := range []string{"python3", "python"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no python3 in PATH: the Python tools cannot run here")
}

func writeProbe(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("probe dir: %w", err)
	}
	path := filepath.Join(dir, "probe.py")
	if err := os.WriteFile(path, probeScript, 0o644); err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	return path, nil
}

func probeLocal(ctx context.Context, g Group, o Options) (*Report, error) {
	py, err := python()
	if err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "agora-tools-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	probe, err := writeProbe(dir)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, py, probe, request(g))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limited{w: &stdout, n: maxReport}, &limited{w: &stderr, n: 64 << 10}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("probe with %s: %v: %s", py, err, lastLine(stderr.String()))
	}
	return parseReport(stdout.Bytes())
}

func probeSlurm(ctx context.Context, g Group, o Options) (*Report, error) {
	if o.Dir == "" {
		return nil, errors.New("slurm probe: no directory the compute nodes see")
	}
	dir, err := filepath.Abs(filepath.Join(o.Dir, fmt.Sprintf("probe-%d", time.Now().UnixNano())))
	if err != nil {
		return nil, err
	}
	probe, err := writeProbe(dir)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "report.json")
	body := fmt.Sprintf(`py=$(command -v python3 || command -v python) || { echo "agora: no python3 in PATH on $(hostname)" >&2; exit 3; }
"$py" %s %s > %s
`, shellQuote(probe), shellQuote(request(g)), shellQuote(out))
	job := slurm.Job{
		Name:     "agora-tools-check",
		Dir:      dir,
		Script:   body,
		Hardware: spec.Hardware{Nodes: 1, GPUsPerNode: g.Site.GPUs, TimeLimit: "00:10:00"},
		Slurm:    g.Site.Slurm,
	}
	c := o.Slurm
	if c == nil {
		c = &slurm.Client{}
	}
	id, err := c.SubmitJob(ctx, job)
	if err != nil {
		return nil, fmt.Errorf("submit the probe job: %w", err)
	}
	timeout, poll := o.Timeout, o.Poll
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	if poll <= 0 {
		poll = 2 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.Poll(ctx, []string{id})
		if err == nil {
			s := st[id]
			if s.State.Done() || s.State == slurm.Unknown {
				break
			}
		}
		if time.Now().After(deadline) {
			c.Cancel(context.WithoutCancel(ctx), id)
			return nil, fmt.Errorf("probe job %s did not finish within %v (cancelled; is the partition busy?)", id, timeout)
		}
		select {
		case <-ctx.Done():
			c.Cancel(context.WithoutCancel(ctx), id)
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
	b, err := readBounded(out)
	if err != nil {
		log, _ := readBounded(slurm.LogPath(dir, id))
		return nil, fmt.Errorf("probe job %s wrote no report: %s", id, lastLine(string(log)))
	}
	return parseReport(b)
}

func parseReport(b []byte) (*Report, error) {
	var r Report
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return nil, fmt.Errorf("probe report: %w", err)
	}
	if r.Commands == nil {
		r.Commands = map[string]*Command{}
	}
	if r.Dists == nil {
		r.Dists = map[string]*DistFound{}
	}
	return &r, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(&limitedReader{f: f, n: maxReport})
	return b.Bytes(), err
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("more than %d bytes", maxReport)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// limited keeps the first n bytes written to it and drops the rest.
type limited struct {
	w *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
