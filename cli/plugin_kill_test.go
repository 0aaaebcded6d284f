//go:build linux

package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agorabench/agora/plugins/plugintest"
)

// TestNoPluginOrphansAfterKill9 runs the real agora binary with a plugin
// generator whose plugin is mid-request (the fake plugin hangs on these
// prompts), kills agora with SIGKILL, and checks that no plugin process is
// left: the host's parent-death signal and the SDK's parent watch each
// end it.
func TestNoPluginOrphansAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agora and a plugin and runs them as subprocesses")
	}
	bin := buildAgora(t)
	dir := t.TempDir()
	plugins := plugintest.Build(t, filepath.Join(dir, ".agora", "plugins"), "fake")
	pluginPath := filepath.Join(plugins, "agora-provider-fake")
	writeFile(t, filepath.Join(dir, "agora.cue"), `generators: g: {
	provider: plugin: "fake"
	model: "fake-1"
	price: {input: 1, output: 2}
	sampling: max_tokens: 64
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: 4
	benchmarks: ["gsm8k"]
}
budgets: usd: 5
`)
	writeFile(t, filepath.Join(dir, "seed.jsonl"), `{"instruction": "HANG: What is 1 + 2?", "response": "3"}`+"\n")

	cmd := exec.Command(bin, "apply", "-auto-approve", "agora.cue")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "AGORA_PLUGIN_PATH=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if pids = processesOf(pluginPath); len(pids) > 0 && inRequest(t, dir) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the plugin never took a request\n%s", out.String())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); len(processesOf(pluginPath)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			for _, pid := range processesOf(pluginPath) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("plugin processes %v outlived agora killed with SIGKILL", pids)
		}
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// inRequest reports whether the fake plugin logged a request into
// agora's log.
func inRequest(t *testing.T, dir string) bool {
	b, _ := os.ReadFile(filepath.Join(dir, ".agora", "agora.log"))
	return bytes.Contains(b, []byte("agora-provider-fake: completing"))
}

// processesOf lists the live (not zombie) processes running the
// executable at path.
func processesOf(path string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmdline), path+"\x00") {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}
