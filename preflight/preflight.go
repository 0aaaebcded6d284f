// Package preflight checks, before approval and before any spend, every
// external dependency a plan touches, and reports every problem at once,
// each at the spec line it comes from: API key variables, endpoints (key
// accepted, model listed), plugins (found, matching their pin), seed data
// (reachable, its first records usable), and for Slurm jobs the partition,
// its GPUs, memory and time limit, and whether sbatch would accept the job
// (--test-only). The Python tools of the jobs are the toolchain package's
// (agora tools).
package preflight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/seeddata"
	"github.com/agorabench/agora/spec"
)

// Problem is one thing that would stop the apply, or (as a note) one
// that could not be checked.
type Problem struct {
	Pos  string // "file:line:col" of the spec line it comes from
	Path string // the field's path in the spec
	Msg  string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Pos + ": " + p.Msg
	}
	return p.Pos + ": " + p.Path + ": " + p.Msg
}

// Report is what a preflight found.
type Report struct {
	Problems []Problem // each would stop the apply
	Notes    []Problem // not checked (offline, no Slurm here), or worth knowing
}

// Err is nil when there is no problem.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("preflight: %d problem%s", len(r.Problems), plural(len(r.Problems)))
}

// Checker verifies a generator's endpoint: reachable, key accepted, model
// served (the OpenAI-compatible client's Check).
type Checker interface {
	Check(ctx context.Context) error
}

// Options configure a preflight. Nil functions skip their checks.
type Options struct {
	// Endpoint returns the client of an OpenAI-compatible generator, for
	// its Check.
	Endpoint func(g *spec.Generator) (Checker, error)
	// Plugin finds a plugin and returns its path and SHA-256.
	Plugin func(name string) (path, sum string, err error)
	// PluginCheck, once a plugin is found and matches its pin, starts it
	// and checks it as apply will (docs/plugins.md, the checks of
	// agora plugins verify: protocol, able to serve, health, model listed,
	// a price, embeddings where the spec needs them).
	PluginCheck func(ctx context.Context, g *spec.Generator) error
	// Seeds are the options of loading seed data (the spec's directory,
	// the Hub's cache).
	Seeds seeddata.Options
	// Slurm runs the Slurm checks (sinfo, sbatch --test-only); nil: the
	// commands in PATH when there are any.
	Slurm SlurmChecker
	// Getenv reads a variable (os.Getenv when nil).
	Getenv func(string) string
}

// Run checks what the steps of p that are to run need.
func Run(ctx context.Context, exp *spec.Experiment, p *plan.Plan, o Options) *Report {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	c := &run{exp: exp, o: o, r: &Report{}, seen: map[string]bool{}}
	gens := map[string]bool{}
	settings := map[string]bool{}
	var judges []string
	for _, s := range p.Steps {
		if s.Action == plan.ActionNoop {
			continue
		}
		switch s.Kind {
		case plan.KindGenerate, plan.KindSolve:
			if s.Generator != "" {
				gens[s.Generator] = true
			}
			if s.Kind == plan.KindGenerate && s.Setting != "" {
				settings[s.Setting] = true
			}
		case plan.KindEvaluate:
			if b := exp.Evaluation.Benchmarks[s.Benchmark]; b != nil && b.Judge != nil {
				judges = append(judges, s.Benchmark)
			}
		case plan.KindJudge:
			var in struct {
				Suffix string `json:"suffix"`
			}
			_ = json.Unmarshal(s.Inputs, &in)
			if j := exp.Metrics.JudgeBySuffix(in.Suffix); j != nil && j.Gen != nil {
				c.generator(ctx, j.Gen, []string{"metrics", "judge" + in.Suffix})
			}
		case plan.KindDiversity, plan.KindPerplexity:
			// Their models are checked when their servers start.
		}
		c.slurm(ctx, s)
	}
	for _, name := range sortedKeys(gens) {
		if g := exp.Generators[name]; g != nil {
			c.generator(ctx, g, []string{"generators", name})
		}
	}
	sort.Strings(judges)
	for _, b := range judges {
		j := exp.Evaluation.Benchmarks[b].Judge
		c.key(j.APIKeyEnv, "evaluation", "benchmarks", b, "judge", "api_key_env")
	}
	for _, name := range sortedKeys(settings) {
		c.seeds(ctx, name)
	}
	return c.r
}

type run struct {
	exp  *spec.Experiment
	o    Options
	r    *Report
	seen map[string]bool // problems already reported

	parts    []slurm.Partition // sinfo's, once
	partsErr error
}

func (c *run) problem(labels []string, format string, args ...any) {
	c.add(&c.r.Problems, labels, format, args...)
}

func (c *run) note(labels []string, format string, args ...any) {
	c.add(&c.r.Notes, labels, format, args...)
}

func (c *run) add(to *[]Problem, labels []string, format string, args ...any) {
	p := Problem{Pos: c.exp.Source.Locate(labels...), Path: strings.Join(labels, "."), Msg: fmt.Sprintf(format, args...)}
	if k := p.String(); !c.seen[k] {
		c.seen[k] = true
		*to = append(*to, p)
	}
}

// key checks that the variable named at labels is set.
func (c *run) key(name string, labels ...string) bool {
	if name == "" {
		return true
	}
	if c.o.Getenv(name) == "" {
		c.problem(labels, "the key variable %s is not set", name)
		return false
	}
	return true
}

// generator checks a generator's key, endpoint or plugin.
func (c *run) generator(ctx context.Context, g *spec.Generator, at []string) {
	if c.seen["generator "+strings.Join(at, ".")] {
		return
	}
	c.seen["generator "+strings.Join(at, ".")] = true
	pv := g.Provider
	switch {
	case pv.OpenAI != nil:
		if !c.key(pv.OpenAI.APIKeyEnv, append(at, "provider", "openai", "api_key_env")...) || c.o.Endpoint == nil {
			return
		}
		ch, err := c.o.Endpoint(g)
		if err == nil {
			err = ch.Check(ctx)
		}
		if err != nil {
			c.problem(append(at, "provider", "openai", "base_url"), "%s", trimGenerator(err, g.Name))
		}
	case pv.Plugin != "":
		if c.o.Plugin == nil {
			return
		}
		path, sum, err := c.o.Plugin(pv.Plugin)
		switch {
		case err != nil:
			c.problem(append(at, "provider", "plugin"), "%s", err)
			return
		case pv.SHA256 != "" && pv.SHA256 != sum:
			c.problem(append(at, "provider", "sha256"), "plugin %s (%s) has SHA-256 %s, not the pinned %s", pv.Plugin, path, sum, pv.SHA256)
			return
		case pv.SHA256 == "":
			c.note(append(at, "provider", "plugin"), "plugin %s (%s) is not pinned: agora runs whatever binary it finds; to pin it: sha256: %q", pv.Plugin, path, sum)
		}
		if c.o.PluginCheck != nil {
			if err := c.o.PluginCheck(ctx, g); err != nil {
				msg, _, _ := strings.Cut(trimGenerator(err, g.Name), "\n")
				c.problem(append(at, "provider", "plugin"), "%s", msg)
			}
		}
	case pv.VLLM != nil:
		// agora starts its servers (their model is checked then): on
		// Slurm, their jobs are checked against the cluster.
		if j, ok := engine.ServerSlurmJob(g); ok {
			c.slurmJob(ctx, j)
		}
	}
}

// trimGenerator drops a leading "generator NAME: " that the path says.
func trimGenerator(err error, name string) string {
	return strings.TrimPrefix(err.Error(), "generator "+name+": ")
}

// seeds loads a setting's seed data and checks its first records.
func (c *run) seeds(ctx context.Context, name string) {
	set := c.exp.Settings[name]
	if set == nil {
		return
	}
	sd := set.SeedData
	at := []string{"settings", name, "seed_data"}
	if sd.HF != "" {
		at = append(at, "hf")
	} else {
		at = append(at, "path")
	}
	ds, err := seeddata.Load(ctx, seeddata.Source{HF: sd.HF, Revision: sd.Revision, Split: sd.Split, Path: sd.Path}, c.o.Seeds)
	if err != nil {
		if sd.HF != "" && offline(err) {
			c.note(at, "cannot check %s: the Hub is not reachable (offline?): %v", sd.HF, err)
			return
		}
		c.problem(at, "%s", err)
		return
	}
	if len(ds.Items) == 0 {
		c.problem(at, "the seed data has no records")
		return
	}
	if set.Method == spec.MethodResponse {
		return // instructions only
	}
	// Instance generation shows seed items as demonstrations, quality
	// enhancement revises them: both need responses.
	const first = 5
	for i, it := range ds.Items[:min(first, len(ds.Items))] {
		if strings.TrimSpace(it.Response) == "" {
			c.problem(at, "record %s has an instruction but no response, which %s needs: looked for a non-empty response, output, or the answer of its instruction's pair (completion, answer, solution) or chat turn", ds.Items[i].ID, set.Method)
			return
		}
	}
}

// offline reports whether err says the Hub could not be reached at all.
func offline(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"no such host", "connection refused", "network is unreachable", "i/o timeout", "dial tcp"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
