package slurm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Partition is what sinfo says of one partition, over its nodes.
type Partition struct {
	Name    string
	Default bool // the cluster's default partition
	Up      bool
	// MaxTime is the partition's time limit; zero when unlimited.
	MaxTime time.Duration
	// GPUs is the most GPUs (gres gpu, any type) one of its nodes has.
	GPUs int
	// GRES lists the partition's generic resources as sinfo writes them
	// ("gpu:a100:8", "(null)" for none).
	GRES []string
	// MemoryMB is the most memory one of its nodes has, in megabytes.
	MemoryMB int
}

// sinfoFormat asks for a partition's name, time limit, GRES, memory and
// availability, "|"-separated: one line per group of alike nodes.
const sinfoFormat = "%P|%l|%G|%m|%a"

// Partitions lists the cluster's partitions (sinfo).
func (c *Client) Partitions(ctx context.Context) ([]Partition, error) {
	out, err := c.run(ctx, c.bin(c.Sinfo, "sinfo"), "", nil, "--noheader", "--format="+sinfoFormat)
	if err != nil {
		return nil, err
	}
	return parseSinfo(out)
}

// parseSinfo reads sinfo --format=sinfoFormat output.
func parseSinfo(out string) ([]Partition, error) {
	var parts []Partition
	index := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 5 {
			return nil, fmt.Errorf("sinfo: unexpected line %q", line)
		}
		name, def := strings.CutSuffix(f[0], "*")
		i, ok := index[name]
		if !ok {
			i = len(parts)
			index[name] = i
			parts = append(parts, Partition{Name: name})
		}
		p := &parts[i]
		p.Default = p.Default || def
		p.Up = p.Up || f[4] == "up"
		d, err := ParseTimeLimit(strings.ToUpper(f[1]))
		if err != nil {
			return nil, fmt.Errorf("sinfo: partition %s: %w", name, err)
		}
		p.MaxTime = max(p.MaxTime, d)
		p.GRES = append(p.GRES, f[2])
		p.GPUs = max(p.GPUs, gresGPUs(f[2]))
		if mb, err := strconv.Atoi(strings.TrimSuffix(f[3], "+")); err == nil {
			p.MemoryMB = max(p.MemoryMB, mb)
		}
	}
	return parts, nil
}

// gresGPUs is the GPU count of a node's GRES ("gpu:4", "gpu:a100:8(S:0-1)",
// several comma-separated), 0 for none.
func gresGPUs(gres string) int {
	n := 0
	for _, g := range strings.Split(gres, ",") {
		g, _, _ = strings.Cut(g, "(")
		f := strings.Split(g, ":")
		if len(f) < 2 || f[0] != "gpu" {
			continue
		}
		if c, err := strconv.Atoi(f[len(f)-1]); err == nil {
			n += c
		}
	}
	return n
}

// TestOnly asks sbatch whether it would accept j (sbatch --test-only:
// partition, account, QOS, resources, limits), submitting nothing.
func (c *Client) TestOnly(ctx context.Context, j Job) error {
	script, err := Render(j)
	if err != nil {
		return err
	}
	_, err = c.run(ctx, c.bin(c.Sbatch, "sbatch"), script, nil, "--test-only")
	return err
}
