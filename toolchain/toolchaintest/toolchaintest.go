// Package toolchaintest gives tests the real Python toolchain: the virtual
// environment that scripts/python-tools.sh builds from the pinned files in
// toolchain/ (TRL, transformers, accelerate, lm-eval, evalplus,
// alpaca_eval, sentence-transformers, math-verify). scripts/test.sh builds
// it and names it in $AGORA_TOOLS_VENV; a test that needs it calls Venv,
// which skips the test when the variable is unset — and fails it instead
// under CI=true, where every real-tool test must run.
package toolchaintest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EnvVar names the environment variable that holds the environment's path.
const EnvVar = "AGORA_TOOLS_VENV"

// Venv returns the directory of the toolchain's virtual environment.
func Venv(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvVar)
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: under CI=true the real-tool tests must run (bash scripts/test.sh builds the environment)", EnvVar)
		}
		t.Skipf("needs the real Python tools: set %s to the environment scripts/python-tools.sh builds (bash scripts/test.sh does)", EnvVar)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "python")); err != nil {
		t.Fatalf("%s=%s is not a virtual environment: %v", EnvVar, dir, err)
	}
	return dir
}

// Bin returns the environment's bin directory.
func Bin(t testing.TB) string {
	t.Helper()
	return filepath.Join(Venv(t), "bin")
}

// Python returns the environment's interpreter.
func Python(t testing.TB) string {
	t.Helper()
	return filepath.Join(Venv(t), "bin", "python")
}

// Offline sets, for the rest of the test, the variables that keep the
// Hugging Face libraries off the network (the hub is not reachable from
// the test machines, as from many clusters' compute nodes), runs torch on
// one thread (the models are tiny, and torch's spinning worker threads
// slow them several times over on a busy 2-core machine), and puts the
// environment's bin first in PATH. It returns the bin directory.
func Offline(t testing.TB) string {
	t.Helper()
	bin := Bin(t)
	for _, v := range append(OfflineEnv(), "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1") {
		k, val, _ := strings.Cut(v, "=")
		t.Setenv(k, val)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return bin
}

// OfflineEnv is the hubs' offline switches, as NAME=VALUE.
func OfflineEnv() []string {
	return []string{
		"HF_HUB_OFFLINE=1",
		"HF_DATASETS_OFFLINE=1",
		"TRANSFORMERS_OFFLINE=1",
		"HF_HUB_DISABLE_TELEMETRY=1",
		"TOKENIZERS_PARALLELISM=false",
	}
}
