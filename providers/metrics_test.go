package providers_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/plugins/anthropic/anthropictest"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// TestJudgeThroughPlugin: the judge is a plugin generator (the real
// Anthropic plugin against its stand-in), reached through the engine's
// provider path like generation: the difficulty of "What is i + …" comes
// back as i%5+1 and the recorded spend equals the stand-in's tally.
func TestJudgeThroughPlugin(t *testing.T) {
	dir := t.TempDir()
	var seeds strings.Builder
	for i := range 10 {
		fmt.Fprintf(&seeds, `{"instruction": "What is %d + %d?", "response": "%d"}`+"\n", i, i+1, 2*i+1)
	}
	os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(seeds.String()), 0o644)
	src := fmt.Sprintf(`generators: claude: {
	provider: plugin: "anthropic"
	model: %q
	price: {input: 3, output: 15}
	limits: concurrency: 4
	sampling: max_tokens: 300
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: 10
	benchmarks: ["gsm8k"]
}
metrics: judge: {generator: "claude", aspects: ["instruction_difficulty"]}
`, anthropictest.DefaultModel)
	os.WriteFile(filepath.Join(dir, "agora.cue"), []byte(src), 0o644)
	exp, err := spec.Load(filepath.Join(dir, "agora.cue"))
	if err != nil {
		t.Fatal(err)
	}
	number := regexp.MustCompile(`What is (\d+) \+`)
	srv := anthropictest.New(anthropictest.Options{RetryAfter: time.Millisecond, Responder: func(_ string, texts []string) string {
		last := texts[len(texts)-1]
		if strings.Contains(last, "Rate how DIFFICULT") {
			i, _ := strconv.Atoi(number.FindStringSubmatch(last)[1])
			return fmt.Sprintf("A sum.\n[RESULT] %d", i%5+1)
		}
		return "Adding them step by step gives the sum.\n[RESULT] 7 [/RESULT]\n[END]"
	}})
	t.Cleanup(srv.Close)
	t.Setenv("ANTHROPIC_BASE_URL", srv.URL())
	t.Setenv("ANTHROPIC_API_KEY", srv.APIKey())
	ctx := context.Background()
	store, err := state.Open(ctx, filepath.Join(dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p, err := compiler.Compile(ctx, exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := host.New(host.Options{Dirs: []string{pluginDir(t)}})
	defer h.Close()
	res, err := engine.New(exp, p, store, 0, nil, engine.Options{
		Dir:       filepath.Join(dir, ".agora"),
		Providers: providers.New(providers.Tuning{Plugins: h, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}),
		Seeds:     providers.Seeds{Dir: dir},
	}).Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var j plan.Step
	for _, s := range p.Steps {
		if s.Kind == plan.KindJudge {
			j = s
		}
	}
	if len(res.Failed) > 0 || !contains(res.Done, j.Address) {
		t.Fatalf("apply: %+v", res)
	}
	ms, err := store.Metrics(ctx)
	if err != nil || len(ms) != 1 {
		t.Fatalf("metrics %+v %v", ms, err)
	}
	// Slot s answers seed item s: difficulties 1,2,3,4,5,1,2,3,4,5.
	if m := ms[0]; m.Name != "instruction_difficulty" || m.Value != 3 || m.N != 10 {
		t.Errorf("metric %+v", m)
	}
	st := srv.Stats()
	total, _, _ := store.Spend(ctx)
	if want := (float64(st.InputTokens)*3 + float64(st.OutputTokens)*15) / 1e6; math.Abs(total-want) > 1e-9 {
		t.Errorf("recorded %.9f, the stand-in billed %.9f", total, want)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
