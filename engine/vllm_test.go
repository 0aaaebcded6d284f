package engine_test

// Generators with provider vllm: the engine starts their servers (the
// stand-in vllm of executors/vllm/testdata, locally and on the real
// Slurm), sends the generation through them, stops them after the
// generator's last step, on interrupt and on failure, and records their
// GPU time.

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/executors/vllm/vllmtest"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

const vllmModel = "meta-llama/Llama-3.1-8B-Instruct"

// mathReply is a valid math response for the response-generation setting.
const mathReply = "Adding the two numbers gives the total. [RESULT] 4 [/RESULT]"

type vllmFixture struct {
	t       *testing.T
	dir     string
	exp     *spec.Experiment
	plan    *plan.Plan
	api     *apitest.Server
	servers string // the servers' directory
	stub    string // the stand-in vllm's directory
	slurm   *slurm.Client
	specDir string // the SpecDir apply passes; "": dir
}

// newVLLMFixture writes a spec whose generator "open" is served by vLLM
// (vllm holds the CUE of provider: vllm), with the math response-generation
// setting over instances, plus, when withAPI, a generator "api" on the
// apitest stand-in.
func newVLLMFixture(t *testing.T, vllm string, instances []int, withAPI bool, extra string) *vllmFixture {
	t.Helper()
	stub := vllmtest.PutFirstInPath(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var seeds strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&seeds, `{"instruction": "What is %d + %d?", "response": "%d. [RESULT] %d [/RESULT]"}`+"\n", i, i, 2*i, 2*i)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(seeds.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &vllmFixture{t: t, dir: dir, servers: filepath.Join(dir, ".agora", "servers"), stub: stub}
	gens := fmt.Sprintf(`open: {provider: vllm: %s, model: %q, sampling: max_tokens: 200}`, vllm, vllmModel)
	if withAPI {
		f.api = apitest.New(apitest.Options{Responder: func(apitest.ChatRequest) string { return mathReply }})
		t.Cleanup(f.api.Close)
		t.Setenv(keyEnv, f.api.APIKey())
		gens += fmt.Sprintf("\n\tapi: {provider: openai: {base_url: %q, api_key_env: %q}, model: %q, price: {input: 1, output: 1}, sampling: max_tokens: 200}",
			f.api.URL(), keyEnv, apitest.DefaultModel)
	}
	var ns []string
	for _, n := range instances {
		ns = append(ns, strconv.Itoa(n))
	}
	src := fmt.Sprintf(`
generators: {
	%s
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	benchmarks: ["gsm8k"]
}
grid: instances: [%s]
%s
`, gens, strings.Join(ns, ", "), extra)
	path := filepath.Join(dir, "agora.cue")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	exp, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.exp, f.plan = exp, p
	return f
}

func (f *vllmFixture) apply(ctx context.Context, stop <-chan struct{}) (*engine.Result, *state.Store) {
	f.t.Helper()
	dir := filepath.Join(f.dir, ".agora")
	store, err := state.Open(ctx, dir)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { store.Close() })
	eng := engine.New(f.exp, f.plan, store, 0, nil, engine.Options{
		Dir: dir,
		Providers: providers.New(providers.Tuning{BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond,
			VLLM: providers.VLLM{Dir: f.servers, SpecDir: cmp.Or(f.specDir, f.dir), Slurm: f.slurm, PollInterval: 100 * time.Millisecond,
				Heartbeat: time.Second, StartTimeout: 30 * time.Second, BatchLinger: 100 * time.Millisecond}}),
		Seeds:    providers.Seeds{Dir: f.dir},
		Stop:     stop,
		Slurm:    f.slurm,
		Progress: testWriter{f.t},
		Interval: time.Hour,
	})
	res, err := eng.Apply(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return res, store
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// generateSteps are the plan's generate steps of generator gen.
func (f *vllmFixture) generateSteps(gen string) []plan.Step {
	var out []plan.Step
	for _, s := range f.plan.Steps {
		if s.Kind == plan.KindGenerate && s.Generator == gen {
			out = append(out, s)
		}
	}
	return out
}

// serverJobs are the jobs recorded for the servers.
func serverJobs(t *testing.T, store *state.Store, steps []plan.Step) []state.Job {
	t.Helper()
	var out []state.Job
	for _, s := range steps {
		jobs, err := store.Jobs(context.Background(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, jobs...)
	}
	return out
}

// liveProcesses lists the processes whose command line mentions dir.
func liveProcesses(dirs ...string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !mentions(e.Name(), string(b), dirs) {
			continue
		}
		if st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); strings.Contains(string(st), ") Z ") {
			continue
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

func (f *vllmFixture) noServersLeft(store *state.Store) {
	f.t.Helper()
	if ps := liveProcesses(f.servers, f.stub); len(ps) > 0 {
		f.t.Errorf("server processes left:\n%s", strings.Join(ps, "\n"))
	}
	active, err := store.ActiveJobs(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	if len(active) > 0 {
		f.t.Errorf("jobs still active in the state: %+v", active)
	}
}

func TestVLLMGeneratorLocal(t *testing.T) {
	f := newVLLMFixture(t, `{replicas: 2}`, []int{6, 10}, false, "")
	if c := f.exp.Generators["open"].Limits.Concurrency; c != 2*spec.VLLMConcurrencyPerReplica {
		t.Errorf("default concurrency %d", c)
	}
	res, store := f.apply(context.Background(), nil)
	steps := f.generateSteps("open")
	for _, s := range steps {
		if !contains(res.Done, s.Address) {
			t.Errorf("%s not done: %v", s.Address, res.Err())
		}
		n, err := countLines(filepath.Join(f.dir, ".agora", "datasets", s.ID+".jsonl"))
		if err != nil || n != s.Instances {
			t.Errorf("%s: dataset of %d lines (%v), want %d", s.Address, n, err, s.Instances)
		}
	}
	jobs := serverJobs(t, store, steps)
	if len(jobs) != 2 {
		t.Fatalf("server jobs %+v, want the 2 replicas, started once for both steps", jobs)
	}
	for _, j := range jobs {
		if j.Executor != "server:local" || j.Status != "COMPLETED" || j.GPUHours <= 0 {
			t.Errorf("server job %+v", j)
		}
	}
	if h, _ := store.GPUHours(context.Background()); h <= 0 {
		t.Errorf("GPU-hours used %g", h)
	}
	f.noServersLeft(store)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func countLines(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strings.Count(string(b), "\n"), nil
}

// TestVLLMServersStopAfterLastStep holds the other generator's requests
// until the vLLM generator's servers are gone: they must stop when its
// last step is done, not when the apply ends.
func TestVLLMServersStopAfterLastStep(t *testing.T) {
	f := newVLLMFixture(t, `{}`, []int{5}, true, "")
	f.api.Hold()
	released := make(chan struct{})
	go func() {
		defer close(released)
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			logs, _ := filepath.Glob(filepath.Join(f.servers, "open", "slurm-*.out"))
			if len(logs) > 0 && len(liveProcesses(f.servers, f.stub)) == 0 {
				b, _ := os.ReadFile(logs[0])
				if strings.Contains(string(b), "shutting down") {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		f.api.Release()
	}()
	res, store := f.apply(context.Background(), nil)
	<-released
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if f.api.Stats().Served == 0 {
		t.Fatal("the api generator served nothing")
	}
	jobs := serverJobs(t, store, f.generateSteps("open"))
	if len(jobs) != 1 || jobs[0].Status != "COMPLETED" {
		t.Errorf("server jobs %+v", jobs)
	}
	f.noServersLeft(store)
	// The servers stopped while the other step was held: the log says
	// they shut down, and the api step could only finish after that.
}

func TestVLLMInterrupt(t *testing.T) {
	for _, hard := range []bool{false, true} {
		t.Run(map[bool]string{false: "stop", true: "cancel"}[hard], func(t *testing.T) {
			t.Setenv("AGORA_STUB_LATENCY", "100ms")
			f := newVLLMFixture(t, `{replicas: 2}`, []int{400}, false, `generators: open: limits: concurrency: 4`)
			stop := make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(2*time.Second, func() {
				if hard {
					cancel()
				} else {
					close(stop)
				}
			})
			res, store := f.apply(ctx, stop)
			if !res.Stopped {
				t.Fatalf("not stopped: %+v", res)
			}
			jobs := serverJobs(t, store, f.generateSteps("open"))
			if len(jobs) != 2 {
				t.Fatalf("server jobs %+v", jobs)
			}
			for _, j := range jobs {
				if j.Status != "COMPLETED" || j.GPUHours <= 0 {
					t.Errorf("server job %+v", j)
				}
			}
			f.noServersLeft(store)
		})
	}
}

func TestVLLMStartFailure(t *testing.T) {
	t.Setenv("AGORA_STUB_FAIL_START", "RuntimeError: Engine core initialization failed. See root cause above.")
	f := newVLLMFixture(t, `{}`, []int{3, 4}, false, "")
	res, store := f.apply(context.Background(), nil)
	steps := f.generateSteps("open")
	for _, s := range steps {
		msg := res.Failed[s.Address]
		for _, want := range []string{"generator open: the vLLM server did not start", "exited with status 1 before it was ready", "the log (", "Engine core initialization failed"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: failure lacks %q: %q", s.Address, want, msg)
			}
		}
	}
	logs, _ := filepath.Glob(filepath.Join(f.servers, "open", "slurm-*.out"))
	if len(logs) != 1 {
		t.Errorf("%d server logs: a failed start was tried again for the next step", len(logs))
	}
	f.noServersLeft(store)
}

func TestVLLMGPUBudget(t *testing.T) {
	f := newVLLMFixture(t, `{}`, []int{5}, false, "budgets: gpu_hours: 0.01")
	res, _ := f.apply(context.Background(), nil)
	if res.Budget == nil || res.Budget.Budget != "gpu_hours" {
		t.Fatalf("budget %+v; %v", res.Budget, res.Err())
	}
	if _, err := os.Stat(filepath.Join(f.servers, "open")); err == nil {
		t.Error("servers were started beyond the GPU-hour budget")
	}
}

// TestVLLMPathAndGenerationConfig serves a checkpoint named by a path
// relative to the spec, from a spec loaded as "agora.cue" in its own
// directory, with the Hub offline: the server (which runs in
// .agora/servers/open) must get the checkpoint's absolute path, and
// --generation-config vllm, so that the checkpoint's
// generation_config.json does not fill the sampling the spec leaves out.
func TestVLLMPathAndGenerationConfig(t *testing.T) {
	for _, executor := range []string{"local", "slurm"} {
		t.Run(executor, func(t *testing.T) {
			if executor == "slurm" {
				requireSlurm(t)
			}
			f := newVLLMFixture(t, fmt.Sprintf(`{path: "ckpt", executor: %q, time_limit: "00:10:00"}`, executor), []int{3}, false, "")
			ckpt := filepath.Join(f.dir, "ckpt")
			if err := os.Mkdir(ckpt, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ckpt, "generation_config.json"), []byte(`{"temperature": 0.6, "top_p": 0.9, "top_k": 20}`), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv("HF_HUB_OFFLINE", "1")
			if executor == "slurm" {
				f.slurm = gpulessSbatch(t)
			}
			t.Chdir(f.dir)
			f.specDir = "." // spec.Load("agora.cue")
			res, store := f.apply(context.Background(), nil)
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			logs, _ := filepath.Glob(filepath.Join(f.servers, "open", "slurm-*.out"))
			var all strings.Builder
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				all.Write(b)
			}
			if !strings.Contains(all.String(), "model="+ckpt+" ") {
				t.Errorf("the server did not load %s:\n%s", ckpt, all.String())
			}
			if !strings.Contains(all.String(), "default sampling parameters are vLLM's own") {
				t.Errorf("the checkpoint's generation_config.json decides the sampling:\n%s", all.String())
			}
			f.noServersLeft(store)
		})
	}
}

// gpulessSbatch submits with the real sbatch minus the GPU request (the
// test node has none) and with a small memory request.
func gpulessSbatch(t *testing.T) *slurm.Client {
	real, err := exec.LookPath("sbatch")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "sbatch")
	script := `#!/bin/bash
grep -v '^#SBATCH --gpus-per-node=' | exec ` + real + ` --mem=100M --cpus-per-task=1 "$@"
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return &slurm.Client{Sbatch: bin}
}

func TestVLLMGeneratorOnSlurm(t *testing.T) {
	requireSlurm(t)
	t.Setenv("AGORA_STUB_DIE_AFTER", "4")
	t.Setenv("AGORA_STUB_LATENCY", "20ms")
	f := newVLLMFixture(t, `{replicas: 2, executor: "slurm", time_limit: "00:10:00"}`, []int{40}, false, `generators: open: limits: concurrency: 4`)
	t.Setenv("AGORA_STUB_DIE_ONCE", filepath.Join(f.dir, "died"))
	f.slurm = gpulessSbatch(t)
	res, store := f.apply(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "died")); err != nil {
		t.Error("no server died: the replica failure was not exercised")
	}
	jobs := serverJobs(t, store, f.generateSteps("open"))
	status := map[string]int{}
	var ids []string
	for _, j := range jobs {
		if j.Executor != "server:slurm" {
			t.Errorf("job %+v", j)
		}
		status[j.Status]++
		ids = append(ids, j.JobID)
	}
	if status["COMPLETED"] != 1 || status["FAILED"] != 1 {
		t.Errorf("server jobs %+v, want one COMPLETED and the dead one FAILED", jobs)
	}
	st, err := (&slurm.Client{}).Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for id, s := range st {
		if s.State == slurm.Running || s.State == slurm.Pending {
			t.Errorf("server job %s is %s after apply", id, s.State)
		}
	}
	f.noServersLeft(store)
}

// mentions reports whether process pid's command line or executable is
// under one of dirs.
func mentions(pid, cmdline string, dirs []string) bool {
	exe, _ := os.Readlink(filepath.Join("/proc", pid, "exe"))
	for _, d := range dirs {
		if strings.Contains(cmdline, d) || strings.HasPrefix(exe, d+"/") {
			return true
		}
	}
	return false
}

// TestServedEvaluation: alpaca_eval queries a model agora serves: one
// vLLM server per evaluated model (base, reference, student), recorded as
// a job of "<step>/serve" with its GPU time, stopped after the harness;
// the harness's own job holds no GPU.
func TestServedEvaluation(t *testing.T) {
	standIns(t)
	f := pipelineFixture(t, `student: hardware: gpus_per_node: 1`)
	ctx := context.Background()
	res, store := f.applyWith(ctx, nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range f.plan.Steps {
		if s.Kind != plan.KindEvaluate || !strings.Contains(s.Address, "alpacaeval2") {
			continue
		}
		n++
		servers, err := store.Jobs(ctx, s.ID+"/serve")
		if err != nil || len(servers) != 1 || servers[0].Executor != "server:local" || servers[0].Status != "COMPLETED" || servers[0].GPUHours <= 0 {
			t.Errorf("%s: server jobs %+v %v", s.Address, servers, err)
		}
		jobs, err := store.Jobs(ctx, s.ID)
		if err != nil || len(jobs) != 1 || jobs[0].Status != "COMPLETED" || jobs[0].GPUHours != 0 {
			t.Errorf("%s: harness jobs %+v %v", s.Address, jobs, err)
		}
		logs, _ := filepath.Glob(filepath.Join(f.dir, ".agora", "runs", s.ID, "server", "slurm-local-*.out"))
		if len(logs) != 1 {
			t.Errorf("%s: server logs %v", s.Address, logs)
			continue
		}
		b, _ := os.ReadFile(logs[0])
		if !strings.Contains(string(b), "shutting down") {
			t.Errorf("%s: the server was not stopped:\n%s", s.Address, b)
		}
	}
	if n != 3 {
		t.Errorf("%d alpacaeval2 evaluations, want 3", n)
	}
	if ps := liveProcesses(filepath.Join(f.dir, ".agora", "runs"), filepath.SplitList(os.Getenv("PATH"))[0]); len(ps) > 0 {
		t.Errorf("processes left:\n%s", strings.Join(ps, "\n"))
	}
}

// TestVLLMBatchMode: batch: true answers each round of requests with one
// vllm run-batch per replica; rejected completions go into the next
// round; every run is recorded with its GPU time and none is left.
func TestVLLMBatchMode(t *testing.T) {
	t.Setenv("AGORA_STUB_BATCH_BAD_EVERY", "3")
	f := newVLLMFixture(t, `{replicas: 2, batch: true}`, []int{6, 10}, false, "")
	if c := f.exp.Generators["open"].Limits.Concurrency; c != spec.VLLMBatchConcurrency {
		t.Errorf("batch concurrency %d", c)
	}
	res, store := f.apply(context.Background(), nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	steps := f.generateSteps("open")
	for _, s := range steps {
		n, err := countLines(filepath.Join(f.dir, ".agora", "datasets", s.ID+".jsonl"))
		if err != nil || n != s.Instances {
			t.Errorf("%s: dataset of %d lines (%v), want %d", s.Address, n, err, s.Instances)
		}
	}
	jobs := serverJobs(t, store, steps)
	if len(jobs) < 4 {
		t.Errorf("batch runs %+v, want at least two rounds per step (a third of the answers are rejected)", jobs)
	}
	for _, j := range jobs {
		if j.Executor != "server:local" || j.Status != "COMPLETED" || j.GPUHours <= 0 {
			t.Errorf("batch run %+v", j)
		}
	}
	ins, _ := filepath.Glob(filepath.Join(f.servers, "open", "batch-*.in.jsonl"))
	if len(ins) != len(jobs) {
		t.Errorf("%d input files for %d runs", len(ins), len(jobs))
	}
	f.noServersLeft(store)
}

// TestVLLMStaleServerAccounting: server jobs that a killed agora left
// recorded as active are ended by the next apply that starts servers,
// with their GPU time and end taken from the executor: a local server
// that its heartbeat watch stopped (its exit marker), one still running
// (stopped now), and a Slurm job that completed (Slurm's start and end).
func TestVLLMStaleServerAccounting(t *testing.T) {
	t.Run("local", func(t *testing.T) { staleServers(t, false) })
	t.Run("slurm", func(t *testing.T) { requireSlurm(t); staleServers(t, true) })
}

func staleServers(t *testing.T, withSlurm bool) {
	f := newVLLMFixture(t, `{}`, []int{3}, false, "")
	dir := filepath.Join(f.servers, "open")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := state.Open(ctx, filepath.Join(f.dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	step := f.generateSteps("open")[0].ID
	// start runs script as a local server job id of a killed agora would
	// run: its own process group, its pid file, SLURM_JOB_ID=id.
	var pgids []int
	t.Cleanup(func() {
		for _, g := range pgids {
			syscall.Kill(-g, syscall.SIGKILL)
		}
	})
	start := func(id, script string) {
		if err := store.RecordJob(ctx, step, "server:local", id, 1); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "SLURM_JOB_ID="+id)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pgids = append(pgids, cmd.Process.Pid)
		go cmd.Wait()
		if err := os.WriteFile(filepath.Join(dir, "job-"+id+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start("local-stale-1", `sleep 2; echo 0 > slurm-local-stale-1.exit`)
	start("local-stale-2", `exec sleep 300`)
	var slurmID string
	if withSlurm {
		f.slurm = gpulessSbatch(t)
		id, err := f.slurm.SubmitJob(ctx, slurm.Job{Name: "agora-stale-server", Dir: dir, Script: "sleep 2",
			Hardware: spec.Hardware{Nodes: 1, GPUsPerNode: 1, TimeLimit: "00:05:00"}})
		if err != nil {
			t.Fatal(err)
		}
		slurmID = id
		if err := store.RecordJob(ctx, step, "server:slurm", id, 2); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(4 * time.Second) // the first local job and the Slurm job end
	store.Close()

	res, store := f.apply(ctx, nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	jobs, err := store.Jobs(ctx, step)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]state.Job{}
	for _, j := range jobs {
		byID[j.JobID] = j
	}
	sec := func(j state.Job) float64 { return j.GPUHours * 3600 }
	if j := byID["local-stale-1"]; j.Status != "COMPLETED" || sec(j) < 1.5 || sec(j) > 4 {
		t.Errorf("the local server its heartbeat stopped: %s, %.1f GPU-seconds; want COMPLETED, about 2", j.Status, sec(j))
	}
	if j := byID["local-stale-2"]; j.Status != "CANCELLED" || sec(j) < 3.5 {
		t.Errorf("the local server still running: %s, %.1f GPU-seconds; want CANCELLED, at least 4", j.Status, sec(j))
	}
	if slurmID != "" {
		if j := byID[slurmID]; j.Status != "COMPLETED" || sec(j) < 1 || sec(j) > 5 {
			t.Errorf("the Slurm server job: %s, %.1f GPU-seconds; want COMPLETED, about 2", j.Status, sec(j))
		}
	}
	time.Sleep(200 * time.Millisecond) // reaped by its Wait
	for _, g := range pgids {
		if syscall.Kill(-g, 0) == nil {
			t.Errorf("process group %d of a stale server is still running", g)
		}
	}
}
