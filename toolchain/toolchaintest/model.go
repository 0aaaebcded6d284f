package toolchaintest

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

//go:embed tiny_model.py
var tinyModelScript []byte

// Model kinds TinyModel makes.
const (
	// Causal is a Llama-architecture causal LM (a student, base or
	// reference model).
	Causal = "causal"
	// Reward is a Llama-architecture sequence classifier with one label
	// (a reward model).
	Reward = "reward"
)

var (
	modelsMu sync.Mutex
	models   = map[string]string{}
	modelDir string
)

// TinyModel returns the directory of a tiny random-weight model of kind
// (Causal or Reward) with a tokenizer built on the spot — nothing is
// downloaded. The model is made once per test binary (a few seconds) and
// shared by its tests, read-only: a test that changes it copies it first.
func TinyModel(t testing.TB, kind string) string {
	t.Helper()
	py := Python(t)
	modelsMu.Lock()
	defer modelsMu.Unlock()
	if dir, ok := models[kind]; ok {
		return dir
	}
	if modelDir == "" {
		d, err := os.MkdirTemp("", "agora-tiny-models-")
		if err != nil {
			t.Fatal(err)
		}
		modelDir = d // removed with the machine's temp files; shared by the binary's tests
	}
	script := filepath.Join(modelDir, "tiny_model.py")
	if err := os.WriteFile(script, tinyModelScript, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(modelDir, kind)
	cmd := exec.Command(py, script, dir, kind)
	cmd.Env = append(os.Environ(), OfflineEnv()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make the tiny %s model: %v\n%s", kind, err, out)
	}
	models[kind] = dir
	return dir
}
