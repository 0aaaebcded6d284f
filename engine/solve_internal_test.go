package engine

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/agorabench/agora/spec"
)

func TestSolveSampling(t *testing.T) {
	one, half := 1.0, 0.5
	api := &spec.Generator{Provider: spec.Provider{OpenAI: &spec.OpenAI{}},
		Sampling: spec.Sampling{Temperature: &one, TopP: &half, MaxTokens: 1000, Stop: []string{"END"}, Extra: map[string]any{"presence_penalty": 0.1}}}
	vllm := &spec.Generator{Provider: spec.Provider{VLLM: &spec.VLLM{}}, Sampling: spec.Sampling{MaxTokens: 1000}}
	reasoning := &spec.Generator{Provider: spec.Provider{OpenAI: &spec.OpenAI{}},
		Sampling: spec.Sampling{MaxTokens: 1000, Extra: map[string]any{"max_completion_tokens": 1000}}}
	zero, p95, seed := 0.0, 0.95, 1234
	for _, tc := range []struct {
		name string
		g    *spec.Generator
		body string
		want spec.Sampling
	}{
		{"the harness's decoding", api, `{"temperature": 0, "top_p": 0.95, "max_tokens": 256, "stop": ["Q:", "</s>"], "seed": 1234, "repetition_penalty": 1.03}`,
			spec.Sampling{Temperature: &zero, TopP: &p95, MaxTokens: 256, Stop: []string{"Q:", "</s>"}, Seed: &seed, Extra: map[string]any{"presence_penalty": 0.1}}},
		{"nothing sent: the generator's", api, `{}`, api.Sampling},
		{"max_tokens capped, stop as a string", api, `{"max_tokens": 5000, "stop": "Q:"}`,
			spec.Sampling{Temperature: &one, TopP: &half, MaxTokens: 1000, Stop: []string{"Q:"}, Extra: map[string]any{"presence_penalty": 0.1}}},
		{"repetition penalty for vllm", vllm, `{"max_completion_tokens": 300, "repetition_penalty": 1.03, "stop": null}`,
			spec.Sampling{MaxTokens: 300, Extra: map[string]any{"repetition_penalty": 1.03}}},
		{"max_completion_tokens follows", reasoning, `{"max_tokens": 200}`,
			spec.Sampling{MaxTokens: 200, Extra: map[string]any{"max_completion_tokens": 200}}},
	} {
		var r chatRequest
		if err := json.Unmarshal([]byte(tc.body), &r); err != nil {
			t.Fatal(err)
		}
		got, err := r.sampling(tc.g)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v (%v), want %+v", tc.name, got, err, tc.want)
		}
	}
	if !reflect.DeepEqual(api.Sampling.Extra, map[string]any{"presence_penalty": 0.1}) || reasoning.Sampling.Extra["max_completion_tokens"] != 1000 {
		t.Errorf("the generator's sampling was changed: %+v, %+v", api.Sampling, reasoning.Sampling)
	}
	var r chatRequest
	_ = json.Unmarshal([]byte(`{"stop": 3}`), &r)
	if _, err := r.sampling(api); err == nil {
		t.Errorf("stop 3 accepted")
	}
}
