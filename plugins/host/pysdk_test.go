package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/internal/syncbuf"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/plugins/plugintest"
	"github.com/agorabench/agora/spec"
)

// The Python SDK (plugins/sdk/python) runs on the pinned tools
// environment ($AGORA_TOOLS_VENV, scripts/python-tools.sh), whose grpcio,
// protobuf and cryptography are the SDK's pins: CI installs nothing more
// for it. The tests build the SDK's wheel offline from the checkout,
// install it in a scratch directory and run plugins written with it
// through the host: real processes, real gRPC with AutoMTLS.

var (
	pySDKOnce sync.Once
	pySDKEnv  plugintest.PythonSDK
	pySDKErr  error
)

// pySDK builds and installs the SDK once per test binary, or skips (fails
// under CI=true) without the tools environment.
func pySDK(t testing.TB) plugintest.PythonSDK {
	t.Helper()
	venv := os.Getenv("AGORA_TOOLS_VENV")
	if venv == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and AGORA_TOOLS_VENV is not set (scripts/test.sh builds it with scripts/python-tools.sh)")
		}
		t.Skip("AGORA_TOOLS_VENV is not set: no Python environment for the Python SDK (scripts/python-tools.sh)")
	}
	pySDKOnce.Do(func() { pySDKEnv, pySDKErr = plugintest.InstallPythonSDK(venv) })
	if pySDKErr != nil {
		t.Fatal(pySDKErr)
	}
	return pySDKEnv
}

// pyHost is a host whose search path holds the Python test plugin pyfake.
func pyHost(t *testing.T) (*host.Host, *syncbuf.Buffer, host.Config) {
	t.Helper()
	sdk := pySDK(t)
	dir := t.TempDir()
	if err := sdk.Install(filepath.Join("..", "plugintest", "python", "agora-provider-pyfake"), dir); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PYFAKE_MARK", filepath.Join(t.TempDir(), "mark"))
	h, log := newHostIn(t, dir)
	return h, log, host.Config{Generator: "g", Plugin: "pyfake", Model: "fake-py", Sampling: spec.Sampling{MaxTokens: 100},
		Retry: retry.Config{AttemptTimeout: 5 * time.Second, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxRetries: 3}}
}

func TestPySDKPinsAreTheToolchain(t *testing.T) {
	pins, err := plugintest.PythonSDKPins()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../toolchain/constraints.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pins {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(p) + `$`).Match(b) {
			t.Errorf("the SDK pins %s, toolchain/constraints.txt does not: the tests would run it with other versions", p)
		}
	}
	if len(pins) != 3 {
		t.Errorf("pins %v", pins)
	}
}

// BenchmarkPySDKComplete measures completions through a plugin written
// with the Python SDK that answers at once (pyfake): the cost of the
// process boundary and of Python's gRPC, to compare with BenchmarkComplete.
func BenchmarkPySDKComplete(b *testing.B) {
	sdk := pySDK(b)
	dir := b.TempDir()
	if err := sdk.Install(filepath.Join("..", "plugintest", "python", "agora-provider-pyfake"), dir); err != nil {
		b.Fatal(err)
	}
	benchComplete(b, dir, "pyfake", "fake-py-free", 1, 16)
}

// TestPySDKUnit runs the SDK's own unit tests (plugins/sdk/python/tests)
// against the installed wheel.
func TestPySDKUnit(t *testing.T) {
	sdk := pySDK(t)
	tests, _ := filepath.Abs(filepath.Join("..", "sdk", "python", "tests"))
	cmd := exec.Command(sdk.Python, "-m", "unittest", "discover", "-s", tests)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+sdk.Site, "PYTHONDONTWRITEBYTECODE=1")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "\nOK") {
		t.Errorf("python -m unittest: %v\n%s", err, out)
	}
}

func TestPySDKCompleteDescribe(t *testing.T) {
	h, log, cfg := pyHost(t)
	temp, seed := 0.5, 7
	cfg.Sampling.Temperature, cfg.Sampling.Seed, cfg.Sampling.Stop = &temp, &seed, []string{"END"}
	cfg.Sampling.Extra = map[string]any{"top_k": 40}
	c, err := h.Client(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := c.Plugin()
	d := p.Description()
	if p.Version() != 2 || d.Name != "pyfake" || !d.CountTokens || !d.Embeddings || d.Unavailable != "" || len(d.Models) != 2 {
		t.Errorf("version %d description %+v", p.Version(), d)
	}
	if m, _ := d.Model("fake-py"); m.InputPrice != 1.5 || m.OutputPrice != 3 || m.RPM != 6000 || m.Concurrency != 16 {
		t.Errorf("model %+v", m)
	}
	if err := p.Ping(); err != nil {
		t.Errorf("health: %v", err)
	}
	r, err := c.Complete(context.Background(), user("from Go"))
	if err != nil {
		t.Fatal(err)
	}
	want := "echo: from Go extra=[('top_k', 40)] temperature=0.5 seed=7 stop=['END']"
	if r.Text != want || r.FinishReason != "stop" || r.Model != "fake-py-py" || r.ID != "py-1" || r.PromptTokens != 5 || r.Attempts != 1 {
		t.Errorf("response %+v", r)
	}
	n, ok, err := p.CountTokens(context.Background(), "fake-py", []host.Message{{Role: "user", Content: "three little words"}})
	if err != nil || !ok || n != 3 {
		t.Errorf("count tokens %d %v %v", n, ok, err)
	}
	vs, tokens, err := c.Embed(context.Background(), []string{"ab", "abcd"})
	if err != nil || len(vs) != 2 || vs[0][0] != 2 || vs[1][0] != 4 || tokens != 2 {
		t.Errorf("embed %v %d %v", vs, tokens, err)
	}
	// The SDK's logging lands in the host's log with its level and keys.
	if !log.WaitFor("[INFO]  plugin.agora-provider-pyfake: completing:", 2*time.Second) ||
		!regexp.MustCompile(`completing: .*messages=2`).MatchString(log.String()) {
		t.Errorf("the plugin's log line is not in the host's log:\n%s", log.String())
	}
	// Shutdown: agora's Close asks the plugin to exit, which it does at
	// once (no kill two seconds later).
	pid := p.PID()
	start := time.Now()
	h.Close()
	waitGone(t, pid, 5*time.Second)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("the plugin took %v to stop: Shutdown not served?", d)
	}
	if strings.Contains(log.String(), "plugin failed to exit gracefully") {
		t.Errorf("killed rather than shut down:\n%s", log.String())
	}
}

// TestPySDKErrors: the SDK's typed errors reach agora as what they are.
func TestPySDKErrors(t *testing.T) {
	h, _, cfg := pyHost(t)
	c, err := h.Client(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := c.Complete(context.Background(), user("RATELIMIT"))
	if err != nil || r.Attempts != 2 || c.Stats().Retries.RateLimited != 1 {
		t.Errorf("rate limited once: %+v %v, stats %+v", r, err, c.Stats())
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("retried after %v, before the plugin's retry-after of 50ms", d)
	}
	r, err = c.Complete(context.Background(), user("RETRY"))
	if err != nil || r.Attempts != 2 || r.Text != "echo: RETRY" {
		t.Errorf("retryable once: %+v %v", r, err)
	}
	for msg, want := range map[string]string{
		"PERMANENT": "generator g: plugin pyfake: pyfake: this request can never succeed",
		"BUG":       "generator g: plugin pyfake: KeyError: 'missing'",
	} {
		_, err := c.Complete(context.Background(), user(msg))
		var e *host.Error
		if !errors.As(err, &e) || !e.Permanent || e.Attempts != 1 || err.Error() != want {
			t.Errorf("%s: %v (%+v), want %q", msg, err, e, want)
		}
	}
	if _, _, err := c.Embed(context.Background(), []string{"RATELIMIT"}); err != nil || c.Stats().Retries.RateLimited != 2 {
		t.Errorf("embed rate limited once: %v, stats %+v", err, c.Stats())
	}
	_, _, err = c.Embed(context.Background(), []string{"PERMANENT"})
	var e *host.Error
	if !errors.As(err, &e) || !e.Permanent || e.Attempts != 1 || err.Error() != "generator g: plugin pyfake: pyfake: cannot embed this" {
		t.Errorf("embed permanent: %v", err)
	}
}

func TestPySDKHangCutOff(t *testing.T) {
	h, _, cfg := pyHost(t)
	cfg.Retry.AttemptTimeout = 300 * time.Millisecond
	cfg.Retry.MaxRetries = 1
	c, err := h.Client(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Complete(context.Background(), user("HANG"))
	var e *host.Error
	if !errors.As(err, &e) || !e.Outage || e.Attempts != 2 || !strings.Contains(err.Error(), "attempt timed out after 300ms") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a hung plugin held the call %v", d)
	}
	if _, err := c.Complete(context.Background(), user("hi")); err != nil {
		t.Fatalf("the plugin is unusable after a hung request: %v", err)
	}
}

func TestPySDKCrash(t *testing.T) {
	h, log, cfg := pyHost(t)
	c, err := h.Client(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Complete(context.Background(), user("PANIC-ONCE"))
	if err != nil || r.Attempts != 2 || c.Stats().Retries.Connection != 1 {
		t.Fatalf("the request after the restart: %+v %v, stats %+v", r, err, c.Stats())
	}
	if !strings.Contains(log.String(), "restarting plugin after a crash") {
		t.Errorf("no restart in the log:\n%s", log.String())
	}
	_, err = c.Complete(context.Background(), user("PANIC"))
	var e *host.Error
	if !errors.As(err, &e) || !e.Permanent || !strings.Contains(err.Error(), "crashed twice; the end of its stderr:\n  Fatal Python error: Aborted") {
		t.Fatalf("second crash: %v", err)
	}
}

func TestPySDKUnavailable(t *testing.T) {
	h, _, cfg := pyHost(t)
	t.Setenv("PYFAKE_UNAVAILABLE", "environment variable PYFAKE_KEY is not set")
	_, err := h.Client(context.Background(), cfg)
	if err == nil || err.Error() != "generator g: plugin pyfake cannot serve requests: environment variable PYFAKE_KEY is not set" {
		t.Fatalf("err %v", err)
	}
}

// TestPySDKWatchesParent starts a Python plugin without the host's
// parent-death signal and kills its parent: the SDK's own watch ends it.
func TestPySDKWatchesParent(t *testing.T) {
	sdk := pySDK(t)
	dir := t.TempDir()
	if err := sdk.Install(filepath.Join("..", "plugintest", "python", "agora-provider-pyfake"), dir); err != nil {
		t.Fatal(err)
	}
	cmd, pid := startHelper(t, "HOST_TEST_MIDDLE="+filepath.Join(dir, "agora-provider-pyfake"))
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitGone(t, pid, 5*time.Second)
}

// TestPySDKByHand: run without agora, a plugin says what it is and exits 1.
func TestPySDKByHand(t *testing.T) {
	sdk := pySDK(t)
	dir := t.TempDir()
	if err := sdk.Install(filepath.Join("..", "plugintest", "python", "agora-provider-pyfake"), dir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "agora-provider-pyfake"))
	cmd.Env = append(os.Environ(), "AGORA_PLUGIN=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.HasPrefix(string(out), "This is an agora provider plugin: agora starts it") {
		t.Errorf("exit %v, output %q", err, out)
	}
}

// TestPySDKDocExample runs the Python provider of docs/plugins.md, which
// is examples/agora-provider-ollama word for word, against a stand-in
// Ollama server.
func TestPySDKDocExample(t *testing.T) {
	sdk := pySDK(t)
	example := filepath.Join("..", "sdk", "python", "examples", "agora-provider-ollama")
	code, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```python\n"+string(code)+"```\n") {
		t.Errorf("docs/plugins.md does not show %s as it is", example)
	}
	if n := strings.Count(string(code), "\n"); n > 35 {
		t.Errorf("the example is %d lines, the docs promise about 30", n)
	}
	var got map[string]any
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/chat" {
			http.NotFound(w, r)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
		if status != http.StatusOK {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(status)
			fmt.Fprint(w, `{"error":"busy"}`)
			status = http.StatusOK
			return
		}
		fmt.Fprint(w, `{"model":"llama3.2:3b","message":{"role":"assistant","content":"Hello!"},"done_reason":"stop","prompt_eval_count":12,"eval_count":3}`)
	}))
	defer srv.Close()
	t.Setenv("OLLAMA_HOST", srv.URL)
	dir := t.TempDir()
	if err := sdk.Install(example, dir); err != nil {
		t.Fatal(err)
	}
	h, log := newHostIn(t, dir)
	temp := 0.7
	c, err := h.Client(context.Background(), host.Config{Generator: "local", Plugin: "ollama", Model: "llama3.2:3b",
		Sampling: spec.Sampling{MaxTokens: 64, Temperature: &temp},
		Retry:    retry.Config{BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	status = http.StatusTooManyRequests
	r, err := c.Complete(context.Background(), user("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "Hello!" || r.FinishReason != "stop" || r.Model != "llama3.2:3b" || r.PromptTokens != 12 || r.CompletionTokens != 3 ||
		r.Attempts != 2 || c.Stats().Retries.RateLimited != 1 {
		t.Errorf("response %+v, stats %+v", r, c.Stats())
	}
	msgs, _ := json.Marshal(got["messages"])
	if string(msgs) != `[{"content":"be brief","role":"system"},{"content":"hi","role":"user"}]` || got["model"] != "llama3.2:3b" ||
		fmt.Sprint(got["options"]) != "map[num_predict:64 temperature:0.7]" {
		t.Errorf("request %v", got)
	}
	srv.Close() // connection refused: retryable, then an outage
	_, err = c.Complete(context.Background(), user("hi"))
	var e *host.Error
	if !errors.As(err, &e) || e.Permanent || e.Attempts < 2 {
		t.Errorf("with the server gone: %v (%+v)", err, e)
	}
}

// newHostIn is a host searching dir, logging at debug into a buffer.
func newHostIn(t *testing.T, dir string) (*host.Host, *syncbuf.Buffer) {
	t.Helper()
	log := &syncbuf.Buffer{}
	h := host.New(host.Options{Dirs: []string{dir}, Logger: hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Debug})})
	t.Cleanup(h.Close)
	return h, log
}

// pyBatchHost is a host whose search path holds the Python SDK's batch
// test plugin pybatch, offering the protocol versions protocols.
func pyBatchHost(t *testing.T, protocols string) (*host.Host, *syncbuf.Buffer, host.Config) {
	t.Helper()
	sdk := pySDK(t)
	dir := t.TempDir()
	if err := sdk.Install(filepath.Join("..", "plugintest", "python", "agora-provider-pybatch"), dir); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PYBATCH_PROTOCOLS", protocols)
	h, log := newHostIn(t, dir)
	return h, log, host.Config{Generator: "g", Plugin: "pybatch", Model: "batch-py", Sampling: spec.Sampling{MaxTokens: 100},
		Retry: retry.Config{AttemptTimeout: 5 * time.Second, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxRetries: 3}}
}

func batchItems(texts ...string) []host.BatchItem {
	items := make([]host.BatchItem, len(texts))
	for i, s := range texts {
		items[i] = host.BatchItem{CustomID: fmt.Sprintf("r-%d", i), Messages: user(s)}
	}
	return items
}

// permanent says whether a batch call's error is a refusal for good.
func permanent(err error) bool {
	var p interface{ IsPermanent() bool }
	return errors.As(err, &p) && p.IsPermanent()
}

// TestPySDKBatches drives the five batch calls through agora's client
// into a Python plugin that keeps its batches in memory (pybatch): made,
// found by key after a lost answer, polled to the end, read back line by
// line with a retryable and a permanent error, cancelled part-way, and
// refused.
func TestPySDKBatches(t *testing.T) {
	h, log, cfg := pyBatchHost(t, "1,2")
	ctx := context.Background()
	c, err := h.Client(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	p := c.Plugin()
	d := p.Description()
	if p.Version() != 2 || !d.Batches || c.BatchSupport() != nil {
		t.Fatalf("version %d, description %+v, batch support: %v", p.Version(), d, c.BatchSupport())
	}
	if l := c.BatchLimits(); l.MaxRequests != 1000 || l.MaxBytes != 32<<20 {
		t.Errorf("limits %+v", l)
	}
	if m, _ := d.Model("batch-py"); m.InputPrice != 2 || m.OutputPrice != 8 || m.BatchDiscount != 0.5 {
		t.Errorf("model %+v", m)
	}

	// A batch of five: three answers, one retryable and one permanent error.
	since := time.Now().Add(-time.Second)
	st, err := c.SubmitBatch(ctx, "step-1_a", "24h", batchItems("one", "two LINE-RETRY", "three", "four LINE-FATAL", "five"))
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if st.ID == "" || st.Status != "in_progress" || st.Ended || st.Total != 5 || st.Completed != 0 {
		t.Fatalf("submitted %+v", st)
	}
	if !log.WaitFor("batch made:", 2*time.Second) {
		t.Errorf("no log line for the batch:\n%s", log.String())
	}
	for _, kv := range []string{"id=" + st.ID, "key=step-1_a", "requests=5", "window=24h"} {
		if !regexp.MustCompile(`batch made: .*\b` + regexp.QuoteMeta(kv) + `\b`).MatchString(log.String()) {
			t.Errorf("the log line for the batch has no %s:\n%s", kv, log.String())
		}
	}
	// Found by its key, count and time; not with another count, key or a
	// later time; UNKNOWN when the plugin cannot tell.
	found, how, why, err := c.FindBatch(ctx, "step-1_a", 5, since)
	if err != nil || how != host.Present || found.ID != st.ID || found.Total != 5 || why != "" {
		t.Errorf("find: %+v %v %q %v", found, how, why, err)
	}
	for _, f := range []struct {
		key   string
		n     int
		since time.Time
	}{{"step-1_a", 4, since}, {"step-1_b", 5, since}, {"step-1_a", 5, time.Now().Add(time.Minute)}} {
		if _, how, _, err := c.FindBatch(ctx, f.key, f.n, f.since); err != nil || how != host.Absent {
			t.Errorf("find %+v: %v %v", f, how, err)
		}
	}
	if _, how, why, err := c.FindBatch(ctx, "lagging-1", 5, since); err != nil || how != host.Unknown || why != "pybatch: the batch list is behind" {
		t.Errorf("find lagging: %v %q %v", how, why, err)
	}
	// Results are read when it has ended, not before.
	if err := c.BatchResults(ctx, st.ID, func(host.BatchResult) error { return nil }); !permanent(err) ||
		err.Error() != "generator g: plugin pybatch: batch results "+st.ID+": pybatch: batch "+st.ID+" is in_progress, not ended" {
		t.Errorf("results before the end: %v", err)
	}
	var polls []string
	for n := 0; !st.Ended; n++ {
		if n > 5 {
			t.Fatalf("batch %s not ended after %d polls: %+v", st.ID, n, st)
		}
		if st, err = c.GetBatch(ctx, st.ID); err != nil {
			t.Fatal(err)
		}
		polls = append(polls, fmt.Sprintf("%s %d+%d/%d", st.Status, st.Completed, st.Failed, st.Total))
	}
	if got := strings.Join(polls, ", "); got != "in_progress 1+1/5, in_progress 2+2/5, ended 3+2/5" {
		t.Errorf("polls %s", got)
	}
	got := map[string]host.BatchResult{}
	if err := c.BatchResults(ctx, st.ID, func(r host.BatchResult) error { got[r.CustomID] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("results %+v", got)
	}
	for id, text := range map[string]string{"r-0": "one", "r-2": "three", "r-4": "five"} {
		r := got[id]
		if r.Err != nil || r.Response.Text != "batch echo: "+text || r.Response.Model != "batch-py-batch" ||
			r.Response.ID != st.ID+"-"+id || r.Response.PromptTokens == 0 || r.Response.CompletionTokens == 0 {
			t.Errorf("result %s: %+v", id, r)
		}
	}
	if r := got["r-1"]; r.Err == nil || !r.Retryable || r.Err.Error() != "generator g: plugin pybatch: 529 overloaded_error: pybatch: overloaded" {
		t.Errorf("retryable line: %+v", r)
	}
	if r := got["r-3"]; r.Err == nil || r.Retryable || r.Err.Error() != "generator g: plugin pybatch: pybatch: invalid request" {
		t.Errorf("permanent line: %+v", r)
	}
	// fn's error ends the stream and is BatchResults' answer.
	stop, seen := errors.New("enough"), 0
	if err := c.BatchResults(ctx, st.ID, func(host.BatchResult) error { seen++; return stop }); err != stop || seen != 1 {
		t.Errorf("stopped results: %v after %d", err, seen)
	}

	// Cancelled part-way: what was done stays, the rest ends cancelled
	// (retryable: it cost nothing).
	st, err = c.SubmitBatch(ctx, "step-2", "", batchItems("a", "b", "c", "d"))
	if err != nil {
		t.Fatal(err)
	}
	if st, err = c.GetBatch(ctx, st.ID); err != nil || st.Completed != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	if st, err = c.CancelBatch(ctx, st.ID); err != nil || st.Status != "canceling" || st.Ended {
		t.Fatalf("cancel: %+v %v", st, err)
	}
	if st, err = c.GetBatch(ctx, st.ID); err != nil || st.Status != "ended" || !st.Ended || st.Completed != 2 || st.Failed != 2 {
		t.Fatalf("after the cancel: %+v %v", st, err)
	}
	var lines []string
	if err := c.BatchResults(ctx, st.ID, func(r host.BatchResult) error {
		if r.Err != nil {
			lines = append(lines, fmt.Sprintf("%s %v retryable=%v", r.CustomID, r.Err, r.Retryable))
		} else {
			lines = append(lines, r.CustomID+" "+r.Response.Text)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(lines, "\n"); s != "r-0 batch echo: a\nr-1 batch echo: b\n"+
		"r-2 generator g: plugin pybatch: pybatch: canceled retryable=true\nr-3 generator g: plugin pybatch: pybatch: canceled retryable=true" {
		t.Errorf("results of the cancelled batch:\n%s", s)
	}

	// Refused: permanent, and no batch was made.
	_, err = c.SubmitBatch(ctx, "step-3", "", batchItems("REFUSE this", "b"))
	if !permanent(err) || err.Error() != "generator g: plugin pybatch: submit batch: 413 Request Entity Too Large: pybatch: batch too large (HTTP 413)" {
		t.Errorf("refused: %v", err)
	}
	if _, how, _, err := c.FindBatch(ctx, "step-3", 2, since); err != nil || how != host.Absent {
		t.Errorf("a refused batch was made: %v %v", how, err)
	}
	// The answer lost after the batch was made: retryable, and the batch
	// is found by its key.
	_, err = c.SubmitBatch(ctx, "lost-1", "", batchItems("x"))
	if err == nil || permanent(err) || err.Error() != "generator g: plugin pybatch: submit batch: pybatch: connection reset" {
		t.Errorf("lost answer: %v", err)
	}
	if b, how, _, err := c.FindBatch(ctx, "lost-1", 1, since); err != nil || how != host.Present || b.Total != 1 {
		t.Errorf("the lost batch: %+v %v %v", b, how, err)
	}
	// What the SDK checks before the provider sees a batch (the Python
	// unit tests try the rest).
	_, err = c.SubmitBatch(ctx, "step-4", "", []host.BatchItem{{CustomID: "r", Messages: user("a")}, {CustomID: "r", Messages: user("b")}})
	if !permanent(err) || err.Error() != "generator g: plugin pybatch: submit batch: custom id 'r' is not 1 to 20 characters of [a-z0-9-] unique in the batch" {
		t.Errorf("the same custom id twice: %v", err)
	}
	if _, err := c.GetBatch(ctx, "pyb_99"); !permanent(err) || err.Error() != "generator g: plugin pybatch: get batch pyb_99: 404 Not Found: pybatch: no batch pyb_99" {
		t.Errorf("unknown batch: %v", err)
	}
	if _, err := c.CancelBatch(ctx, "pyb_99"); !permanent(err) {
		t.Errorf("cancel an unknown batch: %v", err)
	}
	// The synchronous path is unchanged.
	if r, err := c.Complete(ctx, user("sync")); err != nil || r.Text != "echo: sync" {
		t.Errorf("complete: %+v %v", r, err)
	}
}

// TestPySDKDocBatches: docs/plugins.md shows pybatch's batch methods
// (which TestPySDKBatches drives) as they are.
func TestPySDKDocBatches(t *testing.T) {
	code, err := os.ReadFile(filepath.Join("..", "plugintest", "python", "agora-provider-pybatch"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(code)
	i, j := strings.Index(s, "    def batch_limits(self):"), strings.Index(s, "        yield from results\n")
	if i < 0 || j < i || !strings.Contains(s, "\nclass MemBatches(ap.Provider):\n") {
		t.Fatal("pybatch has no MemBatches with batch_limits … batch_results")
	}
	want := "```python\nclass MemBatches(ap.Provider):  # __init__, describe, complete and batch(id) left out\n" + s[i:j] + "        yield from results\n```\n"
	if !strings.Contains(string(doc), want) {
		t.Errorf("docs/plugins.md does not show pybatch's batch methods as they are:\n%s", want)
	}
}

// TestPySDKNoBatches: a Python plugin that defines no batch methods
// speaks protocol 2 but offers no batches, and says so.
func TestPySDKNoBatches(t *testing.T) {
	h, _, cfg := pyHost(t)
	c, err := h.Client(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plugin()
	if p.Version() != 2 || p.Description().Batches {
		t.Errorf("version %d, description %+v", p.Version(), p.Description())
	}
	if err := c.BatchSupport(); err == nil || !strings.Contains(err.Error(), "plugin pyfake (") ||
		!strings.HasSuffix(err.Error(), "takes no batches (its Describe does not offer them): set batch: false") {
		t.Errorf("batch support: %v", err)
	}
	if _, err := c.SubmitBatch(context.Background(), "k", "", batchItems("a")); !permanent(err) {
		t.Errorf("submit: %v", err)
	}
	// Asked anyway, the plugin answers UNIMPLEMENTED: permanent.
	if _, _, _, err := c.FindBatch(context.Background(), "k", 1, time.Now()); !permanent(err) ||
		err.Error() != "generator g: plugin pyfake: find batch k: this provider takes no batches" {
		t.Errorf("find: %v", err)
	}
}

// TestPySDKProtocol1: a Python plugin that offers only protocol version 1
// (as every plugin looks to an older agora) completes synchronously,
// offers no batches although it defines them, and has no batch calls.
func TestPySDKProtocol1(t *testing.T) {
	h, log, cfg := pyBatchHost(t, "1")
	c, err := h.Client(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	p := c.Plugin()
	if p.Version() != 1 || p.Description().Batches || p.Description().BatchLimits != (host.BatchLimits{}) {
		t.Errorf("version %d, description %+v", p.Version(), p.Description())
	}
	if err := c.BatchSupport(); err == nil || !strings.Contains(err.Error(), "speaks provider protocol version 1, which has no batch calls") {
		t.Errorf("batch support: %v", err)
	}
	if r, err := c.Complete(context.Background(), user("sync")); err != nil || r.Text != "echo: sync" {
		t.Errorf("complete: %+v %v", r, err)
	}
	if _, err := c.SubmitBatch(context.Background(), "k", "", batchItems("a")); !permanent(err) {
		t.Errorf("submit: %v", err)
	}
	// Version 1 has no batch calls: gRPC itself answers UNIMPLEMENTED.
	if _, err := c.GetBatch(context.Background(), "pyb_1"); !permanent(err) || err.Error() != "generator g: plugin pybatch: get batch pyb_1: Method not found!" {
		t.Errorf("get: %v", err)
	}
	if !strings.Contains(log.String(), "protocol=1") {
		t.Errorf("the plugin did not log protocol 1:\n%s", log.String())
	}
}

// BenchmarkPySDKBatch measures one batch of 10,000 requests through a
// Python plugin (pybatch, which answers at once): the submission streamed
// to it, one poll, and its results streamed back.
func BenchmarkPySDKBatch(b *testing.B) {
	sdk := pySDK(b)
	dir := b.TempDir()
	if err := sdk.Install(filepath.Join("..", "plugintest", "python", "agora-provider-pybatch"), dir); err != nil {
		b.Fatal(err)
	}
	b.Setenv("PYBATCH_STEP", "1000000")
	log := &syncbuf.Buffer{}
	h := host.New(host.Options{Dirs: []string{dir}, Logger: hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Info})})
	defer h.Close()
	ctx := context.Background()
	c, err := h.Client(ctx, host.Config{Generator: "g", Plugin: "pybatch", Model: "batch-py", Sampling: spec.Sampling{MaxTokens: 100}})
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	items := make([]host.BatchItem, n)
	for i := range items {
		items[i] = host.BatchItem{CustomID: fmt.Sprintf("r-%d", i), Messages: user(fmt.Sprintf("request %d: what is %d + %d?", i, i, i))}
	}
	var submit, results time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		st, err := c.SubmitBatch(ctx, fmt.Sprintf("bench-%d", i), "", items)
		if err != nil {
			b.Fatal(err)
		}
		submit += time.Since(start)
		if st, err = c.GetBatch(ctx, st.ID); err != nil || !st.Ended {
			b.Fatalf("%+v %v", st, err)
		}
		start = time.Now()
		got := 0
		if err := c.BatchResults(ctx, st.ID, func(host.BatchResult) error { got++; return nil }); err != nil || got != n {
			b.Fatalf("%d results: %v", got, err)
		}
		results += time.Since(start)
	}
	b.ReportMetric(float64(submit.Milliseconds())/float64(b.N), "ms-submit")
	b.ReportMetric(float64(results.Milliseconds())/float64(b.N), "ms-results")
}
