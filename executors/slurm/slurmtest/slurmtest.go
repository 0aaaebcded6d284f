// Package slurmtest is for tests that need the real Slurm started by
// scripts/slurm-up.sh: Require skips such a test when there is no usable
// Slurm on this machine, and fails it when CI=true, where the Slurm
// integration tests must run.
//
// Tests of every package share that Slurm, at the same time (go test runs
// packages in parallel). A test touches only its own jobs (Jobs, Cancel),
// and a test that injects a node fault (DOWN, DRAIN) does it only through
// Faults, to the node of the "faults" partition, where no other test's
// jobs run.
package slurmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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
	out, err := exec.CommandContext(ctx, "sinfo", "--noheader", "--format=%P %T").CombinedOutput()
	if err != nil {
		return "sinfo failed: " + err.Error() + ": " + strings.TrimSpace(string(out))
	}
	// Tests submit to the default partition (sinfo marks it with a "*"),
	// so a node there must be usable; the fault node does not count.
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 || !strings.HasSuffix(f[0], "*") {
			continue
		}
		if usable(f[1]) {
			return ""
		}
	}
	return "no usable node in the default partition (sinfo says " + strings.Join(strings.Fields(string(out)), ", ") + ")"
})

// usable reports whether a node in state (as sinfo's %T prints it) can run
// jobs; a trailing "*" means the node does not respond.
func usable(state string) bool {
	switch state {
	case "idle", "mixed", "allocated", "completing":
		return true
	}
	return false
}

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

// FaultPartition is the partition of the node that tests may set DOWN or
// DRAIN; scripts/slurm-up.sh creates it, with one node of its own.
const FaultPartition = "faults"

// A FaultNode is the node of FaultPartition, held by one test.
type FaultNode struct {
	Partition string // FaultPartition: submit the test's jobs there
	Name      string // the node's name
}

// Faults gives t the node of FaultPartition, for a test that sets a node
// DOWN or DRAIN: the test submits its jobs to that partition and changes
// only that node's state, so no other test's job is on the node it breaks.
// Tests in different packages run at the same time, so Faults serialises
// such tests behind an exclusive lock on a file in the temporary
// directory, held until t ends. It waits until the node is usable (a test
// before may have left it DOWN), and when t ends it resumes the node.
// Without the partition it skips t (fails it when CI=true): slurm-up.sh
// from before the partition existed.
func Faults(t testing.TB) *FaultNode {
	t.Helper()
	Require(t)
	out, err := exec.Command("sinfo", "--noheader", "--partition="+FaultPartition, "--format=%N").CombinedOutput()
	name := strings.TrimSpace(string(out))
	if err != nil || name == "" || strings.ContainsAny(name, " ,[") {
		msg := fmt.Sprintf("no partition %q with one node to inject faults into (sinfo: %v: %s); run scripts/slurm-up.sh (as root) again", FaultPartition, err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the Slurm integration tests must run)")
		}
		t.Skip(msg)
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "agora-slurmtest-faults.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("lock the fault node: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("waited %v for another test to give back the fault node", d.Round(100*time.Millisecond))
	}
	n := &FaultNode{Partition: FaultPartition, Name: name}
	t.Cleanup(func() {
		if err := n.Resume(); err != nil {
			t.Errorf("resume the fault node: %v", err)
		}
		lock.Close() // releases the lock
	})
	if err := n.Resume(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		st := n.State()
		if usable(st) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("fault node %s is %q after 60 s, want idle", name, st)
		}
	}
}

// State returns the node's state as sinfo's %T prints it ("idle", "down",
// "drained", "down*", ...), or "" when sinfo fails.
func (n *FaultNode) State() string {
	out, _ := exec.Command("sinfo", "--noheader", "--Node", "--nodes="+n.Name, "--format=%T").Output()
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// Down sets the node DOWN: Slurm ends or requeues the jobs on it.
func (n *FaultNode) Down(reason string) error { return n.update("state=down", "reason="+reason) }

// Drain sets the node DRAIN: its jobs run on, no new job starts there.
func (n *FaultNode) Drain(reason string) error { return n.update("state=drain", "reason="+reason) }

// Resume puts a DOWN or DRAINED node back into service. A node that is
// already (with ReturnToService=2, Slurm may put a DOWN node back by
// itself) is not an error.
func (n *FaultNode) Resume() error {
	err := n.update("state=resume")
	if err != nil && strings.Contains(err.Error(), "Invalid node state") {
		return nil
	}
	return err
}

func (n *FaultNode) update(args ...string) error {
	args = append([]string{"update", "nodename=" + n.Name}, args...)
	if out, err := exec.Command("scontrol", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("scontrol %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
