package engine

// The scheduler: which ready step starts, and when (docs/apply.md,
// "Scheduling"). Without Options.Parallelism nothing counts steps: every
// ready step starts, in decreasing critical path (eta.Times.Path). An API
// step is then held by its generator's limits alone, which its steps
// share (the client's FIFO slots and buckets), and a job by its executor:
// a local job waits here for the machine's GPUs (or, on a machine without
// any, a CPU), a Slurm job for a slot of its partition when the spec caps
// the partition's jobs (slurm.max_jobs), else it is submitted at once.
// Waiters are served in decreasing critical path. With
// Options.Parallelism, at most that many steps run at once and no slot
// is counted.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// Machine is what local jobs run on.
type Machine struct {
	// GPUs are the device ids a local job may be given (its
	// CUDA_VISIBLE_DEVICES); none on a machine without GPUs.
	GPUs []string
	// CPUs bound the local jobs at once on a machine without GPUs, and
	// the jobs that ask for none on one with GPUs.
	CPUs int
}

// DetectMachine returns this machine's GPUs and CPUs: the devices
// CUDA_VISIBLE_DEVICES lists when it is set, else those the NVIDIA driver
// shows (/proc/driver/nvidia/gpus), and the CPUs this process may use.
func DetectMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU()}
	if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		for _, d := range strings.Split(v, ",") {
			d = strings.TrimSpace(d)
			if d == "" || strings.HasPrefix(d, "-") {
				break // CUDA stops at an invalid id
			}
			m.GPUs = append(m.GPUs, d)
		}
		return m
	}
	gpus, _ := filepath.Glob("/proc/driver/nvidia/gpus/*")
	for i := range gpus {
		m.GPUs = append(m.GPUs, strconv.Itoa(i))
	}
	return m
}

// errQueued ends a step whose job was still waiting for a slot when
// sending stopped: it never started.
var errQueued = errors.New("not started: interrupted while waiting for a job slot")

// slotKey marks a context whose step already holds its job slot.
type slotKey struct{}

// scheduler holds the job slots and the steps' priorities.
type scheduler struct {
	machine Machine
	prio    map[string]float64 // a step's critical path, seconds
	order   map[string]int     // its position in the plan

	mu    sync.Mutex
	pools map[string]*pool
}

func newScheduler(m Machine, prio map[string]float64, p *plan.Plan) *scheduler {
	order := make(map[string]int, len(p.Steps))
	for i, s := range p.Steps {
		order[s.ID] = i
	}
	if m.CPUs <= 0 {
		m.CPUs = 1
	}
	return &scheduler{machine: m, prio: prio, order: order, pools: map[string]*pool{}}
}

// pool is a counted resource: GPUs of this machine, its CPUs, or the jobs
// of a Slurm partition. Its waiters are granted in priority order, the
// first one only: a big job is not overtaken for ever by small ones.
type pool struct {
	capacity int
	used     int
	free     []string // the device ids not given out (GPUs)
	waiters  []*slotWaiter
}

type slotWaiter struct {
	units int
	prio  float64
	order int
	ready chan []string
}

// claim is what a job holds while it runs.
type claim struct {
	pool    string
	units   int
	devices bool // the units are GPUs of this machine, given by id
}

// claimOf is the slot a job of step s needs: none when nothing limits it.
func (e *Engine) claimOf(s plan.Step, j slurm.Job, gpus int) (claim, bool) {
	if e.opts.Parallelism > 0 || s.Kind == plan.KindSolve {
		// A solve step's job is an API client: its generator's limits
		// hold it.
		return claim{}, false
	}
	m := e.sched.machine
	switch s.Executor {
	case spec.ExecutorSlurm:
		if j.Slurm.MaxJobs <= 0 {
			return claim{}, false
		}
		return claim{pool: "slurm:" + j.Slurm.Partition, units: 1}, true
	default:
		if gpus > 0 && len(m.GPUs) > 0 {
			return claim{pool: "local:gpu", units: min(gpus, len(m.GPUs)), devices: true}, true
		}
		return claim{pool: "local:cpu", units: 1}, true
	}
}

// slot waits for the slot a job of step s needs and returns its release
// and the GPUs it was given (for CUDA_VISIBLE_DEVICES). A job the state
// shows as submitted or running (reattached, or left running by a killed
// agora) takes its slot at once, even over the capacity: it holds its
// resources already. Waiting ends when sending stops (errQueued).
func (e *Engine) slot(ctx context.Context, s plan.Step, j slurm.Job, gpus int) (release func(), devices []string, err error) {
	c, ok := e.claimOf(s, j, gpus)
	if !ok || ctx.Value(slotKey{}) != nil {
		return func() {}, nil, nil
	}
	force := false
	if jobs, err := e.jobs.Jobs(ctx, s.ID); err == nil {
		for _, old := range jobs {
			if state.IsActiveJob(old.Status) {
				force = true
			}
		}
	}
	sc := e.sched
	sc.mu.Lock()
	p := sc.pools[c.pool]
	if p == nil {
		p = &pool{}
		switch {
		case c.pool == "local:gpu":
			p.capacity = len(sc.machine.GPUs)
			p.free = append([]string(nil), sc.machine.GPUs...)
		case c.pool == "local:cpu":
			p.capacity = sc.machine.CPUs
		default:
			p.capacity = j.Slurm.MaxJobs
		}
		sc.pools[c.pool] = p
	}
	if strings.HasPrefix(c.pool, "slurm:") && j.Slurm.MaxJobs < p.capacity {
		// Two blocks name the partition: the smaller cap holds.
		p.capacity = j.Slurm.MaxJobs
	}
	var got []string
	if force || (len(p.waiters) == 0 && p.used+c.units <= p.capacity) {
		got = p.take(c)
		sc.mu.Unlock()
	} else {
		w := &slotWaiter{units: c.units, prio: sc.prio[s.ID], order: sc.order[s.ID], ready: make(chan []string, 1)}
		p.waiters = append(p.waiters, w)
		sort.SliceStable(p.waiters, func(a, b int) bool {
			x, y := p.waiters[a], p.waiters[b]
			if x.prio != y.prio {
				return x.prio > y.prio
			}
			return x.order < y.order
		})
		sc.mu.Unlock()
		select {
		case got = <-w.ready:
		case <-e.noMoreSending():
		case <-ctx.Done():
		}
		if got == nil {
			sc.mu.Lock()
			select {
			case got = <-w.ready: // granted meanwhile: hand it on
				p.give(c, got)
				sc.grantLocked(p, c)
			default:
				for i, x := range p.waiters {
					if x == w {
						p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
						break
					}
				}
				sc.grantLocked(p, c) // the next may fit now
			}
			sc.mu.Unlock()
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, errQueued
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			sc.mu.Lock()
			p.give(c, got)
			sc.grantLocked(p, c)
			sc.mu.Unlock()
		})
	}, devicesOf(c, got), nil
}

// take gives c's units out of p; the device ids when c is for GPUs. The
// returned slice is never nil, so that a grant is told from none.
func (p *pool) take(c claim) []string {
	p.used += c.units
	got := []string{}
	if c.devices {
		n := min(c.units, len(p.free))
		got = append(got, p.free[:n]...)
		p.free = p.free[n:]
	}
	return got
}

func (p *pool) give(c claim, got []string) {
	p.used -= c.units
	p.free = append(p.free, got...)
	sort.Strings(p.free)
}

// grantLocked grants the first waiters that fit, in priority order.
func (sc *scheduler) grantLocked(p *pool, c claim) {
	for len(p.waiters) > 0 {
		w := p.waiters[0]
		if p.used > 0 && p.used+w.units > p.capacity {
			return
		}
		p.waiters = p.waiters[1:]
		w.ready <- p.take(claim{pool: c.pool, units: w.units, devices: c.devices})
	}
}

func devicesOf(c claim, got []string) []string {
	if !c.devices {
		return nil
	}
	return got
}
