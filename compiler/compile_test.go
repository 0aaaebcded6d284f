package compiler

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/prompts"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/tokens"
)

// ---- helpers ----

// load loads src as agora.cue, resolving relative paths against dir (a
// fresh temporary directory when dir is "").
func load(t *testing.T, src, dir string) *spec.Experiment {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	exp, err := spec.LoadBytes("agora.cue", []byte(src), dir)
	if err != nil {
		t.Fatalf("load spec:\n%v", err)
	}
	return exp
}

func compile(t *testing.T, exp *spec.Experiment, opts Options) *plan.Plan {
	t.Helper()
	p, err := Compile(context.Background(), exp, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// compileSrc loads and compiles src.
func compileSrc(t *testing.T, src, dir string) *plan.Plan {
	t.Helper()
	return compile(t, load(t, src, dir), Options{})
}

// loadAgora loads the repository's agora.cue under a stable name, so that
// the plan does not depend on the working directory.
func loadAgora(t *testing.T) *spec.Experiment {
	t.Helper()
	src, err := os.ReadFile("../agora.cue")
	if err != nil {
		t.Fatal(err)
	}
	return load(t, string(src), "..")
}

func stepsOf(p *plan.Plan, kind string) []plan.Step {
	var out []plan.Step
	for _, s := range p.Steps {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

func addresses(steps []plan.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Address
	}
	return out
}

func step(t *testing.T, p *plan.Plan, address string) plan.Step {
	t.Helper()
	for _, s := range p.Steps {
		if s.Address == address {
			return s
		}
	}
	t.Fatalf("no step %s; have:\n%s", address, strings.Join(addresses(p.Steps), "\n"))
	return plan.Step{}
}

// replace is strings.Replace that fails the test when old is absent, so a
// variant of a spec never silently equals the original.
func replace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q not in spec", old)
	}
	return strings.Replace(s, old, new, 1)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// near reports whether got equals want to within floating-point rounding.
func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func checkNear(t *testing.T, what string, got, want float64) {
	t.Helper()
	if !near(got, want) {
		t.Errorf("%s = %.12g, want %.12g", what, got, want)
	}
}

// gen is a hosted generator on an OpenAI-compatible endpoint whose model
// has no offline tokenizer (prompt tokens are ceil(bytes/4)). Its price
// and temperature are defaults that a test may override.
const gen = `{
		provider: openai: {base_url: "https://api.example.com/v1", api_key_env: "EXAMPLE_KEY"}
		model: "meta-llama/Llama-3.1-70B-Instruct"
		price: {input: *1 | number, output: *2 | number}
		sampling: {temperature: *1.0 | number, top_p: 0.9}
	}`

// ---- expansion ----

func TestExpandProduct(t *testing.T) {
	src := `
generators: {b: ` + gen + `, a: ` + gen + `}
generators: b: sampling: temperature: 0.5
settings: {"math-rg": {instances: 10}, "code-qe": {instances: 10}}
grid: {
	instances: [100, 200]
	variants: ["free-form", "json"]
	seeds: [1, 2, 3]
}
`
	p := compileSrc(t, src, "")
	// 2 generators × 2 settings × 2 instance counts × 2 variants × 3 seeds.
	const cells = 2 * 2 * 2 * 2 * 3
	for kind, want := range map[string]int{"generate": cells, "train": cells, "score": cells,
		// one benchmark pair per setting: 2 student evaluations a cell, and
		// the base and reference model once on each of the 4 benchmarks.
		"evaluate": 2*cells + 4 + 4} {
		if got := len(stepsOf(p, kind)); got != want {
			t.Errorf("%d %s steps, want %d", got, kind, want)
		}
		if got := p.Counts.Create[kind]; got != want {
			t.Errorf("counts.create[%s] = %d, want %d", kind, got, want)
		}
	}
	// Default order: generators sorted, built-in settings in the paper's
	// order (math before code), then instances, variants, seeds.
	gens := addresses(stepsOf(p, "generate"))
	want := []string{
		"generate.a.math-rg.n100.free-form.s1",
		"generate.a.math-rg.n100.free-form.s2",
		"generate.a.math-rg.n100.free-form.s3",
		"generate.a.math-rg.n100.json.s1",
		"generate.a.math-rg.n100.json.s2",
		"generate.a.math-rg.n100.json.s3",
		"generate.a.math-rg.n200.free-form.s1",
	}
	if !reflect.DeepEqual(gens[:len(want)], want) {
		t.Errorf("first generate steps:\n%s\nwant:\n%s", strings.Join(gens[:len(want)], "\n"), strings.Join(want, "\n"))
	}
	if gens[12] != "generate.a.code-qe.n100.free-form.s1" || gens[24] != "generate.b.math-rg.n100.free-form.s1" || gens[cells-1] != "generate.b.code-qe.n200.json.s3" {
		t.Errorf("order: gens[12] = %s, gens[24] = %s, last = %s", gens[12], gens[24], gens[cells-1])
	}
	// Stages in order: every generate step before every train step, …
	kinds := []string{}
	for _, s := range p.Steps {
		if len(kinds) == 0 || kinds[len(kinds)-1] != s.Kind {
			kinds = append(kinds, s.Kind)
		}
	}
	// (the kinds this spec has, in plan.Kinds's order; it asks for no
	// solve steps)
	want = []string{plan.KindGenerate, plan.KindTrain, plan.KindEvaluate, plan.KindScore}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("stages %v, want %v", kinds, want)
	}
	g := step(t, p, "generate.b.code-qe.n200.json.s3")
	if g.Generator != "b" || g.Setting != "code-qe" || g.Instances != 200 || g.Variant != "json" || g.Seed == nil || *g.Seed != 3 ||
		g.Executor != "api" || g.Action != "create" || len(g.Needs) != 0 {
		t.Errorf("step = %+v", g)
	}
}

func TestExpandOrder(t *testing.T) {
	src := `
generators: {zed: ` + gen + `, alpha: ` + gen + `, mid: ` + gen + `}
generators: alpha: sampling: temperature: 0.1
generators: mid: sampling: temperature: 0.2
settings: {
	"if-ig": {instances: 5}
	zz: {domain: "math", method: "response_generation", seed_data: {hf: "me/zz", size: 5}, instances: 5}
	"math-qe": {instances: 5}
	aa: {domain: "code", method: "quality_enhancement", seed_data: {hf: "me/aa", size: 5}, instances: 5}
	"code-rg": {instances: 5}
}
`
	var got []string
	for _, s := range stepsOf(compileSrc(t, src, ""), "generate") {
		got = append(got, s.Generator+"/"+s.Setting)
	}
	var want []string
	for _, g := range []string{"alpha", "mid", "zed"} {
		for _, s := range []string{"math-qe", "code-rg", "if-ig", "aa", "zz"} {
			want = append(want, g+"/"+s)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default order:\n%v\nwant\n%v", got, want)
	}

	// The grid's own lists keep their order.
	src += `grid: {generators: ["zed", "alpha"], settings: ["zz", "if-ig"]}` + "\n"
	got = nil
	for _, s := range stepsOf(compileSrc(t, src, ""), "generate") {
		got = append(got, s.Generator+"/"+s.Setting)
	}
	want = []string{"zed/zz", "zed/if-ig", "alpha/zz", "alpha/if-ig"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("grid order: %v, want %v", got, want)
	}
}

func TestExpandExcludeInclude(t *testing.T) {
	base := `
generators: {a: ` + gen + `, b: ` + gen + `}
generators: b: sampling: temperature: 0.5
settings: {"math-rg": {instances: 10}, "code-rg": {instances: 10}}
grid: {
`
	for _, tc := range []struct {
		name string
		grid string
		want []string // generate steps as generator/setting/n/variant/seed
	}{
		{"everything", "", []string{
			"a/math-rg/10/free-form/1", "a/math-rg/10/free-form/2", "a/math-rg/10/json/1", "a/math-rg/10/json/2",
			"a/code-rg/10/free-form/1", "a/code-rg/10/free-form/2", "a/code-rg/10/json/1", "a/code-rg/10/json/2",
			"b/math-rg/10/free-form/1", "b/math-rg/10/free-form/2", "b/math-rg/10/json/1", "b/math-rg/10/json/2",
			"b/code-rg/10/free-form/1", "b/code-rg/10/free-form/2", "b/code-rg/10/json/1", "b/code-rg/10/json/2",
		}},
		{"one field a wildcard for the rest", `exclude: [{generator: "b"}]`, []string{
			"a/math-rg/10/free-form/1", "a/math-rg/10/free-form/2", "a/math-rg/10/json/1", "a/math-rg/10/json/2",
			"a/code-rg/10/free-form/1", "a/code-rg/10/free-form/2", "a/code-rg/10/json/1", "a/code-rg/10/json/2",
		}},
		{"all fields must match", `exclude: [{generator: "a", setting: "code-rg", variant: "json", seed: 2}, {setting: "math-rg", variant: "json"}]`, []string{
			"a/math-rg/10/free-form/1", "a/math-rg/10/free-form/2",
			"a/code-rg/10/free-form/1", "a/code-rg/10/free-form/2", "a/code-rg/10/json/1",
			"b/math-rg/10/free-form/1", "b/math-rg/10/free-form/2",
			"b/code-rg/10/free-form/1", "b/code-rg/10/free-form/2", "b/code-rg/10/json/1", "b/code-rg/10/json/2",
		}},
		{"seed 0 is a value not a wildcard", `seeds: [0, 1]
	exclude: [{seed: 0}, {variant: "json"}, {generator: "b"}]`, []string{
			"a/math-rg/10/free-form/1", "a/code-rg/10/free-form/1",
		}},
		{"instances", `instances: [10, 20], exclude: [{instances: 10}, {variant: "json"}, {seed: 2}]`, []string{
			"a/math-rg/20/free-form/1", "a/code-rg/20/free-form/1", "b/math-rg/20/free-form/1", "b/code-rg/20/free-form/1",
		}},
		{"include adds cells outside the product after it", `generators: ["a"], settings: ["math-rg"], variants: ["free-form"], exclude: [{seed: 2}], include: [
			{generator: "b", setting: "code-rg", instances: 30},
			{generator: "b", setting: "math-rg", variant: "json", seed: 9},
			{generator: "a", setting: "math-rg", seed: 2},
			{generator: "a", setting: "math-rg", instances: 10, variant: "free-form", seed: 1},
		]`, []string{
			"a/math-rg/10/free-form/1",
			"b/code-rg/30/free-form/1", // instances given; variant the setting's; seed the first of grid.seeds
			"b/math-rg/10/json/9",      // instances the setting's
			"a/math-rg/10/free-form/2", // include wins over exclude
			// the last include is already in the product: not repeated
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := base
			if !strings.Contains(tc.grid, "seeds:") {
				src += "seeds: [1, 2]\n"
			}
			if !strings.Contains(tc.grid, "variants:") {
				src += "variants: [\"free-form\", \"json\"]\n"
			}
			src += tc.grid + "\n}\n"
			var got []string
			for _, s := range stepsOf(compileSrc(t, src, ""), "generate") {
				got = append(got, s.Generator+"/"+s.Setting+"/"+itoa(s.Instances)+"/"+s.Variant+"/"+itoa(*s.Seed))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("cells:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}

	// Excluding everything is an error, not an empty plan. (spec.Load
	// refuses such a grid; the compiler does not rely on it.)
	exp := load(t, base+"}\n", "")
	exp.Grid.Exclude = []spec.Cell{{Setting: "math-rg"}, {Generator: "a"}, {Generator: "b"}}
	if _, err := Compile(context.Background(), exp, Options{}); err == nil || !strings.Contains(err.Error(), "the grid selects no cells") {
		t.Errorf("Compile with every cell excluded: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTrainInputs: for instance generation the seed set is part of the
// student's training data, so it is an input of the train step (and its
// examples are counted in the estimate); for the other methods it is not.
func TestTrainInputs(t *testing.T) {
	src := `
generators: g: ` + gen + `
settings: {"math-ig": {instances: 100}, "math-rg": {instances: 100}}
`
	p := compileSrc(t, src, "")
	for _, tc := range []struct {
		setting, seed string
	}{
		{"math-ig", "hf:Data-Agora/math-seed-data@main#train"},
		{"math-rg", ""},
	} {
		tr := step(t, p, "train.g."+tc.setting+".n100.free-form.s42")
		var in struct {
			Kind            string               `json:"kind"`
			Data            string               `json:"data"`
			SeedData        *string              `json:"seed_data"`
			Base            string               `json:"base"`
			Trainer         string               `json:"trainer"`
			Hyperparameters spec.Hyperparameters `json:"hyperparameters"`
		}
		if err := json.Unmarshal(tr.Inputs, &in); err != nil {
			t.Fatal(err)
		}
		genID := step(t, p, "generate.g."+tc.setting+".n100.free-form.s42").ID
		if in.Kind != "train" || in.Data != genID || in.Base != "meta-llama/Llama-3.1-8B" || in.Trainer != "trl" || in.Hyperparameters.Epochs != 5 {
			t.Errorf("%s: train inputs %s", tc.setting, tr.Inputs)
		}
		if !reflect.DeepEqual(tr.Needs, []string{genID}) {
			t.Errorf("%s: needs %v, want [%s]", tc.setting, tr.Needs, genID)
		}
		switch {
		case tc.seed == "" && in.SeedData != nil:
			t.Errorf("%s: train inputs carry seed data %q", tc.setting, *in.SeedData)
		case tc.seed != "" && (in.SeedData == nil || *in.SeedData != tc.seed):
			t.Errorf("%s: train inputs %s, want seed_data %q", tc.setting, tr.Inputs, tc.seed)
		}
	}
}

// ---- the AgoraBench experiment ----

func TestAgoraSteps(t *testing.T) {
	p := compile(t, loadAgora(t), Options{})
	want := map[string]int{"generate": 54, "train": 54, "evaluate": 54*2 + 6 + 6, "score": 54}
	for kind, n := range want {
		if got := len(stepsOf(p, kind)); got != n {
			t.Errorf("%d %s steps, want %d", got, kind, n)
		}
	}
	if !reflect.DeepEqual(p.Counts.Create, want) || len(p.Counts.Noop) != 0 {
		t.Errorf("counts = %+v, want create %v", p.Counts, want)
	}
	if len(p.Steps) != 54+54+120+54 {
		t.Errorf("%d steps", len(p.Steps))
	}

	// The needs form a DAG in plan order: every need exists and comes
	// earlier, so there is no cycle; IDs and addresses are unique.
	index := map[string]int{}
	addrs := map[string]bool{}
	for i, s := range p.Steps {
		if _, dup := index[s.ID]; dup {
			t.Errorf("id %s twice", s.ID)
		}
		if addrs[s.Address] {
			t.Errorf("address %s twice", s.Address)
		}
		index[s.ID], addrs[s.Address] = i, true
		if len(s.ID) != 32 || strings.Trim(s.ID, "0123456789abcdef") != "" {
			t.Errorf("%s: id %q is not 32 hex digits", s.Address, s.ID)
		}
		if s.Needs == nil {
			t.Errorf("%s: needs is nil (JSON null), want []", s.Address)
		}
		for _, n := range s.Needs {
			j, ok := index[n]
			if !ok {
				t.Errorf("%s needs %s, which is not an earlier step", s.Address, n)
				continue
			}
			if j >= i {
				t.Errorf("%s needs a later step", s.Address)
			}
		}
	}
	kindOf := func(id string) plan.Step { return p.Steps[index[id]] }

	// Base and reference evaluations: exactly one per benchmark.
	shared := map[string]int{}
	for _, s := range stepsOf(p, "evaluate") {
		switch s.Model {
		case "base", "reference":
			shared[s.Model+"/"+s.Benchmark]++
			if len(s.Needs) != 0 || s.Generator != "" || s.Address != "evaluate."+s.Model+"."+s.Benchmark {
				t.Errorf("shared evaluation %+v", s)
			}
		case "student":
			if len(s.Needs) != 1 || kindOf(s.Needs[0]).Kind != "train" || kindOf(s.Needs[0]).Setting != s.Setting {
				t.Errorf("%s needs %v, want its train step", s.Address, s.Needs)
			}
		default:
			t.Errorf("%s: model %q", s.Address, s.Model)
		}
	}
	wantShared := map[string]int{}
	for _, b := range []string{"gsm8k", "math", "mbpp", "humaneval", "alpacaeval2", "arenahard"} {
		wantShared["base/"+b], wantShared["reference/"+b] = 1, 1
	}
	if !reflect.DeepEqual(shared, wantShared) {
		t.Errorf("shared evaluations %v, want %v", shared, wantShared)
	}

	// Every score step needs its two student evaluations, then the base and
	// the reference on the same two benchmarks.
	for _, s := range stepsOf(p, "score") {
		var got []string
		for _, n := range s.Needs {
			e := kindOf(n)
			got = append(got, e.Model+"/"+e.Benchmark)
			if e.Model == "student" && (e.Generator != s.Generator || e.Setting != s.Setting) {
				t.Errorf("%s needs %s", s.Address, e.Address)
			}
		}
		bs := p.Steps[index[s.Needs[0]]].Benchmark
		b2 := p.Steps[index[s.Needs[1]]].Benchmark
		want := []string{"student/" + bs, "student/" + b2, "base/" + bs, "base/" + b2, "reference/" + bs, "reference/" + b2}
		if !reflect.DeepEqual(got, want) || bs == b2 {
			t.Errorf("%s needs %v", s.Address, got)
		}
	}
	if s := step(t, p, "score.gpt-4o.math-ig.n10000.free-form.s42"); len(s.Needs) != 6 ||
		kindOf(s.Needs[0]).Benchmark != "gsm8k" || kindOf(s.Needs[1]).Benchmark != "math" {
		t.Errorf("math score needs %v", s.Needs)
	}

	// The experiment's budgets hold.
	if !p.BudgetsOK() || len(p.Budgets) != 3 {
		t.Errorf("budgets %+v", p.Budgets)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings %q", p.Warnings)
	}
}

// ---- content addresses ----

// idSpec has one hosted generator on a built-in setting and on a setting
// of its own with a local seed file and meta-prompt.
const idSpec = `
generators: g: {
	provider: openai: {base_url: "https://api.example.com/v1", api_key_env: "EXAMPLE_KEY"}
	model: "meta-llama/Llama-3.1-70B-Instruct"
	price: {input: 1, output: 2, batch_discount: 0.5}
	limits: {rpm: 100, concurrency: 8}
	sampling: {temperature: 1.0, top_p: 0.9, max_tokens: 2048}
}
settings: {
	"math-rg": {instances: 100, seed_data: revision: "v1", prompt: variant: "free-form"}
	local: {
		domain: "code"
		method: "response_generation"
		seed_data: path: "seed.jsonl"
		prompt: file: "prompt.tmpl"
		instances: 50
	}
}
grid: seeds: [42]
student: hyperparameters: epochs: 5
`

const (
	idSeed   = "{\"instruction\": \"a\"}\n{\"instruction\": \"b\"}\n"
	idPrompt = "Answer the question.\n\n{{.Instruction}}\n"
)

// idsOf compiles idSpec, edited, in a directory holding the seed file and
// the meta-prompt, and returns the step IDs by address with the variant
// and seed left out (so a cell keeps its key when they change).
func idsOf(t *testing.T, src, seed, prompt string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "seed.jsonl", seed)
	write(t, dir, "prompt.tmpl", prompt)
	p := compileSrc(t, src, dir)
	ids := map[string]string{}
	for _, s := range p.Steps {
		key := s.Kind + "." + s.Setting + "." + s.Model + "." + s.Benchmark
		if _, dup := ids[key]; dup {
			t.Fatalf("key %s twice", key)
		}
		ids[key] = s.ID
	}
	return ids
}

func TestIDsStable(t *testing.T) {
	a := idsOf(t, idSpec, idSeed, idPrompt)
	b := idsOf(t, idSpec, idSeed, idPrompt)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two compiles of one spec differ:\n%v\n%v", a, b)
	}
	// 2 cells: generate, train, 2 student evaluations, score each; the
	// base and reference on gsm8k, math, mbpp and humaneval.
	if len(a) != 2*5+8 {
		t.Errorf("%d steps, want 18", len(a))
	}

	// Two compiles of the same experiment value, too: the compiler does
	// not depend on map iteration order.
	exp := loadAgora(t)
	first := compile(t, exp, Options{})
	for range 3 {
		again := compile(t, exp, Options{})
		if !reflect.DeepEqual(first, again) {
			t.Fatal("compiling one experiment twice gives different plans")
		}
	}
}

// TestIDsDeclarationOrder: reordering generators, settings and fields in
// the CUE text changes neither the IDs nor the plan's order.
func TestIDsDeclarationOrder(t *testing.T) {
	gens := []string{
		`"gpt-4o-mini": {provider: openai: {}, model: "gpt-4o-mini", price: {input: 0.15, output: 0.6}}`,
		`"llama-8b": {provider: openai: {base_url: "https://api.together.xyz/v1"}, model: "meta-llama/Llama-3.1-8B-Instruct", price: {input: 0.1, output: 0.1}}`,
		`local: {provider: vllm: {tensor_parallel: 2}, model: "Qwen/Qwen2.5-7B-Instruct"}`,
	}
	sets := []string{`"math-rg": {instances: 10}`, `"code-ig": {instances: 10}`, `"if-qe": {instances: 10}`}
	mk := func(gorder, sorder []int, budgetsFirst bool) string {
		var b strings.Builder
		if budgetsFirst {
			b.WriteString("budgets: {usd: 100, check: \"expected\"}\n")
		}
		b.WriteString("generators: {\n")
		for _, i := range gorder {
			b.WriteString("\t" + gens[i] + "\n")
		}
		b.WriteString("}\nsettings: {\n")
		for _, i := range sorder {
			b.WriteString("\t" + sets[i] + "\n")
		}
		b.WriteString("}\n")
		if !budgetsFirst {
			b.WriteString("budgets: {check: \"expected\", usd: 100}\n")
		}
		return b.String()
	}
	ref := compileSrc(t, mk([]int{0, 1, 2}, []int{0, 1, 2}, false), "")
	var refIDs []string
	for _, s := range ref.Steps {
		refIDs = append(refIDs, s.Address+" "+s.ID)
	}
	for _, order := range [][2][]int{
		{{2, 1, 0}, {2, 1, 0}},
		{{1, 2, 0}, {0, 2, 1}},
		{{2, 0, 1}, {1, 0, 2}},
	} {
		p := compileSrc(t, mk(order[0], order[1], true), "")
		var ids []string
		for _, s := range p.Steps {
			ids = append(ids, s.Address+" "+s.ID)
		}
		if !reflect.DeepEqual(ids, refIDs) {
			t.Errorf("generators %v, settings %v: steps differ:\n%s\nwant:\n%s", order[0], order[1], strings.Join(ids, "\n"), strings.Join(refIDs, "\n"))
		}
		// Only the spec's digest (its bytes) and the budgets' positions
		// in it differ.
		p.Spec = ref.Spec
		for i := range p.Budgets {
			if p.Budgets[i].Source == ref.Budgets[i].Source {
				t.Errorf("budget %s at %s in both orders", p.Budgets[i].Name, p.Budgets[i].Source)
			}
			p.Budgets[i].Source = ref.Budgets[i].Source
		}
		if !reflect.DeepEqual(p, ref) {
			t.Errorf("generators %v, settings %v: plans differ beyond the spec digest", order[0], order[1])
		}
	}
}

func TestIDsChangeWithInputs(t *testing.T) {
	orig := idsOf(t, idSpec, idSeed, idPrompt)
	const (
		mathGen = "generate.math-rg.."
		locGen  = "generate.local.."
	)
	for _, tc := range []struct {
		name         string
		src          func(t *testing.T) string
		seed, prompt string
		changed      []string // generate steps whose ID must change; all others keep theirs
	}{
		{name: "model", src: func(t *testing.T) string {
			return replace(t, idSpec, `"meta-llama/Llama-3.1-70B-Instruct"`, `"meta-llama/Llama-3.1-405B-Instruct"`)
		}, changed: []string{mathGen, locGen}},
		{name: "temperature", src: func(t *testing.T) string {
			return replace(t, idSpec, "temperature: 1.0", "temperature: 0.7")
		}, changed: []string{mathGen, locGen}},
		{name: "max_tokens", src: func(t *testing.T) string { return replace(t, idSpec, "max_tokens: 2048", "max_tokens: 2049") },
			changed: []string{mathGen, locGen}},
		{name: "sampling extra", src: func(t *testing.T) string {
			return replace(t, idSpec, "top_p: 0.9,", "top_p: 0.9, extra: repetition_penalty: 1.05,")
		}, changed: []string{mathGen, locGen}},
		{name: "endpoint", src: func(t *testing.T) string {
			return replace(t, idSpec, "https://api.example.com/v1", "https://api.other.example/v1")
		}, changed: []string{mathGen, locGen}},
		{name: "prompt variant", src: func(t *testing.T) string {
			return replace(t, idSpec, `variant: "free-form"`, `variant: "json"`)
		}, changed: []string{mathGen}},
		{name: "seed", src: func(t *testing.T) string { return replace(t, idSpec, "seeds: [42]", "seeds: [43]") },
			changed: []string{mathGen, locGen}},
		{name: "instances", src: func(t *testing.T) string { return replace(t, idSpec, "instances: 100", "instances: 101") },
			changed: []string{mathGen}},
		{name: "seed data revision", src: func(t *testing.T) string { return replace(t, idSpec, `revision: "v1"`, `revision: "v2"`) },
			changed: []string{mathGen}},
		{name: "seed file content", seed: idSeed + "{\"instruction\": \"c\"}\n", changed: []string{locGen}},
		{name: "seed file content of the same size", seed: strings.Replace(idSeed, `"a"`, `"z"`, 1), changed: []string{locGen}},
		{name: "prompt file content", prompt: "Answer the question well.\n\n{{.Instruction}}\n", changed: []string{locGen}},
		{name: "price", src: func(t *testing.T) string {
			return replace(t, idSpec, "price: {input: 1, output: 2, batch_discount: 0.5}", "price: {input: 3, output: 4}")
		}},
		{name: "rate limits", src: func(t *testing.T) string {
			return replace(t, idSpec, "limits: {rpm: 100, concurrency: 8}", "limits: {rpm: 7, tpm: 1000, concurrency: 1}")
		}},
		{name: "api key variable", src: func(t *testing.T) string { return replace(t, idSpec, `"EXAMPLE_KEY"`, `"OTHER_KEY"`) }},
		{name: "budgets", src: func(t *testing.T) string { return idSpec + "budgets: {usd: 1, gpu_hours: 1}\n" }},
		{name: "comments and layout", src: func(t *testing.T) string {
			return "// a comment\n" + strings.ReplaceAll(idSpec, "\t", "    ")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, seed, prompt := idSpec, idSeed, idPrompt
			if tc.src != nil {
				src = tc.src(t)
			}
			if tc.seed != "" {
				seed = tc.seed
			}
			if tc.prompt != "" {
				prompt = tc.prompt
			}
			got := idsOf(t, src, seed, prompt)
			if len(got) != len(orig) {
				t.Fatalf("%d steps, want %d", len(got), len(orig))
			}
			for key, id := range got {
				old, ok := orig[key]
				if !ok {
					t.Fatalf("new step %s", key)
				}
				// A changed generate step changes everything downstream of
				// it: its train, student evaluations and score.
				setting := strings.Split(key, ".")[1]
				wantChange := false
				for _, c := range tc.changed {
					if strings.Split(c, ".")[1] == setting && !strings.Contains(key, ".base.") && !strings.Contains(key, ".reference.") {
						wantChange = true
					}
				}
				if wantChange && id == old {
					t.Errorf("%s: id unchanged", key)
				}
				if !wantChange && id != old {
					t.Errorf("%s: id changed", key)
				}
			}
		})
	}

	// Student settings change train steps and what follows, not
	// generation; base and reference evaluations change with their model.
	got := idsOf(t, replace(t, idSpec, "epochs: 5", "epochs: 3"), idSeed, idPrompt)
	for key, id := range got {
		kind := strings.Split(key, ".")[0]
		shared := strings.Contains(key, ".base.") || strings.Contains(key, ".reference.")
		if changed := id != orig[key]; changed != (kind != "generate" && !shared) {
			t.Errorf("epochs: %s changed = %v", key, changed)
		}
	}
	got = idsOf(t, idSpec+`student: base: "meta-llama/Llama-3.2-1B"`+"\n", idSeed, idPrompt)
	for key, id := range got {
		kind := strings.Split(key, ".")[0]
		isRef := strings.Contains(key, ".reference.")
		if changed := id != orig[key]; changed != (kind != "generate" && !isRef) {
			t.Errorf("base model: %s changed = %v", key, changed)
		}
	}
}

// ---- dedupe ----

func TestDedupeIdenticalGenerators(t *testing.T) {
	src := `
generators: {
	first: ` + gen + `
	second: ` + gen + `
	other: ` + gen + `
}
// Price and limits are not part of what is generated.
generators: second: price: {input: 5, output: 5}
generators: second: limits: rpm: 10
generators: other: sampling: temperature: 0.5
settings: {"math-rg": {instances: 10}, "code-rg": {instances: 10}}
`
	p := compileSrc(t, src, "")
	var got []string
	for _, s := range stepsOf(p, "generate") {
		got = append(got, s.Generator+"/"+s.Setting)
	}
	want := []string{"first/math-rg", "first/code-rg", "other/math-rg", "other/code-rg"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("generate steps %v, want %v", got, want)
	}
	// Everything downstream collapses with them.
	for kind, n := range map[string]int{"train": 4, "score": 4, "evaluate": 4*2 + 4 + 4} {
		if got := len(stepsOf(p, kind)); got != n {
			t.Errorf("%d %s steps, want %d", got, kind, n)
		}
	}
	wantWarn := []string{`generators "first" and "second" are identical (same provider, model and sampling); their steps are shared`}
	if !reflect.DeepEqual(p.Warnings, wantWarn) {
		t.Errorf("warnings %q, want %q", p.Warnings, wantWarn)
	}
	// The shared steps are paid once, by the first generator.
	if p.Totals.ByGenerator["second"] != (plan.GeneratorTotal{}) {
		t.Errorf("second's total = %+v, want zero", p.Totals.ByGenerator["second"])
	}
	if p.Totals.ByGenerator["first"].Instances != 20 || p.Totals.ByGenerator["other"].Instances != 20 {
		t.Errorf("by generator %+v", p.Totals.ByGenerator)
	}
}

// ---- estimates ----

// estSpec is a small experiment whose every figure is worked out by hand
// in TestEstimates.
const estSpec = `
generators: {
	api: {
		provider: openai: {base_url: "https://api.example.com/v1", api_key_env: "EXAMPLE_KEY"}
		model: "meta-llama/Llama-3.1-70B-Instruct"
		price: {input: 2, output: 8, batch_discount: 0.5}
		sampling: max_tokens: 1000
	}
	batched: {
		provider: openai: {base_url: "https://api.example.com/v1", api_key_env: "EXAMPLE_KEY", batch: true}
		model: "meta-llama/Llama-3.1-70B-Instruct"
		price: {input: 2, output: 8, batch_discount: 0.5}
		sampling: {max_tokens: 1000, temperature: 0.99}
	}
	short: {
		provider: openai: {base_url: "https://api.example.com/v1", api_key_env: "EXAMPLE_KEY"}
		model: "meta-llama/Llama-3.1-70B-Instruct"
		price: {input: 2, output: 8}
		sampling: max_tokens: 500
	}
	local: {
		provider: vllm: {tensor_parallel: 4, replicas: 2, throughput_tokens_per_s: 1000}
		model: "meta-llama/Llama-3.1-70B-Instruct"
	}
}
settings: {
	qa: {
		domain: "math"
		method: "response_generation"
		seed_data: {hf: "me/questions", size: 5000}
		prompt: file: "prompt.tmpl"
		instances: 1000
		benchmarks: ["mybench"]
		estimate: {input_tokens: 150, output_tokens: 600, acceptance: 0.9}
	}
	ig: {
		domain: "math"
		method: "instance_generation"
		seed_data: {hf: "me/seeds", size: 200}
		prompt: file: "ig.tmpl"
		instances: 1000
		benchmarks: ["mybench"]
		estimate: {input_tokens: 900, output_tokens: 400, acceptance: 0.8}
	}
}
student: hardware: {gpu: "custom", peak_tflops: 1000, utilization: 0.5, gpus_per_node: 2, nodes: 1}
evaluation: {
	gpus: 2
	throughput_tokens_per_s: 1000
	benchmarks: mybench: {
		harness: "command"
		command: "run-bench {{.ModelPath}}"
		items: 500
		output_tokens: 720
		judge: {model: "judge-1", price: {input: 10, output: 30}, input_tokens: 1000, output_tokens: 100}
	}
}
`

// estPrompt's fixed text (without the {{…}} action) is 100 bytes: 25
// tokens by the heuristic ceil(bytes/4), the count for Llama models.
var (
	estPrompt   = strings.Repeat("abc\n", 25) + "{{.Instruction}}"
	estIGPrompt = strings.Repeat("x", 401) + "{{range .Demonstrations}}{{.Instruction}}{{end}}" // 401 bytes: 101 tokens
)

func estPlan(t *testing.T, extra string) *plan.Plan {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "prompt.tmpl", estPrompt)
	write(t, dir, "ig.tmpl", estIGPrompt)
	return compileSrc(t, estSpec+extra, dir)
}

func TestEstimates(t *testing.T) {
	p := estPlan(t, "")
	type want struct {
		in, out, req int64
		usd, worst   float64
		gpuh         float64
		tokenizer    string
	}
	for _, tc := range []struct {
		address string
		want    want
	}{
		// requests = ceil(1000 / 0.9) = ceil(1111.1) = 1112
		// input    = 1112 × (25 template + 150 seed) = 1112 × 175 = 194,600
		// output   = 1112 × min(600, max_tokens 1000) = 667,200
		// usd      = (194,600 × $2 + 667,200 × $8) / 1e6 = (389,200 + 5,337,600) / 1e6 = 5.7268
		// worst    = (389,200 + 1112 × 1000 × $8) / 1e6 = (389,200 + 8,896,000) / 1e6 = 9.2852
		// (batch_discount applies only with batch: true)
		{"generate.api.qa.n1000.file.s42", want{194600, 667200, 1112, 5.7268, 9.2852, 0, "heuristic"}},
		// the same at half price: 5.7268 × 0.5, 9.2852 × 0.5
		{"generate.batched.qa.n1000.file.s42", want{194600, 667200, 1112, 2.8634, 4.6426, 0, "heuristic"}},
		// max_tokens 500 caps the expected completion: output = 1112 × 500 = 556,000
		// usd   = (389,200 + 556,000 × 8) / 1e6 = (389,200 + 4,448,000) / 1e6 = 4.8372
		// worst = the same, every completion at max_tokens
		{"generate.short.qa.n1000.file.s42", want{194600, 556000, 1112, 4.8372, 4.8372, 0, "heuristic"}},
		// vLLM: no dollars; wall = 667,200 / (1000 tok/s × 2 replicas) / 3600 + 0.1 h
		//   = 333.6 s / 3600 + 0.1 = 0.092666… + 0.1 = 0.192666… h
		// gpu_hours = wall × 4 GPUs × 2 replicas = 1.541333… (worst case max_tokens 4096 costs no dollars)
		{"generate.local.qa.n1000.file.s42", want{194600, 667200, 1112, 0, 0, (333.6/3600 + 0.1) * 8, "heuristic"}},
		// instance generation: requests = ceil(1000 / 0.8) = 1250
		// input  = 1250 × (101 + 900) = 1,251,250; output = 1250 × 400 = 500,000
		// usd    = (1,251,250 × 2 + 500,000 × 8) / 1e6 = (2,502,500 + 4,000,000) / 1e6 = 6.5025
		// worst  = (2,502,500 + 1250 × 1000 × 8) / 1e6 = 12.5025
		{"generate.api.ig.n1000.file.s42", want{1251250, 500000, 1250, 6.5025, 12.5025, 0, "heuristic"}},
		// train, response generation: examples = 1000; per example = 600 out + 16 chat + 150 in = 766
		// tokens = 1000 × 766 × 5 epochs = 3,830,000; flops = 6 × 8e9 × 3.83e6 = 1.8384e17
		// rate = 2 GPUs × 1000 TFLOPS × 0.5 = 1e15 FLOP/s → 183.84 s
		// wall = 183.84 / 3600 + 0.25 h; gpu_hours = wall × 2
		{"train.api.qa.n1000.file.s42", want{0, 0, 0, 0, 0, (183.84/3600 + 0.25) * 2, ""}},
		// train, instance generation: examples = 1000 + 200 seeds; per example = 400 + 16 = 416
		// tokens = 1200 × 416 × 5 = 2,496,000; flops = 6 × 8e9 × 2.496e6 = 1.19808e17 → 119.808 s
		{"train.api.ig.n1000.file.s42", want{0, 0, 0, 0, 0, (119.808/3600 + 0.25) * 2, ""}},
		// evaluation: wall = 500 items × 720 tokens / 1000 tok/s / 3600 + 0.15 = 0.1 + 0.15 = 0.25 h; × 2 GPUs = 0.5
		// judge: input = 500 × 1000 = 500,000; output = 500 × 100 = 50,000
		// usd = (500,000 × $10 + 50,000 × $30) / 1e6 = 6.5
		{"evaluate.api.qa.n1000.file.s42.mybench", want{500000, 50000, 500, 6.5, 6.5, 0.5, ""}},
		{"evaluate.base.mybench", want{500000, 50000, 500, 6.5, 6.5, 0.5, ""}},
		{"evaluate.reference.mybench", want{500000, 50000, 500, 6.5, 6.5, 0.5, ""}},
		{"score.api.qa.n1000.file.s42", want{}},
	} {
		e := step(t, p, tc.address).Estimate
		w := tc.want
		if e.InputTokens != w.in || e.OutputTokens != w.out || e.Requests != w.req || e.Tokenizer != w.tokenizer {
			t.Errorf("%s: tokens in %d out %d requests %d tokenizer %q; want %d %d %d %q",
				tc.address, e.InputTokens, e.OutputTokens, e.Requests, e.Tokenizer, w.in, w.out, w.req, w.tokenizer)
		}
		checkNear(t, tc.address+" usd", e.USD, w.usd)
		checkNear(t, tc.address+" worst_usd", e.WorstUSD, w.worst)
		checkNear(t, tc.address+" gpu_hours", e.GPUHours, w.gpuh)
	}

	// Totals: 4 generators × 2 settings; each cell a generate, a train, a
	// student evaluation and a score; the base and reference once.
	genUSD := map[string]float64{"api": 5.7268 + 6.5025, "batched": (5.7268 + 6.5025) / 2, "short": 4.8372 + (2502500+1250*400*8)/1e6}
	genWorst := map[string]float64{"api": 9.2852 + 12.5025, "batched": (9.2852 + 12.5025) / 2,
		// ig with max_tokens 500: output 1250 × 400; worst 1250 × 500 × 8
		"short": 4.8372 + (2502500+1250*500*8)/1e6}
	trainH := (183.84/3600+0.25)*2 + (119.808/3600+0.25)*2
	// local ig: wall = 500,000 / 2000 / 3600 + 0.1
	localGenH := (333.6/3600+0.1)*8 + (250.0/3600+0.1)*8
	var usd, worst, gpuh float64
	for _, g := range []string{"api", "batched", "short", "local"} {
		gt := p.Totals.ByGenerator[g]
		wantUSD := genUSD[g] + 2*6.5 // two student evaluations, judged
		wantWorst := genWorst[g] + 2*6.5
		wantH := trainH + 2*0.5
		if g == "local" {
			wantH += localGenH
		}
		checkNear(t, g+" usd", gt.USD, wantUSD)
		checkNear(t, g+" worst_usd", gt.WorstUSD, wantWorst)
		checkNear(t, g+" gpu_hours", gt.GPUHours, wantH)
		if gt.Instances != 2000 {
			t.Errorf("%s instances = %d, want 2000", g, gt.Instances)
		}
		usd, worst, gpuh = usd+wantUSD, worst+wantWorst, gpuh+wantH
	}
	checkNear(t, "shared usd", p.Totals.Shared.USD, 13)
	checkNear(t, "shared gpu_hours", p.Totals.Shared.GPUHours, 1)
	checkNear(t, "total usd", p.Totals.USD, usd+13)
	checkNear(t, "total worst_usd", p.Totals.WorstUSD, worst+13)
	checkNear(t, "total gpu_hours", p.Totals.GPUHours, gpuh+1)
	// Generation tokens: 3 of 4 generators output 667,200 + 500,000; short 556,000 + 500,000;
	// every evaluation (8 students + 2 shared) 50,000 judge tokens.
	if want := int64(3*(667200+500000) + 556000 + 500000 + 10*50000); p.Totals.OutputTokens != want {
		t.Errorf("total output tokens %d, want %d", p.Totals.OutputTokens, want)
	}
	if want := int64(4*(194600+1251250) + 10*500000); p.Totals.InputTokens != want {
		t.Errorf("total input tokens %d, want %d", p.Totals.InputTokens, want)
	}
	wantAssume := plan.Assumed{TrainUtilization: 0.5, TrainPeakTFLOPS: 1000, TrainOverheadH: 0.25, EvalThroughput: 1000,
		EvalOverheadH: 0.15, ServerOverheadH: 0.1, StudentParamsBill: 8}
	if p.Assume != wantAssume {
		t.Errorf("assumptions %+v, want %+v", p.Assume, wantAssume)
	}
}

// TestRequests: N accepted instances take ceil(N / acceptance) requests,
// computed as a person would, in decimal.
func TestRequests(t *testing.T) {
	for _, tc := range []struct {
		n          int
		acceptance float64
		want       int64
	}{
		{1000, 0.9, 1112}, // 1111.1…
		{900, 0.9, 1000},
		{700, 0.7, 1000}, // 1000.0000000000001 in binary floating point
		{7, 0.7, 10},
		{3, 0.7, 5}, // 4.29
		{1, 0.3, 4},
		{10000, 1, 10000},
		{1, 1, 1},
		{10001, 0.5, 20002},
		{1000001, 0.999999, 1000003}, // 1000002.000002
	} {
		if got := requestsFor(tc.n, tc.acceptance); got != tc.want {
			t.Errorf("requestsFor(%d, %v) = %d, want %d", tc.n, tc.acceptance, got, tc.want)
		}
	}
	p := compileSrc(t, `
generators: g: `+gen+`
settings: "math-rg": {instances: 700, estimate: acceptance: 0.7}
`, "")
	if e := step(t, p, "generate.g.math-rg.n700.free-form.s42").Estimate; e.Requests != 1000 || e.OutputTokens != 600*1000 {
		t.Errorf("700 at 70%%: %d requests, %d output tokens; want 1000, 600000", e.Requests, e.OutputTokens)
	}
}

// TestEstimateBuiltin checks a built-in meta-prompt's cost against the
// template's own token count and a built-in benchmark's judge at its list
// price.
func TestEstimateBuiltin(t *testing.T) {
	p := compileSrc(t, `
generators: g: {
	provider: openai: {}
	model: "gpt-4o-mini"
	price: {input: 0.15, output: 0.6}
}
settings: "if-rg": {instances: 900}
`, "")
	e := step(t, p, "generate.g.if-rg.n900.free-form.s42").Estimate
	// 900 / 0.9 = 1000 requests, exactly; 150 seed tokens and 700 output
	// tokens each, plus the template's fixed text counted with o200k_base.
	tpl := templateTokens(t, "instruction_following", "response_generation", "free-form", "gpt-4o-mini")
	if e.Requests != 1000 || e.InputTokens != 1000*int64(tpl+150) || e.OutputTokens != 700000 || e.Tokenizer != "o200k_base" {
		t.Errorf("estimate %+v (template %d tokens)", e, tpl)
	}
	checkNear(t, "usd", e.USD, (float64(1000*(tpl+150))*0.15+700000*0.6)/1e6)
	checkNear(t, "worst", e.WorstUSD, (float64(1000*(tpl+150))*0.15+1000*4096*0.6)/1e6)

	// AlpacaEval 2.0: 805 items × (1400 in at $10 + 1 out at $30) per 1M.
	ae := step(t, p, "evaluate.base.alpacaeval2").Estimate
	checkNear(t, "alpacaeval2 usd", ae.USD, (805*1400*10+805*1*30)/1e6)
	// 805 × 512 tokens at 2500 tok/s, + 0.15 h, on 1 GPU.
	checkNear(t, "alpacaeval2 gpu_hours", ae.GPUHours, 805*512/2500.0/3600+0.15)
	// Arena-Hard: 500 × (3600 × $10 + 1000 × $30) / 1e6 = 33.
	checkNear(t, "arenahard usd", step(t, p, "evaluate.reference.arenahard").Estimate.USD, 33)
	// Default hardware: 4 × H100 (989 TFLOPS) at 35%; response generation
	// 900 × (700 + 16 + 150) × 5 tokens.
	flops := 6 * 8e9 * 900 * (700 + 16 + 150) * 5.0
	checkNear(t, "train gpu_hours", step(t, p, "train.g.if-rg.n900.free-form.s42").Estimate.GPUHours,
		(flops/(4*989e12*0.35)/3600+0.25)*4)
}

// ---- budgets ----

func TestBudgets(t *testing.T) {
	// Totals of estPlan, worked out in TestEstimates: generation (api,
	// batched at half price, short), 8 judged student evaluations and the
	// shared 13: usd 94.68365, worst usd 110.02125, GPU-hours about 12.57.
	p := estPlan(t, "")
	usd, worst, gpuh := p.Totals.USD, p.Totals.WorstUSD, p.Totals.GPUHours
	checkNear(t, "usd", usd, (5.7268+6.5025)*1.5+4.8372+6.5025+8*6.5+13)
	checkNear(t, "worst usd", worst, (9.2852+12.5025)*1.5+4.8372+7.5025+8*6.5+13)

	for _, tc := range []struct {
		name    string
		budgets string
		want    []plan.Budget
	}{
		{"none", "", nil},
		{"expected holds", `budgets: usd: 100`, []plan.Budget{{Name: "usd", Unit: "usd", Limit: 100, Estimate: usd, Basis: "expected", OK: true}}},
		{"usd ok", `budgets: usd: 200`, []plan.Budget{{Name: "usd", Unit: "usd", Limit: 200, Estimate: usd, Basis: "expected", OK: true}}},
		{"usd exceeded", `budgets: usd: 50`, []plan.Budget{{Name: "usd", Unit: "usd", Limit: 50, Estimate: usd, Basis: "expected", Over: usd - 50}}},
		{"usd at the limit", "budgets: usd: 1000\n", nil}, // filled below
		{"gpu_hours exceeded", `budgets: gpu_hours: 5`, []plan.Budget{{Name: "gpu_hours", Unit: "gpu_hours", Limit: 5, Estimate: gpuh, Basis: "expected", Over: gpuh - 5}}},
		// 100 holds the expected 94.68 but not the worst case, 110.02.
		{"worst case", `budgets: {usd: 100, gpu_hours: 100, check: "worst_case"}`, []plan.Budget{
			{Name: "usd", Unit: "usd", Limit: 100, Estimate: worst, Basis: "worst_case", Over: worst - 100},
			{Name: "gpu_hours", Unit: "gpu_hours", Limit: 100, Estimate: gpuh, Basis: "worst_case", OK: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "usd at the limit" {
				// The limit itself is within budget.
				q := estPlan(t, "budgets: usd: "+jsonString(usd)+"\n")
				if len(q.Budgets) != 1 || !q.Budgets[0].OK || q.Budgets[0].Over != 0 {
					t.Errorf("budgets %+v", q.Budgets)
				}
				return
			}
			q := estPlan(t, tc.budgets+"\n")
			if len(q.Budgets) != len(tc.want) {
				t.Fatalf("budgets %+v, want %+v", q.Budgets, tc.want)
			}
			for i, b := range q.Budgets {
				w := tc.want[i]
				if b.Name != w.Name || b.Unit != w.Unit || b.Limit != w.Limit || b.Basis != w.Basis || b.OK != w.OK || !near(b.Estimate, w.Estimate) || !near(b.Over, w.Over) {
					t.Errorf("budget %d = %+v, want %+v", i, b, w)
				}
			}
			allOK := true
			for _, w := range tc.want {
				allOK = allOK && w.OK
			}
			if q.BudgetsOK() != allOK {
				t.Errorf("BudgetsOK() = %v", q.BudgetsOK())
			}
		})
	}
}

func TestBudgetContributors(t *testing.T) {
	budgets := `budgets: {
	usd: 10
	gpu_hours: 1
	per_generator: {
		api: {usd: 30, gpu_hours: 10}
		local: {usd: 1, gpu_hours: 1}
	}
}`
	p := estPlan(t, budgets)
	// Each budget points at the field that sets it.
	src := estSpec + budgets
	at := func(field string) string {
		i := strings.Index(src, field)
		line := strings.Count(src[:i], "\n") + 1
		col := i - strings.LastIndex(src[:i], "\n")
		return "agora.cue:" + strconv.Itoa(line) + ":" + strconv.Itoa(col)
	}
	for i, want := range []string{at("usd: 10"), at("gpu_hours: 1\n"), at("usd: 30"), at("gpu_hours: 10"), at("usd: 1,"), at("gpu_hours: 1}")} {
		if p.Budgets[i].Source != want {
			t.Errorf("budget %s source %q, want %q", p.Budgets[i].Name, p.Budgets[i].Source, want)
		}
	}
	got := map[string]plan.Budget{}
	var names []string
	for _, b := range p.Budgets {
		got[b.Name] = b
		names = append(names, b.Name)
	}
	// Totals first, then per generator, sorted by generator name.
	if want := []string{"usd", "gpu_hours", "usd:api", "gpu_hours:api", "usd:local", "gpu_hours:local"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("budgets %v, want %v", names, want)
	}
	checkTop := func(name string, want []plan.Contributor) {
		t.Helper()
		top := got[name].Top
		if len(top) != len(want) {
			t.Errorf("%s top = %+v, want %+v", name, top, want)
			return
		}
		for i := range top {
			if top[i].Name != want[i].Name || !near(top[i].Amount, want[i].Amount) {
				t.Errorf("%s top[%d] = %+v, want %+v", name, i, top[i], want[i])
			}
		}
	}
	// usd: api 12.2293 + 13, short 11.3397 + 13, the shared 13, batched
	// 6.11465 + 13, local 13 (only its judged evaluations): the three
	// largest, biggest first; ties by name.
	checkTop("usd", []plan.Contributor{
		{Name: "api", Amount: 5.7268 + 6.5025 + 13},
		{Name: "short", Amount: 4.8372 + 6.5025 + 13},
		{Name: "batched", Amount: (5.7268+6.5025)/2 + 13},
	})
	trainH := (183.84/3600+0.25)*2 + (119.808/3600+0.25)*2
	localGenH := (333.6/3600+0.1)*8 + (250.0/3600+0.1)*8
	checkTop("gpu_hours", []plan.Contributor{
		{Name: "local", Amount: localGenH + trainH + 1},
		{Name: "api", Amount: trainH + 1},
		{Name: "batched", Amount: trainH + 1},
	})
	// api's own steps: generation of ig (6.5025), then the two judged
	// student evaluations (6.5 each, ties by address); not the generation
	// of qa (5.7268).
	checkTop("usd:api", []plan.Contributor{
		{Name: "generate.api.ig.n1000.file.s42", Amount: 6.5025},
		{Name: "evaluate.api.ig.n1000.file.s42.mybench", Amount: 6.5},
		{Name: "evaluate.api.qa.n1000.file.s42.mybench", Amount: 6.5},
	})
	if !got["usd:api"].OK || !near(got["usd:api"].Estimate, 5.7268+6.5025+13) {
		t.Errorf("usd:api = %+v", got["usd:api"])
	}
	if got["usd:local"].OK || !near(got["usd:local"].Over, 12) {
		t.Errorf("usd:local = %+v, want 13 against 1", got["usd:local"])
	}
	checkTop("gpu_hours:local", []plan.Contributor{
		{Name: "generate.local.qa.n1000.file.s42", Amount: (333.6/3600 + 0.1) * 8},
		{Name: "generate.local.ig.n1000.file.s42", Amount: (250.0/3600 + 0.1) * 8},
		{Name: "train.local.qa.n1000.file.s42", Amount: (183.84/3600 + 0.25) * 2},
	})
}

// ---- recorded state ----

// recorded is a fake state: the IDs in done have completed.
type recorded struct {
	done  map[string]bool
	err   error
	asked []string
}

func (r *recorded) Completed(_ context.Context, ids []string) (map[string]bool, error) {
	r.asked = append(r.asked, ids...)
	if r.err != nil {
		return nil, r.err
	}
	out := map[string]bool{}
	for _, id := range ids {
		if r.done[id] {
			out[id] = true
		}
	}
	return out, nil
}

var _ Recorded = (*recorded)(nil)

func TestNoop(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "prompt.tmpl", estPrompt)
	write(t, dir, "ig.tmpl", estIGPrompt)
	exp := load(t, estSpec+"budgets: {usd: 100, per_generator: api: usd: 10}\n", dir)
	full := compile(t, exp, Options{})

	done := map[string]bool{}
	var doneSteps []plan.Step
	for _, a := range []string{"generate.api.qa.n1000.file.s42", "train.api.qa.n1000.file.s42",
		"evaluate.base.mybench", "generate.local.ig.n1000.file.s42"} {
		s := step(t, full, a)
		done[s.ID] = true
		doneSteps = append(doneSteps, s)
	}
	r := &recorded{done: done}
	p := compile(t, exp, Options{Recorded: r})
	if len(r.asked) != len(full.Steps) {
		t.Errorf("asked about %d steps, want all %d", len(r.asked), len(full.Steps))
	}
	if len(p.Steps) != len(full.Steps) {
		t.Fatalf("%d steps, want %d: noop steps stay in the plan", len(p.Steps), len(full.Steps))
	}
	for i, s := range p.Steps {
		want := "create"
		if done[s.ID] {
			want = "noop"
		}
		if s.Action != want || s.ID != full.Steps[i].ID {
			t.Errorf("%s: action %s, want %s", s.Address, s.Action, want)
		}
	}
	wantCounts := plan.Counts{
		Create: map[string]int{"generate": 6, "train": 7, "evaluate": 9, "score": 8},
		Noop:   map[string]int{"generate": 2, "train": 1, "evaluate": 1},
	}
	if !reflect.DeepEqual(p.Counts, wantCounts) {
		t.Errorf("counts %+v, want %+v", p.Counts, wantCounts)
	}
	if p.ToRun() != 30 {
		t.Errorf("ToRun() = %d, want 30", p.ToRun())
	}
	var less plan.Estimate
	for _, s := range doneSteps {
		less.Add(s.Estimate)
	}
	checkNear(t, "usd", p.Totals.USD, full.Totals.USD-less.USD)
	checkNear(t, "worst_usd", p.Totals.WorstUSD, full.Totals.WorstUSD-less.WorstUSD)
	checkNear(t, "gpu_hours", p.Totals.GPUHours, full.Totals.GPUHours-less.GPUHours)
	if p.Totals.InputTokens != full.Totals.InputTokens-less.InputTokens || p.Totals.OutputTokens != full.Totals.OutputTokens-less.OutputTokens {
		t.Errorf("tokens %d/%d", p.Totals.InputTokens, p.Totals.OutputTokens)
	}
	checkNear(t, "shared usd", p.Totals.Shared.USD, 6.5)
	api := p.Totals.ByGenerator["api"]
	checkNear(t, "api usd", api.USD, full.Totals.ByGenerator["api"].USD-5.7268)
	if api.Instances != 1000 {
		t.Errorf("api instances %d, want 1000 (one of its sets is done)", api.Instances)
	}
	// The budgets see only what will run: api's 6.5025 + 2 × 6.5 = 19.5025
	// against 10, and its done generation is not among the contributors.
	var b plan.Budget
	for _, x := range p.Budgets {
		if x.Name == "usd:api" {
			b = x
		}
	}
	checkNear(t, "usd:api", b.Estimate, 6.5025+13)
	for _, c := range b.Top {
		if c.Name == "generate.api.qa.n1000.file.s42" {
			t.Errorf("a noop step among the contributors: %+v", b.Top)
		}
	}

	// Everything done: nothing to run, nothing to pay.
	all := map[string]bool{}
	for _, s := range full.Steps {
		all[s.ID] = true
	}
	p = compile(t, exp, Options{Recorded: &recorded{done: all}})
	if p.ToRun() != 0 || p.Totals.USD != 0 || p.Totals.GPUHours != 0 || len(p.Counts.Create) != 0 || !p.BudgetsOK() {
		t.Errorf("all done: to run %d, totals %+v, counts %+v", p.ToRun(), p.Totals, p.Counts)
	}

	// A state that cannot be read fails the compile.
	boom := errors.New("database is locked")
	_, err := Compile(context.Background(), exp, Options{Recorded: &recorded{err: boom}})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "read state") {
		t.Errorf("Compile with a failing state: %v", err)
	}
}

// templateTokens counts a built-in meta-prompt's fixed text as the plan
// does: with the model's tokenizer.
func templateTokens(t *testing.T, domain, method, variant, model string) int {
	t.Helper()
	tpl, err := prompts.Builtin(domain, method, variant)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := (&tokens.Counter{}).Count(model, tpl.StaticText())
	if n < 100 {
		t.Fatalf("template %s.%s.%s: %d tokens", domain, method, variant, n)
	}
	return n
}
