package spec

import "sort"

// builtinSetting returns a fresh copy of the AgoraBench setting called
// name, and whether there is one.
func builtinSetting(name string) (*Setting, bool) {
	b, ok := builtinSettings[name]
	if !ok {
		return nil, false
	}
	s := b
	s.Name = name
	s.Builtin = true
	s.Benchmarks = append([]string(nil), b.Benchmarks...)
	return &s, true
}

// BuiltinSetting returns a copy of the AgoraBench setting called name
// (domain, method, seed data, benchmarks), and whether there is one.
func BuiltinSetting(name string) (Setting, bool) {
	s, ok := builtinSetting(name)
	if !ok {
		return Setting{}, false
	}
	return *s, true
}

// BuiltinSettings lists the names of the nine AgoraBench settings in the
// paper's order: math, code, instruction following; each as instance
// generation, response generation, quality enhancement.
func BuiltinSettings() []string {
	return []string{"math-ig", "math-rg", "math-qe", "code-ig", "code-rg", "code-qe", "if-ig", "if-rg", "if-qe"}
}

// BuiltinBenchmarks lists the benchmarks agora knows how to run.
func BuiltinBenchmarks() []string {
	names := make([]string, 0, len(builtinBenchmarks))
	for n := range builtinBenchmarks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func hf(id string, size int) SeedData {
	return SeedData{HF: id, Revision: defaultSeedRev, Split: defaultSeedSplit, Size: size}
}

var (
	mathBenchmarks = []string{"gsm8k", "math"}
	codeBenchmarks = []string{"mbpp", "humaneval"}
	ifBenchmarks   = []string{"alpacaeval2", "arenahard"}
)

// builtinSettings are the nine AgoraBench settings. Seed sizes are the
// paper's. The Hub ids follow the Data-Agora organisation's naming;
// Data-Agora/math-seed-data (the protocol notes) and code-seed-data (its
// hub page) are confirmed, the others could not be checked from here (no
// hub access): verify them, and pin a revision, before a paid run
// (docs/apply.md). The per-item token assumptions are agora's own planning
// heuristics (docs/estimates.md): tokens of seed material per request
// (three demonstrations for instance generation, the instruction for
// response generation, the pair for quality enhancement) and tokens of one
// completion.
var builtinSettings = map[string]Setting{
	"math-ig": {Domain: DomainMath, Method: MethodInstance, SeedData: hf("Data-Agora/math-seed-data", 14856),
		Benchmarks: mathBenchmarks, Estimate: ItemEstimate{InputTokens: 900, OutputTokens: 450}},
	"math-rg": {Domain: DomainMath, Method: MethodResponse, SeedData: hf("Data-Agora/magpie-math-seed-data", 10000),
		Benchmarks: mathBenchmarks, Estimate: ItemEstimate{InputTokens: 120, OutputTokens: 600}},
	"math-qe": {Domain: DomainMath, Method: MethodQuality, SeedData: hf("Data-Agora/webinstruct-math-seed-data", 10000),
		Benchmarks: mathBenchmarks, Estimate: ItemEstimate{InputTokens: 400, OutputTokens: 500}},
	"code-ig": {Domain: DomainCode, Method: MethodInstance, SeedData: hf("Data-Agora/code-seed-data", 874),
		Benchmarks: codeBenchmarks, Estimate: ItemEstimate{InputTokens: 750, OutputTokens: 350}},
	"code-rg": {Domain: DomainCode, Method: MethodResponse, SeedData: hf("Data-Agora/magpie-code-seed-data", 10000),
		Benchmarks: codeBenchmarks, Estimate: ItemEstimate{InputTokens: 150, OutputTokens: 500}},
	"code-qe": {Domain: DomainCode, Method: MethodQuality, SeedData: hf("Data-Agora/conala-code-seed-data", 10000),
		Benchmarks: codeBenchmarks, Estimate: ItemEstimate{InputTokens: 250, OutputTokens: 300}},
	"if-ig": {Domain: DomainInstruction, Method: MethodInstance, SeedData: hf("Data-Agora/general-seed-data", 503),
		Benchmarks: ifBenchmarks, Estimate: ItemEstimate{InputTokens: 1500, OutputTokens: 600}},
	"if-rg": {Domain: DomainInstruction, Method: MethodResponse, SeedData: hf("Data-Agora/magpie-general-seed-data", 10000),
		Benchmarks: ifBenchmarks, Estimate: ItemEstimate{InputTokens: 150, OutputTokens: 700}},
	"if-qe": {Domain: DomainInstruction, Method: MethodQuality, SeedData: hf("Data-Agora/webinstruct-code-seed-data", 10000),
		Benchmarks: ifBenchmarks, Estimate: ItemEstimate{InputTokens: 500, OutputTokens: 600}},
}

// defaultOutputTokens is the completion-length assumption for a setting
// that is not built in, by method.
var defaultOutputTokens = map[string]int{MethodInstance: 500, MethodResponse: 600, MethodQuality: 500}

// defaultInputTokens is the seed-material assumption for a setting that is
// not built in, by method.
var defaultInputTokens = map[string]int{MethodInstance: 1000, MethodResponse: 150, MethodQuality: 400}

// gpt4Turbo is the judge the public AlpacaEval 2.0 and Arena-Hard
// configurations use, at its list price.
func gpt4Turbo(in, out int) *Judge {
	return &Judge{Model: "gpt-4-1106-preview", BaseURL: "https://api.openai.com/v1", APIKeyEnv: "OPENAI_API_KEY",
		Price: Price{Input: 10, Output: 30}, InputTokens: in, OutputTokens: out}
}

// builtinBenchmarks are the six AgoraBench benchmarks: their harness, test
// set size, the expected answer length used for GPU-hour estimates, and
// the expected prompt of one problem (solve steps' token estimates: the
// zero-shot chat prompt of the harness, rounded up).
// Judge token counts are per evaluated item (Arena-Hard judges each answer
// twice, once in each order).
var builtinBenchmarks = map[string]Benchmark{
	"gsm8k":       {Harness: HarnessLMEval, Items: 1319, OutputTokens: 256, PromptTokens: 130},
	"math":        {Harness: HarnessLMEval, Items: 5000, OutputTokens: 512, PromptTokens: 120},
	"mbpp":        {Harness: HarnessEvalPlus, Items: 378, OutputTokens: 256, PromptTokens: 180},
	"humaneval":   {Harness: HarnessEvalPlus, Items: 164, OutputTokens: 256, PromptTokens: 200},
	"alpacaeval2": {Harness: HarnessAlpacaEval, Items: 805, OutputTokens: 512, PromptTokens: 60},
	"arenahard":   {Harness: HarnessArenaHard, Items: 500, OutputTokens: 768, PromptTokens: 500},
}

// defaultPromptTokens is the prompt assumption of a benchmark that is not
// built in.
const defaultPromptTokens = 300

// builtinJudges are the default judges of the judged benchmarks.
var builtinJudges = map[string]func() *Judge{
	"alpacaeval2": func() *Judge { return gpt4Turbo(1400, 1) },
	"arenahard":   func() *Judge { return gpt4Turbo(3600, 1000) },
}

// harnessNeedsJudge lists the harnesses whose score comes from an LLM judge.
var harnessNeedsJudge = map[string]bool{HarnessAlpacaEval: true, HarnessArenaHard: true}
