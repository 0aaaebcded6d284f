package plan

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func samplePlan() *Plan {
	seed := 42
	return &Plan{
		FormatVersion: FormatVersion,
		Experiment:    "x",
		Spec:          SpecRef{File: "agora.cue", Digest: "sha256:00"},
		Steps: []Step{
			{ID: "a", Address: "generate.g.s.n1.free-form.s42", Kind: KindGenerate, Needs: []string{}, Seed: &seed,
				Executor: "api", Action: ActionCreate, Estimate: Estimate{USD: 1.5, InputTokens: 10}, Inputs: json.RawMessage(`{"kind":"generate"}`)},
			{ID: "b", Address: "train.g.s.n1.free-form.s42", Kind: KindTrain, Needs: []string{"a"},
				Executor: "local", Action: ActionNoop, Inputs: json.RawMessage(`{"kind":"train"}`)},
		},
		Totals:  Totals{USD: 1.5, ByGenerator: map[string]GeneratorTotal{"g": {USD: 1.5}}},
		Budgets: []Budget{{Name: "usd", Unit: "usd", Limit: 1, Estimate: 1.5, Basis: "expected", Over: 0.5}},
		Counts:  Counts{Create: map[string]int{KindGenerate: 1}, Noop: map[string]int{KindTrain: 1}},
	}
}

func TestSaveRead(t *testing.T) {
	p := samplePlan()
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("read back %+v\nwant %+v", got, p)
	}
	var a, b bytes.Buffer
	if err := p.WriteJSON(&a); err != nil {
		t.Fatal(err)
	}
	if err := got.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() || !strings.HasSuffix(a.String(), "}\n") || !strings.HasPrefix(a.String(), "{\n  \"format_version\": \"1\",\n") {
		t.Errorf("WriteJSON not stable:\n%s", a.String())
	}
	if p.ToRun() != 1 || p.BudgetsOK() {
		t.Errorf("ToRun %d, BudgetsOK %v", p.ToRun(), p.BudgetsOK())
	}
}

func TestReadRejects(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{`{"format_version": "2", "steps": []}`, `plan format version "2" is not supported (this agora reads version "1")`},
		{`{"steps": []}`, "not a plan file: no format_version"},
		{`not json`, "not a plan file"},
		{`{"format_version": "1", "steps": 3}`, "not a plan file"},
	} {
		path := filepath.Join(dir, "p.json")
		if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), path+": ") {
			t.Errorf("Read(%s) = %v, want %q", tc.content, err, tc.want)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing.json")); err == nil || !strings.HasPrefix(err.Error(), "read plan: ") {
		t.Errorf("Read(missing) = %v", err)
	}
}

// TestDuration: the plan's wall-clock estimates in two units at most.
func TestDuration(t *testing.T) {
	for s, want := range map[float64]string{
		0: "0s", 44.6: "45s", 725: "12m 5s", 3600: "1h 0m", 25080: "6h 58m", 3*86400 + 4*3600 + 59: "3d 4h",
		math.Inf(1): "unbounded",
	} {
		if got := Duration(s); got != want {
			t.Errorf("Duration(%g) = %q, want %q", s, got, want)
		}
	}
}
