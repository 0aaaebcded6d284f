package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/executors/slurm/slurmtest"
	"github.com/agorabench/agora/internal/syncbuf"
)

// TestKill9WhileSlurmJobRuns: agora is SIGKILLed while its training job
// runs on the real Slurm. Then: status tells the truth (the step running
// with no live apply, the job as last seen, its log); the next apply takes
// the dead apply's lock over, reattaches to the running job instead of
// submitting it again, and finishes the pipeline; status then shows every
// step done, one training job, completed. The jobs run the stand-in tools
// of engine/testdata.
func TestKill9WhileSlurmJobRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agora, runs it as a subprocess and submits Slurm jobs")
	}
	slurmtest.Require(t)
	testKill9WhileJobRuns(t, "slurm")
}

// TestKill9WhileLocalJobRuns: the same with the local executor, whose job
// (its own process group) outlives the SIGKILLed agora: the next apply
// waits for it instead of starting the training a second time.
func TestKill9WhileLocalJobRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agora and runs it as a subprocess")
	}
	testKill9WhileJobRuns(t, "local")
}

func testKill9WhileJobRuns(t *testing.T, executor string) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not in PATH: the stand-in trainer cannot run")
	}
	bin := buildAgora(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // the job reads it
		t.Fatal(err)
	}
	standins, _ := filepath.Abs("../engine/testdata/bin")
	py, _ := filepath.Abs("../engine/testdata/python")

	// sbatch logs the name of every job it submits.
	realSbatch, err := exec.LookPath("sbatch")
	if err != nil {
		t.Fatal(err)
	}
	wrappers := t.TempDir()
	submitted := filepath.Join(wrappers, "submitted.log")
	wrapper := "#!/bin/bash\nscript=$(cat)\nprintf '%s\\n' \"$script\" | sed -n 's/^#SBATCH --job-name=//p' >>" + submitted +
		"\nprintf '%s\\n' \"$script\" | exec " + realSbatch + " --mem=100M --cpus-per-task=1 \"$@\"\n"
	if err := os.WriteFile(filepath.Join(wrappers, "sbatch"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	trainJobs := func() int {
		b, _ := os.ReadFile(submitted)
		return strings.Count(string(b), "agora-train-")
	}

	srv := apitest.New(apitest.Options{Responder: func(apitest.ChatRequest) string {
		return "Adding the numbers step by step gives 7.\n[RESULT] 7 [/RESULT]\n[END]"
	}})
	t.Cleanup(srv.Close)
	var seeds strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&seeds, `{"instruction": "What is %d + %d?", "response": "%d"}`+"\n", i, i+1, 2*i+1)
	}
	files := map[string]string{
		"seed.jsonl": seeds.String(),
		"agora.cue": fmt.Sprintf(`generators: g: {
	provider: openai: {base_url: %q, api_key_env: "KILL_TEST_KEY"}
	model: %q
	price: {input: 1, output: 1}
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: 4
	benchmarks: ["gsm8k"]
}
student: {executor: %q, hardware: {gpus_per_node: 0, time_limit: "00:10:00"}}
budgets: usd: 100
`, srv.URL(), apitest.DefaultModel, executor),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "KILL_TEST_KEY="+srv.APIKey(), "AGORA_SKIP_TOOLS_CHECK=1",
		"PATH="+wrappers+string(os.PathListSeparator)+standins+string(os.PathListSeparator)+os.Getenv("PATH"),
		"PYTHONPATH="+py, "PYTHONDONTWRITEBYTECODE=1", "AGORA_STANDIN_SLEEP=20")
	agora := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, env
		return cmd
	}
	status := func() statusJSON {
		t.Helper()
		out, err := agora("status", "-json").Output()
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		var st statusJSON
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("status -json: %v\n%s", err, out)
		}
		return st
	}
	t.Cleanup(func() {
		names := []string{}
		for _, s := range status().Steps {
			if s.Kind == "train" {
				names = append(names, "agora-train-"+s.ID[:12])
			}
		}
		slurmtest.Cancel(dir, names) // only this test's jobs
	})

	// The first apply, killed once its training job runs.
	first := agora("apply", "-auto-approve", "agora.cue")
	var out1 syncbuf.Buffer
	first.Stdout, first.Stderr = &out1, &out1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	var trainLog string
	for deadline := time.Now().Add(3 * time.Minute); trainLog == ""; time.Sleep(200 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("the first apply ended before the kill (%v):\n%s", err, out1.String())
		default:
		}
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatalf("no training job running within 3m:\n%s", out1.String())
		}
		logs, _ := filepath.Glob(filepath.Join(dir, ".agora", "runs", "*", "slurm-*.out"))
		for _, l := range logs {
			if b, _ := os.ReadFile(l); strings.Contains(string(b), "stand-in: sleeping") {
				trainLog = l
			}
		}
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited

	// Status after the kill: the step running with no live apply, its job
	// recorded with its log.
	st := status()
	train := st.step("train")
	if st.LiveApply || train.Status != "running (no live apply)" {
		t.Errorf("after the kill: live apply %v, train step %q", st.LiveApply, train.Status)
	}
	jobs := st.jobsOf(train.Address)
	if len(jobs) != 1 || jobs[0].Executor != executor || jobs[0].Log != trainLog {
		t.Errorf("after the kill: train jobs %+v, want one %s job logging to %s", jobs, executor, trainLog)
	}
	if n := trainJobs(); executor == "slurm" && n != 1 {
		t.Fatalf("%d training jobs submitted before the kill, want 1", n)
	}

	// The next apply: the lock taken over, the job reattached to; status
	// while it runs says the step runs under a live apply.
	second := agora("apply", "-auto-approve", "agora.cue")
	var out2 syncbuf.Buffer
	second.Stdout, second.Stderr = &out2, &out2
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	sawLive := false
	var err2 error
wait:
	for deadline := time.After(5 * time.Minute); ; {
		select {
		case err2 = <-done:
			break wait
		case <-deadline:
			second.Process.Kill()
			t.Fatalf("the second apply did not finish within 5m:\n%s", out2.String())
		case <-time.After(time.Second):
			if s := status(); s.LiveApply && s.step("train").Status == "running" {
				sawLive = true
			}
		}
	}
	if err2 != nil {
		t.Fatalf("the second apply: %v\n%s", err2, out2.String())
	}
	if !strings.Contains(out2.String(), "took over the lock") {
		t.Errorf("the second apply did not say it took the lock over:\n%s", out2.String())
	}
	if !sawLive {
		t.Errorf("status never showed the reattached training step running under the live apply")
	}
	if n := trainJobs(); executor == "slurm" && n != 1 {
		t.Errorf("%d training jobs submitted, want 1: the running job was not reattached to", n)
	}
	st = status()
	for _, s := range st.Steps {
		if s.Status != "done" {
			t.Errorf("step %s %s: %s", s.Address, s.Status, s.Reason)
		}
	}
	jobs = st.jobsOf(st.step("train").Address)
	if len(jobs) != 1 || jobs[0].State != "COMPLETED" || jobs[0].ElapsedSec < 15 {
		t.Errorf("train jobs %+v, want one, completed, after its 20 s: the job left running was %s", jobs,
			map[string]string{"slurm": "not reattached to", "local": "not waited for"}[executor])
	}
}

// statusJSON is what the test reads of agora status -json.
type statusJSON struct {
	Steps     []stepJSON `json:"steps"`
	Jobs      []jobJSON  `json:"jobs"`
	LiveApply bool       `json:"live_apply"`
}

type stepJSON struct{ Address, ID, Kind, Status, Reason string }

type jobJSON struct {
	Step, Executor, ID, State, Log string
	ElapsedSec                     float64 `json:"elapsed_seconds"`
}

// step is the first step of a kind.
func (s statusJSON) step(kind string) stepJSON {
	for _, st := range s.Steps {
		if st.Kind == kind {
			return st
		}
	}
	return stepJSON{}
}

func (s statusJSON) jobsOf(step string) (out []jobJSON) {
	for _, j := range s.Jobs {
		if j.Step == step {
			out = append(out, j)
		}
	}
	return out
}
