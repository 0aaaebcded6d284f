package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/format"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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
	pb "github.com/agorabench/agora/plugins/providerpb"
	"github.com/agorabench/agora/spec"
)

var (
	buildOnce sync.Once
	binDir    string
)

// plugins builds the test plugins once per test binary.
func plugins(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "agora-plugins-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = plugintest.Build(t, dir, "fake", "future", "old")
	})
	if binDir == "" {
		t.Fatal("plugins not built")
	}
	return binDir
}

func TestMain(m *testing.M) {
	if p := os.Getenv("HOST_TEST_MIDDLE"); p != "" {
		middle(p)
		return
	}
	if p := os.Getenv("HOST_TEST_HOST"); p != "" {
		hostHelper(p)
		return
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	pySDKEnv.Remove()
	os.Exit(code)
}

func newHost(t *testing.T) (*host.Host, *syncbuf.Buffer) {
	t.Helper()
	log := &syncbuf.Buffer{}
	h := host.New(host.Options{Dirs: []string{plugins(t)},
		Logger: hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Debug})})
	t.Cleanup(h.Close)
	return h, log
}

func fakeConfig(t *testing.T) host.Config {
	dir := t.TempDir()
	t.Setenv("FAKE_PANIC_MARK", filepath.Join(dir, "panicked"))
	t.Setenv("FAKE_STATE", filepath.Join(dir, "limited"))
	return host.Config{Generator: "g", Plugin: "fake", Model: "fake-1", Sampling: spec.Sampling{MaxTokens: 100},
		Retry: retry.Config{AttemptTimeout: 2 * time.Second, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxRetries: 3}}
}

func user(s string) []host.Message {
	return []host.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: s}}
}

func TestCompleteAndDescribe(t *testing.T) {
	h, log := newHost(t)
	c, err := h.Client(context.Background(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := c.Complete(context.Background(), user("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "echo: hello" || r.FinishReason != "stop" || r.Model != "fake-1-20250101" || r.PromptTokens != 4 || r.CompletionTokens != 3 || r.Attempts != 1 {
		t.Errorf("response %+v", r)
	}
	p := c.Plugin()
	if p.Version() != pb.ProtocolVersion {
		t.Errorf("version %d", p.Version())
	}
	d := p.Description()
	if m, ok := d.Model("fake-1"); d.Name != "fake" || !ok || m.InputPrice != 1 || m.OutputPrice != 2 || m.Concurrency != 4 || !d.CountTokens || !d.Embeddings {
		t.Errorf("description %+v", d)
	}
	want, _ := host.Checksum(filepath.Join(plugins(t), "agora-provider-fake"))
	if p.SHA256 != want {
		t.Errorf("checksum %s, want %s", p.SHA256, want)
	}
	n, ok, err := p.CountTokens(context.Background(), "fake-1", user("12345678"))
	if err != nil || !ok || n != 8 {
		t.Errorf("count tokens %d %v %v", n, ok, err)
	}
	vecs, used, err := c.Embed(context.Background(), []string{"one two", "three"})
	if err != nil || fmt.Sprint(vecs) != "[[7 2] [5 1]]" || used != 4 {
		t.Errorf("embed %v %d %v", vecs, used, err)
	}
	// The plugin's log lines arrive in the host's log, with their level,
	// and so does what it prints. Its stdout and stderr are copied by
	// goroutines of their own: each line is waited for.
	if _, err := c.Complete(context.Background(), user("PRINT")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[INFO]  plugin.agora-provider-fake: completing:", "[INFO]  plugin.agora-provider-fake.stdout: printed to stdout",
		"[INFO]  plugin.agora-provider-fake.stderr: printed to stderr"} {
		if !log.WaitFor(want, 10*time.Second) {
			t.Errorf("%q missing from the host's log after 10 s:\n%s", want, log.String())
		}
	}

	// A model the plugin does not serve fails the check, naming those it does.
	cfg := fakeConfig(t)
	cfg.Model = "gpt-9"
	c2, err := h.Client(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Check(context.Background()); err == nil || err.Error() != "generator g: model gpt-9 is not served by plugin fake (it serves fake-1, fake-2)" {
		t.Errorf("check: %v", err)
	}
	if c2.Plugin() != p {
		t.Error("a second generator started a second process of the same plugin")
	}
}

// TestOwnProcessGroup: a Ctrl-C at the terminal goes to the foreground
// process group; plugins are not in agora's, so only agora decides when
// they stop.
func TestOwnProcessGroup(t *testing.T) {
	h, _ := newHost(t)
	p, err := h.Open(context.Background(), "fake", "")
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := syscall.Getpgid(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	if pgid == syscall.Getpgrp() || pgid != p.PID() {
		t.Errorf("plugin %d in process group %d, agora's is %d", p.PID(), pgid, syscall.Getpgrp())
	}
}

func TestLimitsFromDescription(t *testing.T) {
	h, log := newHost(t)
	c, err := h.Client(context.Background(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().Concurrency; got != 4 {
		t.Errorf("concurrency %d, want the plugin's 4", got)
	}
	cfg := fakeConfig(t)
	cfg.Limits.Concurrency = 2
	c, _ = h.Client(context.Background(), cfg)
	if got := c.Stats().Concurrency; got != 2 {
		t.Errorf("concurrency %d, want the spec's 2", got)
	}
	if strings.Contains(log.String(), "price differs") {
		t.Error("a price warning without a spec price")
	}
	cfg.Price = &spec.Price{Input: 1, Output: 3}
	h.Client(context.Background(), cfg)
	if !strings.Contains(log.String(), "[WARN]  the spec's price differs from the plugin's: budgets use the spec's: generator=g plugin=fake model=fake-1 spec_input=1 spec_output=3 plugin_input=1 plugin_output=2") {
		t.Errorf("no price warning:\n%s", log.String())
	}
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	h, _ := newHost(t)
	c, err := h.Client(context.Background(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := c.Complete(context.Background(), user("RATELIMIT"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("retried after %v, before the plugin's retry-after of 50ms", d)
	}
	if r.Attempts != 2 || c.Stats().Retries.RateLimited != 1 {
		t.Errorf("attempts %d, stats %+v", r.Attempts, c.Stats())
	}
}

func TestEmbedErrors(t *testing.T) {
	h, _ := newHost(t)
	c, _ := h.Client(context.Background(), fakeConfig(t))
	if _, _, err := c.Embed(context.Background(), []string{"RATELIMIT"}); err != nil || c.Stats().Retries.RateLimited != 1 {
		t.Errorf("rate limited once: %v, stats %+v", err, c.Stats())
	}
	_, _, err := c.Embed(context.Background(), []string{"PERMANENT"})
	var e *host.Error
	if !errors.As(err, &e) || !e.Permanent || e.Attempts != 1 || err.Error() != "generator g: plugin fake: fake: cannot embed this" {
		t.Errorf("permanent: %v", err)
	}
}

func TestPermanentNotRetried(t *testing.T) {
	h, _ := newHost(t)
	c, _ := h.Client(context.Background(), fakeConfig(t))
	_, err := c.Complete(context.Background(), user("PERMANENT"))
	var e *host.Error
	if !errors.As(err, &e) || !e.Permanent || e.Attempts != 1 || err.Error() != "generator g: plugin fake: fake: this request can never succeed" {
		t.Fatalf("err %v (%+v)", err, e)
	}
}

func TestHangCutOffByAttemptTimeout(t *testing.T) {
	h, _ := newHost(t)
	cfg := fakeConfig(t)
	cfg.Retry.AttemptTimeout = 100 * time.Millisecond
	cfg.Retry.MaxRetries = 1
	c, _ := h.Client(context.Background(), cfg)
	start := time.Now()
	_, err := c.Complete(context.Background(), user("HANG"))
	var e *host.Error
	if !errors.As(err, &e) || !e.Outage || e.Attempts != 2 || !strings.Contains(err.Error(), "attempt timed out after 100ms") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a hung plugin held the call %v", d)
	}
	// The plugin is still usable.
	if _, err := c.Complete(context.Background(), user("hi")); err != nil {
		t.Fatal(err)
	}
}

func TestPanicMidRequestRestartsOnce(t *testing.T) {
	h, log := newHost(t)
	c, err := h.Client(context.Background(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Complete(context.Background(), user("PANIC-ONCE"))
	if err != nil {
		t.Fatalf("the request after the restart failed: %v", err)
	}
	if r.Attempts != 2 || c.Stats().Retries.Connection != 1 {
		t.Errorf("attempts %d stats %+v", r.Attempts, c.Stats())
	}
	if !strings.Contains(log.String(), "restarting plugin after a crash") {
		t.Errorf("no restart in the log:\n%s", log.String())
	}
	// A second crash is final: this request and every later one fail
	// with the end of the plugin's stderr.
	_, err = c.Complete(context.Background(), user("PANIC"))
	var e *host.Error
	if !errors.As(err, &e) || !e.Permanent {
		t.Fatalf("err %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "plugin fake ("+filepath.Join(plugins(t), "agora-provider-fake")+") crashed twice; the end of its stderr:\n  panic: fake: PANIC requested") {
		t.Errorf("message:\n%s", msg)
	}
	if _, err := c.Complete(context.Background(), user("hi")); err == nil || !strings.Contains(err.Error(), "crashed twice") {
		t.Errorf("after the second crash: %v", err)
	}
}

// TestCrashWithRequestsInFlight: requests in flight when the plugin dies
// all fail as retryable and succeed on the restarted process; the crash
// counts once.
func TestCrashWithRequestsInFlight(t *testing.T) {
	h, _ := newHost(t)
	cfg := fakeConfig(t)
	cfg.Limits.Concurrency = 8
	c, err := h.Client(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("SLOW %d", i)
			if i == 7 {
				time.Sleep(50 * time.Millisecond) // the others are in flight
				msg = "PANIC-ONCE"
			}
			_, err := c.Complete(context.Background(), user(msg))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a request failed: %v", err)
		}
	}
	if got := c.Stats().Retries.Connection; got < 2 {
		t.Errorf("%d requests retried after the crash, want the ones in flight", got)
	}
	// One crash so far: the next is the second, final one.
	if _, err := c.Complete(context.Background(), user("PANIC")); err == nil || !strings.Contains(err.Error(), "crashed twice") {
		t.Errorf("second crash: %v", err)
	}
}

func TestChecksumPin(t *testing.T) {
	h, _ := newHost(t)
	path := filepath.Join(plugins(t), "agora-provider-fake")
	sum, _ := host.Checksum(path)
	cfg := fakeConfig(t)
	cfg.SHA256 = sum
	if _, err := h.Client(context.Background(), cfg); err != nil {
		t.Fatalf("the right pin: %v", err)
	}
	cfg.SHA256 = strings.Repeat("ab", 32)
	_, err := h.Client(context.Background(), cfg)
	var ce *host.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("err %v, want a checksum error", err)
	}
	want := fmt.Sprintf("generator g: plugin fake: %s has sha256 %s but the spec pins %s: refusing to run it", path, sum, cfg.SHA256)
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message\n%s\nwant prefix\n%s", err, want)
	}
}

func TestVersionMismatch(t *testing.T) {
	h, _ := newHost(t)
	_, err := h.Open(context.Background(), "future", "")
	var ve *host.VersionError
	if !errors.As(err, &ve) || ve.Plugin != 3 || ve.Host != 2 {
		t.Fatalf("err %v, want a version error", err)
	}
	want := "plugin future (" + filepath.Join(plugins(t), "agora-provider-future") + ") speaks provider protocol version 3, this agora speaks versions 1 and 2: use a build of the plugin for protocol 2, or an agora that speaks 3"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q", err)
	}
}

func TestNotFoundListsDirs(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("AGORA_PLUGIN_PATH", "/opt/a"+string(os.PathListSeparator)+"/opt/b")
	dirs := host.SearchPath("/work/exp")
	want := []string{"/opt/a", "/opt/b", "/work/exp/.agora/plugins", filepath.Join(home, ".agora", "plugins")}
	if strings.Join(dirs, "|") != strings.Join(want, "|") {
		t.Fatalf("search path %v, want %v", dirs, want)
	}
	h := host.New(host.Options{Dirs: dirs})
	_, err := h.Open(context.Background(), "nope", "")
	if err == nil || err.Error() != "plugin nope not found: no executable agora-provider-nope in /opt/a, /opt/b, /work/exp/.agora/plugins, "+
		filepath.Join(home, ".agora", "plugins")+" (set $AGORA_PLUGIN_PATH or copy the binary to one of them)" {
		t.Errorf("err %v", err)
	}
}

func TestFindOrderAndList(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		os.WriteFile(filepath.Join(d, "agora-provider-x"), []byte("#!/bin/sh\n"), 0o755)
	}
	os.WriteFile(filepath.Join(b, "agora-provider-y"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(b, "agora-provider-z"), []byte("not executable"), 0o644)
	p, err := host.Find("x", []string{a, b})
	if err != nil || p != filepath.Join(a, "agora-provider-x") {
		t.Errorf("find %s %v", p, err)
	}
	got := host.List([]string{a, b, "/nonexistent"})
	want := []host.Found{{Name: "x", Path: filepath.Join(a, "agora-provider-x")}, {Name: "x", Path: filepath.Join(b, "agora-provider-x"), Shadowed: true},
		{Name: "y", Path: filepath.Join(b, "agora-provider-y")}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("list %v, want %v", got, want)
	}
}

// TestSearchPathOnce: a directory on the path twice (the spec in $HOME)
// is searched once, so its plugins do not shadow themselves.
func TestSearchPathOnce(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("AGORA_PLUGIN_PATH", filepath.Join(home, ".agora", "plugins")+"/")
	if got := host.SearchPath(home); len(got) != 1 || got[0] != filepath.Join(home, ".agora", "plugins")+"/" {
		t.Errorf("search path %v", got)
	}
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("plugin process %d outlived its parent by %v", pid, within)
		}
	}
}

// startHelper re-executes the test binary as a helper process that
// prints a plugin's pid and waits to be killed.
func startHelper(t *testing.T, env string) (helper *exec.Cmd, pluginPID int) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil {
		cmd.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	if !alive(pid) {
		t.Fatalf("plugin %d not running", pid)
	}
	return cmd, pid
}

// TestNoOrphanAfterHostKilled kills a host with SIGKILL while its plugin
// runs: the kernel's parent-death signal ends the plugin.
func TestNoOrphanAfterHostKilled(t *testing.T) {
	cmd, pid := startHelper(t, "HOST_TEST_HOST="+plugins(t))
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitGone(t, pid, 5*time.Second)
}

// TestSDKWatchesParent starts a plugin without the host's parent-death
// signal and kills its parent: the SDK's own watch ends it.
func TestSDKWatchesParent(t *testing.T) {
	cmd, pid := startHelper(t, "HOST_TEST_MIDDLE="+filepath.Join(plugins(t), "agora-provider-fake"))
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitGone(t, pid, 5*time.Second)
}

// hostHelper opens the fake plugin through a Host, prints its pid and
// sleeps.
func hostHelper(dir string) {
	h := host.New(host.Options{Dirs: []string{dir}})
	p, err := h.Open(context.Background(), "fake", "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(p.PID())
	time.Sleep(time.Minute)
}

// middle starts a plugin by hand, as go-plugin would but without a
// parent-death signal, prints its pid and sleeps.
func middle(path string) {
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), pb.CookieKey+"="+pb.CookieValue, "PLUGIN_PROTOCOL_VERSIONS=1", "PLUGIN_MIN_PORT=10000", "PLUGIN_MAX_PORT=25000")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Wait for the handshake line: the plugin is serving.
	buf := make([]byte, 1)
	for {
		if _, err := out.Read(buf); err != nil || buf[0] == '\n' {
			break
		}
	}
	fmt.Println(cmd.Process.Pid)
	time.Sleep(time.Minute)
}

// TestDocExample builds the Go provider of docs/plugins.md as written
// there, checks it is under 50 lines, and runs it through the host
// against a stand-in Ollama server.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "## A provider in Go")
	if i < 0 {
		t.Fatal("docs/plugins.md has no section \"A provider in Go\"")
	}
	s = s[i:]
	start := strings.Index(s, "```go\n") + len("```go\n")
	end := strings.Index(s[start:], "```")
	code := s[start : start+end]
	if n := strings.Count(code, "\n"); n >= 50 {
		t.Errorf("the example is %d lines, the docs promise under 50", n)
	}
	if f, err := format.Source([]byte(code)); err != nil || string(f) != code {
		t.Errorf("the example is not gofmt'ed: %v", err)
	}

	// The example lives nowhere in the tree: an overlay puts it in a
	// package directory of this module for go build.
	tmp := t.TempDir()
	src := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("../..")
	virtual := filepath.Join(root, "plugins", "internal", "docexample", "main.go")
	overlay := filepath.Join(tmp, "overlay.json")
	ov, _ := json.Marshal(map[string]map[string]string{"Replace": {virtual: src}})
	os.WriteFile(overlay, ov, 0o644)
	bin := filepath.Join(tmp, "bin")
	os.Mkdir(bin, 0o755)
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-overlay", overlay,
		"-o", filepath.Join(bin, "agora-provider-ollama"), "./plugins/internal/docexample")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the docs' example: %v\n%s", err, out)
	}

	// A stand-in for Ollama's /api/chat.
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/chat" {
			http.NotFound(w, r)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
		fmt.Fprint(w, `{"model":"llama3.2:3b","message":{"role":"assistant","content":"Hello!"},"done_reason":"stop","prompt_eval_count":12,"eval_count":3}`)
	}))
	defer srv.Close()
	t.Setenv("OLLAMA_HOST", srv.URL)
	h := host.New(host.Options{Dirs: []string{bin}})
	defer h.Close()
	temp := 0.7
	c, err := h.Client(context.Background(), host.Config{Generator: "local", Plugin: "ollama", Model: "llama3.2:3b",
		Sampling: spec.Sampling{MaxTokens: 64, Temperature: &temp}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := c.Complete(context.Background(), user("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "Hello!" || r.FinishReason != "stop" || r.Model != "llama3.2:3b" || r.PromptTokens != 12 || r.CompletionTokens != 3 {
		t.Errorf("response %+v", r)
	}
	msgs, _ := json.Marshal(got["messages"])
	if string(msgs) != `[{"content":"be brief","role":"system"},{"content":"hi","role":"user"}]` || got["model"] != "llama3.2:3b" ||
		fmt.Sprint(got["options"]) != "map[num_predict:64 temperature:0.7]" {
		t.Errorf("request %v", got)
	}
}

// BenchmarkComplete measures a completion through a plugin process (gRPC
// over a Unix socket with mTLS) against the fake plugin, which answers at
// once: the cost agora adds per request for a provider that is a plugin.
func BenchmarkComplete(b *testing.B) {
	dir, err := os.MkdirTemp("", "agora-plugins-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	plugintest.Build(b, dir, "fake")
	// fake-2: no advertised rate limits.
	benchComplete(b, dir, "fake", "fake-2", 1, 64)
}

// benchComplete measures completions through plugin's model, from the
// plugins in dir, at each concurrency, one sub-benchmark each.
func benchComplete(b *testing.B, dir, plugin, model string, concs ...int) {
	for _, conc := range concs {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			h := host.New(host.Options{Dirs: []string{dir}})
			defer h.Close()
			c, err := h.Client(context.Background(), host.Config{Generator: "g", Plugin: plugin, Model: model,
				Limits: spec.Limits{Concurrency: conc}, Sampling: spec.Sampling{MaxTokens: 100}})
			if err != nil {
				b.Fatal(err)
			}
			msgs := user(strings.Repeat("Write a new problem like this one. ", 20))
			b.ReportAllocs()
			b.ResetTimer()
			b.SetParallelism(max(1, conc/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Complete(context.Background(), msgs); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
