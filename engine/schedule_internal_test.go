package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// noJobs is a JobStore whose steps have no job yet, or the ones given.
type noJobs struct {
	JobStore
	active map[string]bool
}

func (n noJobs) Jobs(_ context.Context, stepID string) ([]state.Job, error) {
	if n.active[stepID] {
		return []state.Job{{StepID: stepID, JobID: "7", Status: string(slurm.Running)}}, nil
	}
	return nil, nil
}

func slotEngine(t *testing.T, active map[string]bool, prio map[string]float64, steps ...string) (*Engine, context.CancelFunc) {
	t.Helper()
	p := &plan.Plan{}
	for _, id := range steps {
		p.Steps = append(p.Steps, plan.Step{ID: id})
	}
	soft, cancel := context.WithCancel(context.Background())
	e := &Engine{jobs: noJobs{active: active}, ledger: NewLedger(0, nil, 0, nil), soft: soft,
		sched: newScheduler(Machine{CPUs: 4}, prio, p)}
	return e, cancel
}

// TestSlotPriority: a partition capped at one job (slurm.max_jobs) runs
// one at a time, the waiter with the longest critical path first, then
// plan order; a job the state shows running takes its slot over the cap;
// waiting ends with the first interrupt (errQueued).
func TestSlotPriority(t *testing.T) {
	e, stop := slotEngine(t, map[string]bool{"running": true},
		map[string]float64{"first": 9, "short": 1, "long": 5, "long2": 5, "late": 0},
		"first", "short", "long2", "long", "running", "late")
	job := slurm.Job{Slurm: spec.Slurm{Partition: "gpu", MaxJobs: 1}}
	step := func(id string) plan.Step { return plan.Step{ID: id, Executor: spec.ExecutorSlurm} }
	ctx := context.Background()
	release, _, err := e.slot(ctx, step("first"), job, 4)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 8)
	releases := make(chan func(), 8)
	for _, id := range []string{"short", "long", "long2"} {
		go func(id string) {
			r, _, err := e.slot(ctx, step(id), job, 4)
			if err != nil {
				got <- "error " + err.Error()
				return
			}
			got <- id
			releases <- r
		}(id)
	}
	time.Sleep(100 * time.Millisecond) // all three wait
	select {
	case id := <-got:
		t.Fatalf("%s started past the cap of 1", id)
	default:
	}
	// A reattached job does not wait.
	r, _, err := e.slot(ctx, step("running"), job, 4)
	if err != nil {
		t.Fatal(err)
	}
	r()
	release()
	for _, want := range []string{"long2", "long", "short"} {
		if id := <-got; id != want {
			t.Fatalf("%s got the slot, want %s (longest critical path, then plan order)", id, want)
		}
		(<-releases)()
	}
	// Held again: a waiter is let go at the first interrupt.
	release, _, _ = e.slot(ctx, step("first"), job, 4)
	done := make(chan error)
	go func() {
		_, _, err := e.slot(ctx, step("late"), job, 4)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	stop()
	if err := <-done; !errors.Is(err, errQueued) {
		t.Errorf("a waiter at the interrupt: %v, want errQueued", err)
	}
	release()
	// Without max_jobs nothing waits.
	for i := 0; i < 3; i++ {
		if _, _, err := e.slot(context.Background(), step("short"), slurm.Job{Slurm: spec.Slurm{Partition: "gpu"}}, 4); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSlotDevices: a job asking more GPUs than the machine has runs alone
// on all of them; others get distinct devices.
func TestSlotDevices(t *testing.T) {
	e, stop := slotEngine(t, nil, nil, "a", "b", "big")
	defer stop()
	e.sched.machine.GPUs = []string{"0", "1", "2"}
	local := func(id string) plan.Step { return plan.Step{ID: id, Executor: spec.ExecutorLocal} }
	ctx := context.Background()
	ra, da, _ := e.slot(ctx, local("a"), slurm.Job{}, 1)
	rb, db, _ := e.slot(ctx, local("b"), slurm.Job{}, 2)
	if len(da) != 1 || len(db) != 2 || da[0] == db[0] || da[0] == db[1] {
		t.Fatalf("devices %v and %v", da, db)
	}
	got := make(chan []string)
	go func() {
		_, d, _ := e.slot(ctx, local("big"), slurm.Job{}, 8)
		got <- d
	}()
	time.Sleep(50 * time.Millisecond)
	ra()
	select {
	case d := <-got:
		t.Fatalf("the big job started with %v while b held 2 GPUs", d)
	case <-time.After(50 * time.Millisecond):
	}
	rb()
	if d := <-got; len(d) != 3 {
		t.Errorf("the big job got %v, want all three GPUs", d)
	}
	// A job asking no GPU takes a CPU, not a GPU.
	if _, d, err := e.slot(ctx, local("a"), slurm.Job{}, 0); err != nil || d != nil {
		t.Errorf("a CPU job: %v, %v", d, err)
	}
}

// TestDetectMachine: CUDA_VISIBLE_DEVICES, when set, is the GPUs local
// jobs may use, up to its first invalid id (where CUDA stops); set empty,
// none.
func TestDetectMachine(t *testing.T) {
	for v, want := range map[string][]string{
		"0,2": {"0", "2"}, "GPU-5b1f,GPU-77aa": {"GPU-5b1f", "GPU-77aa"}, "1,-1,3": {"1"}, "": nil,
	} {
		t.Setenv("CUDA_VISIBLE_DEVICES", v)
		m := DetectMachine()
		if strings.Join(m.GPUs, ",") != strings.Join(want, ",") || m.CPUs < 1 {
			t.Errorf("CUDA_VISIBLE_DEVICES=%q: %+v, want GPUs %v", v, m, want)
		}
	}
}
