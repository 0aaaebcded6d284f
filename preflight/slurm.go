package preflight

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/plan"
)

// SlurmChecker is what the Slurm checks ask of the cluster
// (executors/slurm.Client).
type SlurmChecker interface {
	Partitions(ctx context.Context) ([]slurm.Partition, error)
	TestOnly(ctx context.Context, j slurm.Job) error
}

// slurm checks the Slurm job of a step against the cluster, once per
// block of the spec that configures such jobs.
func (c *run) slurm(ctx context.Context, s plan.Step) {
	if j, ok := engine.StepSlurmJob(c.exp, s); ok {
		c.slurmJob(ctx, j)
	}
}

// slurmJob checks one Slurm job's request against the cluster.
func (c *run) slurmJob(ctx context.Context, j engine.SlurmJob) {
	key := "slurm " + strings.Join(j.At, ".")
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	at := func(field ...string) []string { return append(append([]string{}, j.At...), field...) }
	gpusAt, timeAt, memAt := at("hardware", "gpus_per_node"), at("hardware", "time_limit"), at("hardware", "mem")
	switch j.At[0] {
	case "evaluation":
		gpusAt, timeAt = at("gpus"), at()
	case "metrics", "generators":
		gpusAt, timeAt = at("gpus"), at("time_limit")
	}
	sc := c.o.Slurm
	if sc == nil {
		if _, err := exec.LookPath("sinfo"); err != nil {
			c.note(at("executor"), "the Slurm jobs cannot be checked: sinfo is not in PATH here")
			return
		}
		sc = &slurm.Client{}
	}
	if c.parts == nil && c.partsErr == nil {
		c.parts, c.partsErr = sc.Partitions(ctx)
		if c.partsErr == nil && c.parts == nil {
			c.parts = []slurm.Partition{}
		}
	}
	if c.partsErr != nil {
		c.problem(at("executor"), "cannot list the Slurm partitions: %v", c.partsErr)
		return
	}
	name, partAt := j.Slurm.Partition, at("slurm", "partition")
	var p *slurm.Partition
	var names []string
	for i := range c.parts {
		names = append(names, c.parts[i].Name)
		if c.parts[i].Name == name || name == "" && c.parts[i].Default {
			p = &c.parts[i]
		}
	}
	if p == nil {
		if name == "" {
			c.problem(at("slurm"), "the cluster has no default partition: set slurm.partition (one of %s)", strings.Join(names, ", "))
		} else {
			c.problem(partAt, "partition %q does not exist (the cluster has %s)", name, strings.Join(names, ", "))
		}
		return
	}
	bad := false
	if !p.Up {
		bad = true
		c.problem(partAt, "partition %s is not up", p.Name)
	}
	if g := j.Hardware.GPUsPerNode; g > p.GPUs {
		bad = true
		if p.GPUs == 0 {
			way := "choose a partition with GPUs (slurm.partition)"
			if j.At[0] == "student" {
				way = "set it to 0 to train on CPUs, or " + way
			}
			c.problem(gpusAt, "asks for %d GPU%s per node, but the nodes of partition %s have none (GRES %s): %s",
				g, plural(g), p.Name, strings.Join(p.GRES, ", "), way)
		} else {
			c.problem(gpusAt, "asks for %d GPUs per node, but the nodes of partition %s have at most %d (GRES %s)", g, p.Name, p.GPUs, strings.Join(p.GRES, ", "))
		}
	}
	if m := j.Hardware.Mem; m != "" {
		if mb, err := megabytes(m); err == nil && p.MemoryMB > 0 && mb > p.MemoryMB {
			bad = true
			c.problem(memAt, "asks for %s, but the nodes of partition %s have at most %d MB", m, p.Name, p.MemoryMB)
		}
	}
	if t := j.Hardware.TimeLimit; t != "" && p.MaxTime > 0 {
		if d, err := slurm.ParseTimeLimit(t); err == nil && d > p.MaxTime {
			bad = true
			c.problem(timeAt, "time limit %s is over partition %s's limit of %s", t, p.Name, p.MaxTime)
		}
	}
	if bad {
		return // sbatch would say the same, less clearly
	}
	dir, err := filepath.Abs(c.exp.Source.Dir)
	if err != nil {
		return
	}
	err = sc.TestOnly(ctx, slurm.Job{Name: "agora-preflight", Dir: dir, Script: "true", Hardware: j.Hardware, Slurm: j.Slurm})
	if err != nil {
		var ee *exec.ExitError
		msg := err.Error()
		if errors.As(err, &ee) {
			msg = strings.TrimSpace(msg)
		}
		c.problem(at("slurm"), "sbatch --test-only refuses the job: %s", msg)
	}
}

var memRe = regexp.MustCompile(`(?i)^([0-9]+)\s*([KMGT]?)B?$`)

// megabytes reads a Slurm memory size (megabytes without a unit).
func megabytes(s string) (int, error) {
	m := memRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("memory %q is not a size", s)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, err
	}
	switch strings.ToUpper(m[2]) {
	case "K":
		return n / 1024, nil
	case "G":
		return n * 1024, nil
	case "T":
		return n * 1024 * 1024, nil
	}
	return n, nil
}
