package engine_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/state"
	"github.com/agorabench/agora/toolchain/toolchaintest"
)

// stageGSM8K writes, into a datasets cache, the form `datasets` leaves
// after downloading openai/gsm8k (config main), with n problems "What is
// K + K?" (K = 1..n) as its test split and eight such problems as its
// train split (few-shot exemplars): what a compute node without the
// hub reads offline. The cache is made by the parquet builder and renamed
// to the hub dataset's layout.
const stageGSM8K = `import glob, os, shutil, sys
import pandas as pd
from datasets.packaged_modules.parquet.parquet import Parquet
cache, n = sys.argv[1], int(sys.argv[2])
src = os.path.join(cache, "src")
os.makedirs(src)
rows = [{"question": f"What is {k} + {k}?", "answer": f"{k} + {k} = <<{k}+{k}={2*k}>>{2*k}\n#### {2*k}"} for k in range(1, n + 1)]
pd.DataFrame(rows).to_parquet(os.path.join(src, "test.parquet"))
train = [{"question": f"What is {k} + {k}?", "answer": f"{k} + {k} = <<{k}+{k}={2*k}>>{2*k}\n#### {2*k}"} for k in range(1, 9)]
pd.DataFrame(train).to_parquet(os.path.join(src, "train.parquet"))
b = Parquet(cache_dir=cache, dataset_name="openai___gsm8k", config_name="main", hash="0" * 40,
            data_files={"train": os.path.join(src, "train.parquet"), "test": os.path.join(src, "test.parquet")})
b.download_and_prepare()
(config,) = glob.glob(os.path.join(cache, "openai___gsm8k", "main-*"))
os.rename(config, os.path.join(cache, "openai___gsm8k", "main"))
for f in glob.glob(os.path.join(cache, "openai___gsm8k", "main", "*", "*", "openai___gsm8k-*.arrow")):
    os.rename(f, f.replace("openai___gsm8k-", "gsm8k-"))
shutil.rmtree(src)
`

// TestSolveRealLMEval: a solve step runs the real lm-eval (API-model
// mode, local-chat-completions) through agora's proxy to the generator,
// on GSM8K read offline from a staged datasets cache; the proxy records
// every answer, and the score is the hand count: the generator answers
// "What is K + K?" right for even K, and the step asks K = 1..4.
func TestSolveRealLMEval(t *testing.T) {
	toolchaintest.Venv(t)
	pythonPath := os.Getenv("PYTHONPATH")
	f := newSolveFixture(t, "")
	// The real tools first in PATH, without the stand-in Python modules.
	toolchaintest.Offline(t)
	t.Setenv("PYTHONPATH", pythonPath)
	// 1319 problems, GSM8K's size: the step's limit is a share of it.
	stageGSM8KCache(t, 1319)
	var steps []plan.Step
	for _, s := range f.solve.Steps {
		if strings.Contains(s.Address, "gsm8k") {
			steps = append(steps, s)
		}
	}
	f.solve.Steps = steps
	res, store := f.apply()
	if len(res.Failed) > 0 || len(res.Done) != 1 {
		t.Fatalf("apply: %+v", res)
	}
	if n := f.srv.Stats().Outcomes[apitest.OutcomeOK]; n != 4 {
		t.Errorf("the generator answered %d requests, want 4", n)
	}
	scores, err := store.Scores(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 1 || scores[0].Model != "g" || scores[0].Benchmark != "gsm8k" || scores[0].Value != 50 {
		t.Errorf("scores %+v, want g's gsm8k 50", scores)
	}
	// The real lm-eval ran: it logged its samples, and the request carried
	// the paper's decoding from agora's --gen_kwargs.
	if samples, _ := filepath.Glob(filepath.Join(f.dir, ".agora", "runs", "*", "results", "*", "samples_gsm8k_*.jsonl")); len(samples) != 1 {
		t.Errorf("lm-eval's samples: %v", samples)
	}
	if last, ok := f.srv.LastRequest(); !ok || last.Temperature == nil || *last.Temperature != 0.2 {
		t.Errorf("last request %+v, want temperature 0.2", last)
	}
	st, ok, err := store.Step(context.Background(), steps[0].ID)
	if err != nil || !ok || st.Status != state.StatusDone || st.Accepted != 4 {
		t.Errorf("step state %+v (%v, %v)", st, ok, err)
	}
}

// stageGSM8KCache stages a GSM8K of n problems (stageGSM8K) into a datasets
// cache that HF_DATASETS_CACHE names for the rest of the test.
func stageGSM8KCache(t *testing.T, n int) {
	t.Helper()
	cache := t.TempDir()
	t.Setenv("HF_DATASETS_CACHE", cache)
	stage := filepath.Join(t.TempDir(), "stage.py")
	if err := os.WriteFile(stage, []byte(stageGSM8K), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(toolchaintest.Python(t), stage, cache, strconv.Itoa(n)).CombinedOutput(); err != nil {
		t.Fatalf("stage gsm8k: %v\n%s", err, out)
	}
}
