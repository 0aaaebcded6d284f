package toolchain_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/toolchain"
)

// TestNeedsBuiltinReward: agora's built-in reward job needs torch,
// transformers and accelerate where it runs; a reward command's tools are
// the user's.
func TestNeedsBuiltinReward(t *testing.T) {
	needs := func(reward string) map[string][]string {
		dir := t.TempDir()
		src := `
generators: g: {provider: openai: {base_url: "http://127.0.0.1:1/v1", api_key_env: "K"}, model: "m", price: {input: 1, output: 1}}
settings: s: {domain: "math", method: "response_generation", seed_data: path: "seed.jsonl", instances: 4, benchmarks: ["gsm8k"]}
metrics: reward: ` + reward + "\n"
		os.WriteFile(filepath.Join(dir, "agora.cue"), []byte(src), 0o644)
		os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(`{"instruction": "a", "response": "b"}`+"\n"), 0o644)
		exp, err := spec.Load(filepath.Join(dir, "agora.cue"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, g := range toolchain.Needs(exp, p) {
			for _, n := range g.Needs {
				for _, f := range n.For {
					out[f] = append(out[f], n.Dist)
				}
			}
		}
		return out
	}
	t.Setenv("K", "x")
	got := needs(`{model: "org/rm", executor: "local"}`)["score with the built-in reward job"]
	if strings.Join(got, ",") != "accelerate,torch,transformers" {
		t.Errorf("built-in reward job needs %v", got)
	}
	if got := needs(`{model: "org/rm", command: "score {{.Data}} {{.Output}}"}`); got["score with the built-in reward job"] != nil {
		t.Errorf("a reward command needs %v", got)
	}
}
