package spec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// minimal is the smallest valid spec: one hosted generator, one built-in
// setting taken with every default.
const minimal = `
generators: g: {
	provider: openai: {}
	model: "meta-llama/Llama-3.1-70B-Instruct"
	price: {input: 1, output: 2}
}
settings: "math-ig": {}
`

// load loads src as agora.cue from a fresh directory and fails the test on
// any diagnostic.
func load(t *testing.T, src string) *Experiment {
	t.Helper()
	exp, err := LoadBytes("agora.cue", []byte(src), t.TempDir())
	if err != nil {
		t.Fatalf("LoadBytes:\n%v", err)
	}
	return exp
}

// diagnose loads src and returns its diagnostics, failing the test if it
// loads cleanly or fails with another kind of error.
func diagnose(t *testing.T, src string) Diagnostics {
	t.Helper()
	_, err := LoadBytes("agora.cue", []byte(src), t.TempDir())
	if err == nil {
		t.Fatalf("LoadBytes succeeded; want diagnostics")
	}
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("LoadBytes: %T %v; want Diagnostics", err, err)
	}
	return ds
}

func TestDefaults(t *testing.T) {
	exp := load(t, minimal)

	// The paper's Table 6, and agora's schedule (the paper gives none).
	wantHP := Hyperparameters{Epochs: 5, MaxSeqLength: 4096, LearningRate: 1e-5, PerDeviceBatchSize: 4,
		GradientAccumulationSteps: 8, Seed: 42, DType: "bfloat16", LRScheduler: "linear", WarmupRatio: 0.03}
	if !reflect.DeepEqual(exp.Student.Hyperparameters, wantHP) {
		t.Errorf("hyperparameters = %+v, want %+v", exp.Student.Hyperparameters, wantHP)
	}
	wantStudent := Student{Base: "meta-llama/Llama-3.1-8B", Reference: "meta-llama/Llama-3.1-8B-Instruct",
		ParamsBillion: 8, Trainer: "trl", Hyperparameters: wantHP, Executor: "local",
		Hardware: Hardware{GPU: "H100-80GB", GPUsPerNode: 4, Nodes: 1, TimeLimit: "24:00:00", Utilization: 0.35}}
	if !reflect.DeepEqual(exp.Student, wantStudent) {
		t.Errorf("student = %+v\nwant      %+v", exp.Student, wantStudent)
	}
	if got := exp.Student.Hardware.GPUs(); got != 4 {
		t.Errorf("GPUs() = %d, want 4", got)
	}
	if got := PeakTFLOPS(exp.Student.Hardware); got != 989 {
		t.Errorf("PeakTFLOPS = %v, want 989", got)
	}

	g := exp.Generators["g"]
	if g.Name != "g" {
		t.Errorf("generator name = %q", g.Name)
	}
	wantOpenAI := OpenAI{BaseURL: "https://api.openai.com/v1", APIKeyEnv: "OPENAI_API_KEY"}
	if g.Provider.OpenAI == nil || *g.Provider.OpenAI != wantOpenAI {
		t.Errorf("openai = %+v, want %+v", g.Provider.OpenAI, wantOpenAI)
	}
	if g.Provider.Kind() != "openai" {
		t.Errorf("Kind() = %q", g.Provider.Kind())
	}
	if !reflect.DeepEqual(g.Sampling, Sampling{MaxTokens: 4096}) {
		t.Errorf("sampling = %+v, want max_tokens 4096 only", g.Sampling)
	}
	if (g.Limits != Limits{}) {
		t.Errorf("limits = %+v, want none", g.Limits)
	}

	if exp.Evaluation.Executor != "local" || exp.Evaluation.GPUs != 1 || exp.Evaluation.ThroughputTokensPerS != 2500 || exp.Evaluation.Slurm != nil {
		t.Errorf("evaluation = %+v", exp.Evaluation)
	}
	if exp.Budgets.Check != "expected" || exp.Budgets.USD != 0 || exp.Budgets.GPUHours != 0 {
		t.Errorf("budgets = %+v", exp.Budgets)
	}
	if exp.Grid.Generators != nil || exp.Grid.Settings != nil || exp.Grid.Seeds != nil {
		t.Errorf("grid = %+v, want empty", exp.Grid)
	}
	if exp.Source.File != "agora.cue" || !strings.HasPrefix(exp.Source.Digest, "sha256:") || len(exp.Source.Digest) != 7+64 {
		t.Errorf("source = %+v", exp.Source)
	}
}

func TestVLLMDefaults(t *testing.T) {
	exp := load(t, `
generators: {
	small: {provider: vllm: {}, model: "m"}
	big: {provider: vllm: {tensor_parallel: 4, replicas: 2, executor: "slurm"}, model: "m"}
	pinned: {provider: vllm: {tensor_parallel: 2, gpus: 8}, model: "m"}
}
settings: "math-ig": {}
`)
	for _, tc := range []struct {
		name string
		want VLLM
	}{
		{"small", VLLM{TensorParallel: 1, GPUs: 1, Replicas: 1, DType: "auto", Executor: "local", ThroughputTokensPerS: 1500, StartTimeout: "20m", TimeLimit: "24:00:00"}},
		{"big", VLLM{TensorParallel: 4, GPUs: 4, Replicas: 2, DType: "auto", Executor: "slurm", ThroughputTokensPerS: 1500, StartTimeout: "20m", TimeLimit: "24:00:00"}},
		{"pinned", VLLM{TensorParallel: 2, GPUs: 8, Replicas: 1, DType: "auto", Executor: "local", ThroughputTokensPerS: 1500, StartTimeout: "20m", TimeLimit: "24:00:00"}},
	} {
		g := exp.Generators[tc.name]
		if g.Provider.VLLM == nil || !reflect.DeepEqual(*g.Provider.VLLM, tc.want) {
			t.Errorf("%s: vllm = %+v, want %+v", tc.name, g.Provider.VLLM, tc.want)
		}
		if g.Price != nil {
			t.Errorf("%s: price = %+v, want none", tc.name, g.Price)
		}
		if want := VLLMConcurrencyPerReplica * tc.want.Replicas; g.Limits.Concurrency != want {
			t.Errorf("%s: concurrency %d, want %d per replica", tc.name, g.Limits.Concurrency, VLLMConcurrencyPerReplica)
		}
	}
	exp = load(t, `
generators: own: {provider: vllm: {replicas: 4}, model: "m", limits: concurrency: 100}
settings: "math-ig": {}
`)
	if got := exp.Generators["own"].Limits.Concurrency; got != 100 {
		t.Errorf("the spec's concurrency became %d", got)
	}
}

func TestBuiltinSettings(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimal[:strings.Index(minimal, "settings:")])
	for _, n := range BuiltinSettings() {
		b.WriteString("settings: \"" + n + "\": {}\n")
	}
	exp := load(t, b.String())

	hfRef := func(id string, size int) SeedData {
		return SeedData{HF: id, Revision: "main", Split: "train", Size: size}
	}
	for _, tc := range []struct {
		name, domain, method string
		seed                 SeedData
		benchmarks           []string
		in, out              int
	}{
		{"math-ig", "math", "instance_generation", hfRef("Data-Agora/math-seed-data", 14856), []string{"gsm8k", "math"}, 900, 450},
		{"math-rg", "math", "response_generation", hfRef("Data-Agora/magpie-math-seed-data", 10000), []string{"gsm8k", "math"}, 120, 600},
		{"math-qe", "math", "quality_enhancement", hfRef("Data-Agora/webinstruct-math-seed-data", 10000), []string{"gsm8k", "math"}, 400, 500},
		{"code-ig", "code", "instance_generation", hfRef("Data-Agora/code-seed-data", 874), []string{"mbpp", "humaneval"}, 750, 350},
		{"code-rg", "code", "response_generation", hfRef("Data-Agora/magpie-code-seed-data", 10000), []string{"mbpp", "humaneval"}, 150, 500},
		{"code-qe", "code", "quality_enhancement", hfRef("Data-Agora/conala-code-seed-data", 10000), []string{"mbpp", "humaneval"}, 250, 300},
		{"if-ig", "instruction_following", "instance_generation", hfRef("Data-Agora/general-seed-data", 503), []string{"alpacaeval2", "arenahard"}, 1500, 600},
		{"if-rg", "instruction_following", "response_generation", hfRef("Data-Agora/magpie-general-seed-data", 10000), []string{"alpacaeval2", "arenahard"}, 150, 700},
		{"if-qe", "instruction_following", "quality_enhancement", hfRef("Data-Agora/webinstruct-code-seed-data", 10000), []string{"alpacaeval2", "arenahard"}, 500, 600},
	} {
		want := &Setting{Name: tc.name, Builtin: true, Domain: tc.domain, Method: tc.method, SeedData: tc.seed,
			Instances: 10000, Prompt: Prompt{Variant: "free-form"}, Benchmarks: tc.benchmarks,
			Estimate: ItemEstimate{InputTokens: tc.in, OutputTokens: tc.out, Acceptance: 0.9}}
		if got := exp.Settings[tc.name]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, want)
		}
	}
	if len(exp.Settings) != 9 {
		t.Errorf("%d settings, want 9", len(exp.Settings))
	}
}

// TestSettingOverride: a field set on a built-in setting replaces that
// field only; the rest keep the built-in values.
func TestSettingOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte("{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mine.tmpl"), []byte("Answer {{.Instruction}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := minimal[:strings.Index(minimal, "settings:")] + `
settings: {
	"math-ig": {instances: 500, estimate: {output_tokens: 300}, prompt: variant: "json"}
	"math-rg": {seed_data: revision: "v2", benchmarks: ["gsm8k"], estimate: acceptance: 0.5}
	"code-ig": {seed_data: path: "seed.jsonl", prompt: file: "mine.tmpl", method: "response_generation"}
	"if-qe": {seed_data: {hf: "me/my-data", size: 77}}
}
`
	exp, err := LoadBytes("agora.cue", []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	s := exp.Settings["math-ig"]
	if s.Instances != 500 || s.Estimate != (ItemEstimate{InputTokens: 900, OutputTokens: 300, Acceptance: 0.9}) ||
		!reflect.DeepEqual(s.Prompt, Prompt{Variant: "json"}) || s.SeedData.HF != "Data-Agora/math-seed-data" || s.SeedData.Size != 14856 {
		t.Errorf("math-ig = %+v", s)
	}
	s = exp.Settings["math-rg"]
	wantSeed := SeedData{HF: "Data-Agora/magpie-math-seed-data", Revision: "v2", Split: "train", Size: 10000}
	if s.SeedData != wantSeed {
		t.Errorf("math-rg seed_data = %+v, want %+v", s.SeedData, wantSeed)
	}
	if s.SeedData.Ref() != "hf:Data-Agora/magpie-math-seed-data@v2#train" {
		t.Errorf("math-rg Ref() = %q", s.SeedData.Ref())
	}
	if !reflect.DeepEqual(s.Benchmarks, []string{"gsm8k"}) || s.Estimate != (ItemEstimate{InputTokens: 120, OutputTokens: 600, Acceptance: 0.5}) {
		t.Errorf("math-rg = %+v", s)
	}
	s = exp.Settings["code-ig"]
	if s.SeedData.Path != "seed.jsonl" || s.SeedData.HF != "" || s.SeedData.Size != 3 || s.SeedData.Revision != "" {
		t.Errorf("code-ig seed_data = %+v, want the local file with 3 items", s.SeedData)
	}
	// The seed file's sha256, as `sha256sum seed.jsonl` prints it.
	if got := s.SeedData.Ref(); got != "file:sha256:8ff21783e522bdd9894bf14080ab80c40e493e4c35a89d5870db7ea2dca50b96" {
		t.Errorf("code-ig Ref() = %q", got)
	}
	if s.Method != "response_generation" || s.Domain != "code" || !reflect.DeepEqual(s.Prompt, Prompt{File: "mine.tmpl", Text: "Answer {{.Instruction}}\n"}) {
		t.Errorf("code-ig = %+v", s)
	}
	s = exp.Settings["if-qe"]
	if s.SeedData != (SeedData{HF: "me/my-data", Revision: "main", Split: "train", Size: 77}) {
		t.Errorf("if-qe seed_data = %+v", s.SeedData)
	}
}

// TestCustomSetting: a setting that is not built in takes its benchmarks
// from its domain and its token assumptions from its method.
func TestCustomSetting(t *testing.T) {
	exp := load(t, minimal+`
settings: {
	mine: {domain: "code", method: "quality_enhancement", seed_data: {hf: "me/code", size: 50}}
	other: {domain: "instruction_following", method: "instance_generation", seed_data: {hf: "me/if", revision: "abc", split: "dev", size: 9}, instances: 20}
}
`)
	want := &Setting{Name: "mine", Domain: "code", Method: "quality_enhancement",
		SeedData: SeedData{HF: "me/code", Revision: "main", Split: "train", Size: 50}, Instances: 10000,
		Prompt: Prompt{Variant: "free-form"}, Benchmarks: []string{"mbpp", "humaneval"},
		Estimate: ItemEstimate{InputTokens: 400, OutputTokens: 500, Acceptance: 0.9}}
	if got := exp.Settings["mine"]; !reflect.DeepEqual(got, want) {
		t.Errorf("mine:\n got %+v\nwant %+v", got, want)
	}
	want = &Setting{Name: "other", Domain: "instruction_following", Method: "instance_generation",
		SeedData: SeedData{HF: "me/if", Revision: "abc", Split: "dev", Size: 9}, Instances: 20,
		Prompt: Prompt{Variant: "free-form"}, Benchmarks: []string{"alpacaeval2", "arenahard"},
		Estimate: ItemEstimate{InputTokens: 1000, OutputTokens: 500, Acceptance: 0.9}}
	if got := exp.Settings["other"]; !reflect.DeepEqual(got, want) {
		t.Errorf("other:\n got %+v\nwant %+v", got, want)
	}
	// The default lists are the experiment's own: changing them changes
	// neither the built-in settings nor the next load.
	exp.Settings["mine"].Benchmarks[0] = "changed"
	again := load(t, minimal+"settings: mine: {domain: \"code\", method: \"quality_enhancement\", seed_data: {hf: \"me/code\", size: 50}}\n")
	if got := again.Settings["mine"].Benchmarks; !reflect.DeepEqual(got, []string{"mbpp", "humaneval"}) {
		t.Errorf("benchmarks after a change to an earlier load = %v", got)
	}
	if got := load(t, minimal+"settings: \"code-rg\": {}\n").Settings["code-rg"].Benchmarks; !reflect.DeepEqual(got, []string{"mbpp", "humaneval"}) {
		t.Errorf("code-rg benchmarks after a change to an earlier load = %v", got)
	}
}

func TestBuiltinBenchmarks(t *testing.T) {
	exp := load(t, minimal+`
evaluation: benchmarks: {
	alpacaeval2: items: 100
	gsm8k: output_tokens: 300
	mine: {harness: "command", command: "run {{.ModelPath}}", items: 10}
	judged: {harness: "arena-hard-auto", items: 5, judge: {model: "j", price: {input: 1, output: 1}}}
}
`)
	if got, want := BuiltinBenchmarks(), []string{"alpacaeval2", "arenahard", "gsm8k", "humaneval", "math", "mbpp"}; !reflect.DeepEqual(got, want) {
		t.Errorf("BuiltinBenchmarks() = %v, want %v", got, want)
	}
	gpt4 := func(in, out int) *Judge {
		return &Judge{Model: "gpt-4-1106-preview", BaseURL: "https://api.openai.com/v1", APIKeyEnv: "OPENAI_API_KEY",
			Price: Price{Input: 10, Output: 30}, InputTokens: in, OutputTokens: out}
	}
	want := map[string]*Benchmark{
		"gsm8k":       {Name: "gsm8k", Harness: "lm-eval", Items: 1319, OutputTokens: 300, PromptTokens: 130},
		"math":        {Name: "math", Harness: "lm-eval", Items: 5000, OutputTokens: 512, PromptTokens: 120},
		"mbpp":        {Name: "mbpp", Harness: "evalplus", Items: 378, OutputTokens: 256, PromptTokens: 180},
		"humaneval":   {Name: "humaneval", Harness: "evalplus", Items: 164, OutputTokens: 256, PromptTokens: 200},
		"alpacaeval2": {Name: "alpacaeval2", Harness: "alpaca_eval", Items: 100, OutputTokens: 512, PromptTokens: 60, Judge: gpt4(1400, 1)},
		"arenahard":   {Name: "arenahard", Harness: "arena-hard-auto", Items: 500, OutputTokens: 768, PromptTokens: 500, Judge: gpt4(3600, 1000)},
		"mine":        {Name: "mine", Harness: "command", Command: "run {{.ModelPath}}", Items: 10, OutputTokens: 512, PromptTokens: 300},
		"judged": {Name: "judged", Harness: "arena-hard-auto", Items: 5, OutputTokens: 512, PromptTokens: 300,
			Judge: &Judge{Model: "j", BaseURL: "https://api.openai.com/v1", APIKeyEnv: "OPENAI_API_KEY", Price: Price{Input: 1, Output: 1}, InputTokens: 1000, OutputTokens: 200}},
	}
	if !reflect.DeepEqual(exp.Evaluation.Benchmarks, want) {
		for n, b := range exp.Evaluation.Benchmarks {
			if !reflect.DeepEqual(b, want[n]) {
				t.Errorf("%s:\n got %+v (judge %+v)\nwant %+v (judge %+v)", n, b, b.Judge, want[n], want[n].Judge)
			}
		}
		if len(exp.Evaluation.Benchmarks) != len(want) {
			t.Errorf("%d benchmarks, want %d", len(exp.Evaluation.Benchmarks), len(want))
		}
	}
	// Each load gets its own judges: changing one must not leak.
	exp.Evaluation.Benchmarks["arenahard"].Judge.Price.Input = 99
	if again := load(t, minimal); again.Evaluation.Benchmarks["arenahard"].Judge.Price.Input != 10 {
		t.Errorf("built-in judge shared between loads")
	}
}

// TestDiagnostics pins the position, path and message of a few problems.
func TestDiagnostics(t *testing.T) {
	gen := "generators: g: {provider: openai: {}, model: \"m\", price: {input: 1, output: 1}}\n"
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"typo at top level", "genrators: {}\nsettings: \"math-ig\": {}\n",
			[]string{`agora.cue:1:1: genrators: unknown field "genrators"; did you mean "generators"?`}},
		{"syntax", "generators: {\n  g: {\n}\n",
			[]string{`agora.cue:3:3: expected '}', found 'EOF'`}},
		{"missing price", "generators: g: {\n\tprovider: openai: {}\n\tmodel: \"m\"\n}\nsettings: \"math-ig\": {}\n",
			[]string{`agora.cue:1:13: generators.g: missing price: a generator reached through an API needs price: {input: …, output: …} in dollars per 1M tokens so the plan can be costed (use 0 for a free endpoint)`}},
		{"wrong type", "generators: g: {\n  provider: openai: {}\n  model: 3\n}\nsettings: \"math-ig\": {}\n",
			[]string{`agora.cue:3:10: generators.g.model: want string, got int 3`}},
		{"bad variant", gen + "settings: \"math-ig\": {prompt: variant: \"jsn\"}\n",
			[]string{`agora.cue:2:40: settings."math-ig".prompt.variant: invalid value "jsn" (want "free-form" or "json"); did you mean "json"?`}},
		{"unknown benchmark", gen + "settings: \"math-ig\": {benchmarks: [\"gsm8k\", \"gsm9k\"]}\n",
			[]string{`agora.cue:2:45: settings."math-ig".benchmarks[1]: unknown benchmark "gsm9k"; did you mean "gsm8k"? (built in: alpacaeval2, arenahard, gsm8k, humaneval, math, mbpp; declare others under evaluation.benchmarks)`}},
		{"bound", gen + "settings: \"math-ig\": {}\nbudgets: usd: -3\n",
			[]string{`agora.cue:3:15: budgets.usd: invalid value -3 (out of bound >0)`}},
		{"unknown grid names", gen + "settings: \"math-ig\": {}\ngrid: {\n\tgenerators: [\"g\", \"h\"]\n\tsettings: [\"math-gi\"]\n}\n",
			[]string{
				`agora.cue:4:20: grid.generators[1]: unknown generator "h"; did you mean "g"?`,
				`agora.cue:5:13: grid.settings[0]: unknown setting "math-gi"; did you mean "math-ig"?`,
			}},
		{"several at once, sorted", "settings: \"math-ig\": {instances: 0}\ngenerators: g: {provider: {}, model: \"\", price: {input: 1, output: 1}}\n",
			[]string{
				`agora.cue:1:34: settings."math-ig".instances: invalid value 0 (out of bound >0)`,
				`agora.cue:2:38: generators.g.model: invalid value "" (out of bound !="")`,
			}},
		{"api key pasted", "generators: g: {provider: openai: api_key_env: \"sk-abc123\", model: \"m\", price: {input: 1, output: 1}}\nsettings: \"math-ig\": {}\n",
			[]string{`agora.cue:1:35: generators.g.provider.openai.api_key_env: must be the name of an environment variable holding the key (e.g. OPENAI_API_KEY), not the key itself; the value is not shown`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := diagnose(t, tc.src)
			var got []string
			for _, d := range ds {
				got = append(got, d.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if strings.Contains(ds.Error(), "sk-abc123") {
				t.Errorf("diagnostics echo the secret")
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"abc", "abc", 0},
		{"kitten", "sitting", 3},
		{"flaw", "lawn", 2},
		{"generators", "genrators", 1},
		{"settings", "setings", 1},
		{"ab", "ba", 2},
		{"héllo", "hello", 1}, // runes, not bytes
		{"日本", "日本語", 1},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := editDistance(tc.b, tc.a); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d (symmetry)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	fields := []string{"budgets", "evaluation", "generators", "grid", "name", "settings", "student"}
	for _, tc := range []struct {
		s          string
		candidates []string
		want       string
	}{
		{"genrators", fields, "generators"},
		{"GENERATORS", fields, "generators"}, // case-insensitive distance
		{"studnet", fields, "student"},
		{"evalution", fields, "evaluation"},
		{"budget", fields, "budgets"},  // a prefix
		{"griddle", fields, "grid"},    // the candidate is a prefix of s
		{"xyz", fields, ""},            // nothing close
		{"completely-off", fields, ""}, // too far
		{"gird", fields, "grid"},       // distance 2, the minimum limit
		{"nmae", []string{"name"}, "name"},
		{"math-gi", BuiltinSettings(), "math-ig"},
		{"code_rg", BuiltinSettings(), "code-rg"},
		{"a", []string{"b", "c"}, "b"}, // ties go to the smaller name
		{"x", nil, ""},
		{"grid", []string{"grid"}, ""}, // never suggests s itself
		{"H10", []string{"A100", "H100", "H200"}, "H100"},
	} {
		if got := suggest(tc.s, tc.candidates); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
	if got := didYouMean("jsn", []string{"free-form", "json"}); got != `; did you mean "json"?` {
		t.Errorf("didYouMean = %q", got)
	}
	if got := didYouMean("zzzzzz", []string{"free-form", "json"}); got != "" {
		t.Errorf("didYouMean = %q, want none", got)
	}
}
