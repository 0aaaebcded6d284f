package cli_test

import (
	"os"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/agorabench/agora/executors/vllm/vllmtest"
)

// cmdStubVLLM implements "stubvllm", which builds the stand-in vllm
// executable (executors/vllm/testdata/vllm) and puts it first in the
// script's PATH. Its AGORA_STUB_* variables make it start slowly, fail to
// start or die mid-run; by default it answers every request with a valid
// math response.
func cmdStubVLLM(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 0 {
		ts.Fatalf("usage: stubvllm")
	}
	bin := ts.MkAbs("vllm-bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		ts.Fatalf("%v", err)
	}
	if err := vllmtest.BuildTo(bin); err != nil {
		ts.Fatalf("%v", err)
	}
	ts.Setenv("PATH", bin+string(filepath.ListSeparator)+ts.Getenv("PATH"))
}
