// Package slurmtest is for tests that need the real Slurm started by
// scripts/slurm-up.sh: Require skips such a test when there is no usable
// Slurm on this machine, and fails it when CI=true, where the Slurm
// integration tests must run.
package slurmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// check says why no Slurm can be used, or "".
var check = sync.OnceValue(func() string {
	if _, err := exec.LookPath("sinfo"); err != nil {
		return "sinfo is not in PATH"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sinfo", "--noheader", "--format=%T").CombinedOutput()
	if err != nil {
		return "sinfo failed: " + err.Error() + ": " + strings.TrimSpace(string(out))
	}
	for _, s := range strings.Fields(string(out)) {
		switch strings.TrimSuffix(s, "*") {
		case "idle", "mixed", "allocated", "completing":
			if !strings.HasSuffix(s, "*") {
				return ""
			}
		}
	}
	return "no usable node (sinfo says " + strings.Join(strings.Fields(string(out)), ", ") + ")"
})

// Require skips t when this machine has no usable Slurm, saying why, or
// fails it when CI=true.
func Require(t testing.TB) {
	t.Helper()
	if why := check(); why != "" {
		msg := "no Slurm to test against: " + why + "; run scripts/slurm-up.sh (as root) first"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the Slurm integration tests must run)")
		}
		t.Skip(msg)
	}
}

// Jobs returns the id and state of every job in the queue named one of
// names whose working directory is dir or below it. Agora names jobs after
// content-addressed step ids, so tests in other packages running at the
// same time may have jobs of the same name: a test must only ever touch
// its own, found this way.
func Jobs(dir string, names ...string) map[string]string {
	out, _ := exec.Command("squeue", "--noheader", "--states=all", "--name="+strings.Join(names, ","), "--format=%i %T %Z").Output()
	jobs := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && (f[2] == dir || strings.HasPrefix(f[2], strings.TrimSuffix(dir, "/")+"/")) {
			jobs[f[0]] = f[1]
		}
	}
	return jobs
}

// Cancel cancels the jobs Jobs(dir, names...) finds, with scancel and the
// extra arguments given (e.g. "--batch", "--signal=USR1"); it returns
// scancel's error and output, or nil when there was no such job.
func Cancel(dir string, names []string, args ...string) error {
	jobs := Jobs(dir, names...)
	if len(jobs) == 0 {
		return nil
	}
	for id := range jobs {
		args = append(args, id)
	}
	if out, err := exec.Command("scancel", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("scancel %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}
