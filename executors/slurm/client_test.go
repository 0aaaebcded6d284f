package slurm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fake writes a stand-in for a Slurm command: a bash script that appends
// its arguments to dir/calls, saves its stdin to dir/NAME.stdin when
// asked, and then runs body.
func fake(t *testing.T, dir, name, body string) string {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash for the stand-in commands")
	}
	path := filepath.Join(dir, name)
	script := "#!/usr/bin/env bash\n" +
		`echo "` + name + ` $*" >>"` + filepath.Join(dir, "calls") + "\"\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func calls(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "calls"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func TestSubmitJobPassesSecretsOnlyThroughTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	c := &Client{Sbatch: fake(t, dir, "sbatch", `cat >"`+dir+`/stdin"
env >"`+dir+`/env"
echo "sbatch: warning: something harmless" >&2
echo "4242;agora"`)}
	j := trlJob()
	id, err := c.SubmitJob(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	if id != "4242" {
		t.Errorf("id = %q, want 4242 (cluster suffix dropped)", id)
	}
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	want, _ := Render(j)
	if string(stdin) != want {
		t.Errorf("sbatch got a different script on stdin:\n%s", stdin)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	for k, v := range j.Env {
		if !strings.Contains(string(env), "\n"+k+"="+v+"\n") {
			t.Errorf("sbatch's environment lacks %s", k)
		}
		if strings.Contains(string(stdin), v) {
			t.Errorf("the value of %s reached the script", k)
		}
	}
	if got := calls(t, dir); len(got) != 1 || got[0] != "sbatch_--parsable" {
		t.Errorf("calls = %q", got)
	}
}

func TestSubmitErrors(t *testing.T) {
	dir := t.TempDir()
	c := &Client{Sbatch: fake(t, dir, "sbatch", `cat >/dev/null
echo "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified" >&2
exit 1`)}
	_, err := c.Submit(context.Background(), "#!/bin/bash\ntrue\n")
	if err == nil || !strings.Contains(err.Error(), "Invalid account") {
		t.Errorf("err = %v, want sbatch's message", err)
	}
	c.Sbatch = fake(t, dir, "sbatch2", `cat >/dev/null; echo "Submitted batch job 12"`)
	if _, err := c.Submit(context.Background(), "#!/bin/bash\ntrue\n"); err == nil || !strings.Contains(err.Error(), "want a job id") {
		t.Errorf("non-parsable output: err = %v", err)
	}
	if _, err := c.Submit(context.Background(), "  "); err == nil {
		t.Error("empty script accepted")
	}
	if _, err := c.SubmitJob(context.Background(), Job{}); err == nil {
		t.Error("invalid job submitted")
	}
}

func TestPollOneSqueueCallAndFallback(t *testing.T) {
	dir := t.TempDir()
	c := &Client{
		Squeue: fake(t, dir, "squeue", `printf '%s\n' '5|RUNNING|0|None|vm|2026-11-22T02:32:31|2026-11-22T14:32:31|0:02|' '6|FAILED|768|NonZeroExitCode|vm|2026-11-22T02:29:40|2026-11-22T02:29:41|0:01|'`),
		Scontrol: fake(t, dir, "scontrol", `case "$*" in
*" 7") cat "`+filepath.Join(mustAbs(t, "testdata"), "scontrol-failed.txt")+`" ;;
*) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1 ;;
esac`),
	}
	got, err := c.Poll(context.Background(), []string{"6", "5", "7", "8", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if got["5"].State != Running || got["6"].State != Failed || got["6"].ExitCode != 3 {
		t.Errorf("squeue results: %+v %+v", got["5"], got["6"])
	}
	// 7 is not in squeue's answer but scontrol knows it (here: as job 4's
	// record, which is what the fixture holds).
	if got["7"].State != Failed {
		t.Errorf("fallback result: %+v", got["7"])
	}
	if got["8"].State != Unknown || got["8"].ID != "8" {
		t.Errorf("unknown job: %+v", got["8"])
	}
	want := []string{
		"squeue_--all_--noheader_--states=all_--jobs=5,6,7,8_--Format=" + squeueFormat,
		"scontrol_--oneliner_show_job_7",
		"scontrol_--oneliner_show_job_8",
	}
	if g := calls(t, dir); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPollSingleUnknownID(t *testing.T) {
	dir := t.TempDir()
	c := &Client{
		Squeue:   fake(t, dir, "squeue", `echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1`),
		Scontrol: fake(t, dir, "scontrol", `exit 99`),
	}
	got, err := c.Poll(context.Background(), []string{"9"})
	if err != nil {
		t.Fatal(err)
	}
	if got["9"].State != Unknown {
		t.Errorf("got %+v", got["9"])
	}
	if g := calls(t, dir); len(g) != 1 {
		t.Errorf("want only the squeue call, got %q", g)
	}
}

func TestPollErrorsAreNotUnknown(t *testing.T) {
	dir := t.TempDir()
	c := &Client{Squeue: fake(t, dir, "squeue", `echo "squeue: error: Unable to contact slurm controller (connect failure)" >&2; exit 1`)}
	if _, err := c.Poll(context.Background(), []string{"1", "2"}); err == nil || !strings.Contains(err.Error(), "connect failure") {
		t.Errorf("err = %v", err)
	}
	c.Squeue = fake(t, dir, "squeue2", `echo "1 R 0:01"`)
	if _, err := c.Poll(context.Background(), []string{"1"}); err == nil {
		t.Error("an unparseable answer is not an error")
	}
	if _, err := c.Poll(context.Background(), []string{"1", "--all"}); err == nil {
		t.Error("an option as job id accepted")
	}
	if got, err := c.Poll(context.Background(), nil); err != nil || len(got) != 0 {
		t.Errorf("no ids: %v, %v", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Poll(ctx, []string{"1"}); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestCancelAndRequeue(t *testing.T) {
	dir := t.TempDir()
	c := &Client{
		Scancel:  fake(t, dir, "scancel", `true`),
		Scontrol: fake(t, dir, "scontrol", `echo "Requested operation is presently disabled for job $2" >&2; exit 1`),
	}
	if err := c.Cancel(context.Background(), "3", "2", "3"); err != nil {
		t.Fatal(err)
	}
	if err := c.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := c.Requeue(context.Background(), "2")
	if err == nil || !strings.Contains(err.Error(), "presently disabled") {
		t.Errorf("requeue err = %v", err)
	}
	want := []string{"scancel_2_3", "scontrol_requeue_2"}
	if g := calls(t, dir); strings.Join(g, " ") != strings.Join(want, " ") {
		t.Errorf("calls = %q, want %q", g, want)
	}
}

// TestPollAsksSacctForJobsThatLeftTheQueue: a job squeue no longer lists
// is resolved by one sacct call for all such jobs, when the cluster keeps
// accounting; without accounting sacct is not asked again, and scontrol
// is the fallback.
func TestPollAsksSacctForJobsThatLeftTheQueue(t *testing.T) {
	dir := t.TempDir()
	c := &Client{
		Squeue: fake(t, dir, "squeue", `echo "7|RUNNING|0|None|n1|2026-11-22T04:00:00|2026-11-23T04:00:00|1:00|"`),
		Sacct: fake(t, dir, "sacct", `cat <<'EOF2'
8|COMPLETED|0:0|None|n1|2026-11-22T03:00:00|2026-11-22T03:10:00|00:10:00
8.batch|COMPLETED|0:0||n1|2026-11-22T03:00:00|2026-11-22T03:10:00|00:10:00
9|CANCELLED by 0|0:15|None|None assigned|None|2026-11-22T03:05:00|00:00:00
10|OUT_OF_MEMORY|0:125|None|n1|2026-11-22T03:00:00|2026-11-22T03:01:00|00:01:00
EOF2`),
		Scontrol: fake(t, dir, "scontrol", `echo "scontrol: error: Invalid job id specified" >&2; exit 1`),
	}
	got, err := c.Poll(context.Background(), []string{"7", "8", "9", "10", "11"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]State{"7": Running, "8": Completed, "9": Cancelled, "10": OutOfMemory, "11": Unknown}
	for id, st := range want {
		if got[id].State != st {
			t.Errorf("job %s: %+v, want %s", id, got[id], st)
		}
	}
	if got["8"].Elapsed != 10*time.Minute || got["8"].Node != "n1" || got["9"].Node != "" || got["10"].Signal != 125 {
		t.Errorf("sacct fields: %+v %+v %+v", got["8"], got["9"], got["10"])
	}
	if n := strings.Count(strings.Join(calls(t, dir), "\n"), "sacct_"); n != 1 {
		t.Errorf("%d sacct calls, want 1: %v", n, calls(t, dir))
	}

	// No accounting: asked once, then scontrol only.
	dir2 := t.TempDir()
	c2 := &Client{
		Squeue:   fake(t, dir2, "squeue", `true`),
		Sacct:    fake(t, dir2, "sacct", `echo "Slurm accounting storage is disabled" >&2; exit 1`),
		Scontrol: fake(t, dir2, "scontrol", `echo "JobId=12 JobState=COMPLETED Reason=None ExitCode=0:0 NodeList=n1 StartTime=2026-11-22T03:00:00 EndTime=2026-11-22T03:00:05 RunTime=00:00:05"`),
	}
	for range 3 {
		got, err := c2.Poll(context.Background(), []string{"12"})
		if err != nil || got["12"].State != Completed {
			t.Fatalf("without accounting: %+v %v", got, err)
		}
	}
	if n := strings.Count(strings.Join(calls(t, dir2), "\n"), "sacct_"); n != 1 {
		t.Errorf("%d sacct calls without accounting, want 1: %v", n, calls(t, dir2))
	}
}
