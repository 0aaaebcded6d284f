package offline_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/offline"
	"github.com/agorabench/agora/offline/offlinetest"
	"github.com/agorabench/agora/toolchain/toolchaintest"
)

// loadOffline loads a model by hub id with transformers, in an
// environment whose only Hugging Face variables are offline.Env(dir).
const loadOffline = `
import sys
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1])
print("labels", model.config.num_labels, "template", bool(tok.chat_template))
`

// TestStagedModelLoadsOffline: a tiny reward model staged from the
// stand-in hub is loaded by its hub id by the real transformers with the
// hub's offline switches set and HF_HOME in the cache; a model that was
// not staged fails to load the same way, so nothing came from elsewhere.
func TestStagedModelLoadsOffline(t *testing.T) {
	t.Setenv("OMP_NUM_THREADS", "1") // torch's spinning threads slow a tiny run on a busy machine
	py := toolchaintest.Python(t)
	hub := offlinetest.NewHub("")
	t.Cleanup(hub.Close)
	hub.AddModel("agora-test/tiny-rm", toolchaintest.TinyModel(t, toolchaintest.Reward))
	dir := t.TempDir()
	rm := offline.Artefact{Kind: offline.Model, ID: "agora-test/tiny-rm"}
	if err := offline.Stage(context.Background(), dir, "", []offline.Artefact{rm}, offline.Options{Endpoint: hub.URL()}); err != nil {
		t.Fatal(err)
	}
	run := func(id string) (string, error) {
		cmd := exec.Command(py, "-c", loadOffline, id)
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "HF_") && k != "TRANSFORMERS_OFFLINE" {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		for k, v := range offline.Env(dir) {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "HF_ENDPOINT="+hub.URL()) // were it online, it would ask the stand-in
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	n := len(hub.Requests())
	out, err := run("agora-test/tiny-rm")
	if err != nil || !strings.Contains(out, "labels 1 template True") {
		t.Fatalf("load the staged model offline: %v\n%s", err, out)
	}
	if len(hub.Requests()) != n {
		t.Errorf("transformers asked the hub: %v", hub.Requests()[n:])
	}
	hub.AddModel("agora-test/not-staged", toolchaintest.TinyModel(t, toolchaintest.Reward))
	if out, err := run("agora-test/not-staged"); err == nil || len(hub.Requests()) != n {
		t.Errorf("a model that was not staged loaded (%d requests):\n%s", len(hub.Requests())-n, out)
	}
}

// gsm8kLike is a data set repository laid out as openai/gsm8k is: a README
// whose YAML names the configurations, one directory of files each.
var gsm8kLike = map[string]string{
	"README.md": `---
configs:
- config_name: main
  data_files:
  - split: train
    path: main/train.jsonl
  - split: test
    path: main/test.jsonl
- config_name: socratic
  data_files:
  - split: test
    path: socratic/test.jsonl
---
A stand-in of openai/gsm8k.
`,
	"main/train.jsonl":    `{"question": "What is 3 + 3?", "answer": "3 + 3 = 6\n#### 6"}` + "\n",
	"main/test.jsonl":     `{"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}` + "\n" + `{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}` + "\n",
	"socratic/test.jsonl": `{"question": "Why?", "answer": "Because.\n#### 0"}` + "\n",
}

// loadDatasetOffline prints the test split's questions of a data set
// configuration, loaded by hub id.
const loadDatasetOffline = `
import json, sys, datasets
d = datasets.load_dataset(sys.argv[1], sys.argv[2], split="test")
print(json.dumps([r["question"] for r in d]))
`

// TestStageDatasetReal: agora stage has the real datasets library prepare
// one configuration of a gsm8k-shaped data set from the stand-in hub (the
// requests it makes are huggingface_hub's own: resolve with HEAD, the
// info and tree APIs); the cache then counts it as staged, and
// load_dataset reads it offline from the cache alone, while the
// configuration that was not staged fails to load.
func TestStageDatasetReal(t *testing.T) {
	t.Setenv("OMP_NUM_THREADS", "1") // torch's spinning threads slow a tiny run on a busy machine
	py := toolchaintest.Python(t)
	hub := offlinetest.NewHub("")
	t.Cleanup(hub.Close)
	repo := t.TempDir()
	for name, body := range gsm8kLike {
		p := filepath.Join(repo, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hub.AddDataset("agora-test/tiny-gsm8k", repo)
	dir := t.TempDir()
	main := offline.Artefact{Kind: offline.Dataset, ID: "agora-test/tiny-gsm8k", Config: "main"}
	if offline.Present(dir, "", main) {
		t.Fatal("staged before staging")
	}
	start := time.Now()
	if err := offline.Stage(context.Background(), dir, "", []offline.Artefact{main}, offline.Options{Endpoint: hub.URL(), Python: py}); err != nil {
		t.Fatalf("%v\nrequests: %q", err, hub.Requests())
	}
	t.Logf("staged with datasets in %v (%d requests)", time.Since(start).Round(time.Millisecond), len(hub.Requests()))
	if !offline.Present(dir, "", main) {
		t.Fatal("not present after staging")
	}
	n := len(hub.Requests())
	run := func(config string) (string, error) {
		cmd := exec.Command(py, "-c", loadDatasetOffline, "agora-test/tiny-gsm8k", config)
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "HF_") && k != "TRANSFORMERS_OFFLINE" {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		for k, v := range offline.Env(dir) {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "HF_ENDPOINT="+hub.URL())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("main")
	if err != nil || !strings.Contains(out, `["What is 1 + 1?", "What is 2 + 2?"]`) {
		t.Fatalf("load the staged data set offline: %v\n%s", err, out)
	}
	if out, err := run("socratic"); err == nil {
		t.Errorf("a configuration that was not staged loaded:\n%s", out)
	}
	if len(hub.Requests()) != n {
		t.Errorf("load_dataset asked the hub offline: %q", hub.Requests()[n:])
	}
}

// TestLMEvalOfflineFromCache: the data set agora stages for the gsm8k
// benchmark is what lm-eval's gsm8k task reads. A gsm8k-shaped stand-in
// is staged as openai/gsm8k (main) from the stand-in hub, and the real
// lm_eval then runs its gsm8k task on a tiny model with the cache's
// offline environment, without a request to the hub.
func TestLMEvalOfflineFromCache(t *testing.T) {
	t.Setenv("OMP_NUM_THREADS", "1") // torch's spinning threads slow a tiny run on a busy machine
	bin := toolchaintest.Bin(t)
	exp, p := load(t, `
generators: g: {provider: openai: {}, model: "m", price: {input: 1, output: 1}}
settings: "math-ig": {instances: 10, benchmarks: ["gsm8k"]}
offline: cache_dir: "cache"
`)
	var data []offline.Artefact
	for _, a := range offline.Needs(exp, p) {
		if a.Kind == offline.Dataset {
			data = append(data, a)
		}
	}
	if len(data) != 1 || data[0].ID != "openai/gsm8k" || data[0].Config != "main" {
		t.Fatalf("gsm8k needs %v", data)
	}
	hub := offlinetest.NewHub("")
	t.Cleanup(hub.Close)
	repo := t.TempDir()
	for name, body := range gsm8kLike {
		path := filepath.Join(repo, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hub.AddDataset("openai/gsm8k", repo)
	dir := exp.Offline.CacheDir
	if err := offline.Stage(context.Background(), dir, "", data, offline.Options{Endpoint: hub.URL(), Python: filepath.Join(bin, "python")}); err != nil {
		t.Fatal(err)
	}
	model := toolchaintest.TinyModel(t, toolchaintest.Causal)
	out := t.TempDir()
	n := len(hub.Requests())
	start := time.Now()
	cmd := exec.Command(filepath.Join(bin, "lm_eval"), "--model", "hf", "--model_args", "pretrained="+model,
		"--tasks", "gsm8k", "--num_fewshot", "0", "--limit", "2", "--device", "cpu", "--output_path", out)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "HF_") && k != "TRANSFORMERS_OFFLINE" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range offline.Env(dir) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "HF_ENDPOINT="+hub.URL())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lm_eval offline: %v\n%s", err, b)
	}
	t.Logf("lm_eval gsm8k, 2 problems, offline: %v", time.Since(start).Round(time.Millisecond))
	if got := hub.Requests()[n:]; len(got) != 0 {
		t.Errorf("lm_eval asked the hub: %q", got)
	}
	results, _ := filepath.Glob(filepath.Join(out, "*", "results_*.json"))
	if len(results) != 1 {
		t.Fatalf("lm_eval results: %v", results)
	}
	b, _ := os.ReadFile(results[0])
	if !strings.Contains(string(b), `"exact_match,flexible-extract"`) || !strings.Contains(string(b), `"gsm8k"`) {
		t.Errorf("results without gsm8k's exact_match: %.400s", b)
	}
}
