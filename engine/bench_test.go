package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/prompts"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// BenchmarkApply runs one generate apply of b.N instances — spec, plan,
// state, engine, providers and the OpenAI-compatible client over real
// HTTP — against the stand-in server with a fixed latency per request,
// at the generator's limits.concurrency. One op is one instance, so ns/op
// is the inverse of throughput; it reports req/s and the ratio to the
// bound concurrency / latency (the target of bench/apply.sh is >= 95%).
// The timed part includes the apply's fixed costs (the endpoint check,
// the first connections, the dataset file), so size it at thousands of
// instances. The server runs in the same process, so CPU profiles include
// it (its frames are under net/http.(*conn).serve and package apitest);
// bench/apply.sh measures agora alone in its own process. Sized with
// -benchtime Nx, e.g.
//
//	go test -run '^$' -bench 'BenchmarkApply/c64' -benchtime 6400x -cpuprofile cpu.prof ./engine/
func BenchmarkApply(b *testing.B) {
	for _, c := range []struct {
		conc    int
		latency time.Duration
	}{
		{64, 100 * time.Millisecond},
		{512, 100 * time.Millisecond},
	} {
		b.Run(fmt.Sprintf("c%d-%s", c.conc, c.latency), func(b *testing.B) {
			benchApply(b, c.conc, c.latency)
		})
	}
}

const benchApplyKeyEnv = "AGORA_ENGINE_BENCH_KEY"

func benchApply(b *testing.B, conc int, latency time.Duration) {
	// The model: valid math instance-generation completions, whatever the
	// prompt.
	tpl, err := prompts.Builtin(generation.DomainMath, generation.MethodInstance, generation.VariantFreeForm)
	if err != nil {
		b.Fatal(err)
	}
	task := &generation.Task{Domain: generation.DomainMath, Method: generation.MethodInstance,
		Variant: generation.VariantFreeForm, Template: tpl, Instances: 1 << 20,
		Seeds: []generation.SeedItem{{ID: "0", Instruction: "What is 1 + 2?", Response: "3"}}}
	texts := make([]string, 256)
	for i := range texts {
		texts[i] = generation.ExampleCompletion(task, generation.Request{Slot: i, Attempt: 1}, i)
	}
	var n atomic.Uint64
	srv := apitest.New(apitest.Options{Latency: latency,
		Responder: func(apitest.ChatRequest) string { return texts[n.Add(1)%uint64(len(texts))] }})
	defer srv.Close()
	b.Setenv(benchApplyKeyEnv, srv.APIKey())

	dir := b.TempDir()
	var seeds strings.Builder
	for i := 0; i < 200; i++ {
		x, y := 3+i%97, 11+(i*7)%89
		fmt.Fprintf(&seeds, `{"instruction": "A shelf holds %d books and another holds %d. How many books are on both shelves?", "response": "%d + %d = %d.\n[RESULT] %d [/RESULT]"}`+"\n", x, y, x, y, x+y, x+y)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(seeds.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	src := fmt.Sprintf(`
generators: g: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: %q
	price: {input: 0.15, output: 0.6}
	limits: concurrency: %d
	sampling: max_tokens: 1024
}
settings: s: {
	domain: "math"
	method: "instance_generation"
	seed_data: path: "seed.jsonl"
	instances: %d
	benchmarks: ["gsm8k"]
}
budgets: usd: 100000
`, srv.URL(), benchApplyKeyEnv, apitest.DefaultModel, conc, b.N)
	path := filepath.Join(dir, "agora.cue")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	exp, err := spec.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	p, err := compiler.Compile(ctx, exp, compiler.Options{})
	if err != nil {
		b.Fatal(err)
	}
	sdir := filepath.Join(dir, ".agora")
	store, err := state.Open(ctx, sdir)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	eng := engine.New(exp, p, store, 0, nil, engine.Options{
		Dir:       sdir,
		Providers: providers.New(providers.Tuning{}),
		Seeds:     providers.Seeds{Dir: dir},
	})

	b.ResetTimer()
	res, err := eng.Apply(ctx)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if err := res.Err(); err != nil {
		b.Fatal(err)
	}
	if st := srv.Stats(); st.Served != int64(b.N) {
		b.Fatalf("served %d for %d instances", st.Served, b.N)
	}
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "req/s")
	b.ReportMetric(100*rate/(float64(conc)/latency.Seconds()), "%bound")
}
