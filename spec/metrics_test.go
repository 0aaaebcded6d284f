package spec

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMetricsDefaults(t *testing.T) {
	exp := load(t, `
generators: g: {provider: openai: {}, model: "m", price: {input: 1, output: 1}}
settings: "math-ig": {}
student: base: "org/base-7b"
metrics: {
	judge: {provider: vllm: {replicas: 2}, model: "judge/model"}
	diversity: {generator: "g"}
	perplexity: provider: vllm: {}
	reward: {model: "rm", command: "run {{.Data}} {{.Output}}", executor: "slurm"}
}
`)
	m := exp.Metrics
	j := m.Judge
	if j.Gen == nil || j.Gen.Name != JudgeModelName || j.Gen.Model != "judge/model" || *j.Gen.Sampling.Temperature != 0 ||
		j.Gen.Sampling.MaxTokens != 1024 || j.Gen.Limits.Concurrency != 2*VLLMConcurrencyPerReplica {
		t.Errorf("judge %+v", j.Gen)
	}
	if !reflect.DeepEqual(j.Aspects, []string{AspectDifficulty, AspectQuality}) || j.Attempts != 3 || j.OutputTokens != 300 || j.Sample != 0 {
		t.Errorf("judge options %+v", j)
	}
	if m.Diversity.Gen != exp.Generators["g"] || m.Diversity.Sample != 1000 || m.Diversity.Batch != 64 {
		t.Errorf("diversity %+v", m.Diversity)
	}
	if p := m.Perplexity; p.Gen.Model != "org/base-7b" || p.Gen.Name != PerplexityModelName || p.Gen.Provider.VLLM.GPUs != 1 || p.ThroughputTokensPerS != 20000 {
		t.Errorf("perplexity %+v %+v", p, p.Gen)
	}
	if r := m.Reward; r.GPUs != 1 || r.TimeLimit != "04:00:00" || r.Slurm == nil || r.ThroughputItemsPerS != 20 {
		t.Errorf("reward %+v", r)
	}
}

// TestPerplexityPriceInPlace: a perplexity model declared in place on an
// openai endpoint takes a price, as the other metrics' models do.
func TestPerplexityPriceInPlace(t *testing.T) {
	exp := load(t, `
generators: g: {provider: openai: {}, model: "m", price: {input: 1, output: 1}}
settings: "math-ig": {}
metrics: perplexity: {provider: openai: {base_url: "http://127.0.0.1:8000/v1"}, model: "org/base-7b", price: {input: 0.2, output: 0.2}}
`)
	if g := exp.Metrics.Perplexity.Gen; g == nil || g.Price == nil || g.Price.Input != 0.2 {
		t.Errorf("perplexity model %+v", g)
	}
}

// TestTwoJudges: judge_2 is a second judge with its own suffix, model
// and template; a template file is read beside the spec and checked.
func TestTwoJudges(t *testing.T) {
	exp := loadFiles(t, map[string]string{"judge.tmpl": "Rate: {{.Instruction}}{{if .Quality}} / {{.Response}}{{end}}\n[RESULT] n"}, `
generators: {
	g: {provider: openai: {}, model: "m", price: {input: 1, output: 1}}
	gpt: {provider: openai: {}, model: "gpt-4o", price: {input: 2.5, output: 10}}
}
settings: "math-ig": {}
grid: generators: ["g"]
metrics: {
	judge: {generator: "gpt", template_file: "judge.tmpl"}
	judge_2: {provider: vllm: {}, model: "prometheus-eval/prometheus-8x7b-v2.0", template: "prometheus", system: "prepend"}
}
`)
	m := exp.Metrics
	js := m.Judges()
	if len(js) != 2 || js[0] != m.Judge || js[1] != m.Judge2 || m.Judge.Suffix != "" || m.Judge2.Suffix != "_2" {
		t.Fatalf("judges %+v", js)
	}
	if m.JudgeBySuffix("_2") != m.Judge2 || m.JudgeBySuffix("_3") != nil {
		t.Error("JudgeBySuffix")
	}
	if g := m.Judge2.Gen; g == nil || g.Name != Judge2ModelName || g.Model != "prometheus-eval/prometheus-8x7b-v2.0" {
		t.Errorf("judge_2 model %+v", g)
	}
	if m.Judge.Prompt == nil || m.Judge.Prompt.Name != "judge.tmpl" || m.Judge2.Prompt == nil || m.Judge2.Prompt.Name != "prometheus" || m.Judge2.System != SystemPrepend {
		t.Errorf("templates %+v %+v", m.Judge.Prompt, m.Judge2.Prompt)
	}
	_, user, err := m.Judge.Prompt.Messages(AspectQuality, "math", "1+1?", "2")
	if err != nil || user != "Rate: 1+1? / 2\n[RESULT] n" {
		t.Errorf("file template: %q %v", user, err)
	}
	// One judge: its template is agora's.
	exp = load(t, `
generators: g: {provider: openai: {}, model: "m", price: {input: 1, output: 1}}
settings: "math-ig": {}
metrics: judge: generator: "g"
`)
	if j := exp.Metrics.Judge; j.Template != "agora" || j.Prompt == nil || j.Prompt.Name != "agora" || j.System != SystemMessage || len(exp.Metrics.Judges()) != 1 {
		t.Errorf("default judge %+v", j)
	}
}

// loadFiles is load with files written beside the spec.
func loadFiles(t *testing.T, files map[string]string, src string) *Experiment {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exp, err := LoadBytes("agora.cue", []byte(src), dir)
	if err != nil {
		t.Fatalf("LoadBytes:\n%v", err)
	}
	return exp
}

// TestSameJudgeTwice: a judge_2 that would ask what judge asks is an
// error, whether both name one generator or declare one model in place;
// another template or model is fine.
func TestSameJudgeTwice(t *testing.T) {
	const head = `
generators: g: {provider: openai: {}, model: "m", price: {input: 1, output: 1}}
settings: "math-ig": {}
`
	ds := diagnose(t, head+`metrics: {
	judge: {provider: openai: {base_url: "http://h/v1/"}, model: "j", price: {input: 1, output: 1}}
	judge_2: {provider: openai: {base_url: "http://h/v1"}, model: "j", price: {input: 1, output: 1}}
}`)
	if len(ds) != 1 || ds[0].Path != "metrics.judge_2" || !strings.Contains(ds[0].Msg, `judge_2 is model "j" with the same template as judge`) {
		t.Errorf("diagnostics %v", ds)
	}
	for _, ok := range []string{
		`judge: {generator: "g"}, judge_2: {generator: "g", template: "prometheus"}`,
		`judge: {provider: openai: {}, model: "j", price: {input: 1, output: 1}}, judge_2: {provider: openai: {}, model: "k", price: {input: 1, output: 1}}`,
		`judge: {provider: openai: {}, model: "j", price: {input: 1, output: 1}}, judge_2: {provider: openai: {}, model: "j", price: {input: 1, output: 1}, sampling: temperature: 1}`,
	} {
		load(t, head+"metrics: {"+ok+"}")
	}
}
