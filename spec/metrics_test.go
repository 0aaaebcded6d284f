package spec

import (
	"reflect"
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
