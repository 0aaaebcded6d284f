package spec

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"cuelang.org/go/cue"

	"github.com/agorabench/agora/prompts"
)

// sel builds a selector path from labels; ints become list indexes.
func sel(labels ...any) []cue.Selector {
	out := make([]cue.Selector, len(labels))
	for i, l := range labels {
		switch l := l.(type) {
		case int:
			out[i] = cue.Index(l)
		case string:
			out[i] = cue.Str(l)
		}
	}
	return out
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkKeyEnv makes sure an api_key_env names a variable. The value is
// never echoed: a user who pasted the key itself must not see it in logs.
func (l *loader) checkKeyEnv(v string, sels []cue.Selector) {
	if envNameRE.MatchString(v) && !looksLikeSecret(v) {
		return
	}
	l.at(sels, "must be the name of an environment variable holding the key (e.g. OPENAI_API_KEY), not the key itself; the value is not shown")
}

func looksLikeSecret(v string) bool {
	return strings.HasPrefix(v, "sk-") || strings.HasPrefix(v, "sk_") || len(v) > 64
}

// knownGPUs are dense bf16 peak TFLOPS per GPU, from the vendors' data
// sheets (without sparsity).
var knownGPUs = map[string]float64{
	"H100-80GB": 989,
	"H100":      989,
	"H100-PCIe": 756,
	"H200":      989,
	"GH200":     989,
	"B200":      2250,
	"A100-80GB": 312,
	"A100-40GB": 312,
	"A100":      312,
	"L40S":      362,
	"L4":        121,
	"A10G":      70,
	"MI300X":    1307,
}

// PeakTFLOPS returns the GPU's dense bf16 peak, or 0 when agora does not
// know it.
func PeakTFLOPS(h Hardware) float64 {
	if h.PeakTFLOPS > 0 {
		return h.PeakTFLOPS
	}
	return knownGPUs[h.GPU]
}

// complete applies built-ins and defaults that CUE cannot express and
// checks references across the spec.
func (l *loader) complete(exp *Experiment) {
	if exp.Generators == nil {
		exp.Generators = map[string]*Generator{}
	}
	if exp.Settings == nil {
		exp.Settings = map[string]*Setting{}
	}
	if len(exp.Generators) == 0 {
		l.add(l.posOf(nil), "generators", "no generators declared: add at least one under generators")
	}
	if len(exp.Settings) == 0 {
		l.add(l.posOf(nil), "settings", "no settings declared: add one, e.g. settings: \"math-ig\": {} (built in: %s)", strings.Join(BuiltinSettings(), ", "))
	}
	for _, name := range sortedKeys(exp.Generators) {
		l.completeGenerator(name, exp.Generators[name])
	}
	l.completeBenchmarks(exp)
	for _, name := range sortedKeys(exp.Settings) {
		l.completeSetting(exp, name)
	}
	l.checkGrid(exp)
	if len(l.diags) == 0 {
		l.checkGridSelects(exp)
	}
	if len(l.diags) == 0 {
		l.checkPlanSize(exp)
	}
	l.checkStudent(exp)
	l.checkRunnable(exp)
	l.checkProblemSolving(exp)
	l.completeMetrics(exp)
	l.completeOffline(exp)
	for _, name := range sortedKeys(exp.Budgets.PerGenerator) {
		if _, ok := exp.Generators[name]; !ok {
			l.at(sel("budgets", "per_generator", name), "unknown generator %q%s", name, didYouMean(name, sortedKeys(exp.Generators)))
		}
	}
}

func (l *loader) completeGenerator(name string, g *Generator) {
	g.Name = name
	p := sel("generators", name, "provider")
	var set []string
	for _, k := range []struct {
		name string
		set  bool
	}{{"openai", g.Provider.OpenAI != nil}, {"vllm", g.Provider.VLLM != nil}, {"plugin", g.Provider.Plugin != ""}} {
		if k.set {
			set = append(set, k.name)
		}
	}
	switch len(set) {
	case 0:
		l.at(p, "set one of openai, vllm or plugin")
		return
	case 1:
	default:
		l.at(p, "set only one of openai, vllm or plugin, not %s", strings.Join(set, " and "))
		return
	}
	if g.Provider.SHA256 != "" && g.Provider.Plugin == "" {
		l.at(append(p, cue.Str("sha256")), "sha256 pins a plugin binary; this generator has no plugin")
	}
	if o := g.Provider.OpenAI; o != nil {
		l.checkKeyEnv(o.APIKeyEnv, append(p, cue.Str("openai"), cue.Str("api_key_env")))
		if u, err := url.Parse(o.BaseURL); err == nil && u.User != nil {
			l.at(append(p, cue.Str("openai"), cue.Str("base_url")), "base_url must not carry credentials: put the key in the environment variable named by api_key_env (the URL is not shown)")
		}
		if o.Batch.On {
			l.checkBatch(o.Batch, append(p, cue.Str("openai"), cue.Str("batch")), "OpenAI")
		}
	}
	if b := g.Provider.Batch; b.On {
		bp := append(p, cue.Str("batch"))
		switch {
		case g.Provider.OpenAI != nil:
			l.at(bp, "provider.batch is for plugin generators: an OpenAI-compatible generator sets openai.batch")
		case g.Provider.VLLM != nil:
			l.at(bp, "provider.batch is for plugin generators: a vllm generator sets vllm.batch (offline inference)")
		default:
			l.checkBatch(b, bp, "a plugin")
		}
	}
	// A plugin generator without a price takes the one its plugin
	// advertises (cli's pluginPrices), or fails there.
	if g.Provider.VLLM == nil && g.Provider.Plugin == "" && g.Price == nil {
		l.at(sel("generators", name), "missing price: a generator reached through an API needs price: {input: …, output: …} in dollars per 1M tokens so the plan can be costed (use 0 for a free endpoint)")
	}
	if v := g.Provider.VLLM; v != nil && v.GPUs < v.TensorParallel {
		l.at(append(p, cue.Str("vllm"), cue.Str("gpus")), "gpus (%d) is less than tensor_parallel (%d)", v.GPUs, v.TensorParallel)
	}
	if v := g.Provider.VLLM; v != nil {
		if d, err := time.ParseDuration(v.StartTimeout); err != nil || d <= 0 {
			l.at(append(p, cue.Str("vllm"), cue.Str("start_timeout")), "start_timeout %q is not a positive duration such as \"90s\" or \"20m\"", v.StartTimeout)
		}
		if v.Slurm != nil && v.Slurm.Container != "" {
			l.at(append(p, cue.Str("vllm"), cue.Str("slurm"), cue.Str("container")), "a container is not supported for vLLM server jobs: the job runs vllm from its environment (use modules, or a vllm on the nodes' PATH)")
		}
		if g.Limits.Concurrency == 0 {
			g.Limits.Concurrency = VLLMConcurrencyPerReplica * max(v.Replicas, 1)
			if v.Batch {
				g.Limits.Concurrency = VLLMBatchConcurrency
			}
		}
	}
}

// checkBatch checks the batch block at bp; who names the provider whose
// limits bound it (a plugin's own limits apply when it starts).
func (l *loader) checkBatch(b Batch, bp []cue.Selector, who string) {
	at := func(field string) []cue.Selector { return append(append([]cue.Selector(nil), bp...), cue.Str(field)) }
	maxReq, maxBytes := BatchMaxRequests, int64(BatchMaxBytes)
	if who != "OpenAI" {
		maxReq, maxBytes = BatchMaxRequestsAny, BatchMaxBytesAny
	}
	if !batchWindowRE.MatchString(b.Window) {
		l.at(at("window"), "window %q is not a number of hours such as \"24h\" (OpenAI and Anthropic take 24h)", b.Window)
	}
	if b.MaxRequests < 1 || b.MaxRequests > maxReq {
		l.at(at("max_requests"), "max_requests %d is not between 1 and %d, the requests %s takes in one batch", b.MaxRequests, maxReq, who)
	}
	if b.MaxBytes < 1024 || b.MaxBytes > maxBytes {
		if who == "OpenAI" {
			l.at(at("max_bytes"), "max_bytes %d is not between 1024 and %d, the size of a batch's input file OpenAI takes (200 MB)", b.MaxBytes, maxBytes)
		} else {
			l.at(at("max_bytes"), "max_bytes %d is not between 1024 and %d, the size of a batch a plugin may take (Anthropic: 256 MB)", b.MaxBytes, maxBytes)
		}
	}
	if b.MaxEnqueuedTokens < 0 {
		l.at(at("max_enqueued_tokens"), "max_enqueued_tokens %d is not a positive number of tokens", b.MaxEnqueuedTokens)
	}
	if d, err := time.ParseDuration(b.Poll); err != nil || d <= 0 {
		l.at(at("poll"), "poll %q is not a positive duration such as \"30s\" or \"5m\"", b.Poll)
	}
	if d, err := time.ParseDuration(b.SyncAfter); b.SyncAfter != "" && (err != nil || d <= 0) {
		l.at(at("sync_after"), "sync_after %q is not a positive duration such as \"30h\"", b.SyncAfter)
	}
}

// batchWindowRE is a completion window: a whole number of hours.
var batchWindowRE = regexp.MustCompile(`^[1-9][0-9]*h$`)

func (l *loader) completeBenchmarks(exp *Experiment) {
	ev := &exp.Evaluation
	if ev.Benchmarks == nil {
		ev.Benchmarks = map[string]*Benchmark{}
	}
	for _, name := range BuiltinBenchmarks() {
		b := builtinBenchmarks[name]
		user, ok := ev.Benchmarks[name]
		if !ok {
			user = &Benchmark{}
			ev.Benchmarks[name] = user
		}
		if user.Harness == "" {
			user.Harness = b.Harness
		}
		if user.Items == 0 {
			user.Items = b.Items
		}
		if user.OutputTokens == 0 {
			user.OutputTokens = b.OutputTokens
		}
		if user.PromptTokens == 0 {
			user.PromptTokens = b.PromptTokens
		}
		if user.Judge == nil && builtinJudges[name] != nil {
			user.Judge = builtinJudges[name]()
		}
	}
	for _, name := range sortedKeys(ev.Benchmarks) {
		b := ev.Benchmarks[name]
		b.Name = name
		at := sel("evaluation", "benchmarks", name)
		if b.Harness == "" {
			l.at(at, "benchmark %q has no harness: set harness to \"lm-eval\", \"evalplus\", \"alpaca_eval\", \"arena-hard-auto\" or \"command\"", name)
			continue
		}
		if b.Harness == HarnessCommand && b.Command == "" {
			l.at(at, "harness \"command\" needs command: the evaluation command template")
		}
		if b.Items == 0 {
			l.at(at, "missing items: the number of test problems of %q, needed for the estimate", name)
		}
		if b.OutputTokens == 0 {
			b.OutputTokens = 512
		}
		if b.PromptTokens == 0 {
			b.PromptTokens = defaultPromptTokens
		}
		if harnessNeedsJudge[b.Harness] && b.Judge == nil {
			l.at(at, "harness %q scores with an LLM judge: set judge: {model, price}", b.Harness)
		}
		if j := b.Judge; j != nil {
			l.checkKeyEnv(j.APIKeyEnv, append(at, cue.Str("judge"), cue.Str("api_key_env")))
			if j.InputTokens == 0 {
				j.InputTokens = defaultJudgeInput
			}
			if j.OutputTokens == 0 {
				j.OutputTokens = defaultJudgeOutput
			}
		}
	}
}

func (l *loader) completeSetting(exp *Experiment, name string) {
	user := exp.Settings[name]
	at := sel("settings", name)
	s := user
	if b, ok := builtinSetting(name); ok {
		s = b
		if user.Domain != "" {
			s.Domain = user.Domain
		}
		if user.Method != "" {
			s.Method = user.Method
		}
		switch sd := user.SeedData; {
		case sd.HF != "" || sd.Path != "":
			// Other seed data: the built-in's revision, split and size
			// do not apply to it.
			s.SeedData = sd
		case sd != (SeedData{}):
			// The built-in's dataset at another revision, split or size.
			if sd.Revision != "" {
				s.SeedData.Revision = sd.Revision
			}
			if sd.Split != "" {
				s.SeedData.Split = sd.Split
			}
			if sd.Size != 0 {
				s.SeedData.Size = sd.Size
			}
		}
		if user.Instances != 0 {
			s.Instances = user.Instances
		}
		if !user.Prompt.isZero() {
			s.Prompt = user.Prompt
		}
		if user.Benchmarks != nil {
			s.Benchmarks = user.Benchmarks
		}
		if user.Estimate.InputTokens != 0 {
			s.Estimate.InputTokens = user.Estimate.InputTokens
		}
		if user.Estimate.OutputTokens != 0 {
			s.Estimate.OutputTokens = user.Estimate.OutputTokens
		}
		if user.Estimate.Acceptance != 0 {
			s.Estimate.Acceptance = user.Estimate.Acceptance
		}
		exp.Settings[name] = s
	} else {
		var missing []string
		if s.Domain == "" {
			missing = append(missing, "domain")
		}
		if s.Method == "" {
			missing = append(missing, "method")
		}
		if s.SeedData == (SeedData{}) {
			missing = append(missing, "seed_data")
		}
		if len(missing) > 0 {
			hint := ""
			if m := suggest(name, BuiltinSettings()); m != "" {
				hint = fmt.Sprintf("; did you mean the built-in %q?", m)
			}
			l.at(at, "%q is not a built-in setting, so it needs %s%s", name, joinAnd(missing), hint)
			return
		}
		if s.Benchmarks == nil {
			// A copy: the experiment must not share the built-in lists.
			s.Benchmarks = slices.Clone(map[string][]string{DomainMath: mathBenchmarks, DomainCode: codeBenchmarks, DomainInstruction: ifBenchmarks}[s.Domain])
		}
	}
	s.Name = name
	if s.Instances == 0 {
		s.Instances = DefaultInstances
	}
	if s.Estimate.InputTokens == 0 {
		s.Estimate.InputTokens = defaultInputTokens[s.Method]
	}
	if s.Estimate.OutputTokens == 0 {
		s.Estimate.OutputTokens = defaultOutputTokens[s.Method]
	}
	if s.Estimate.Acceptance == 0 {
		s.Estimate.Acceptance = DefaultAcceptance
	}
	if s.Prompt.File == "" && s.Prompt.Variant == "" {
		s.Prompt.Variant = VariantFreeForm
	}
	if s.Prompt.File != "" && (s.Prompt.Variant != "" || s.Prompt.Builtin != "") {
		l.at(append(at, cue.Str("prompt")), "set prompt.file or a built-in meta-prompt (builtin, variant), not both")
	}
	if b := s.Prompt.Builtin; b != "" {
		dm := strings.SplitN(b, ".", 2)
		if _, err := prompts.Builtin(dm[0], dm[1], VariantFreeForm); err != nil {
			var names []string
			for _, n := range prompts.Names() {
				if strings.HasSuffix(n, "."+VariantFreeForm) {
					names = append(names, strings.TrimSuffix(n, "."+VariantFreeForm))
				}
			}
			l.at(append(at, cue.Str("prompt"), cue.Str("builtin")), "unknown built-in meta-prompt %q%s", b, didYouMean(b, names))
		}
	}
	l.checkPromptOptions(s, append(at, cue.Str("prompt")))
	if s.Prompt.File == "" {
		if t, err := MetaPrompt(s, s.Prompt.Variant); err == nil {
			l.checkDraws(s, t, append(at, cue.Str("prompt")))
		}
	}
	l.completeSeed(s, append(at, cue.Str("seed_data")))
	if s.Prompt.File != "" {
		l.readPrompt(s, append(at, cue.Str("prompt"), cue.Str("file")))
	}
	if len(s.Benchmarks) == 0 {
		l.at(append(at, cue.Str("benchmarks")), "no benchmarks: a setting's students must be evaluated on at least one")
	}
	for i, b := range s.Benchmarks {
		if _, ok := exp.Evaluation.Benchmarks[b]; !ok {
			l.at(append(at, cue.Str("benchmarks"), cue.Index(i)), "unknown benchmark %q%s (built in: %s; declare others under evaluation.benchmarks)",
				b, didYouMean(b, sortedKeys(exp.Evaluation.Benchmarks)), strings.Join(BuiltinBenchmarks(), ", "))
		}
	}
}

func (l *loader) completeSeed(s *Setting, at []cue.Selector) {
	sd := &s.SeedData
	switch {
	case sd.HF != "" && sd.Path != "":
		l.at(at, "set seed_data.hf or seed_data.path, not both")
		return
	case sd.HF == "" && sd.Path == "":
		l.at(at, "seed_data needs hf (a Hugging Face dataset id) or path (a local JSONL, JSON or Parquet file)")
		return
	case sd.HF != "":
		if sd.Revision == "" {
			sd.Revision = defaultSeedRev
		}
		if sd.Split == "" {
			sd.Split = defaultSeedSplit
		}
		if sd.Size == 0 {
			l.at(at, "missing size: the number of seed items of %s, needed for the estimate", sd.HF)
		}
		return
	}
	if sd.Revision != "" || sd.Split != "" {
		l.at(at, "revision and split apply to a Hugging Face dataset, not to a local path")
	}
	full := sd.Path
	if !filepath.IsAbs(full) {
		full = filepath.Join(l.dir, full)
	}
	ext := strings.ToLower(filepath.Ext(full))
	if ext != ".jsonl" && ext != ".json" && ext != ".parquet" {
		l.at(append(at, cue.Str("path")), "unsupported seed file %q: use .jsonl, .json or .parquet", sd.Path)
		return
	}
	f, err := os.Open(full)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			l.at(append(at, cue.Str("path")), "seed file %s does not exist", full)
		} else {
			l.at(append(at, cue.Str("path")), "read seed file: %v", err)
		}
		return
	}
	defer f.Close()
	h := sha256.New()
	var count int
	var cerr error
	switch ext {
	case ".jsonl":
		count, cerr = countJSONL(io.TeeReader(f, h))
	case ".json":
		count, cerr = countJSONArray(io.TeeReader(f, h))
	default:
		_, cerr = io.Copy(h, f)
		count = -1
	}
	if cerr != nil {
		l.at(append(at, cue.Str("path")), "seed file %s: %v", full, cerr)
		return
	}
	sd.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	switch {
	case count >= 0 && sd.Size == 0:
		sd.Size = count
	case count < 0 && sd.Size == 0:
		l.at(at, "missing size: the number of seed items in %s, needed for the estimate", sd.Path)
	}
	if sd.Size == 0 {
		l.at(append(at, cue.Str("path")), "seed file %s has no items", sd.Path)
	}
}

// countJSONL counts the non-blank lines of a JSONL stream and checks that
// each is a JSON object.
func countJSONL(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	n, line := 0, 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if b[0] != '{' || !json.Valid(b) {
			return 0, fmt.Errorf("line %d is not a JSON object", line)
		}
		n++
	}
	return n, sc.Err()
}

// countJSONArray counts the elements of a JSON array.
func countJSONArray(r io.Reader) (int, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return 0, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return 0, fmt.Errorf("want a JSON array of objects")
	}
	n := 0
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return 0, fmt.Errorf("item %d: %w", n, err)
		}
		n++
	}
	return n, nil
}

func (l *loader) readPrompt(s *Setting, at []cue.Selector) {
	full := s.Prompt.File
	if !filepath.IsAbs(full) {
		full = filepath.Join(l.dir, full)
	}
	b, err := os.ReadFile(full)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			l.at(at, "prompt file %s does not exist", full)
		} else {
			l.at(at, "read prompt file: %v", err)
		}
		return
	}
	t, err := prompts.Parse(s.Prompt.File, string(b))
	if err != nil {
		l.at(at, "%s", strings.TrimPrefix(err.Error(), "prompts: "))
		return
	}
	need := map[string][]string{MethodInstance: {"Demonstrations"}, MethodResponse: {"Instruction"}, MethodQuality: {"Instruction", "Response"}}[s.Method]
	for _, f := range need {
		if !slices.Contains(t.Fields(), f) {
			l.at(at, "%s: method %s needs {{.%s}} in its meta-prompt", s.Prompt.File, s.Method, f)
		}
	}
	l.checkFilePromptOptions(s, t, at)
	s.Prompt.Text = string(b)
}

func (l *loader) checkGrid(exp *Experiment) {
	g := &exp.Grid
	gens, sets := sortedKeys(exp.Generators), sortedKeys(exp.Settings)
	checkRefs := func(field string, names []string, known map[string]bool, all []string, kind string) {
		seen := map[string]bool{}
		for i, n := range names {
			if !known[n] {
				l.at(sel("grid", field, i), "unknown %s %q%s", kind, n, didYouMean(n, all))
			}
			if seen[n] {
				l.at(sel("grid", field, i), "%s %q is listed twice", kind, n)
			}
			seen[n] = true
		}
	}
	genSet, setSet := setOf(gens), setOf(sets)
	checkRefs("generators", g.Generators, genSet, gens, "generator")
	checkRefs("settings", g.Settings, setSet, sets, "setting")
	for _, list := range []struct {
		field string
		cells []Cell
	}{{"exclude", g.Exclude}, {"include", g.Include}} {
		for i, c := range list.cells {
			if c.Generator != "" && !genSet[c.Generator] {
				l.at(sel("grid", list.field, i, "generator"), "unknown generator %q%s", c.Generator, didYouMean(c.Generator, gens))
			}
			if c.Setting != "" && !setSet[c.Setting] {
				l.at(sel("grid", list.field, i, "setting"), "unknown setting %q%s", c.Setting, didYouMean(c.Setting, sets))
			}
			if list.field == "include" && (c.Generator == "" || c.Setting == "") {
				l.at(sel("grid", list.field, i), "an included cell needs both generator and setting")
			}
		}
	}
	// Sets, not pairwise comparisons: a long list must not cost its square.
	seenN := map[int]bool{}
	for i, n := range g.Instances {
		if seenN[n] {
			l.at(sel("grid", "instances", i), "instance count %d is listed twice", n)
		}
		seenN[n] = true
	}
	seenV := map[string]bool{}
	for i, v := range g.Variants {
		if seenV[v] {
			l.at(sel("grid", "variants", i), "variant %q is listed twice", v)
		}
		seenV[v] = true
	}
	seenS := map[int]bool{}
	for i, n := range g.Seeds {
		if seenS[n] {
			l.at(sel("grid", "seeds", i), "seed %d is listed twice", n)
		}
		seenS[n] = true
	}
}

// checkGridSelects reports a grid whose exclude patterns remove every cell
// it would otherwise select, at grid.exclude.
func (l *loader) checkGridSelects(exp *Experiment) {
	if len(exp.Grid.Exclude) == 0 {
		return
	}
	cells, product := exp.expandGrid()
	if len(cells) > 0 {
		return
	}
	what := fmt.Sprintf("all %d cells", product)
	if product == 1 {
		what = "its only cell"
	}
	l.at(sel("grid", "exclude"), "the grid selects no cells: grid.exclude removes %s", what)
}

func (l *loader) checkStudent(exp *Experiment) {
	st := &exp.Student
	if st.Trainer == TrainerCommand && st.Command == "" {
		l.at(sel("student", "trainer"), "trainer \"command\" needs student.command: the training command template")
	}
	if st.Trainer != TrainerCommand && st.Command != "" {
		l.at(sel("student", "command"), "command is used only with trainer: \"command\" (trainer is %q)", st.Trainer)
	}
	if PeakTFLOPS(st.Hardware) <= 0 {
		const fix = "set hardware.peak_tflops (dense bf16 TFLOPS) so training time can be estimated"
		if m := suggest(st.Hardware.GPU, sortedKeys(knownGPUs)); m != "" {
			l.at(sel("student", "hardware", "gpu"), "unknown GPU %q; did you mean %q? Or %s", st.Hardware.GPU, m, fix)
		} else {
			l.at(sel("student", "hardware", "gpu"), "unknown GPU %q: %s", st.Hardware.GPU, fix)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}
