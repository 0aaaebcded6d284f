package vllm_test

// The servers as jobs on the real Slurm that scripts/slurm-up.sh starts
// (one CPU node). These tests skip when there is none, except with
// CI=true, where a missing Slurm is a failure.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/executors/slurm/slurmtest"
	"github.com/agorabench/agora/executors/vllm"
	"github.com/agorabench/agora/executors/vllm/vllmtest"
	"github.com/agorabench/agora/spec"
)

// requireSlurm skips t without a usable Slurm (fails it when CI=true).
func requireSlurm(t *testing.T) {
	t.Helper()
	slurmtest.Require(t)
}

// slurmConfig runs the servers as CPU jobs (the test node has no GPUs).
func slurmConfig(t *testing.T, replicas int) vllm.Config {
	requireSlurm(t)
	vllmtest.PutFirstInPath(t) // sbatch exports PATH to the job
	cfg := testConfig(t, replicas)
	if err := os.Chmod(cfg.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cfg.VLLM.Executor = spec.ExecutorSlurm
	cfg.Hardware = spec.Hardware{Nodes: 1, CPUsPerTask: 1, Mem: "100M", TimeLimit: "00:10:00"}
	cfg.Client = &slurm.Client{}
	cfg.PollInterval = 300 * time.Millisecond
	cfg.StartTimeout = 60 * time.Second
	return cfg
}

// jobsOf are the ids of the recorded Slurm jobs.
func jobsOf(cfg vllm.Config) []string {
	rec := cfg.Recorder.(*recorder)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var ids []string
	for id, ex := range rec.exec {
		if ex == spec.ExecutorSlurm {
			ids = append(ids, id)
		}
	}
	return ids
}

// gone waits until no job of ids is pending or running.
func gone(t *testing.T, ids []string) {
	t.Helper()
	c := &slurm.Client{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Poll(context.Background(), ids)
		if err != nil {
			t.Fatal(err)
		}
		var live []string
		for id, s := range st {
			if s.State == slurm.Pending || s.State == slurm.Running || s.State == slurm.Requeued || s.State == "COMPLETING" {
				live = append(live, id+" "+string(s.State))
			}
		}
		if len(live) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.Cancel(context.Background(), ids...)
			t.Fatalf("jobs still live: %v", live)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestSlurmServersServeAndStop(t *testing.T) {
	cfg := slurmConfig(t, 2)
	p := start(t, cfg)
	ids := jobsOf(cfg)
	if len(ids) != 2 || p.Alive() != 2 {
		t.Fatalf("jobs %v, %d replicas in the rotation", ids, p.Alive())
	}
	c := client(t, p)
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := ask(c, "What is 2 + 2?"); err != nil {
			t.Fatal(err)
		}
	}
	addrs := p.Addrs()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone(t, ids)
	for _, a := range addrs {
		if !refused(a) {
			t.Errorf("%s still answers after Close", a)
		}
	}
	for _, id := range ids { // kept beside the log, as docs/vllm.md says
		if b, err := os.ReadFile(filepath.Join(cfg.Dir, "job-"+id+".sh")); err != nil || !strings.Contains(string(b), "vllm serve") {
			t.Errorf("job %s's script is not kept: %v", id, err)
		}
	}
	if got := cfg.Recorder.(*recorder).statuses(); got["COMPLETED"] != 2 {
		t.Errorf("recorded %v, want 2 COMPLETED", got)
	}
}

func TestSlurmStartFailureShowsLogTail(t *testing.T) {
	cfg := slurmConfig(t, 1)
	t.Setenv("AGORA_STUB_FAIL_START", "ValueError: The model's max seq len (131072) is larger than the maximum number of tokens that can be stored in KV cache")
	_, err := vllm.Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("started")
	}
	for _, want := range []string{"the vLLM server did not start: (slurm job ", "ended FAILED before the server was ready", "ends:\n", "larger than the maximum number of tokens"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	gone(t, jobsOf(cfg))
}

func TestSlurmReplicaDiesMidStep(t *testing.T) {
	cfg := slurmConfig(t, 2)
	t.Setenv("AGORA_STUB_DIE_AFTER", "5")
	t.Setenv("AGORA_STUB_DIE_ONCE", cfg.Dir+"/died")
	t.Setenv("AGORA_STUB_LATENCY", "20ms")
	var l logs
	cfg.Logf = l.logf
	p := start(t, cfg)
	c := client(t, p)
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ask(c, "What is 2 + 2?"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a request failed: %v", err)
	}
	if p.Alive() != 1 || !strings.Contains(l.String(), "left the rotation (1 left)") {
		t.Errorf("%d replicas in the rotation; log:\n%s", p.Alive(), l.String())
	}
	ids := jobsOf(cfg)
	p.Close(context.Background())
	gone(t, ids)
}

func TestSlurmInterruptedStartCancelsJobs(t *testing.T) {
	cfg := slurmConfig(t, 2)
	t.Setenv("AGORA_STUB_START_DELAY", "120s")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(3*time.Second, cancel)
	_, err := vllm.Start(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start after cancel: %v", err)
	}
	ids := jobsOf(cfg)
	if len(ids) != 2 {
		t.Fatalf("jobs %v", ids)
	}
	gone(t, ids)
}

// TestSlurmServerHangingOnTermIsKilled: a server that ignores SIGTERM is
// killed by its job's script StopGrace after scancel, so it does not
// outlive its job (Slurm's own SIGKILL, after KillWait, misses it under
// proctrack/linuxproc once the job's shell has died).
func TestSlurmServerHangingOnTermIsKilled(t *testing.T) {
	cfg := slurmConfig(t, 1)
	t.Setenv("AGORA_STUB_IGNORE_TERM", "1")
	p := start(t, cfg)
	ids := jobsOf(cfg)
	if len(processesUnder(cfg.Dir)) == 0 {
		t.Fatal("no server process to watch")
	}
	stopped := time.Now()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone(t, ids)
	for {
		ps := processesUnder(cfg.Dir)
		if len(ps) == 0 {
			break
		}
		if time.Since(stopped) > vllm.StopGrace+10*time.Second {
			t.Fatalf("the server outlived its job by more than %s:\n%s", vllm.StopGrace+10*time.Second, strings.Join(ps, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, _ := os.ReadFile(slurm.LogPath(cfg.Dir, ids[0]))
	if !strings.Contains(string(b), "after SIGTERM: SIGKILL") {
		t.Errorf("the log does not tell of the SIGKILL:\n%s", b)
	}
}
