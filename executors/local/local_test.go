package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/slurm"
)

func job(t *testing.T, script string) slurm.Job {
	return slurm.Job{Name: "t", Dir: t.TempDir(), Script: script}
}

func TestRunSucceeds(t *testing.T) {
	j := job(t, `echo "hello $AGORA_X"; pwd >where.txt`)
	j.Env = map[string]string{"AGORA_X": "world"}
	id := NewID()
	code, err := Run(context.Background(), j, id)
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v\n%s", code, err, Tail(slurm.LogPath(j.Dir, id), 20))
	}
	if log := Tail(slurm.LogPath(j.Dir, id), 20); !strings.Contains(log, "hello world") || !strings.Contains(log, "agora: job "+id) {
		t.Errorf("log:\n%s", log)
	}
	if c, ok, err := slurm.ReadExitMarker(j.Dir, id); !ok || err != nil || c != 0 {
		t.Errorf("marker %d %v %v", c, ok, err)
	}
	if b, _ := os.ReadFile(filepath.Join(j.Dir, "where.txt")); strings.TrimSpace(string(b)) != j.Dir {
		t.Errorf("ran in %q, want %q", b, j.Dir)
	}
}

func TestRunExitCode(t *testing.T) {
	j := job(t, "echo failing >&2; exit 3")
	id := NewID()
	code, err := Run(context.Background(), j, id)
	if err != nil || code != 3 {
		t.Fatalf("code %d err %v", code, err)
	}
	if c, ok, _ := slurm.ReadExitMarker(j.Dir, id); !ok || c != 3 {
		t.Errorf("marker %d %v", c, ok)
	}
	if !strings.Contains(Tail(slurm.LogPath(j.Dir, id), 5), "failing") {
		t.Error("stderr not in the log")
	}
}

func TestRunCancelKillsTheGroup(t *testing.T) {
	j := job(t, "sleep 30 & echo $! >child.pid; wait")
	id := NewID()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for range 100 {
			if _, err := os.Stat(filepath.Join(j.Dir, "child.pid")); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	_, err := Run(ctx, j, id)
	if err == nil {
		t.Fatal("no error after cancel")
	}
	if time.Since(start) > 8*time.Second {
		t.Errorf("cancel took %v", time.Since(start))
	}
	if _, ok, _ := slurm.ReadExitMarker(j.Dir, id); ok {
		t.Error("a killed job left an exit marker")
	}
	b, _ := os.ReadFile(filepath.Join(j.Dir, "child.pid"))
	pid := strings.TrimSpace(string(b))
	time.Sleep(100 * time.Millisecond)
	if pid != "" {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			st, _ := os.ReadFile("/proc/" + pid + "/stat")
			if !strings.Contains(string(st), ") Z ") {
				t.Errorf("the job's child %s survived the cancel", pid)
			}
		}
	}
}

func TestKillAll(t *testing.T) {
	j := job(t, "echo started >started; sleep 30")
	done := make(chan int, 1)
	go func() {
		code, _ := Run(context.Background(), j, NewID())
		done <- code
	}()
	for range 200 {
		if _, err := os.Stat(filepath.Join(j.Dir, "started")); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := KillAll(); n != 1 {
		t.Errorf("KillAll signalled %d groups, want 1", n)
	}
	select {
	case code := <-done:
		if code != 128+9 {
			t.Errorf("exit code %d, want 137", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job survived KillAll")
	}
}
