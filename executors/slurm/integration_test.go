package slurm

// Integration tests against a real Slurm, as started by scripts/slurm-up.sh
// (one node, no accounting). They skip when there is none, except with
// CI=true, where a missing Slurm is a failure.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/slurm/slurmtest"
	"github.com/agorabench/agora/spec"
)

// requireSlurm returns a Client for the Slurm on this machine, or skips
// the test (fails it when CI=true) if there is none.
func requireSlurm(t *testing.T) *Client {
	t.Helper()
	slurmtest.Require(t)
	return &Client{}
}

// jobDir is a working directory the job can write to: tests run as the
// user the job runs as, on the same machine.
func jobDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

func cpuTestJob(name, dir, script string) Job {
	return Job{
		Name:     "agora-it-" + name,
		Dir:      dir,
		Script:   script,
		Hardware: spec.Hardware{Nodes: 1, CPUsPerTask: 1, Mem: "100M", TimeLimit: "00:05:00"},
	}
}

// waitFor polls job id until until(status) or the timeout, and returns
// the last status. On timeout it fails the test with the job's log.
func waitFor(t *testing.T, c *Client, dir, id string, timeout time.Duration, what string, until func(Status) bool) Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last Status
	for {
		got, err := c.Poll(ctx, []string{id})
		if err == nil {
			last = got[id]
			if until(last) {
				return last
			}
		}
		select {
		case <-ctx.Done():
			log, _ := os.ReadFile(LogPath(dir, id))
			show, _ := exec.Command("scontrol", "show", "job", id).CombinedOutput()
			t.Fatalf("job %s: no %s within %v (last poll %+v, err %v)\nlog:\n%s\nscontrol:\n%s", id, what, timeout, last, err, log, show)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func done(st Status) bool { return st.State.Done() }

func TestSlurmJobCompletes(t *testing.T) {
	c := requireSlurm(t)
	t.Parallel()
	dir := jobDir(t)
	const secret = "s3cret-value-never-in-a-file"
	j := cpuTestJob("ok", dir, `echo "$AGORA_IT_SECRET" >secret.txt
echo written >marker.txt`)
	j.Env = map[string]string{"AGORA_IT_SECRET": secret}
	ctx := context.Background()
	id, err := c.SubmitJob(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	// The script Slurm stored holds the variable's name, not its value.
	if stored, err := exec.Command("scontrol", "write", "batch_script", id, "-").CombinedOutput(); err == nil {
		if strings.Contains(string(stored), secret) {
			t.Error("the secret's value is in the script Slurm stored")
		}
		if !strings.Contains(string(stored), "--export=ALL,AGORA_IT_SECRET") {
			t.Errorf("stored script lacks the export by name:\n%s", stored)
		}
	}
	st := waitFor(t, c, dir, id, 30*time.Second, "end", done)
	if st.State != Completed || st.ExitCode != 0 || Classify(st.State) != Succeed {
		t.Fatalf("status %+v, want COMPLETED with exit 0", st)
	}
	if st.Node == "" || st.StartTime.IsZero() || st.EndTime.IsZero() || st.EndTime.Before(st.StartTime) {
		t.Errorf("status lacks node or times: %+v", st)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "marker.txt")); string(b) != "written\n" {
		t.Errorf("marker.txt = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "secret.txt")); string(b) != secret+"\n" {
		t.Errorf("the job saw AGORA_IT_SECRET = %q, want the value from SubmitJob", b)
	}
	if log, _ := os.ReadFile(LogPath(dir, id)); !strings.Contains(string(log), "agora: job "+id+" run 0 on ") {
		t.Errorf("log lacks the start line:\n%s", log)
	}
	// What the caller does once the job has left the queue.
	res, err := Resolve(dir, Status{ID: id, State: Unknown})
	if err != nil || res.State != Completed {
		t.Errorf("Resolve from the exit marker: %+v, %v", res, err)
	}
}

func TestSlurmJobFails(t *testing.T) {
	c := requireSlurm(t)
	t.Parallel()
	dir := jobDir(t)
	id, err := c.SubmitJob(context.Background(), cpuTestJob("fail", dir, "echo failing >&2\nexit 3"))
	if err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, dir, id, 30*time.Second, "end", done)
	if st.State != Failed || st.ExitCode != 3 || st.Signal != 0 {
		t.Fatalf("status %+v, want FAILED with exit code 3", st)
	}
	if Classify(st.State) != Resubmit {
		t.Errorf("Classify(FAILED) = %v", Classify(st.State))
	}
	if code, ok, err := ReadExitMarker(dir, id); !ok || code != 3 || err != nil {
		t.Errorf("exit marker = %d, %v, %v; want 3", code, ok, err)
	}
	t.Logf("failed job: %+v", st)
}

func TestSlurmCancel(t *testing.T) {
	c := requireSlurm(t)
	t.Parallel()
	dir := jobDir(t)
	ctx := context.Background()
	id, err := c.SubmitJob(ctx, cpuTestJob("cancel", dir, "sleep 300"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, dir, id, 30*time.Second, "start", func(st Status) bool { return st.State != Pending })
	if err := c.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, dir, id, 30*time.Second, "end", done)
	if st.State != Cancelled || Classify(st.State) != GiveUp {
		t.Fatalf("status %+v, want CANCELLED", st)
	}
	if _, ok, _ := ReadExitMarker(dir, id); ok {
		t.Error("a cancelled job left an exit marker")
	}
	// Cancelling again, or a job Slurm never heard of, is not an error.
	if err := c.Cancel(ctx, id, "99999999"); err != nil {
		t.Errorf("second cancel: %v", err)
	}
	t.Logf("cancelled job: %+v", st)
}

// TestSlurmNodeDown sets a node DOWN under two running jobs, one
// submitted with --requeue and one without. A DOWN node takes every job on
// it down, so the node is the fault node (slurmtest.Faults), where only
// this test's jobs run: the test is parallel with every other.
func TestSlurmNodeDown(t *testing.T) {
	c := requireSlurm(t)
	t.Parallel()
	fault := slurmtest.Faults(t)
	dir, dir2 := jobDir(t), jobDir(t)
	ctx := context.Background()
	j := cpuTestJob("nodedown", dir, `echo "run ${SLURM_RESTART_COUNT:-0}" >>runs.txt
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 300; fi`)
	j.Requeue = true
	j.Slurm.Partition = fault.Partition
	id, err := c.SubmitJob(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Cancel(context.Background(), id) })
	j2 := cpuTestJob("nodedown-norequeue", dir2, "sleep 300")
	j2.Slurm.Partition = fault.Partition
	id2, err := c.SubmitJob(ctx, j2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Cancel(context.Background(), id2) })
	st := waitFor(t, c, dir, id, 30*time.Second, "first run", func(st Status) bool {
		b, _ := os.ReadFile(filepath.Join(dir, "runs.txt"))
		return st.State == Running && string(b) == "run 0\n"
	})
	waitFor(t, c, dir2, id2, 30*time.Second, "start", func(st Status) bool { return st.State == Running })
	node := st.Node
	if node != fault.Name {
		t.Fatalf("job %s runs on node %s, not on the fault node %s", id, node, fault.Name)
	}

	downAt := time.Now()
	if err := fault.Down("agora-test"); err != nil {
		t.Fatal(err)
	}
	st = waitFor(t, c, dir, id, 30*time.Second, "reaction to the node going down", func(st Status) bool { return st.State != Running })
	t.Logf("node %s DOWN: --requeue job %s went RUNNING -> %s (reason %q) after %v", node, id, st.State, st.Reason, time.Since(downAt).Round(100*time.Millisecond))
	switch st.State {
	case Pending, Requeued:
		// Slurm requeued it itself.
	case NodeFail:
		if err := c.Requeue(ctx, id); err != nil {
			t.Fatalf("requeue after NODE_FAIL: %v", err)
		}
	default:
		t.Fatalf("after the node went down the job is %+v, want PENDING, REQUEUED or NODE_FAIL", st)
	}
	st2 := waitFor(t, c, dir2, id2, 30*time.Second, "reaction to the node going down", done)
	t.Logf("node %s DOWN: --no-requeue job %s went RUNNING -> %s (reason %q, exit %d)", node, id2, st2.State, st2.Reason, st2.ExitCode)
	if st2.State != NodeFail || Classify(st2.State) != Requeue {
		t.Errorf("--no-requeue job: %+v, want NODE_FAIL", st2)
	}
	if err := c.Requeue(ctx, id2); err == nil {
		t.Errorf("Slurm requeued job %s submitted without --requeue", id2)
	} else {
		t.Logf("requeue of the --no-requeue job refused, as documented: %v", err)
	}
	if err := fault.Resume(); err != nil {
		t.Fatal(err)
	}
	st = waitFor(t, c, dir, id, 60*time.Second, "second run to complete", done)
	t.Logf("--requeue job %s %s %v after the node went down", id, st.State, time.Since(downAt).Round(100*time.Millisecond))
	if st.State != Completed {
		t.Fatalf("status %+v, want COMPLETED after the requeue", st)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "runs.txt")); string(b) != "run 0\nrun 1\n" {
		t.Errorf("runs.txt = %q, want two runs", b)
	}
	log, _ := os.ReadFile(LogPath(dir, id))
	if !strings.Contains(string(log), "run 0 on") || !strings.Contains(string(log), "run 1 on") {
		t.Errorf("the log does not hold both runs (append mode):\n%s", log)
	}
}

// TestSlurmSignalRequeue: USR1 reaches the batch shell, the rendered trap
// runs the checkpoint command and requeues the job, and the second run
// finishes. The test sends USR1 itself, the way --signal=B:USR1@N does
// (scancel --batch signals the batch shell only): Slurm's own timer fires
// at its next time-limit check, up to 30 s late, too slow for a unit test.
func TestSlurmSignalRequeue(t *testing.T) {
	c := requireSlurm(t)
	t.Parallel()
	dir := jobDir(t)
	j := cpuTestJob("signal", dir, `if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 300; fi
echo finished >done.txt`)
	j.SignalSeconds = 60
	j.Checkpoint = `echo "checkpoint of $AGORA_BODY_PID" >>checkpoints.txt`
	start := time.Now()
	ctx := context.Background()
	id, err := c.SubmitJob(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Cancel(context.Background(), id) })
	waitFor(t, c, dir, id, 30*time.Second, "first run", func(st Status) bool {
		log, _ := os.ReadFile(LogPath(dir, id))
		return st.State == Running && strings.Contains(string(log), "run 0 on")
	})
	if out, err := exec.Command("scancel", "--signal=USR1", "--batch", id).CombinedOutput(); err != nil {
		t.Fatalf("scancel --signal=USR1 --batch: %v: %s", err, out)
	}
	st := waitFor(t, c, dir, id, 60*time.Second, "end", done)
	log, _ := os.ReadFile(LogPath(dir, id))
	if st.State != Completed {
		t.Fatalf("status %+v, want COMPLETED after one requeue\nlog:\n%s", st, log)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "checkpoints.txt")); !strings.HasPrefix(string(b), "checkpoint of ") {
		t.Errorf("checkpoints.txt = %q, want the checkpoint command's line", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "done.txt")); string(b) != "finished\n" {
		t.Errorf("done.txt = %q", b)
	}
	if !strings.Contains(string(log), "agora: USR1") || !strings.Contains(string(log), "run 1 on") {
		t.Errorf("log lacks the USR1 line or the second run:\n%s", log)
	}
	t.Logf("signal, checkpoint, requeue and second run took %v", time.Since(start).Round(time.Second))
}
