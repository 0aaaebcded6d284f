package slurm

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// trlJob is a TRL SFT job as the paper runs it: one node, 4×H100, on a
// cluster with a partition, an account, a qos, extra directives and a
// pyxis container, requeued before its time limit.
func trlJob() Job {
	return Job{
		Name: "agora-train-magpie-gpt-4o-3f2a9c",
		Dir:  "/shared/agora/runs/train-3f2a9c",
		Script: `srun accelerate launch --config_file accelerate.yaml --num_processes 4 \
  -m trl.scripts.sft --config sft.yaml --output_dir model
`,
		Hardware: spec.Hardware{GPU: "H100-80GB", GPUsPerNode: 4, Nodes: 1, TimeLimit: "12:00:00",
			CPUsPerTask: 32, Mem: "512GB", Utilization: 0.35},
		Slurm: spec.Slurm{
			Partition:  "gpu",
			Account:    "agora-lab",
			QOS:        "high",
			Directives: []string{"--constraint=h100", "#SBATCH --exclusive"},
			Container:  "nvcr.io#nvidia/pytorch:24.05-py3",
		},
		Requeue:       true,
		SignalSeconds: 300,
		Checkpoint:    `touch model/.checkpoint-requested`,
		Env: map[string]string{
			"HF_TOKEN":      "hf_SECRETvalue123",
			"WANDB_API_KEY": "wandb-SECRET-456",
		},
	}
}

// cpuJob is a CPU-only evaluation job that loads environment modules.
func cpuJob() Job {
	return Job{
		Name:     "agora-eval-gsm8k-base",
		Dir:      "/scratch/agora/eval/gsm8k",
		Script:   "python -m lm_eval --model vllm --tasks gsm8k --output_path results\n",
		Hardware: spec.Hardware{CPUsPerTask: 8, Mem: "32g", TimeLimit: "2:00:00"},
		Slurm:    spec.Slurm{Partition: "cpu", Modules: []string{"python/3.11", "cuda/12.4"}},
		Env:      map[string]string{"OPENAI_API_KEY": "sk-SECRET-789"},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		job    Job
	}{
		{"trl-4xh100.sbatch", trlJob()},
		{"cpu-modules.sbatch", cpuJob()},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := Render(tc.job)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (create it with: go test ./executors/slurm -run TestRenderGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("Render differs from %s (if intended: go test ./executors/slurm -run TestRenderGolden -update)\n--- got ---\n%s", golden, got)
			}
			again, _ := Render(tc.job)
			if again != got {
				t.Error("Render is not deterministic")
			}
			if sh, err := exec.LookPath("bash"); err == nil {
				cmd := exec.Command(sh, "-n")
				cmd.Stdin = strings.NewReader(got)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("bash -n: %v\n%s", err, out)
				}
			}
		})
	}
}

func TestRenderNeverWritesSecrets(t *testing.T) {
	for _, j := range []Job{trlJob(), cpuJob()} {
		got, err := Render(j)
		if err != nil {
			t.Fatal(err)
		}
		for name, value := range j.Env {
			if strings.Contains(got, value) {
				t.Errorf("%s: the value of %s is in the script", j.Name, name)
			}
			if !strings.Contains(got, ","+name) {
				t.Errorf("%s: %s is not exported by name", j.Name, name)
			}
		}
	}
}

func TestRenderOmissions(t *testing.T) {
	got, err := Render(Job{Name: "n", Dir: "/d", Script: "true"})
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"--gpus-per-node", "--cpus-per-task", "--mem", "--time", "--partition",
		"--account", "--qos", "--requeue\n", "--signal", "--export", "--container", "module load", "trap"} {
		if strings.Contains(got, absent) {
			t.Errorf("minimal job renders %q:\n%s", absent, got)
		}
	}
	for _, present := range []string{"#SBATCH --nodes=1\n", "#SBATCH --output=/d/slurm-%j.out\n", "#SBATCH --open-mode=append\n", "#SBATCH --no-requeue\n"} {
		if !strings.Contains(got, present) {
			t.Errorf("minimal job lacks %q:\n%s", present, got)
		}
	}
	// SignalSeconds implies --requeue: scontrol requeue refuses jobs
	// submitted with --no-requeue.
	got, err = Render(Job{Name: "n", Dir: "/d", Script: "true", SignalSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "#SBATCH --requeue\n") || !strings.Contains(got, "#SBATCH --signal=B:USR1@60\n") {
		t.Errorf("signal job lacks --requeue or --signal:\n%s", got)
	}
}

func TestRenderMem(t *testing.T) {
	for in, want := range map[string]string{"512GB": "512G", "512GiB": "512G", "64g": "64G", "4000": "4000", "100 M": "100M", "1T": "1T"} {
		got, err := Render(Job{Name: "n", Dir: "/d", Script: "true", Hardware: spec.Hardware{Mem: in}})
		if err != nil {
			t.Errorf("mem %q: %v", in, err)
			continue
		}
		if !strings.Contains(got, "#SBATCH --mem="+want+"\n") {
			t.Errorf("mem %q: want --mem=%s in\n%s", in, want, got)
		}
	}
}

func TestRenderRejects(t *testing.T) {
	ok := Job{Name: "n", Dir: "/d", Script: "true"}
	for _, tc := range []struct {
		name string
		edit func(*Job)
		want string
	}{
		{"no name", func(j *Job) { j.Name = "" }, "job name is empty"},
		{"name with space", func(j *Job) { j.Name = "a b" }, "whitespace"},
		{"relative dir", func(j *Job) { j.Dir = "runs/x" }, "absolute"},
		{"dir with newline", func(j *Job) { j.Dir = "/d\n#SBATCH --x" }, "control"},
		{"dir with percent", func(j *Job) { j.Dir = "/d/%j" }, "expands"},
		{"empty body", func(j *Job) { j.Script = " \n" }, "script is empty"},
		{"bad mem", func(j *Job) { j.Hardware.Mem = "lots" }, "mem"},
		{"bad time", func(j *Job) { j.Hardware.TimeLimit = "12h" }, "time limit"},
		{"negative gpus", func(j *Job) { j.Hardware.GPUsPerNode = -1 }, "negative"},
		{"directive without dash", func(j *Job) { j.Slurm.Directives = []string{"exclusive"} }, "sbatch option"},
		{"directive with newline", func(j *Job) { j.Slurm.Directives = []string{"--x\nrm -rf /"} }, "control"},
		{"partition with space", func(j *Job) { j.Slurm.Partition = "gpu large" }, "partition"},
		{"bad env name", func(j *Job) { j.Env = map[string]string{"A-B": "x"} }, "A-B"},
		{"signal too large", func(j *Job) { j.SignalSeconds = 70000 }, "signal"},
	} {
		j := ok
		tc.edit(&j)
		_, err := Render(j)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestRenderedScriptRuns runs a rendered script under bash with the
// variables Slurm would set, outside Slurm: the body runs in dir, its exit
// status is the script's and lands in the exit marker.
func TestRenderedScriptRuns(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		signal int
		code   int
	}{{0, 0}, {0, 3}, {60, 0}, {60, 5}} {
		script, err := Render(Job{Name: "n", Dir: dir, Script: "echo body >out.txt\nexit " + strconv.Itoa(tc.code), SignalSeconds: tc.signal})
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bash, "-s")
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(script)
		cmd.Env = append(os.Environ(), "SLURM_JOB_ID=42")
		out, err := cmd.CombinedOutput()
		got := 0
		if ee, ok := err.(*exec.ExitError); ok {
			got = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != tc.code {
			t.Errorf("signal %d: exit %d, want %d\n%s", tc.signal, got, tc.code, out)
		}
		code, ok, err := ReadExitMarker(dir, "42")
		if err != nil || !ok || code != tc.code {
			t.Errorf("signal %d: marker = %d, %v, %v; want %d", tc.signal, code, ok, err, tc.code)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(b) != "body\n" {
			t.Errorf("signal %d: body did not run in dir: %q", tc.signal, b)
		}
	}
}

func TestParseTimeLimit(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30":         30 * time.Minute,
		"05:30":      5*time.Minute + 30*time.Second,
		"24:00:00":   24 * time.Hour,
		"1-12":       36 * time.Hour,
		"2-01:30":    49*time.Hour + 30*time.Minute,
		"1-00:00:10": 24*time.Hour + 10*time.Second,
		"UNLIMITED":  0,
		"00:10:00":   10 * time.Minute,
		"100:00:00":  100 * time.Hour,
		"0-00:00:01": time.Second,
		"INFINITE":   0,
		" 12:00:00 ": 12 * time.Hour,
	} {
		got, err := ParseTimeLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseTimeLimit(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "12h", "1:2:3:4", "-1", "1-"} {
		if _, err := ParseTimeLimit(in); err == nil {
			t.Errorf("ParseTimeLimit(%q): no error", in)
		}
	}
}
