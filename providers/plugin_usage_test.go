package providers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/plugins/plugintest"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// A plugin's usage is judged like an HTTP provider's: negative usage is
// never credited, zero usage for a completion is an anomaly that books the
// reservation; each stops the step with the reason.
func TestPluginUsageJudged(t *testing.T) {
	bin := plugintest.Build(t, t.TempDir(), "fake")
	for mode, want := range map[string]string{
		"NEGUSAGE":  "invalid usage: -100000000 prompt",
		"ZEROUSAGE": "usage anomaly: no completion tokens reported",
	} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			var seeds strings.Builder
			for i := range 10 {
				fmt.Fprintf(&seeds, `{"instruction": "%s What is %d + %d?", "response": "%d"}`+"\n", mode, i, i+1, 2*i+1)
			}
			os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(seeds.String()), 0o644)
			os.WriteFile(filepath.Join(dir, "agora.cue"), []byte(`generators: f: {
	provider: plugin: "fake"
	model: "fake-1"
	price: {input: 1, output: 2}
	limits: concurrency: 1
	sampling: max_tokens: 300
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: 3
	benchmarks: ["gsm8k"]
}
budgets: usd: 10
`), 0o644)
			exp, err := spec.Load(filepath.Join(dir, "agora.cue"))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			store, err := state.Open(ctx, filepath.Join(dir, ".agora"))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			p, err := compiler.Compile(ctx, exp, compiler.Options{Recorded: store})
			if err != nil {
				t.Fatal(err)
			}
			h := host.New(host.Options{Dirs: []string{bin}})
			defer h.Close()
			res, err := engine.New(exp, p, store, 0, nil, engine.Options{
				Dir:       filepath.Join(dir, ".agora"),
				Providers: providers.New(providers.Tuning{Plugins: h, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}),
				Seeds:     providers.Seeds{Dir: dir},
			}).Apply(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var why string
			for _, w := range res.Failed {
				why = w
			}
			if !strings.Contains(why, want) {
				t.Fatalf("failed %v: want %q", res.Failed, want)
			}
			total, _, _ := store.Spend(ctx)
			if (mode == "NEGUSAGE") != (total == 0) || total < 0 {
				t.Fatalf("spent %v", total)
			}
		})
	}
}
