package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/executors/vllm"
	"github.com/agorabench/agora/harness"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// ServerKeyEnv is the environment variable through which an evaluation
// job receives the key of the vLLM server agora started for it; the key
// is made for that server and is worthless once it stops.
const ServerKeyEnv = "AGORA_SERVER_KEY"

// evalMaxModelLen bounds the context of a served model under evaluation:
// prompts plus harness.MaxNewTokens fit, and the KV cache stays small.
const evalMaxModelLen = 8192

// servedHarnesses query a served model over the OpenAI-compatible API
// (the others run vLLM inside the harness): agora serves the model with
// executors/vllm for the evaluation, one server per model, and stops it
// when the harness is done.
var servedHarnesses = map[string][]string{
	harness.AlpacaEval: {"vllm", "python", "alpaca_eval"},
	harness.ArenaHard:  {"vllm", "python"},
}

// served reports whether an evaluation queries a model agora serves.
func served(in evalInputs) bool {
	_, ok := servedHarnesses[in.Harness]
	return ok && in.Command == ""
}

// serveModel starts the vLLM server of a model under evaluation (its
// checkpoint or hub id) on the evaluation's executor and GPUs (locally,
// devices: those of the step's slot), served under
// harness.ServedName(model). The server is recorded as a job of
// step "<id>/serve", apart from the harness's own jobs.
func (e *Engine) serveModel(ctx context.Context, s plan.Step, model, dir string, devices []string) (*vllm.Pool, error) {
	ev := e.exp.Evaluation
	executor := ev.Executor
	if executor == "" {
		executor = spec.ExecutorLocal
	}
	gpus := max(ev.GPUs, 1)
	rec := &serverJobs{e: e, store: e.jobs, prog: e.prog, stepID: s.ID + "/serve"}
	cfg := vllm.Config{
		Name:  "eval-" + shortID(s.ID),
		Owner: s.Address,
		Model: harness.ServedName(model),
		VLLM: spec.VLLM{Path: model, TensorParallel: gpus, GPUs: gpus, Replicas: 1, MaxModelLen: evalMaxModelLen,
			DType: "auto", Executor: executor, ExtraArgs: harness.ServedArgs()},
		Dir:          filepath.Join(dir, "server"),
		Hardware:     spec.Hardware{Nodes: 1, GPUsPerNode: ev.GPUs, TimeLimit: evalTimeLimit},
		Client:       e.slurmClient(),
		PollInterval: e.opts.PollInterval, // 0: executors/vllm's default
		Recorder:     rec,
		Jobs:         rec,
		Logf:         func(format string, args ...any) { e.prog.note(fmt.Sprintf(format, args...)) },
	}
	if ev.Slurm != nil {
		cfg.Slurm = *ev.Slurm
	}
	if len(devices) > 0 {
		// A local server runs on the GPUs the step's slot was given.
		cfg.Env = map[string]string{"CUDA_VISIBLE_DEVICES": strings.Join(devices, ",")}
	}
	e.staleOnce.Do(func() { e.staleErr = e.endStaleServers(ctx) })
	if e.staleErr != nil {
		return nil, e.staleErr
	}
	return vllm.Start(e.soft, cfg)
}

// servedJob turns evaluation job j into one that queries the model through
// the server behind pool: the harness's API command, no GPUs of its own.
func servedJob(j *slurm.Job, in evalInputs, pool *vllm.Pool, model, out, judgeKeyEnv string) error {
	script, err := harness.APICommand(in.Harness, in.Benchmark, harness.APIParams{
		BaseURL: "http://" + pool.Addrs()[0] + "/v1", Model: harness.ServedName(model), KeyEnv: ServerKeyEnv,
		OutputDir: out, Concurrency: 32, JudgeModel: in.Judge, JudgeKeyEnv: judgeKeyEnv})
	if err != nil {
		return err
	}
	j.Script = script
	j.Hardware.GPUsPerNode = 0
	j.Env[ServerKeyEnv] = pool.Key()
	return nil
}
