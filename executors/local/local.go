// Package local runs agora's training and evaluation jobs as local
// processes: the very script executors/slurm.Render produces (its #SBATCH
// lines are comments to bash), run with `bash script` in the job's
// directory, so that a job behaves the same on a GPU box and on a
// cluster. The log goes where Slurm would put it (slurm.LogPath), and the
// script's prologue leaves the same exit marker (slurm.ExitMarker): the
// job id a local run is given plays the part of $SLURM_JOB_ID.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agorabench/agora/executors/slurm"
)

// NewID returns a fresh local job id ("local-<nanoseconds>"), unique on
// this machine for practical purposes.
func NewID() string {
	return fmt.Sprintf("local-%d", time.Now().UnixNano())
}

// ScriptPath is where Run writes the rendered script of job id.
func ScriptPath(dir, id string) string {
	return filepath.Join(dir, "job-"+id+".sh")
}

// Run renders j, writes the script to ScriptPath(j.Dir, id) and runs it
// with bash in j.Dir, stdout and stderr appended to
// slurm.LogPath(j.Dir, id), j.Env added to this process's environment and
// SLURM_JOB_ID set to id. It returns the script's exit status. When ctx
// ends, the job's whole process group is killed (SIGTERM, then SIGKILL
// after 10 s) and Run returns ctx's error; such a job leaves no exit
// marker. An error other than ctx's means the job could not be started.
func Run(ctx context.Context, j slurm.Job, id string) (exitCode int, err error) {
	script, err := slurm.Render(j)
	if err != nil {
		return -1, err
	}
	if err := os.MkdirAll(j.Dir, 0o755); err != nil {
		return -1, fmt.Errorf("local job %s: %w", id, err)
	}
	path := ScriptPath(j.Dir, id)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return -1, fmt.Errorf("local job %s: %w", id, err)
	}
	logf, err := os.OpenFile(slurm.LogPath(j.Dir, id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return -1, fmt.Errorf("local job %s: %w", id, err)
	}
	defer logf.Close()

	cmd := exec.Command("bash", path)
	cmd.Dir = j.Dir
	env := append(os.Environ(), "SLURM_JOB_ID="+id)
	for k, v := range j.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("local job %s: %w", id, err)
	}
	running.add(cmd.Process.Pid)
	defer running.remove(cmd.Process.Pid)
	// The group outlives this process if it is killed outright (SIGKILL):
	// the next agora finds it by this file (Outlived) and waits for it.
	_ = os.WriteFile(PIDPath(j.Dir, id), []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-waited
		}
		return -1, ctx.Err()
	}
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, fmt.Errorf("local job %s: %w", id, err)
}

// PIDPath is where Run writes the process group id of job id.
func PIDPath(dir, id string) string {
	return filepath.Join(dir, "job-"+id+".pid")
}

// Outlived reports whether job id, run in dir by an agora that is gone,
// still runs: its process group (PIDPath) has a process left, whose
// leader, if it is still there, is the job's (SLURM_JOB_ID=id in its
// environment, where Linux shows it).
func Outlived(dir, id string) (pgid int, alive bool) {
	b, err := os.ReadFile(PIDPath(dir, id))
	if err != nil {
		return 0, false
	}
	if _, err := fmt.Sscanf(string(b), "%d", &pgid); err != nil || pgid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(-pgid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return pgid, false
	}
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pgid)); err == nil &&
		!strings.Contains("\x00"+string(env)+"\x00", "\x00SLURM_JOB_ID="+id+"\x00") {
		return pgid, false // the id was reused by another process
	}
	return pgid, true
}

// WaitOutlived waits until job id, which outlived the agora that ran it
// (Outlived), has ended, or ctx ends.
func WaitOutlived(ctx context.Context, dir, id string) error {
	for {
		if _, alive := Outlived(dir, id); !alive {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Tail returns the last n lines of a log file, for error messages; ""
// when it cannot be read.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// running holds the process groups of the jobs Run has started and not
// yet reaped.
var running = &groups{pgids: map[int]bool{}}

type groups struct {
	mu    sync.Mutex
	pgids map[int]bool
}

func (g *groups) add(pgid int) {
	g.mu.Lock()
	g.pgids[pgid] = true
	g.mu.Unlock()
}

func (g *groups) remove(pgid int) {
	g.mu.Lock()
	delete(g.pgids, pgid)
	g.mu.Unlock()
}

// KillAll sends SIGKILL to the process group of every job running in this
// process, for a caller about to exit without waiting for Run to return
// (a job runs in its own process group, out of reach of the terminal's
// interrupt). It returns the number of groups signalled.
func KillAll() int {
	running.mu.Lock()
	defer running.mu.Unlock()
	n := 0
	for pgid := range running.pgids {
		if syscall.Kill(-pgid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
