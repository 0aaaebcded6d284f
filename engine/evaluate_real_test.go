package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agorabench/agora/harness"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/toolchain/toolchaintest"
)

// TestEvaluateRealLMEval: the base model's GSM8K evaluate step runs the
// real lm-eval, on its transformers backend (evaluation.lm_eval_backend:
// "hf"), 5-shot, on a tiny random-weight Llama made in the test, with GSM8K
// read offline from a staged datasets cache; the score parsed from what
// lm-eval wrote is recorded.
func TestEvaluateRealLMEval(t *testing.T) {
	toolchaintest.Venv(t)
	pythonPath := os.Getenv("PYTHONPATH")
	toolchaintest.Offline(t)
	t.Setenv("PYTHONPATH", pythonPath)
	t.Setenv("OMP_NUM_THREADS", "1") // a tiny model; see docs/benchmarks.md
	model := toolchaintest.TinyModel(t, toolchaintest.Causal)
	stageGSM8KCache(t, 2)
	f := newFixture(t, fixtureOpts{instances: 2, concurrency: 1, benchmarks: []string{"gsm8k"},
		extra: fmt.Sprintf("student: {base: %q, reference: %q}\nevaluation: lm_eval_backend: \"hf\"", model, model)})
	var steps []plan.Step
	for _, s := range f.plan.Steps {
		if s.Kind == plan.KindEvaluate && strings.Contains(string(s.Inputs), `"base:`) {
			steps = append(steps, s)
		}
	}
	if len(steps) != 1 {
		t.Fatalf("base evaluate steps: %d", len(steps))
	}
	f.plan.Steps = steps
	res, store := f.applyWith(context.Background(), nil)
	if len(res.Failed) > 0 || len(res.Done) != 1 {
		t.Fatalf("apply: %+v", res)
	}
	scores, err := store.Scores(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 1 || scores[0].Benchmark != "gsm8k" || scores[0].Model != "base" || scores[0].Value < 0 || scores[0].Value > 100 {
		t.Errorf("scores %+v", scores)
	}
	// What ran: lm-eval's hf backend, 5-shot, agora's tasks beside it.
	files, _ := filepath.Glob(filepath.Join(f.dir, ".agora", "runs", "*", "results", "*", "results_*.json"))
	if len(files) != 1 {
		t.Fatalf("lm-eval results: %v", files)
	}
	data, _ := os.ReadFile(files[0])
	var r struct {
		Config struct {
			Model string `json:"model"`
		} `json:"config"`
		NShot map[string]int `json:"n-shot"`
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Config.Model != "hf" || r.NShot["gsm8k"] != 5 {
		t.Errorf("results: model %q, n-shot %v (%v)", r.Config.Model, r.NShot, err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(files[0]))), harness.LMEvalTaskDir, "agora_math.yaml")); err != nil {
		t.Errorf("agora's lm-eval tasks are not in the run directory: %v", err)
	}
}
