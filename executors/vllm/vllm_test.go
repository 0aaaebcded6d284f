package vllm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/executors/vllm"
	"github.com/agorabench/agora/executors/vllm/vllmtest"
	"github.com/agorabench/agora/spec"
)

const model = "meta-llama/Llama-3.1-8B-Instruct"

// recorder records the servers' jobs as the engine would.
type recorder struct {
	mu     sync.Mutex
	exec   map[string]string
	status map[string]string
	hours  map[string]float64
}

func newRecorder() *recorder {
	return &recorder{exec: map[string]string{}, status: map[string]string{}, hours: map[string]float64{}}
}

func (r *recorder) RecordJob(ctx context.Context, executor, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.exec[id]; dup {
		return fmt.Errorf("job %s recorded twice", id)
	}
	r.exec[id], r.status[id] = executor, "SUBMITTED"
	return nil
}

func (r *recorder) UpdateJob(ctx context.Context, id, status string, gpuHours float64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.exec[id]; !ok {
		return fmt.Errorf("job %s was never recorded", id)
	}
	r.status[id], r.hours[id] = status, gpuHours
	return nil
}

// statuses counts the recorded jobs by status.
func (r *recorder) statuses() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, s := range r.status {
		m[s]++
	}
	return m
}

// logs collects Logf lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func testConfig(t *testing.T, replicas int) vllm.Config {
	dir := t.TempDir()
	return vllm.Config{
		Name:  "llama-8b",
		Model: model,
		VLLM: spec.VLLM{TensorParallel: 1, GPUs: 1, Replicas: replicas, DType: "bfloat16", MaxModelLen: 8192,
			GPUMemoryUtilization: 0.9, Executor: spec.ExecutorLocal},
		Dir:          dir,
		StartTimeout: 20 * time.Second,
		PollInterval: 50 * time.Millisecond,
		Heartbeat:    time.Second,
		Recorder:     newRecorder(),
	}
}

func start(t *testing.T, cfg vllm.Config) *vllm.Pool {
	t.Helper()
	p, err := vllm.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// client is the OpenAI-compatible client that agora's providers build
// over a pool.
func client(t *testing.T, p *vllm.Pool) *api.Client {
	t.Helper()
	c, err := api.New(api.Config{Name: "llama-8b", BaseURL: p.BaseURL(), APIKey: p.Key(), Model: model,
		Sampling: spec.Sampling{MaxTokens: 64}, Transport: p, Limits: spec.Limits{Concurrency: 16},
		BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ask(c *api.Client, text string) (api.Response, error) {
	return c.Complete(context.Background(), api.Request{Messages: []api.Message{{Role: "user", Content: text}}})
}

// processesUnder lists the live processes whose command line mentions dir
// (the servers' scripts live there).
func processesUnder(dirs ...string) []string {
	// The stand-in vllm lives in the first directory of PATH.
	dirs = append(dirs, filepath.SplitList(os.Getenv("PATH"))[0])
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if mentions(e.Name(), cmd, dirs) {
			if st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); strings.Contains(string(st), ") Z ") {
				continue // a zombie holds nothing
			}
			out = append(out, e.Name()+": "+cmd)
		}
	}
	return out
}

// refused reports whether nothing listens at addr any more.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func TestArgs(t *testing.T) {
	seed := 7
	got := vllm.Args(model, spec.VLLM{Path: "/ckpt/llama", TensorParallel: 4, DType: "bfloat16", MaxModelLen: 8192,
		GPUMemoryUtilization: 0.85, Seed: &seed, ExtraArgs: []string{"--enable-prefix-caching"}})
	want := "vllm serve /ckpt/llama --served-model-name " + model + " --tensor-parallel-size 4 --generation-config vllm --dtype bfloat16 --max-model-len 8192 --gpu-memory-utilization 0.85 --seed 7 --enable-prefix-caching"
	if strings.Join(got, " ") != want {
		t.Errorf("Args:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	got = vllm.Args(model, spec.VLLM{TensorParallel: 1, DType: "auto"})
	if want := "vllm serve " + model + " --served-model-name " + model + " --tensor-parallel-size 1 --generation-config vllm --dtype auto"; strings.Join(got, " ") != want {
		t.Errorf("Args without a path:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestLocalServersBalanceAndStop(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	t.Setenv("AGORA_STUB_LATENCY", "20ms")
	cfg := testConfig(t, 2)
	p := start(t, cfg)
	addrs := p.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("replicas in the rotation: %v", addrs)
	}
	c := client(t, p)
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	by := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := ask(c, "What is 2 + 2?")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			by[res.SystemFingerprint]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(by) != 2 || by[fingerprint(addrs[0])] < 10 || by[fingerprint(addrs[1])] < 10 {
		t.Errorf("requests per replica: %v, want both well used", by)
	}
	// The command line reached the server.
	logs, _ := filepath.Glob(filepath.Join(cfg.Dir, "slurm-local-*.out"))
	if len(logs) != 2 {
		t.Fatalf("server logs: %v", logs)
	}
	b, _ := os.ReadFile(logs[0])
	if !strings.Contains(string(b), "served="+model+" tp=1 dtype=bfloat16 max_model_len=8192 gpu_memory_utilization=0.9") {
		t.Errorf("the server's log does not show the spec's settings:\n%s", b)
	}

	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if !refused(a) {
			t.Errorf("%s still answers after Close", a)
		}
	}
	if ps := processesUnder(cfg.Dir); len(ps) > 0 {
		t.Errorf("processes left after Close:\n%s", strings.Join(ps, "\n"))
	}
	rec := cfg.Recorder.(*recorder)
	if got := rec.statuses(); got["COMPLETED"] != 2 || len(got) != 1 {
		t.Errorf("recorded statuses %v, want 2 COMPLETED", got)
	}
	for id, h := range rec.hours {
		if h <= 0 || h > 0.01 {
			t.Errorf("job %s: %g GPU-hours", id, h)
		}
	}
	if _, err := ask(c, "after close"); err == nil {
		t.Error("a request after Close succeeded")
	}
}

func fingerprint(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "stub-" + port
}

func TestSlowStartWithinTimeout(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	t.Setenv("AGORA_STUB_START_DELAY", "2s")
	cfg := testConfig(t, 1)
	cfg.StartTimeout = 15 * time.Second
	t0 := time.Now()
	p := start(t, cfg)
	if d := time.Since(t0); d < 2*time.Second {
		t.Errorf("ready after %s, before the server listened", d)
	}
	if _, err := ask(client(t, p), "hi"); err != nil {
		t.Fatal(err)
	}
}

func TestStartTimeout(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	t.Setenv("AGORA_STUB_START_DELAY", "60s")
	cfg := testConfig(t, 1)
	cfg.StartTimeout = 2 * time.Second
	t0 := time.Now()
	_, err := vllm.Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("a server that never listened was ready")
	}
	if d := time.Since(t0); d > 15*time.Second {
		t.Errorf("gave up after %s", d)
	}
	for _, want := range []string{"generator llama-8b: the vLLM server did not start", "did not answer GET /health within the start timeout (2s)", "the log (", "Loading model weights"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if ps := processesUnder(cfg.Dir); len(ps) > 0 {
		t.Errorf("processes left after a failed start:\n%s", strings.Join(ps, "\n"))
	}
	if got := cfg.Recorder.(*recorder).statuses(); got["FAILED"] != 1 {
		t.Errorf("recorded %v, want the server FAILED", got)
	}
}

func TestStartFailureShowsLogTail(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	t.Setenv("AGORA_STUB_FAIL_START", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
	cfg := testConfig(t, 2)
	_, err := vllm.Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("started")
	}
	msg := err.Error()
	for _, want := range []string{"none of the 2 vLLM servers started", "replica 1 (local job local-", "replica 2 (local job local-",
		"exited with status 1 before it was ready", "ends:\n", "torch.OutOfMemoryError: CUDA out of memory"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, cfg.Key) && cfg.Key != "" {
		t.Error("the key is in the message")
	}
}

func TestBadFlagsAndWrongModel(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	cfg := testConfig(t, 1)
	cfg.VLLM.ExtraArgs = []string{"--no-such-flag"}
	_, err := vllm.Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "unrecognized arguments") {
		t.Errorf("an unknown engine flag: %v", err)
	}
	cfg = testConfig(t, 1)
	cfg.VLLM.ExtraArgs = []string{"--served-model-name", "something-else"}
	_, err = vllm.Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "serves something-else, not "+model) {
		t.Errorf("a server serving another name: %v", err)
	}
}

func TestReplicaDiesMidStep(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	t.Setenv("AGORA_STUB_LATENCY", "30ms")
	t.Setenv("AGORA_STUB_DIE_AFTER", "10")
	once := filepath.Join(t.TempDir(), "died")
	t.Setenv("AGORA_STUB_DIE_ONCE", once)
	cfg := testConfig(t, 3)
	var l logs
	cfg.Logf = l.logf
	p := start(t, cfg)
	c := client(t, p)
	var wg sync.WaitGroup
	var failed sync.Map
	for i := 0; i < 120; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ask(c, "What is 2 + 2?"); err != nil {
				failed.Store(i, err)
			}
		}()
	}
	wg.Wait()
	failed.Range(func(k, v any) bool {
		t.Errorf("request %v failed: %v", k, v)
		return true
	})
	if _, err := os.Stat(once); err != nil {
		t.Fatal("no server died: the test tested nothing")
	}
	if p.Alive() != 2 {
		t.Errorf("%d replicas in the rotation, want 2", p.Alive())
	}
	if !strings.Contains(l.String(), "left the rotation (2 left)") || !strings.Contains(l.String(), "CUDA error: an illegal memory access") {
		t.Errorf("no line about the dead replica with its log's tail:\n%s", l.String())
	}
	if p.Err() != nil {
		t.Errorf("pool down: %v", p.Err())
	}
	p.Close(context.Background())
	if got := cfg.Recorder.(*recorder).statuses(); got["FAILED"] != 1 || got["COMPLETED"] != 2 {
		t.Errorf("recorded %v, want 1 FAILED and 2 COMPLETED", got)
	}
}

func TestEveryReplicaDies(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	t.Setenv("AGORA_STUB_DIE_AFTER", "3")
	cfg := testConfig(t, 1)
	p := start(t, cfg)
	c := client(t, p)
	var last error
	for i := 0; i < 10 && p.Err() == nil; i++ {
		_, last = ask(c, "hi")
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the pool is not down after its only server died (last error %v)", last)
	}
	err := p.Err()
	for _, want := range []string{"generator llama-8b: every vLLM server has stopped", "the log (", "illegal memory access"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pool error lacks %q: %v", want, err)
		}
	}
}

func TestInterruptedStartLeavesNothing(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	t.Setenv("AGORA_STUB_START_DELAY", "60s")
	cfg := testConfig(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	_, err := vllm.Start(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start after cancel: %v", err)
	}
	if ps := processesUnder(cfg.Dir); len(ps) > 0 {
		t.Errorf("processes left after an interrupted start:\n%s", strings.Join(ps, "\n"))
	}
}

// TestHeartbeatStopsOrphans kills (SIGKILL) a process that started a
// server, as if agora crashed, and waits for the server's script to notice
// the heartbeat stopped and end the server.
func TestHeartbeatStopsOrphans(t *testing.T) {
	if os.Getenv("AGORA_VLLM_ORPHAN_DIR") != "" {
		t.Skip("child")
	}
	vllmtest.PutFirstInPath(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanChild$")
	cmd.Env = append(os.Environ(), "AGORA_VLLM_ORPHAN_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var addr string
	buf := make([]byte, 4096)
	deadline := time.Now().Add(30 * time.Second)
	var got strings.Builder
	for addr == "" && time.Now().Before(deadline) {
		n, err := out.Read(buf)
		got.Write(buf[:n])
		for _, line := range strings.Split(got.String(), "\n") {
			if a, ok := strings.CutPrefix(line, "ADDR "); ok {
				addr = strings.TrimSpace(a)
			}
		}
		if err != nil {
			break
		}
	}
	if addr == "" {
		cmd.Process.Kill()
		t.Fatalf("the child did not start a server: %s", got.String())
	}
	cmd.Process.Kill()
	cmd.Wait()
	if refused(addr) {
		t.Fatal("the server died with its parent: the heartbeat was not tested")
	}
	until := time.Now().Add(30 * time.Second)
	for !refused(addr) && time.Now().Before(until) {
		time.Sleep(200 * time.Millisecond)
	}
	if !refused(addr) {
		t.Fatal("the orphaned server still runs 30 s after agora died")
	}
	// The server's port closes first; its script then notices (it looks
	// once a second) and exits, within StopGrace in any case.
	var ps []string
	for gone := time.Now().Add(vllm.StopGrace + 5*time.Second); time.Now().Before(gone); time.Sleep(200 * time.Millisecond) {
		if ps = processesUnder(dir); len(ps) == 0 {
			break
		}
	}
	if len(ps) > 0 {
		t.Errorf("processes left %v after the server stopped:\n%s", vllm.StopGrace+5*time.Second, strings.Join(ps, "\n"))
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "slurm-*.out"))
	if len(logs) != 1 {
		t.Fatalf("logs %v", logs)
	}
	b, _ := os.ReadFile(logs[0])
	if !strings.Contains(string(b), "no heartbeat from agora") {
		t.Errorf("the log does not say why the server stopped:\n%s", b)
	}
}

// TestOrphanChild is the child of TestHeartbeatStopsOrphans.
func TestOrphanChild(t *testing.T) {
	dir := os.Getenv("AGORA_VLLM_ORPHAN_DIR")
	if dir == "" {
		t.Skip("run by TestHeartbeatStopsOrphans")
	}
	cfg := vllm.Config{Name: "orphan", Model: model, Dir: dir, Heartbeat: 500 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		VLLM: spec.VLLM{TensorParallel: 1, GPUs: 1, Replicas: 1, DType: "auto", Executor: spec.ExecutorLocal}}
	p, err := vllm.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", p.Addrs()[0])
	time.Sleep(time.Minute)
}

// models lists what a replica serves, with the key.
func models(t *testing.T, addr, key string) []string {
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var l struct{ Data []struct{ ID string } }
	json.Unmarshal(b, &l)
	var ids []string
	for _, m := range l.Data {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestServersRequireTheKey(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	p := start(t, testConfig(t, 1))
	addr := p.Addrs()[0]
	if got := models(t, addr, p.Key()); len(got) != 1 || got[0] != model {
		t.Errorf("with the key: %v", got)
	}
	if got := models(t, addr, "not-the-key"); len(got) != 0 {
		t.Errorf("without the key: %v", got)
	}
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
