// Package vllmtest builds the stand-in `vllm` executable of
// executors/vllm/testdata/vllm for the tests of packages that start vLLM
// servers: it parses vllm serve's flags, serves /health, /v1/models and
// /v1/chat/completions, and can be told through AGORA_STUB_* variables to
// start slowly, fail to start or die mid-run (see its doc comment).
package vllmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Build compiles the stand-in into a fresh directory and returns that
// directory, to put first in PATH.
func Build(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("vllmtest: cannot locate the stand-in's source")
	}
	src := filepath.Join(filepath.Dir(file), "..", "testdata", "vllm")
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "vllm"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vllmtest: build the stand-in vllm: %v\n%s", err, out)
	}
	return dir
}

// PutFirstInPath builds the stand-in and puts its directory first in PATH
// for the rest of the test (t.Setenv).
func PutFirstInPath(t *testing.T) string {
	t.Helper()
	dir := Build(t)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}
