package compiler_test

// Planning benchmarks (docs/benchmarks.md, bench/plan.sh):
//
//	BenchmarkPlanAgoraCue          spec.Load + Compile of the repository's agora.cue
//	BenchmarkCompileGrid10k        a generated spec whose grid has 10,000 cells
//	BenchmarkCUEComprehension10k   the same expansion as CUE comprehensions
//	                               (testdata/bench/expand.cue) evaluated by the CUE API
//
// TestCUEComprehensionMatchesCompiler keeps the last two comparable: on a
// small grid the CUE program must produce the compiler's steps, per kind,
// and the same dollar and GPU-hour totals.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/prompts"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/tokens"
)

func BenchmarkPlanAgoraCue(b *testing.B) {
	ctx := context.Background()
	b.Run("LoadCompile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			exp, err := spec.Load("../agora.cue")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := compiler.Compile(ctx, exp, compiler.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Compile", func(b *testing.B) {
		exp, err := spec.Load("../agora.cue")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := compiler.Compile(ctx, exp, compiler.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchGrid describes a generated spec: generators (cycling through the
// openai, together-hosted, plugin and vllm kinds) × the nine built-in
// settings × instances × variants × seeds, minus excludes.
type benchGrid struct {
	generators int
	instances  []int
	variants   []string
	seeds      []int
	exclude    []string // CUE struct literals
	// twins adds a generator identical to gen-000 (same provider, model
	// and sampling), whose steps the compiler shares.
	twins bool
}

// grid10k has exactly 10,000 cells: 40 × 9 × 3 × 2 × 5 = 10,800, minus 600
// (if-qe with the json variant) and 200 (code-ig, 1,000 instances, json).
var grid10k = benchGrid{
	generators: 40,
	instances:  []int{1000, 5000, 10000},
	variants:   []string{"free-form", "json"},
	seeds:      []int{1, 2, 3, 4, 5},
	exclude: []string{
		`{setting: "if-qe", variant: "json"}`,
		`{setting: "code-ig", instances: 1000, variant: "json"}`,
	},
}

const grid10kCells = 10000

func (g benchGrid) spec() []byte {
	var b strings.Builder
	b.WriteString("name: \"bench-grid\"\n\ngenerators: {\n")
	gen := func(name string, i int) {
		fmt.Fprintf(&b, "\t%q: {\n", name)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "\t\tprovider: openai: {api_key_env: \"OPENAI_API_KEY\", batch: %v}\n", i%8 == 0)
			fmt.Fprintf(&b, "\t\tmodel: \"gpt-4o-mini-%03d\"\n", i)
			fmt.Fprintf(&b, "\t\tprice: {input: 0.15, output: 0.60, batch_discount: 0.5}\n")
		case 1:
			b.WriteString("\t\tprovider: openai: {base_url: \"https://api.together.xyz/v1\", api_key_env: \"TOGETHER_API_KEY\"}\n")
			fmt.Fprintf(&b, "\t\tmodel: \"meta-llama/Llama-3.1-%dB-Instruct\"\n", i)
			fmt.Fprintf(&b, "\t\tprice: {input: %g, output: %g}\n", 0.1+float64(i)/100, 0.2+float64(i)/100)
		case 2:
			b.WriteString("\t\tprovider: plugin: \"anthropic\"\n")
			fmt.Fprintf(&b, "\t\tmodel: \"claude-%03d\"\n", i)
			b.WriteString("\t\tprice: {input: 3, output: 15}\n")
		case 3:
			fmt.Fprintf(&b, "\t\tprovider: vllm: {tensor_parallel: %d, replicas: 2}\n", 1+(i/4)%2)
			fmt.Fprintf(&b, "\t\tmodel: \"org/open-model-%03d\"\n", i)
		}
		fmt.Fprintf(&b, "\t\tsampling: {temperature: 1.0, top_p: 0.9, max_tokens: %d}\n\t}\n", 2048+i)
	}
	for i := range g.generators {
		gen(fmt.Sprintf("gen-%03d", i), i)
	}
	if g.twins {
		gen("gen-000-twin", 0)
	}
	b.WriteString("}\n\nsettings: {\n")
	for _, s := range spec.BuiltinSettings() {
		fmt.Fprintf(&b, "\t%q: {}\n", s)
	}
	b.WriteString("}\n\ngrid: {\n")
	fmt.Fprintf(&b, "\tinstances: %s\n", cueList(g.instances))
	fmt.Fprintf(&b, "\tvariants: %s\n", cueList(g.variants))
	fmt.Fprintf(&b, "\tseeds: %s\n", cueList(g.seeds))
	fmt.Fprintf(&b, "\texclude: [%s]\n}\n\n", strings.Join(g.exclude, ", "))
	b.WriteString("student: {executor: \"slurm\", slurm: partition: \"gpu\"}\nevaluation: gpus: 2\nbudgets: {}\n")
	return []byte(b.String())
}

func cueList(v any) string {
	j, _ := json.Marshal(v)
	return string(j)
}

func loadGrid(tb testing.TB, g benchGrid) (*spec.Experiment, []byte) {
	tb.Helper()
	src := g.spec()
	exp, err := spec.LoadBytes("bench-grid.cue", src, tb.TempDir())
	if err != nil {
		tb.Fatalf("generated spec:\n%s\n%v", src, err)
	}
	return exp, src
}

var grid10kSpec = flag.String("grid10k-spec", "", "write the 10,000-cell benchmark spec to `FILE` (bench/plan.sh plans it)")

// TestGrid10k checks that the benchmark's grid has exactly 10,000 cells:
// 10,000 generate steps, each with its train, two evaluate and score
// steps, and the twelve shared base and reference evaluations.
func TestGrid10k(t *testing.T) {
	exp, src := loadGrid(t, grid10k)
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{plan.KindGenerate: grid10kCells, plan.KindTrain: grid10kCells,
		plan.KindEvaluate: 2*grid10kCells + 12, plan.KindScore: grid10kCells}
	for k, n := range want {
		if got := p.Counts.Create[k]; got != n {
			t.Errorf("%s steps: %d, want %d", k, got, n)
		}
	}
	if *grid10kSpec != "" {
		if err := os.WriteFile(*grid10kSpec, src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkCompileGrid10k(b *testing.B) {
	ctx := context.Background()
	exp, src := loadGrid(b, grid10k)
	p, err := compiler.Compile(ctx, exp, compiler.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if n := p.Counts.Create[plan.KindGenerate]; n != grid10kCells {
		b.Fatalf("the grid expands to %d generate steps, want %d", n, grid10kCells)
	}
	dir := b.TempDir()
	b.Run("LoadCompile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			exp, err := spec.LoadBytes("bench-grid.cue", src, dir)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := compiler.Compile(ctx, exp, compiler.Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(p.Steps)), "steps")
	})
	b.Run("Compile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := compiler.Compile(ctx, exp, compiler.Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(p.Steps)), "steps")
	})
}

// BenchmarkCUEComprehension10k takes about half a minute an evaluation:
// run it with -benchtime 1x.
func BenchmarkCUEComprehension10k(b *testing.B) {
	exp, _ := loadGrid(b, grid10k)
	src := cueProgram(b, exp, grid10k)
	b.ReportAllocs()
	b.ResetTimer()
	var res *cueResult
	for range b.N {
		res = evalCUE(b, src)
	}
	b.StopTimer()
	if res.cells != grid10kCells {
		b.Fatalf("CUE expands %d cells, want %d", res.cells, grid10kCells)
	}
	b.ReportMetric(float64(len(res.steps)), "steps")
}

// TestCUEComprehensionMatchesCompiler checks on a small grid (with an
// exclude and a generator identical to another) that the CUE program of
// BenchmarkCUEComprehension10k does the compiler's work: the same steps
// per kind and the same totals.
func TestCUEComprehensionMatchesCompiler(t *testing.T) {
	g := benchGrid{
		generators: 4,
		instances:  []int{500, 20000},
		variants:   []string{"free-form", "json"},
		seeds:      []int{1, 2},
		exclude:    []string{`{generator: "gen-001", setting: "math-rg", seed: 2}`, `{setting: "if-ig", variant: "json"}`},
		twins:      true,
	}
	exp, _ := loadGrid(t, g)
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := evalCUE(t, cueProgram(t, exp, g))

	// 5 generators × 9 settings × 2 × 2 × 2 = 360 cells, minus 4
	// (gen-001, math-rg, seed 2) and 5 × 2 × 2 (if-ig json): 336.
	if res.cells != 336 {
		t.Errorf("CUE: %d cells, want 336", res.cells)
	}
	cueKinds := map[string]int{}
	for _, s := range res.steps {
		cueKinds[s.Kind]++
	}
	for _, k := range plan.Kinds {
		if got, want := cueKinds[k], p.Counts.Create[k]; got != want {
			t.Errorf("%s steps: CUE %d, compiler %d", k, got, want)
		}
	}
	// The twin generator shares the steps of gen-000's 68 cells.
	if got, want := p.Counts.Create[plan.KindGenerate], 336-68; got != want {
		t.Errorf("compiler: %d generate steps, want %d", got, want)
	}
	near := func(what string, got, want float64) {
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s: CUE %v, compiler %v", what, got, want)
		}
	}
	near("total usd", res.totals.USD, p.Totals.USD)
	near("total gpu_hours", res.totals.GPUHours, p.Totals.GPUHours)
	var cueWorst, cueIn, cueOut float64
	for _, s := range res.steps {
		cueWorst += s.Estimate.WorstUSD
		cueIn += s.Estimate.InputTokens
		cueOut += s.Estimate.OutputTokens
	}
	near("total worst_usd", cueWorst, p.Totals.WorstUSD)
	near("total input_tokens", cueIn, float64(p.Totals.InputTokens))
	near("total output_tokens", cueOut, float64(p.Totals.OutputTokens))
}

// cueResult is what the benchmark reads back from the CUE evaluation.
type cueResult struct {
	cells  int
	steps  map[string]cueStep
	totals struct {
		USD      float64 `json:"usd"`
		GPUHours float64 `json:"gpu_hours"`
	}
}

type cueStep struct {
	ID       string   `json:"id"`
	Kind     string   `json:"kind"`
	Address  string   `json:"address"`
	Needs    []string `json:"needs"`
	Executor string   `json:"executor"`
	Estimate struct {
		USD          float64 `json:"usd"`
		WorstUSD     float64 `json:"worst_usd"`
		InputTokens  float64 `json:"input_tokens"`
		OutputTokens float64 `json:"output_tokens"`
		GPUHours     float64 `json:"gpu_hours"`
	} `json:"estimate"`
}

// evalCUE compiles and fully evaluates the CUE program: every field must
// be concrete, and every step is decoded.
func evalCUE(tb testing.TB, src string) *cueResult {
	ctx := cuecontext.New()
	v := ctx.CompileString(src, cue.Filename("expand.cue"))
	if err := v.Validate(cue.Concrete(true)); err != nil {
		tb.Fatalf("CUE program: %v", err)
	}
	res := &cueResult{}
	n, err := v.LookupPath(cue.ParsePath("cells")).Len().Int64()
	if err != nil {
		tb.Fatal(err)
	}
	res.cells = int(n)
	if err := v.LookupPath(cue.ParsePath("steps")).Decode(&res.steps); err != nil {
		tb.Fatal(err)
	}
	if err := v.LookupPath(cue.ParsePath("totals")).Decode(&res.totals); err != nil {
		tb.Fatal(err)
	}
	return res
}

// cueProgram is testdata/bench/expand.cue with its input: the resolved
// experiment, as compiler.Compile receives it, with each meta-prompt's
// digest and token counts looked up the way the compiler does.
func cueProgram(tb testing.TB, exp *spec.Experiment, g benchGrid) string {
	tb.Helper()
	prog, err := os.ReadFile("testdata/bench/expand.cue")
	if err != nil {
		tb.Fatal(err)
	}
	type price struct {
		Input  float64 `json:"input"`
		Output float64 `json:"output"`
		Mult   float64 `json:"mult,omitempty"`
	}
	type vllm struct {
		Throughput float64 `json:"throughput"`
		Replicas   int     `json:"replicas"`
		GPUs       int     `json:"gpus"`
	}
	type generator struct {
		Provider  string        `json:"provider"`
		Endpoint  string        `json:"endpoint"`
		Executor  string        `json:"executor"`
		Model     string        `json:"model"`
		Sampling  spec.Sampling `json:"sampling"`
		Tokenizer string        `json:"tokenizer"`
		Price     *price        `json:"price"`
		VLLM      *vllm         `json:"vllm"`
	}
	type promptInfo struct {
		Digest string         `json:"digest"`
		Tokens map[string]int `json:"tokens"`
	}
	type setting struct {
		Domain     string                 `json:"domain"`
		Method     string                 `json:"method"`
		SeedData   string                 `json:"seed_data"`
		SeedSize   int                    `json:"seed_size"`
		Benchmarks []string               `json:"benchmarks"`
		Estimate   spec.ItemEstimate      `json:"estimate"`
		Prompts    map[string]*promptInfo `json:"prompts"`
	}
	type cell struct {
		Generator string `json:"generator"`
		Setting   string `json:"setting"`
		Instances int    `json:"instances"`
		Variant   string `json:"variant"`
		Seed      *int   `json:"seed"`
	}
	type judge struct {
		Model        string `json:"model"`
		Price        price  `json:"price"`
		InputTokens  int    `json:"input_tokens"`
		OutputTokens int    `json:"output_tokens"`
	}
	type benchmark struct {
		Harness      string `json:"harness"`
		Command      string `json:"command"`
		Items        int    `json:"items"`
		OutputTokens int    `json:"output_tokens"`
		Judge        *judge `json:"judge"`
	}
	in := struct {
		Generators map[string]*generator `json:"generators"`
		Settings   map[string]*setting   `json:"settings"`
		Grid       struct {
			Generators []string `json:"generators"`
			Settings   []string `json:"settings"`
			Instances  []int    `json:"instances"`
			Variants   []string `json:"variants"`
			Seeds      []int    `json:"seeds"`
			Exclude    []cell   `json:"exclude"`
		} `json:"grid"`
		Student struct {
			Base            string               `json:"base"`
			Reference       string               `json:"reference"`
			Trainer         string               `json:"trainer"`
			Command         string               `json:"command"`
			Hyperparameters spec.Hyperparameters `json:"hyperparameters"`
			Executor        string               `json:"executor"`
			ParamsBillion   float64              `json:"params_billion"`
			GPUs            int                  `json:"gpus"`
			PeakTFLOPS      float64              `json:"peak_tflops"`
			Utilization     float64              `json:"utilization"`
		} `json:"student"`
		Evaluation struct {
			Executor   string  `json:"executor"`
			GPUs       int     `json:"gpus"`
			Throughput float64 `json:"throughput"`
		} `json:"evaluation"`
		Benchmarks map[string]*benchmark `json:"benchmarks"`
	}{Generators: map[string]*generator{}, Settings: map[string]*setting{}, Benchmarks: map[string]*benchmark{}}

	var tok tokens.Counter
	for name, gen := range exp.Generators {
		o := &generator{Provider: gen.Provider.Kind(), Model: gen.Model, Sampling: gen.Sampling,
			Executor: "plugin:" + gen.Provider.Plugin, Tokenizer: tokens.Encoding(gen.Model)}
		if o.Tokenizer == "" {
			o.Tokenizer = tokens.Heuristic
		}
		switch {
		case gen.Provider.OpenAI != nil:
			o.Executor = "api"
			o.Endpoint = strings.TrimRight(gen.Provider.OpenAI.BaseURL, "/")
		case gen.Provider.VLLM != nil:
			v := gen.Provider.VLLM
			o.Executor = "vllm"
			o.Endpoint = "vllm:" + v.Path + ":" + v.DType
			o.VLLM = &vllm{Throughput: v.ThroughputTokensPerS, Replicas: v.Replicas, GPUs: v.GPUs}
		}
		if p := gen.Price; p != nil {
			o.Price = &price{Input: p.Input, Output: p.Output, Mult: 1}
			if gen.Provider.OpenAI != nil && gen.Provider.OpenAI.Batch.On {
				o.Price.Mult = 1 - p.BatchDiscount
			}
		}
		in.Generators[name] = o
	}
	for name, s := range exp.Settings {
		o := &setting{Domain: s.Domain, Method: s.Method, SeedData: s.SeedData.Ref(), SeedSize: s.SeedData.Size,
			Benchmarks: s.Benchmarks, Estimate: s.Estimate, Prompts: map[string]*promptInfo{}}
		for _, v := range g.variants {
			tpl, err := prompts.Builtin(s.Domain, s.Method, v)
			if err != nil {
				tb.Fatal(err)
			}
			pi := &promptInfo{Digest: tpl.Digest(), Tokens: map[string]int{}}
			for _, gen := range exp.Generators {
				n, method := tok.Count(gen.Model, tpl.StaticText())
				pi.Tokens[method] = n
			}
			o.Prompts[v] = pi
		}
		in.Settings[name] = o
	}
	in.Grid.Generators = sortedNames(exp.Generators)
	in.Grid.Settings = spec.BuiltinSettings()
	in.Grid.Instances, in.Grid.Variants, in.Grid.Seeds = exp.Grid.Instances, exp.Grid.Variants, exp.Grid.Seeds
	in.Grid.Exclude = []cell{}
	for _, c := range exp.Grid.Exclude {
		in.Grid.Exclude = append(in.Grid.Exclude, cell(c))
	}
	st := exp.Student
	in.Student.Base, in.Student.Reference, in.Student.Trainer, in.Student.Command = st.Base, st.Reference, st.Trainer, st.Command
	in.Student.Hyperparameters, in.Student.Executor, in.Student.ParamsBillion = st.Hyperparameters, st.Executor, st.ParamsBillion
	in.Student.GPUs, in.Student.PeakTFLOPS, in.Student.Utilization = st.Hardware.GPUs(), spec.PeakTFLOPS(st.Hardware), st.Hardware.Utilization
	ev := exp.Evaluation
	in.Evaluation.Executor, in.Evaluation.GPUs, in.Evaluation.Throughput = ev.Executor, ev.GPUs, ev.ThroughputTokensPerS
	for name, bm := range ev.Benchmarks {
		o := &benchmark{Harness: bm.Harness, Command: bm.Command, Items: bm.Items, OutputTokens: bm.OutputTokens}
		if j := bm.Judge; j != nil {
			o.Judge = &judge{Model: j.Model, Price: price{Input: j.Price.Input, Output: j.Price.Output},
				InputTokens: j.InputTokens, OutputTokens: j.OutputTokens}
		}
		in.Benchmarks[name] = o
	}
	data, err := json.MarshalIndent(in, "", "\t")
	if err != nil {
		tb.Fatal(err)
	}
	return string(prog) + "\nin: " + string(data) + "\n"
}

func sortedNames[V any](m map[string]V) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
