// Package vllmtest builds the stand-in `vllm` executable of
// executors/vllm/testdata/vllm for the tests of packages that start vLLM
// servers: it parses vllm serve's flags, serves /health, /v1/models and
// /v1/chat/completions, and can be told through AGORA_STUB_* variables to
// start slowly, fail to start or die mid-run (see its doc comment).
package vllmtest

import (
	"errors"
	"fmt"
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
	dir := t.TempDir()
	if err := BuildTo(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// BuildTo compiles the stand-in into dir/vllm.
func BuildTo(dir string) error {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("vllmtest: cannot locate the stand-in's source")
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "vllm"), ".")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "testdata", "vllm")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vllmtest: build the stand-in vllm: %v\n%s", err, out)
	}
	return nil
}

// PutFirstInPath builds the stand-in and puts its directory first in PATH
// for the rest of the test (t.Setenv).
func PutFirstInPath(t *testing.T) string {
	t.Helper()
	dir := Build(t)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}
