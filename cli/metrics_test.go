package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
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
	store, err := state.Open(ctx, filepath.Join(dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
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

	var out, errb bytes.Buffer
	if code := cli.Main([]string{"report", "-format", "json", path}, &out, &errb); code != 0 {
		t.Fatalf("agora report: exit %d\n%s", code, errb.String())
	}
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
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	want := []string{"instruction_difficulty", "response_quality", "instruction_diversity"}
	if !reflect.DeepEqual(rep.PCA.PCA.Features, want) || len(rep.PCA.Observations) != 3 {
		t.Fatalf("pca %+v\n%s", rep.PCA, out.String())
	}
	for i, m := range []float64{3, 11.5 / 3, 1.1 / 3} {
		if math.Abs(rep.PCA.PCA.Means[i]-m) > 1e-9 {
			t.Errorf("mean of %s = %v, want %v", want[i], rep.PCA.PCA.Means[i], m)
		}
	}
}
