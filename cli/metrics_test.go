package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agorabench/agora/cli"
	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// TestReportMetricFeatures: the metrics that metric steps record in the
// state reach the report's PCA under the documented feature names; the
// second diversity measure stays out.
func TestReportMetricFeatures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agora.cue")
	src := `
generators: {
	a: {provider: openai: {}, model: "model-a", price: {input: 1, output: 2}}
	b: {provider: openai: {}, model: "model-b", price: {input: 1, output: 2}}
	c: {provider: openai: {}, model: "model-c", price: {input: 1, output: 2}}
}
settings: "math-rg": {instances: 10}
metrics: {
	judge: generator: "a"
	diversity: {provider: openai: {}, model: "emb", price: {input: 0.02, output: 0}, sample: 10}
}
`
	ctx := context.Background()
	p, store := plannedState(t, path, src)
	student := map[string]float64{"a": 60, "b": 70, "c": 50}
	difficulty := map[string]float64{"a": 2.5, "b": 3.5, "c": 3}
	quality := map[string]float64{"a": 4, "b": 3, "c": 4.5}
	diversity := map[string]float64{"a": 0.2, "b": 0.6, "c": 0.3}
	var ms []state.Metric
	for _, s := range p.Steps {
		switch s.Kind {
		case plan.KindEvaluate:
			v := student[s.Generator]
			switch s.Model {
			case "base":
				v = 40
			case "reference":
				v = 80
			}
			if err := store.RecordScore(ctx, s.ID, s.Benchmark, s.Model, v); err != nil {
				t.Fatal(err)
			}
		case plan.KindJudge:
			ms = append(ms, state.Metric{StepID: s.ID, Name: "instruction_difficulty", Value: difficulty[s.Generator], N: 10},
				state.Metric{StepID: s.ID, Name: "response_quality", Value: quality[s.Generator], N: 10})
		case plan.KindDiversity:
			ms = append(ms, state.Metric{StepID: s.ID, Name: "instruction_diversity", Value: diversity[s.Generator], N: 10},
				state.Metric{StepID: s.ID, Name: "instruction_diversity_centroid", Value: 0.1, N: 10})
		}
	}
	if len(ms) != 12 {
		t.Fatalf("%d metrics: the plan lacks metric steps", len(ms))
	}
	if err := store.RecordMetrics(ctx, ms); err != nil {
		t.Fatal(err)
	}
	store.Close()

	var rep struct {
		PCA struct {
			PCA struct {
				Features []string  `json:"features"`
				Means    []float64 `json:"means"`
			} `json:"pca"`
			Observations []string `json:"observations"`
			Error        string   `json:"error"`
		} `json:"pca"`
	}
	reportJSON(t, path, &rep)
	want := []string{"instruction_difficulty", "response_quality", "instruction_diversity"}
	if !reflect.DeepEqual(rep.PCA.PCA.Features, want) || len(rep.PCA.Observations) != 3 {
		t.Fatalf("pca %+v", rep.PCA)
	}
	for i, m := range []float64{3, 11.5 / 3, 1.1 / 3} {
		if math.Abs(rep.PCA.PCA.Means[i]-m) > 1e-9 {
			t.Errorf("mean of %s = %v, want %v", want[i], rep.PCA.PCA.Means[i], m)
		}
	}
}

// TestReportNineFeatures: with two judges, a reward model, perplexity,
// diversity and problem solving, the report's PCA takes the paper's nine
// features from the state, judge_2's under the _2 names, and by default
// reports AgoraBench's top 5 components.
func TestReportNineFeatures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agora.cue")
	src := `
generators: {
	g1: {provider: openai: {}, model: "m1", price: {input: 1, output: 2}}
	g2: {provider: openai: {}, model: "m2", price: {input: 1, output: 2}}
	g3: {provider: openai: {}, model: "m3", price: {input: 1, output: 2}}
	g4: {provider: openai: {}, model: "m4", price: {input: 1, output: 2}}
	g5: {provider: openai: {}, model: "m5", price: {input: 1, output: 2}}
	g6: {provider: openai: {}, model: "m6", price: {input: 1, output: 2}}
	g7: {provider: openai: {}, model: "m7", price: {input: 1, output: 2}}
	g8: {provider: openai: {}, model: "m8", price: {input: 1, output: 2}}
}
settings: "math-rg": {instances: 10}
grid: generators: ["g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8"]
problem_solving: benchmarks: ["gsm8k", "math"]
metrics: {
	judge: generator: "g1"
	judge_2: {provider: vllm: {}, model: "prometheus-eval/prometheus-8x7b-v2.0", template: "prometheus"}
	diversity: {provider: openai: {}, model: "emb", price: {input: 0.02, output: 0}, sample: 10}
	perplexity: provider: vllm: {}
	reward: {model: "rm", command: "score {{.Data}} {{.Output}}"}
}
`
	ctx := context.Background()
	p, store := plannedState(t, path, src)
	// Made-up values, different enough across generators that no feature
	// is a combination of the others.
	gi := func(g string) float64 {
		if len(g) < 2 {
			return 0 // base and reference evaluations
		}
		return float64(g[1] - '0')
	}
	val := func(g string, k float64) float64 { i := gi(g); return math.Mod(i*k+i*i*0.37, 5) + 0.5 }
	var ms []state.Metric
	steps := 0
	for _, s := range p.Steps {
		m := func(name string, v float64) state.Metric {
			return state.Metric{StepID: s.ID, Name: name, Value: v, N: 10}
		}
		g := s.Generator
		switch s.Kind {
		case plan.KindEvaluate:
			v := 40 + 3*gi(g) + math.Mod(gi(g)*7, 5)
			switch s.Model {
			case "base":
				v = 40
			case "reference":
				v = 80
			}
			if err := store.RecordScore(ctx, s.ID, s.Benchmark, s.Model, v); err != nil {
				t.Fatal(err)
			}
		case plan.KindSolve:
			if err := store.RecordScore(ctx, s.ID, s.Benchmark, g, 50+val(g, 1.3)*5); err != nil {
				t.Fatal(err)
			}
		case plan.KindJudge:
			steps++
			if strings.HasPrefix(s.Address, "judge_2.") {
				ms = append(ms, m("instruction_difficulty_2", val(g, 1.1)), m("response_quality_2", val(g, 2.3)))
			} else {
				ms = append(ms, m("instruction_difficulty", val(g, 0.7)), m("response_quality", val(g, 1.9)))
			}
		case plan.KindDiversity:
			ms = append(ms, m("instruction_diversity", val(g, 0.3)/10), m("response_diversity", val(g, 0.9)/10), m("response_diversity_centroid", 0.1))
		case plan.KindPerplexity:
			ms = append(ms, m("response_perplexity", 1+val(g, 2.9)))
		case plan.KindReward:
			ms = append(ms, m("response_reward", val(g, 3.7)-2))
		}
	}
	if steps != 16 {
		t.Fatalf("%d judge steps, want two per generator", steps)
	}
	if err := store.RecordMetrics(ctx, ms); err != nil {
		t.Fatal(err)
	}
	store.Close()

	var rep struct {
		PCA struct {
			PCA struct {
				Features []string `json:"features"`
			} `json:"pca"`
			K            int      `json:"k"`
			Choice       string   `json:"choice"`
			Observations []string `json:"observations"`
			Error        string   `json:"error"`
			Left         []string `json:"left_out"`
		} `json:"pca"`
	}
	reportJSON(t, path, &rep)
	want := []string{"instruction_difficulty", "instruction_difficulty_2", "response_quality", "response_quality_2", "response_reward",
		"response_perplexity", "instruction_diversity", "response_diversity", "problem_solving"}
	if !reflect.DeepEqual(rep.PCA.PCA.Features, want) || len(rep.PCA.Observations) != 8 || rep.PCA.K != 5 || rep.PCA.Choice != "agorabench" {
		t.Fatalf("pca: features %v, %d observations, k %d (%s); error %q, left %q", rep.PCA.PCA.Features, len(rep.PCA.Observations),
			rep.PCA.K, rep.PCA.Choice, rep.PCA.Error, rep.PCA.Left)
	}
}

// reportJSON runs agora report -format json on the spec at path and
// decodes its output into v.
func reportJSON(t *testing.T, path string, v any) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"report", "-format", "json", path}, &out, &errb); code != 0 {
		t.Fatalf("agora report: exit %d\n%s", code, errb.String())
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatal(err)
	}
}

// plannedState writes the spec src to path, plans it, and opens the state
// beside it, for tests that record made-up results and then report them.
func plannedState(t *testing.T, path, src string) (*plan.Plan, *state.Store) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exp, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(ctx, exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(ctx, filepath.Join(filepath.Dir(path), ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	return p, store
}
