package toolchain_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/executors/slurm/slurmtest"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/toolchain"
	"github.com/agorabench/agora/toolchain/toolchaintest"
)

// groups plans a spec whose student trains with TRL on the CPU with the
// given executor, and whose evaluation runs lm-eval locally (it asks for a
// GPU, which the test cluster has not got).
func groups(t *testing.T, executor string) []toolchain.Group {
	t.Helper()
	dir := t.TempDir()
	src := `
generators: g: {
	provider: openai: {base_url: "http://127.0.0.1:1/v1", api_key_env: "K"}
	model: "m"
	price: {input: 1, output: 1}
}
settings: s: {domain: "math", method: "response_generation", seed_data: path: "seed.jsonl", instances: 4, benchmarks: ["gsm8k"]}
student: {executor: "` + executor + `", hardware: gpus_per_node: 0}
`
	if err := os.WriteFile(filepath.Join(dir, "agora.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(`{"instruction": "a", "response": "b"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exp, err := spec.Load(filepath.Join(dir, "agora.cue"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return toolchain.Needs(exp, p)
}

// checkFindings: with the pinned toolchain first in PATH, every tool is
// found at its pinned version, except vLLM, which the CPU toolchain has
// not got: one problem, and it names vllm.
func checkFindings(t *testing.T, results []toolchain.Result, wantSites int) {
	t.Helper()
	if len(results) != wantSites {
		t.Fatalf("%d sites checked, want %d: %+v", len(results), wantSites, results)
	}
	var problems []string
	found := map[string]string{}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Group.Site, r.Err)
		}
		for _, p := range r.Problems {
			problems = append(problems, p.Message)
		}
		for d, v := range r.Report.Dists {
			if v != nil {
				found[d] = v.Version
			}
		}
	}
	for d, want := range map[string]string{"torch": "2.15.0", "transformers": "5.25.0", "trl": "1.16.0",
		"accelerate": "1.16.0", "datasets": "5.2.0", "lm_eval": "0.4.13", "math-verify": "0.9.0"} {
		if got := found[d]; !strings.HasPrefix(got, want) {
			t.Errorf("%s found at %q, want %s", d, got, want)
		}
	}
	if len(problems) != 1 || !strings.HasPrefix(problems[0], "vllm is not installed") {
		t.Errorf("problems %q, want vllm's alone", problems)
	}
}

// TestCheckLocalReal probes the pinned toolchain on this machine, the
// modules imported for real.
func TestCheckLocalReal(t *testing.T) {
	toolchaintest.Offline(t)
	gs := groups(t, spec.ExecutorLocal)
	results := toolchain.Check(context.Background(), gs, toolchain.Options{Dir: t.TempDir()})
	checkFindings(t, results, 1)
}

// TestCheckSlurmReal probes the same toolchain from a job on the real
// Slurm: the probe job inherits the submitting PATH (sbatch exports it),
// and reports from the compute node.
func TestCheckSlurmReal(t *testing.T) {
	slurmtest.Require(t)
	toolchaintest.Offline(t)
	gs := groups(t, spec.ExecutorSlurm)
	dir := t.TempDir()
	t.Cleanup(func() { slurmtest.Cancel(dir, []string{"agora-tools-check"}) })
	results := toolchain.Check(context.Background(), gs, toolchain.Options{Dir: dir, Timeout: 4 * time.Minute, Poll: 500 * time.Millisecond})
	// Training on Slurm, evaluation here: two sites.
	checkFindings(t, results, 2)
	if results[0].Group.Site.Executor != spec.ExecutorSlurm || results[0].Report.Host == "" {
		t.Errorf("first site %s probed on %q", results[0].Group.Site, results[0].Report.Host)
	}
}

// TestCheckMissing: an interpreter without the tools gives one problem
// per tool, each naming how to install it.
func TestCheckMissing(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	gs := groups(t, spec.ExecutorLocal)
	results := toolchain.Check(context.Background(), gs, toolchain.Options{Dir: t.TempDir()})
	if len(results) != 1 || results[0].Err != nil {
		t.Fatalf("results %+v", results)
	}
	var msgs []string
	for _, p := range results[0].Problems {
		msgs = append(msgs, p.Message)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"trl is not installed (needed to train with trl", "pip install trl==1.16.0, or the pinned toolchain/train.txt",
		"lm_eval is not installed (needed to evaluate gsm8k with lm-eval", "vllm is not installed"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
}

// TestVersions: the accepted ranges compare numerically.
func TestVersions(t *testing.T) {
	tool := toolchain.Tool{Min: "0.4.8", Below: "0.5"}
	for v, want := range map[string]bool{"0.4.8": true, "0.4.10": true, "0.4.13": true, "0.4.7": false, "0.5.0": false,
		"0.4.9rc1": true, "0.10": false, "0.4": false, "2.15.0+cu132": false} {
		if got := tool.Accepts(v); got != want {
			t.Errorf("Accepts(%q) = %v, want %v", v, got, want)
		}
	}
	if got := tool.Range(); got != ">=0.4.8,<0.5" {
		t.Errorf("Range %q", got)
	}
}
