package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/metrics"
	"github.com/agorabench/agora/offline"
	"github.com/agorabench/agora/offline/offlinetest"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/state"
	"github.com/agorabench/agora/toolchain/toolchaintest"
)

// The metrics against the real tools (toolchain/): the built-in reward job
// runs a real transformers sequence classifier, diversity embeds through a
// real sentence-transformers model served over /v1/embeddings; each
// result is checked against the same quantity computed directly in Python.

// directRewards scores reward-input.jsonl in Python without agora's job:
// the chat template tokenized by apply_chat_template itself (a
// BatchEncoding in transformers 5), one item at a time, no padding.
const directRewards = `
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
out = {}
for line in open(sys.argv[2]):
    it = json.loads(line)
    enc = tok.apply_chat_template([{"role": "user", "content": it["instruction"]},
                                   {"role": "assistant", "content": it["response"]}],
                                  tokenize=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out[it["index"]] = model(**enc).logits[0, 0].item()
print(json.dumps([out[i] for i in range(len(out))]))
`

// pythonJSON runs a Python program of the tool environment with args and
// decodes its last line of output as JSON into v.
func pythonJSON(t *testing.T, program string, v any, args ...string) {
	t.Helper()
	cmd := exec.Command(toolchaintest.Python(t), append([]string{"-c", program}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
}

// only keeps the plan's steps of the given kinds: with the real tools in
// PATH the fixture's train and evaluate steps would run them too.
func (f *fixture) only(kinds ...string) *fixture {
	var keep []plan.Step
	for _, s := range f.plan.Steps {
		if contains(kinds, s.Kind) {
			keep = append(keep, s)
		}
	}
	f.plan.Steps = keep
	return f
}

// oneThread runs torch on one thread: on the shared 2-core test machine
// its spinning threads make a tiny model's run several times slower.
func oneThread(t *testing.T) { t.Setenv("OMP_NUM_THREADS", "1") }

// realRewardFixture: a spec whose reward metric names the tiny reward
// model by hub id only, with an offline block; the model is staged from
// the stand-in hub into the spec's cache, the only place it exists (the
// user's own HF_HOME is empty), so the job finds it only through the
// cache's environment (HF_HOME in it, the hub's offline switches). The
// hub must see no request while the plan runs.
func realRewardFixture(t *testing.T, executor string) (*fixture, *offlinetest.Hub) {
	toolchaintest.Offline(t)
	oneThread(t)
	t.Setenv("HF_HOME", t.TempDir())
	hub := offlinetest.NewHub("")
	t.Cleanup(hub.Close)
	hub.AddModel(tinyRM, toolchaintest.TinyModel(t, toolchaintest.Reward))
	f := newFixture(t, fixtureOpts{instances: 8, concurrency: 4, extra: fmt.Sprintf(`metrics: reward: {
	model: %q
	executor: %q
	gpus: 1
	time_limit: "00:05:00"
	sample: 6
}
offline: cache_dir: "shared-cache"`, tinyRM, executor)}).only(plan.KindGenerate, plan.KindReward)
	cache := f.exp.Offline.CacheDir
	if cache != filepath.Join(f.dir, "shared-cache") {
		t.Fatalf("cache_dir %s", cache)
	}
	needs := offline.Needs(f.exp, f.plan)
	if len(needs) != 1 || needs[0].ID != tinyRM || len(offline.Missing(cache, f.dir, needs)) != 1 {
		t.Fatalf("needs %v", needs)
	}
	if err := offline.Stage(context.Background(), cache, f.dir, needs, offline.Options{Endpoint: hub.URL()}); err != nil {
		t.Fatal(err)
	}
	return f, hub
}

// tinyRM is the tiny reward model's hub id on the stand-in hub.
const tinyRM = "agora-test/tiny-rm"

// checkRealReward compares the step's recorded scores with directRewards.
func checkRealReward(t *testing.T, f *fixture, res *engine.Result, store *state.Store) {
	t.Helper()
	r := f.step(plan.KindReward)
	if !contains(res.Done, r.Address) || len(res.Failed) > 0 {
		t.Fatalf("apply: %+v", res)
	}
	dir := filepath.Join(f.dir, ".agora", "runs", r.ID)
	if _, err := os.Stat(filepath.Join(dir, metrics.RewardJobFile)); err != nil {
		t.Errorf("the built-in job is not in the run directory: %v", err)
	}
	var want []float64
	pythonJSON(t, directRewards, &want, toolchaintest.TinyModel(t, toolchaintest.Reward), filepath.Join(dir, engine.RewardData))
	vals, err := store.ItemValues(context.Background(), r.ID, "reward")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i].Slot < vals[j].Slot })
	if len(vals) != 6 || len(want) != 6 {
		t.Fatalf("%d item values, %d direct scores; want 6", len(vals), len(want))
	}
	distinct := map[float64]bool{}
	for i, v := range vals {
		if math.Abs(v.Value-want[i]) > 1e-5 {
			t.Errorf("item %d (slot %d): agora recorded %v, transformers gives %v", i, v.Slot, v.Value, want[i])
		}
		distinct[v.Value] = true
	}
	if len(distinct) < 2 {
		t.Errorf("every item has the same score %v: the test cannot tell items apart", vals[0].Value)
	}
	sum, _ := metrics.Summarize(want)
	m := metricsOf(t, store, r.ID)[engine.FeatureReward]
	if m.N != 6 || math.Abs(m.Value-sum.Mean) > 1e-5 {
		t.Errorf("response_reward %+v, want mean %v over 6", m, sum.Mean)
	}
}

// TestRewardBuiltinReal: a spec that names a reward model and no command
// runs agora's built-in job (agora_reward.py) with real transformers on a
// tiny random-weight Llama classifier, offline, from the spec's cache;
// every score matches transformers' own computation.
func TestRewardBuiltinReal(t *testing.T) {
	f, hub := realRewardFixture(t, "local")
	n := len(hub.Requests())
	start := time.Now()
	res, store := f.apply(context.Background(), nil)
	t.Logf("apply with the built-in reward job: %v", time.Since(start).Round(time.Millisecond))
	checkRealReward(t, f, res, store)
	if got := hub.Requests()[n:]; len(got) != 0 {
		t.Errorf("the job asked the hub: %q", got)
	}
}

// TestRewardBuiltinRealSlurm: the same job through sbatch on the test
// Slurm, which passes the cache's variables to it by name (--export).
func TestRewardBuiltinRealSlurm(t *testing.T) {
	requireSlurm(t)
	f, hub := realRewardFixture(t, "slurm")
	f.exp.Metrics.Reward.GPUs = 0 // the test node has no GPUs
	if err := os.Chmod(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newSbatchCounter(t)
	n := len(hub.Requests())
	start := time.Now()
	res, store := f.applyWith(withTimeout(t, 4*time.Minute), func(o *engine.Options) {
		o.Slurm = &slurm.Client{Sbatch: c.bin, Squeue: c.squeue}
		o.PollInterval = time.Second
	})
	t.Logf("apply with the built-in reward job on Slurm: %v", time.Since(start).Round(time.Millisecond))
	checkRealReward(t, f, res, store)
	if n := c.count("agora-reward-"); n != 1 {
		t.Errorf("%d reward jobs submitted: %v", n, c.submitted())
	}
	if got := hub.Requests()[n:]; len(got) != 0 {
		t.Errorf("the job asked the hub: %q", got)
	}
}

// directDiversity embeds texts with sentence-transformers itself and
// returns, for each list, the mean pairwise cosine distance over i < j
// and the mean distance to the centroid, from the full cosine matrix.
const directDiversity = `
import json, sys
import numpy as np
from sentence_transformers import SentenceTransformer, util
model = SentenceTransformer(sys.argv[1], device="cpu")
res = []
for texts in json.load(open(sys.argv[2])):
    e = model.encode(texts, convert_to_tensor=True)
    sim = util.cos_sim(e, e).numpy().astype(np.float64)
    n = len(texts)
    pairwise = float(np.mean([1 - sim[i, j] for i in range(n) for j in range(i + 1, n)]))
    c = e.mean(dim=0, keepdim=True)
    centroid = float(np.mean(1 - util.cos_sim(e, c).numpy().astype(np.float64)))
    res.append([pairwise, centroid])
print(json.dumps(res))
`

// TestDiversityReal: the diversity step embeds through agora's embeddings
// path (engine.Embedder, executors/api Embed, POST /v1/embeddings) a
// server backed by the real all-MiniLM-L6-v2; the recorded diversity
// equals sentence-transformers' cosine measure.
func TestDiversityReal(t *testing.T) {
	toolchaintest.Offline(t)
	oneThread(t)
	const keyVar = "AGORA_TEST_EMBED_KEY"
	t.Setenv(keyVar, "embed-test-key")
	url := toolchaintest.EmbeddingServer(t, "embed-test-key")
	f := newFixture(t, fixtureOpts{instances: 10, concurrency: 4, extra: fmt.Sprintf(`metrics: diversity: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: %q
	price: {input: 0.02, output: 0}
	sample: 8
	batch: 3
}`, url, keyVar, toolchaintest.EmbeddingModelName)}).only(plan.KindGenerate, plan.KindDiversity)
	start := time.Now()
	res, store := f.apply(context.Background(), nil)
	t.Logf("apply with diversity through the real embedding model: %v", time.Since(start).Round(time.Millisecond))
	d := f.step(plan.KindDiversity)
	if !contains(res.Done, d.Address) || len(res.Failed) > 0 {
		t.Fatalf("apply: %+v", res)
	}
	var ins, outs []string
	for _, it := range sampled(t, store, f.generateStep(), 8, 0) {
		ins, outs = append(ins, it.Instruction), append(outs, it.Response)
	}
	texts := filepath.Join(t.TempDir(), "texts.json")
	b, _ := json.Marshal([][]string{ins, outs})
	if err := os.WriteFile(texts, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var want [][2]float64
	pythonJSON(t, directDiversity, &want, toolchaintest.EmbeddingModel(t), texts)
	got := metricsOf(t, store, d.ID)
	for i, field := range []string{"instruction", "response"} {
		for j, name := range []string{field + "_diversity", field + "_diversity_centroid"} {
			m, ok := got[name]
			if !ok || m.N != 8 || math.Abs(m.Value-want[i][j]) > 1e-4 {
				t.Errorf("%s = %+v, sentence-transformers gives %v", name, m, want[i][j])
			}
		}
	}
	if v := got["instruction_diversity"].Value; v < 0.01 || v > 1.5 {
		t.Errorf("instruction diversity %v: not a real embedding's", v)
	}
	st, _, _ := store.Step(context.Background(), d.ID)
	if st.InputTokens <= 16 || math.Abs(st.CostUSD-float64(st.InputTokens)*0.02/1e6) > 1e-15 {
		t.Errorf("diversity step: %d tokens, $%v", st.InputTokens, st.CostUSD)
	}
}
