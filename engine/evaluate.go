package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/harness"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// EvalOutput is the directory, inside an evaluate step's run directory,
// that receives the harness's result files.
const EvalOutput = "results"

// CommandScoreFile is the file a benchmark with harness "command" must
// write in its output directory: {"value": <score in percent>}.
const CommandScoreFile = "score.json"

// evalInputs mirror the compiler's inputs of an evaluate step.
type evalInputs struct {
	Model     string `json:"model"` // base:<id>, reference:<id> or student:<train step id>
	Benchmark string `json:"benchmark"`
	Harness   string `json:"harness"`
	Command   string `json:"command"`
	Judge     string `json:"judge"`
	FewShot   bool   `json:"few_shot"`
}

type evaluateRunner struct{ e *Engine }

func (r *evaluateRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in evalInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("evaluate inputs: %w", err)
	}
	role, model, ok := strings.Cut(in.Model, ":")
	if !ok {
		return "", fmt.Errorf("evaluate: model %q is not role:id", in.Model)
	}
	if strings.TrimSpace(in.Command) == "" {
		tools := harnessTools[in.Harness]
		if served(in) {
			tools = servedHarnesses[in.Harness]
		}
		if err := needTools(s.Executor, "evaluate with "+in.Harness, tools...); err != nil {
			return "", err
		}
	}
	if role == "student" {
		st, ok, err := e.scores.Step(ctx, model)
		if err != nil {
			return "", err
		}
		if !ok || st.Status != state.StatusDone || st.Output == "" {
			return "", fmt.Errorf("evaluate: the student's train step %s is not done", model)
		}
		model = st.Output
	}
	dir, err := e.runDir(s.ID)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, EvalOutput)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	var b *spec.Benchmark
	if e.exp.Evaluation.Benchmarks != nil {
		b = e.exp.Evaluation.Benchmarks[in.Benchmark]
	}
	tasks, err := writeLMEvalTasks(in.Harness, dir)
	if err != nil {
		return "", fmt.Errorf("evaluate: %w", err)
	}
	params := harness.CommandParams{ModelPath: model, OutputDir: out, FewShot: in.FewShot, Port: evalPort(s.ID), JudgeModel: in.Judge,
		TaskDir: tasks, LMEvalBackend: e.exp.Evaluation.LMEvalBackend}
	keyEnv := harness.DefaultJudgeKeyEnv
	if b != nil && b.Judge != nil && b.Judge.APIKeyEnv != "" {
		keyEnv = b.Judge.APIKeyEnv
	}
	params.JudgeKeyEnv = keyEnv

	done, err := e.completedJob(ctx, s.ID)
	if err != nil {
		return "", err
	}
	score, perr := r.parse(in, out, model)
	if !done || perr != nil {
		script, err := r.script(in, params)
		if err != nil {
			return "", err
		}
		j := slurm.Job{
			Name:     "agora-eval-" + shortID(s.ID),
			Dir:      dir,
			Script:   script,
			Hardware: spec.Hardware{Nodes: 1, GPUsPerNode: e.exp.Evaluation.GPUs, TimeLimit: evalTimeLimit},
			Requeue:  true,
			Env:      e.jobEnv(keyEnv, "HF_TOKEN", "HF_HOME", harness.ArenaHardDirEnv),
		}
		if e.exp.Evaluation.Slurm != nil {
			j.Slurm = *e.exp.Evaluation.Slurm
		}
		gpus := e.exp.Evaluation.GPUs
		if served(in) {
			// agora serves the model (one server, its GPU time recorded
			// as its own job) while the harness queries it. The budget
			// is checked before the server starts; runJob holds it.
			// The job's slot is taken before the server starts too.
			free, devices, err := e.slot(ctx, s, j, gpus)
			if err != nil {
				return "", wrapJobErr("evaluate", err)
			}
			defer free()
			ctx = context.WithValue(ctx, slotKey{}, true)
			release, err := e.reserveGPU(ctx, s)
			if err != nil {
				return "", wrapJobErr("evaluate", err)
			}
			release()
			pool, err := e.serveModel(ctx, s, model, dir, devices)
			if err != nil {
				return "", wrapJobErr("evaluate", err)
			}
			defer pool.Close(context.WithoutCancel(ctx))
			if err := servedJob(&j, in, pool, model, out, keyEnv); err != nil {
				return "", err
			}
			gpus = 0
		}
		if err := e.runJob(ctx, s, j, gpus); err != nil {
			return "", wrapJobErr("evaluate", err)
		}
		if score, err = r.parse(in, out, model); err != nil {
			return "", fmt.Errorf("evaluate: the job exited 0 but its results cannot be read: %w", err)
		}
	}
	if err := e.scores.RecordScore(ctx, s.ID, in.Benchmark, role, score); err != nil {
		return "", err
	}
	return out, nil
}

// writeLMEvalTasks writes agora's lm-eval tasks (agora_math) into the
// step's run directory dir for a step run by lm-eval, and returns their
// directory; "" for the other harnesses.
func writeLMEvalTasks(h, dir string) (string, error) {
	if h != harness.LMEval {
		return "", nil
	}
	tasks := filepath.Join(dir, harness.LMEvalTaskDir)
	return tasks, harness.WriteLMEvalTasks(tasks)
}

// harnessTools are the commands a harness's rendered command runs.
var harnessTools = map[string][]string{
	harness.LMEval:   {"lm_eval"},
	harness.EvalPlus: {"evalplus.evaluate"},
}

// evalTimeLimit bounds one evaluation job.
const evalTimeLimit = "12:00:00"

// evalPort is the vLLM port of an evaluation, spread over 20000–39999 so
// that evaluations running side by side on one machine rarely collide.
func evalPort(stepID string) int {
	h := fnv.New32a()
	h.Write([]byte(stepID))
	return 20000 + int(h.Sum32()%20000)
}

// script renders the evaluation command: the benchmark's command
// template when it has one, the harness's command otherwise.
func (r *evaluateRunner) script(in evalInputs, p harness.CommandParams) (string, error) {
	if strings.TrimSpace(in.Command) != "" {
		t, err := spec.CommandTemplate("benchmark command", in.Command)
		if err != nil {
			return "", fmt.Errorf("benchmark %s: command: %w", in.Benchmark, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, spec.BenchmarkCommandData{ModelPath: p.ModelPath, OutputDir: p.OutputDir, Benchmark: in.Benchmark, FewShot: p.FewShot, Port: p.Port}); err != nil {
			return "", fmt.Errorf("benchmark %s: command: %w", in.Benchmark, err)
		}
		return b.String(), nil
	}
	if in.Harness == spec.HarnessCommand {
		return "", fmt.Errorf("benchmark %s: harness command needs a command template", in.Benchmark)
	}
	return harness.Command(in.Harness, in.Benchmark, p)
}

// parse reads the score the harness left in out.
func (r *evaluateRunner) parse(in evalInputs, out, model string) (float64, error) {
	if in.Harness == spec.HarnessCommand {
		data, err := os.ReadFile(filepath.Join(out, CommandScoreFile))
		if err != nil {
			return 0, err
		}
		var v struct{ Value *float64 }
		if err := json.Unmarshal(data, &v); err != nil || v.Value == nil || math.IsNaN(*v.Value) || math.IsInf(*v.Value, 0) {
			return 0, fmt.Errorf("%s: want {\"value\": <number>}", filepath.Join(out, CommandScoreFile))
		}
		return *v.Value, nil
	}
	o := harness.DefaultOptions()
	if in.Harness == harness.AlpacaEval || in.Harness == harness.ArenaHard {
		o.Model = harness.ServedName(model)
	}
	sc, err := harness.ParseWith(in.Harness, in.Benchmark, out, o)
	if err != nil {
		return 0, err
	}
	return sc.Value, nil
}
