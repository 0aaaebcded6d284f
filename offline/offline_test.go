package offline_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/offline"
	"github.com/agorabench/agora/offline/offlinetest"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

func load(t *testing.T, src string) (*spec.Experiment, *plan.Plan) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "agora.cue")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPENAI_API_KEY", "test")
	exp, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return exp, p
}

const specSrc = `
generators: {
	g: {provider: openai: {}, model: "m", price: {input: 1, output: 1}}
	v: {provider: vllm: {}, model: "org/served-7b"}
}
settings: {
	"math-ig": {instances: 10, benchmarks: ["gsm8k", "math"]}
	"code-ig": {instances: 10, benchmarks: ["humaneval"]}
	"if-ig": {instances: 10, benchmarks: ["alpacaeval2"]}
}
student: {base: "org/base-1b", reference: "org/ref-1b"}
metrics: reward: model: "org/rm"
offline: cache_dir: "cache"
`

// TestNeeds: the models of train, evaluate, reward and vllm steps, the
// benchmarks' data (seven MATH subjects), each once with every need.
func TestNeeds(t *testing.T) {
	exp, p := load(t, specSrc)
	if want := filepath.Join(exp.Source.Dir, "cache"); exp.Offline.CacheDir != want {
		t.Errorf("cache_dir %s, want %s", exp.Offline.CacheDir, want)
	}
	var got []string
	for _, a := range offline.Needs(exp, p) {
		got = append(got, a.String()+" <- "+strings.Join(a.For, ","))
	}
	want := []string{
		"model org/served-7b <- generators.v",
		"model org/rm <- metrics.reward",
		"model org/base-1b <- student.base",
		"model org/ref-1b <- student.reference",
		"dataset openai/gsm8k (main) <- benchmark gsm8k",
		"dataset EleutherAI/hendrycks_math (algebra) <- benchmark math",
		"dataset EleutherAI/hendrycks_math (counting_and_probability) <- benchmark math",
		"dataset EleutherAI/hendrycks_math (geometry) <- benchmark math",
		"dataset EleutherAI/hendrycks_math (intermediate_algebra) <- benchmark math",
		"dataset EleutherAI/hendrycks_math (number_theory) <- benchmark math",
		"dataset EleutherAI/hendrycks_math (prealgebra) <- benchmark math",
		"dataset EleutherAI/hendrycks_math (precalculus) <- benchmark math",
		"dataset tatsu-lab/alpaca_eval (alpaca_eval) <- benchmark alpacaeval2",
		"dataset tatsu-lab/alpaca_eval (alpaca_eval_gpt4_baseline) <- benchmark alpacaeval2",
		"dataset repository tatsu-lab/alpaca_eval (df_gamed.csv, instruction_difficulty.csv) <- benchmark alpacaeval2",
		"file HumanEvalPlus-v0.1.10.jsonl <- benchmark humaneval",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("needs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A built-in benchmark run by a command of your own reads data agora
	// does not know.
	exp.Evaluation.Benchmarks["gsm8k"].Harness = spec.HarnessCommand
	for _, a := range offline.Needs(exp, p) {
		if a.ID == "openai/gsm8k" {
			t.Errorf("gsm8k by command needs %v", a)
		}
	}
	// Done steps need nothing.
	for i := range p.Steps {
		p.Steps[i].Action = plan.ActionNoop
	}
	if n := offline.Needs(exp, p); len(n) != 0 {
		t.Errorf("a plan with nothing to run needs %v", n)
	}
}

// TestStageStandIn: Stage downloads a model (skipping the duplicate .bin
// and original/), a data set repository and a gzipped file from the
// stand-in hub into the cache layout; Missing finds nothing after, a
// second Stage makes no request, and refs/main is written last.
func TestStageStandIn(t *testing.T) {
	hub := offlinetest.NewHub("hf-secret")
	t.Cleanup(hub.Close)
	model := t.TempDir()
	for name, body := range map[string]string{
		"config.json": `{"model_type": "llama"}`, "model.safetensors": "weights", "pytorch_model.bin": "old weights",
		"original/consolidated.pth": "raw", "tokenizer.json": "{}",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(model, name)), 0o755)
		os.WriteFile(filepath.Join(model, name), []byte(body), 0o644)
	}
	hub.AddModel("org/rm", model)
	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "df_gamed.csv"), []byte("index\n"), 0o644)
	os.WriteFile(filepath.Join(data, "instruction_difficulty.csv"), []byte("index\n"), 0o644)
	os.WriteFile(filepath.Join(data, "big.json"), []byte("[]"), 0o644)
	hub.AddDataset("tatsu-lab/alpaca_eval", data)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"task_id": "HumanEval/0"}` + "\n"))
	zw.Close()
	hub.AddFile("/release/HumanEvalPlus.jsonl.gz", gz.Bytes())

	dir := t.TempDir()
	as := []offline.Artefact{
		{Kind: offline.Model, ID: "org/rm", For: []string{"metrics.reward"}},
		{Kind: offline.Repo, ID: "tatsu-lab/alpaca_eval", Files: []string{"df_gamed.csv", "instruction_difficulty.csv"}, For: []string{"benchmark alpacaeval2"}},
		{Kind: offline.File, ID: "HumanEvalPlus-v0.1.10.jsonl", URL: hub.URL() + "/release/HumanEvalPlus.jsonl.gz", For: []string{"benchmark humaneval"}},
	}
	if m := offline.Missing(dir, "", as); len(m) != 3 {
		t.Fatalf("missing before staging: %v", m)
	}
	err := offline.Stage(context.Background(), dir, "", as, offline.Options{Endpoint: hub.URL(), Token: "wrong"})
	if err == nil || !strings.Contains(err.Error(), "gated or private") || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Errorf("a wrong token: %v", err)
	}
	var log bytes.Buffer
	if err := offline.Stage(context.Background(), dir, "", as, offline.Options{Endpoint: hub.URL(), Token: "hf-secret", Log: &log}); err != nil {
		t.Fatal(err)
	}
	if m := offline.Missing(dir, "", as); len(m) != 0 {
		t.Fatalf("missing after staging: %v\n%s", m, log.String())
	}
	snap := filepath.Join(dir, "hub", "models--org--rm", "snapshots", offlinetest.Commit("models/org/rm"))
	for name, want := range map[string]bool{"config.json": true, "model.safetensors": true, "tokenizer.json": true, "pytorch_model.bin": false, "original/consolidated.pth": false} {
		if _, err := os.Stat(filepath.Join(snap, name)); (err == nil) != want {
			t.Errorf("%s staged: %v, want %v", name, err == nil, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "files", "HumanEvalPlus-v0.1.10.jsonl")); string(b) != `{"task_id": "HumanEval/0"}`+"\n" {
		t.Errorf("the file was not gunzipped: %q", b)
	}
	ae := filepath.Join(dir, "hub", "datasets--tatsu-lab--alpaca_eval", "snapshots", offlinetest.Commit("datasets/tatsu-lab/alpaca_eval"))
	if _, err := os.Stat(filepath.Join(ae, "df_gamed.csv")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(ae, "big.json")); err == nil {
		t.Error("a file the tool does not read was staged")
	}
	n := len(hub.Requests())
	if err := offline.Stage(context.Background(), dir, "", as, offline.Options{Endpoint: hub.URL(), Token: "hf-secret"}); err != nil || len(hub.Requests()) != n {
		t.Errorf("second stage: %v, %d more requests", err, len(hub.Requests())-n)
	}

	// An interrupted download (files, no refs/main) is not staged.
	os.Remove(filepath.Join(dir, "hub", "models--org--rm", "refs", "main"))
	if offline.Present(dir, "", as[0]) {
		t.Error("a model without refs/main counts as staged")
	}
	err = offline.Stage(context.Background(), dir, "", []offline.Artefact{{Kind: offline.Model, ID: "org/absent"}}, offline.Options{Endpoint: hub.URL(), Token: "hf-secret"})
	if err == nil || !strings.Contains(err.Error(), "stage model org/absent: ") || !strings.Contains(err.Error(), "404") {
		t.Errorf("an unknown model: %v", err)
	}
}

// TestDatasetLayout: a data set counts as staged when the datasets
// library's prepared copy is there: OWNER___snake_name/CONFIG/VERSION/HASH.
func TestDatasetLayout(t *testing.T) {
	dir := t.TempDir()
	a := offline.Artefact{Kind: offline.Dataset, ID: "HuggingFaceH4/MATH-500", Config: "default"}
	if offline.Present(dir, "", a) {
		t.Fatal("present in an empty cache")
	}
	os.MkdirAll(filepath.Join(dir, "datasets", "HuggingFaceH4___math-500", "default", "0.0.0"), 0o755)
	if offline.Present(dir, "", a) {
		t.Fatal("present without the hash directory")
	}
	os.MkdirAll(filepath.Join(dir, "datasets", "HuggingFaceH4___math-500", "default", "0.0.0", "abc123"), 0o755)
	if !offline.Present(dir, "", a) {
		t.Fatal("not present")
	}
	if b := (offline.Artefact{Kind: offline.Dataset, ID: "HuggingFaceH4/MATH-500", Config: "other"}); offline.Present(dir, "", b) {
		t.Error("another configuration counts as staged")
	}
}

// TestMissingError: the refusal names every missing artefact, what needs
// it, the cache and the command that stages them.
func TestMissingError(t *testing.T) {
	err := &offline.MissingError{Dir: "/shared/cache", Spec: "exp.cue", Missing: []offline.Artefact{
		{Kind: offline.Model, ID: "org/rm", For: []string{"metrics.reward"}},
		{Kind: offline.Dataset, ID: "openai/gsm8k", Config: "main", For: []string{"benchmark gsm8k"}},
		{Kind: offline.Model, ID: "/models/base", For: []string{"student.base", "perplexity"}},
	}}
	want := `offline: 3 artefacts the plan's jobs read are not in the cache /shared/cache (offline.cache_dir), and the compute nodes cannot download them:
  model org/rm (metrics.reward)
  dataset openai/gsm8k (main) (benchmark gsm8k)
  directory /models/base (student.base, perplexity): no config.json there
stage them with "agora stage exp.cue" on a machine that reaches the hub (a login node), then apply again; a model given as a directory is not staged: put it on storage the nodes share`
	if err.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", err, want)
	}
}

func TestEnv(t *testing.T) {
	env := offline.Env("/c")
	for k, v := range map[string]string{"HF_HOME": "/c", "HF_HUB_CACHE": "/c/hub", "HF_DATASETS_CACHE": "/c/datasets",
		"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
		"HUMANEVAL_OVERRIDE_PATH": "/c/files/HumanEvalPlus-v0.1.10.jsonl", "MBPP_OVERRIDE_PATH": "/c/files/MbppPlus-v0.2.0.jsonl"} {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
}

// TestNeedsJudges: a judge agora serves with vLLM is staged for its own
// steps: judge_2's model for the judge_2 steps, named by its field, and
// not once those steps are done.
func TestNeedsJudges(t *testing.T) {
	src := `
generators: g: {provider: openai: {}, model: "m", price: {input: 1, output: 1}}
settings: "math-rg": {instances: 10}
student: {base: "org/base-1b", reference: "org/ref-1b"}
evaluation: benchmarks: gsm8k: harness: "command"
evaluation: benchmarks: gsm8k: command: "true"
evaluation: benchmarks: math: harness: "command"
evaluation: benchmarks: math: command: "true"
offline: cache_dir: "cache"
metrics: {
	judge: {provider: vllm: {}, model: "org/judge-a"}
	judge_2: {provider: vllm: {}, model: "prometheus-eval/prometheus-7b-v2.0", template: "prometheus"}
}
`
	exp, p := load(t, src)
	models := func() []string {
		var got []string
		for _, a := range offline.Needs(exp, p) {
			if strings.Contains(a.ID, "judge") || strings.Contains(a.ID, "prometheus") {
				got = append(got, a.ID+" <- "+strings.Join(a.For, ","))
			}
		}
		return got
	}
	want := []string{"org/judge-a <- metrics.judge", "prometheus-eval/prometheus-7b-v2.0 <- metrics.judge_2"}
	if got := models(); !reflect.DeepEqual(got, want) {
		t.Errorf("judges' models %q, want %q", got, want)
	}
	for i, s := range p.Steps {
		if strings.HasPrefix(s.Address, "judge_2.") {
			p.Steps[i].Action = plan.ActionNoop
		}
	}
	if got := models(); !reflect.DeepEqual(got, want[:1]) {
		t.Errorf("with judge_2 done: %q, want %q", got, want[:1])
	}
}
