package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"cuelang.org/go/cue"

	"github.com/agorabench/agora/metrics"
)

// Metrics are the intrinsic measures computed for every generated data set
// (docs/metrics.md); each is optional.
type Metrics struct {
	Judge      *JudgeMetric      `json:"judge,omitempty"`
	Judge2     *JudgeMetric      `json:"judge_2,omitempty"`
	Diversity  *DiversityMetric  `json:"diversity,omitempty"`
	Perplexity *PerplexityMetric `json:"perplexity,omitempty"`
	Reward     *RewardMetric     `json:"reward,omitempty"`
}

// Judge aspects.
const (
	AspectDifficulty = "instruction_difficulty"
	AspectQuality    = "response_quality"
)

// The names of the models metrics declare in place (not under
// generators). A '/' cannot occur in a generator's name, so they never
// collide with one.
const (
	JudgeModelName      = "metrics/judge"
	Judge2ModelName     = "metrics/judge_2"
	DiversityModelName  = "metrics/diversity"
	PerplexityModelName = "metrics/perplexity"
)

// JudgeMetric scores instructions and responses with an LLM judge.
type JudgeMetric struct {
	Generator    string        `json:"generator,omitempty"`
	Provider     *Provider     `json:"provider,omitempty"`
	Model        string        `json:"model,omitempty"`
	Price        *Price        `json:"price,omitempty"`
	Limits       *Limits       `json:"limits,omitempty"`
	Sampling     JudgeSampling `json:"sampling"`
	Aspects      []string      `json:"aspects"`
	Sample       int           `json:"sample,omitempty"`
	Seed         int           `json:"seed"`
	Attempts     int           `json:"attempts"`
	OutputTokens int           `json:"output_tokens"`
	Template     string        `json:"template"`
	TemplateFile string        `json:"template_file,omitempty"`
	System       string        `json:"system"`

	// Gen is the judge: the named generator or the one declared in place
	// (named JudgeModelName or Judge2ModelName), filled in by Load.
	Gen *Generator `json:"-"`
	// Suffix is what the judge's features, step addresses and spec field
	// add to "judge": "" for judge, "_2" for judge_2 (set by Load).
	Suffix string `json:"-"`
	// Prompt renders the judge's messages: the built-in template or the
	// file's, read and checked by Load.
	Prompt *metrics.JudgeTemplate `json:"-"`
}

// How a judge template's system message is sent (JudgeMetric.System).
const (
	SystemMessage = "message"
	SystemPrepend = "prepend"
)

// Judges lists the judges declared, judge before judge_2.
func (m *Metrics) Judges() []*JudgeMetric {
	if m == nil {
		return nil
	}
	var out []*JudgeMetric
	for _, j := range []*JudgeMetric{m.Judge, m.Judge2} {
		if j != nil {
			out = append(out, j)
		}
	}
	return out
}

// JudgeBySuffix is the judge whose Suffix is suffix, nil if none.
func (m *Metrics) JudgeBySuffix(suffix string) *JudgeMetric {
	for _, j := range m.Judges() {
		if j.Suffix == suffix {
			return j
		}
	}
	return nil
}

// JudgeSampling is the decoding of a judge declared in place.
type JudgeSampling struct {
	Temperature float64        `json:"temperature"`
	TopP        *float64       `json:"top_p,omitempty"`
	MaxTokens   int            `json:"max_tokens"`
	Seed        *int           `json:"seed,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"`
}

// DiversityMetric embeds instructions and responses.
type DiversityMetric struct {
	Generator string    `json:"generator,omitempty"`
	Provider  *Provider `json:"provider,omitempty"`
	Model     string    `json:"model,omitempty"`
	Price     *Price    `json:"price,omitempty"`
	Limits    *Limits   `json:"limits,omitempty"`
	Sample    int       `json:"sample"`
	Seed      int       `json:"seed"`
	Batch     int       `json:"batch"`

	// Gen is the embedding model, filled in by Load.
	Gen *Generator `json:"-"`
}

// PerplexityMetric scores responses under a base model.
type PerplexityMetric struct {
	Generator            string    `json:"generator,omitempty"`
	Provider             *Provider `json:"provider,omitempty"`
	Model                string    `json:"model,omitempty"`
	Price                *Price    `json:"price,omitempty"`
	Limits               *Limits   `json:"limits,omitempty"`
	Sample               int       `json:"sample"`
	Seed                 int       `json:"seed"`
	ThroughputTokensPerS float64   `json:"throughput_tokens_per_s"`

	// Gen is the server of the base model, filled in by Load.
	Gen *Generator `json:"-"`
}

// RewardMetric runs a reward model over a data set as a job.
type RewardMetric struct {
	Model               string  `json:"model"`
	Command             string  `json:"command,omitempty"`
	Executor            string  `json:"executor"`
	Slurm               *Slurm  `json:"slurm,omitempty"`
	GPUs                int     `json:"gpus"`
	TimeLimit           string  `json:"time_limit"`
	Sample              int     `json:"sample,omitempty"`
	Seed                int     `json:"seed"`
	ThroughputItemsPerS float64 `json:"throughput_items_per_s"`
}

// completeMetrics resolves each metric's model to a generator and checks
// what CUE cannot.
func (l *loader) completeMetrics(exp *Experiment) {
	m := exp.Metrics
	if m == nil {
		return
	}
	for _, jd := range []struct {
		j            *JudgeMetric
		field, model string
	}{{m.Judge, "judge", JudgeModelName}, {m.Judge2, "judge_2", Judge2ModelName}} {
		j := jd.j
		if j == nil {
			continue
		}
		j.Suffix = strings.TrimPrefix(jd.field, "judge")
		at := sel("metrics", jd.field)
		samp := Sampling{Temperature: &j.Sampling.Temperature, TopP: j.Sampling.TopP, MaxTokens: j.Sampling.MaxTokens,
			Seed: j.Sampling.Seed, Extra: j.Sampling.Extra}
		j.Gen = l.metricModel(exp, at, jd.model, j.Generator, j.Provider, j.Model, j.Price, j.Limits, samp, true)
		l.judgeTemplate(j, at)
		if j.Generator != "" && l.user.LookupPath(cue.MakePath(append(at, cue.Str("sampling"))...)).Exists() {
			l.at(append(at, cue.Str("sampling")), "sampling applies to a judge declared in place; judge %q samples as its generator does", j.Generator)
		}
		seen := map[string]bool{}
		for i, a := range j.Aspects {
			if seen[a] {
				l.at(append(at, cue.Str("aspects"), cue.Index(i)), "aspect %q is listed twice", a)
			}
			seen[a] = true
		}
		if len(j.Aspects) == 0 {
			l.at(append(at, cue.Str("aspects")), "no aspects: list instruction_difficulty, response_quality or both")
		}
	}
	if j, j2 := m.Judge, m.Judge2; j != nil && j2 != nil && j.Gen != nil && j2.Gen != nil && j.Prompt != nil && j2.Prompt != nil &&
		sameModel(j.Gen, j2.Gen) && j.Prompt.Digest() == j2.Prompt.Digest() {
		at, what := sel("metrics", "judge_2"), fmt.Sprintf("model %q", j2.Gen.Model)
		if j2.Generator != "" {
			at, what = sel("metrics", "judge_2", "generator"), fmt.Sprintf("generator %q", j2.Generator)
		}
		l.at(at, "judge_2 is %s with the same template as judge: its scores would repeat judge's; name another model or template (the paper's second judge is Prometheus-2 with template: \"prometheus\")", what)
	}
	if d := m.Diversity; d != nil {
		d.Gen = l.metricModel(exp, sel("metrics", "diversity"), DiversityModelName, d.Generator, d.Provider, d.Model, d.Price, d.Limits,
			Sampling{MaxTokens: 1}, true)
	}
	if p := m.Perplexity; p != nil {
		at := sel("metrics", "perplexity")
		model := p.Model
		if model == "" && p.Generator == "" {
			model = exp.Student.Base
		}
		p.Gen = l.metricModel(exp, at, PerplexityModelName, p.Generator, p.Provider, model, p.Price, p.Limits, Sampling{MaxTokens: 1}, false)
		if g := p.Gen; g != nil && g.Provider.Plugin != "" {
			l.at(at, "perplexity needs /v1/completions with echo and logprobs: use a vllm provider or an openai endpoint serving the base model, not plugin %q", g.Provider.Plugin)
		}
	}
	if r := m.Reward; r != nil {
		at := sel("metrics", "reward")
		if r.Executor == ExecutorSlurm && r.Slurm == nil {
			r.Slurm = &Slurm{}
		}
		if r.Executor != ExecutorSlurm && r.Slurm != nil {
			l.at(append(at, cue.Str("slurm")), "slurm options apply only with executor: \"slurm\" (executor is %q)", r.Executor)
		}
	}
}

// judgeTemplate loads a judge's template: the built-in one it names or
// the file of template_file, checked for every aspect and domain.
func (l *loader) judgeTemplate(j *JudgeMetric, at []cue.Selector) {
	if j.TemplateFile == "" {
		t, err := metrics.BuiltinJudgeTemplate(j.Template)
		if err != nil {
			l.at(append(at, cue.Str("template")), "%v", err)
			return
		}
		j.Prompt = t
		return
	}
	fat := append(append([]cue.Selector(nil), at...), cue.Str("template_file"))
	if l.user.LookupPath(cue.MakePath(append(at, cue.Str("template"))...)).Exists() {
		l.at(fat, "set template (a built-in one) or template_file (your own), not both")
		return
	}
	full := j.TemplateFile
	if !filepath.IsAbs(full) {
		full = filepath.Join(l.dir, full)
	}
	b, err := os.ReadFile(full)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			l.at(fat, "judge template file %s does not exist", full)
		} else {
			l.at(fat, "read judge template: %v", err)
		}
		return
	}
	t, err := metrics.ParseJudgeTemplate(j.TemplateFile, string(b))
	if err != nil {
		l.at(fat, "%v", err)
		return
	}
	j.Prompt = t
}

// metricModel returns the generator a metric calls: the named one, or one
// built from the fields declared in place. priced says the metric pays
// per token, so an API model needs a price.
func (l *loader) metricModel(exp *Experiment, at []cue.Selector, name, gen string, prov *Provider, model string, price *Price,
	limits *Limits, samp Sampling, priced bool) *Generator {
	if gen != "" {
		for _, f := range []struct {
			field string
			set   bool
		}{{"provider", prov != nil}, {"model", model != "" && l.user.LookupPath(cue.MakePath(append(at, cue.Str("model"))...)).Exists()}, {"price", price != nil}, {"limits", limits != nil}} {
			if f.set {
				l.at(append(at, cue.Str(f.field)), "%s is taken from generator %q: set either generator or the model in place", f.field, gen)
			}
		}
		g, ok := exp.Generators[gen]
		if !ok {
			l.at(append(at, cue.Str("generator")), "unknown generator %q%s", gen, didYouMean(gen, sortedKeys(exp.Generators)))
			return nil
		}
		return g
	}
	if prov == nil {
		l.at(at, "name a generator (generator: \"NAME\") or declare the model in place with provider and model")
		return nil
	}
	g := &Generator{Name: name, Provider: *prov, Model: model, Price: price, Sampling: samp}
	if limits != nil {
		g.Limits = *limits
	}
	p := append(append([]cue.Selector(nil), at...), cue.Str("provider"))
	var set []string
	for _, k := range []struct {
		name string
		set  bool
	}{{"openai", prov.OpenAI != nil}, {"vllm", prov.VLLM != nil}, {"plugin", prov.Plugin != ""}} {
		if k.set {
			set = append(set, k.name)
		}
	}
	if len(set) != 1 {
		l.at(p, "set exactly one of openai, vllm or plugin")
		return nil
	}
	if o := prov.OpenAI; o != nil {
		l.checkKeyEnv(o.APIKeyEnv, append(p, cue.Str("openai"), cue.Str("api_key_env")))
		if u, err := url.Parse(o.BaseURL); err == nil && u.User != nil {
			l.at(append(p, cue.Str("openai"), cue.Str("base_url")), "base_url must not carry credentials: put the key in the environment variable named by api_key_env (the URL is not shown)")
		}
	}
	if v := prov.VLLM; v != nil {
		if v.GPUs < v.TensorParallel {
			l.at(append(p, cue.Str("vllm"), cue.Str("gpus")), "gpus (%d) is less than tensor_parallel (%d)", v.GPUs, v.TensorParallel)
		}
		if d, err := time.ParseDuration(v.StartTimeout); err != nil || d <= 0 {
			l.at(append(p, cue.Str("vllm"), cue.Str("start_timeout")), "start_timeout %q is not a positive duration such as \"90s\" or \"20m\"", v.StartTimeout)
		}
		if g.Limits.Concurrency == 0 {
			g.Limits.Concurrency = VLLMConcurrencyPerReplica * max(v.Replicas, 1)
		}
	}
	if model == "" {
		l.at(at, "missing model: the model id sent to the provider")
		return nil
	}
	// A plugin's model without a price takes the one its plugin
	// advertises (cli's pluginPrices), or fails there.
	if priced && prov.VLLM == nil && prov.Plugin == "" && price == nil {
		l.at(at, "missing price: a model reached through an API needs price: {input: …, output: …} in dollars per 1M tokens so the plan can be costed (use 0 for a free endpoint)")
	}
	return g
}

// sameModel reports whether two metric models are one: the same generator,
// or the same provider, endpoint, model and sampling.
func sameModel(a, b *Generator) bool {
	if a == b {
		return true
	}
	if a.Provider.Kind() != b.Provider.Kind() || a.Model != b.Model || !reflect.DeepEqual(a.Sampling, b.Sampling) {
		return false
	}
	switch {
	case a.Provider.OpenAI != nil:
		return strings.TrimRight(a.Provider.OpenAI.BaseURL, "/") == strings.TrimRight(b.Provider.OpenAI.BaseURL, "/")
	case a.Provider.VLLM != nil:
		return a.Provider.VLLM.Path == b.Provider.VLLM.Path
	}
	return true
}
