package providers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/plugins/anthropic/anthropictest"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// pluginRun is a spec whose one generator is the real Anthropic plugin,
// pointed at the stand-in, applied by the engine.
type pluginRun struct {
	t   *testing.T
	dir string
	srv *anthropictest.Server
	exp *spec.Experiment
}

func newPluginRun(t *testing.T, instances int) *pluginRun {
	t.Helper()
	dir := t.TempDir()
	var seeds strings.Builder
	for i := range 40 {
		fmt.Fprintf(&seeds, `{"instruction": "What is %d + %d?", "response": "%d"}`+"\n", i, i+1, 2*i+1)
	}
	os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(seeds.String()), 0o644)
	src := fmt.Sprintf(`generators: claude: {
	provider: plugin: "anthropic"
	model: %q
	price: {input: 3, output: 15}
	limits: concurrency: 8
	sampling: max_tokens: 300
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: %d
	benchmarks: ["gsm8k"]
}
budgets: usd: 100
`, anthropictest.DefaultModel, instances)
	os.WriteFile(filepath.Join(dir, "agora.cue"), []byte(src), 0o644)
	exp, err := spec.Load(filepath.Join(dir, "agora.cue"))
	if err != nil {
		t.Fatal(err)
	}
	srv := anthropictest.New(anthropictest.Options{RetryAfter: time.Millisecond, Responder: func(_ string, texts []string) string {
		return "Adding them step by step gives the sum.\n[RESULT] 7 [/RESULT]\n[END]"
	}})
	t.Cleanup(srv.Close)
	return &pluginRun{t: t, dir: dir, srv: srv, exp: exp}
}

// cost is what the stand-in billed, at the spec's prices.
func (r *pluginRun) cost() float64 {
	st := r.srv.Stats()
	return (float64(st.InputTokens)*3 + float64(st.OutputTokens)*15) / 1e6
}

func (r *pluginRun) apply(progress io.Writer) (*engine.Result, float64) {
	t := r.t
	t.Helper()
	t.Setenv("ANTHROPIC_BASE_URL", r.srv.URL())
	t.Setenv("ANTHROPIC_API_KEY", r.srv.APIKey())
	ctx := context.Background()
	store, err := state.Open(ctx, filepath.Join(r.dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p, err := compiler.Compile(ctx, r.exp, compiler.Options{Recorded: store})
	if err != nil {
		t.Fatal(err)
	}
	spent, byGen, err := store.Spend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := host.New(host.Options{Dirs: []string{pluginDir(t)}})
	defer h.Close()
	res, err := engine.New(r.exp, p, store, spent, byGen, engine.Options{
		Dir:       filepath.Join(r.dir, ".agora"),
		Providers: providers.New(providers.Tuning{Plugins: h, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}),
		Seeds:     providers.Seeds{Dir: r.dir},
		Progress:  progress,
		Interval:  5 * time.Millisecond,
	}).Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total, _, err := store.Spend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res, total
}

// TestPluginApplyBudgetAndResume applies generate steps through the
// plugin with the engine: retries after 429s, 529s and 500s show in the
// progress lines, the recorded spend equals the stand-in's tally, a
// budget covering half the run stops it cleanly without being exceeded,
// and a rerun with a larger budget resumes and completes.
func TestPluginApplyBudgetAndResume(t *testing.T) {
	const n = 60
	twin := newPluginRun(t, n)
	twin.srv.Enqueue(anthropictest.FaultRateLimit, anthropictest.FaultOverloaded, anthropictest.FaultServerError)
	var progress bytes.Buffer
	res, spent := twin.apply(&progress)
	if res.Budget != nil || len(res.Failed) > 0 || res.Stopped {
		t.Fatalf("apply: %+v", res)
	}
	full := twin.cost()
	if full <= 0 || math.Abs(spent-full) > 1e-9 {
		t.Fatalf("recorded %.9f, the stand-in billed %.9f", spent, full)
	}
	if !strings.Contains(progress.String(), "retries 3 (claude)") {
		t.Errorf("no retries in the progress lines:\n%s", progress.String())
	}

	r := newPluginRun(t, n)
	limit := full / 2
	r.exp.Budgets.USD = limit
	res, spent = r.apply(nil)
	if res.Budget == nil || res.Budget.Budget != "usd" {
		t.Fatalf("want a budget stop, got %+v", res)
	}
	if spent > limit || spent < limit/3 {
		t.Errorf("spent %.6f of a budget of %.6f", spent, limit)
	}
	if c := r.cost(); math.Abs(spent-c) > 1e-9 {
		t.Errorf("recorded %.9f, the stand-in billed %.9f", spent, c)
	}
	r.exp.Budgets.USD = full * 3
	res, spent = r.apply(nil)
	if err := res.Err(); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if c := r.cost(); math.Abs(spent-c) > 1e-9 {
		t.Errorf("after the resume: recorded %.9f, the stand-in billed %.9f", spent, c)
	}
}
