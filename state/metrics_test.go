package state

import (
	"context"
	"math"
	"reflect"
	"testing"
)

func TestMetricsState(t *testing.T) {
	ctx := context.Background()
	s, dir := openTest(t)
	begin(t, s, StepInfo{ID: "j", Kind: "judge", Address: "judge.a", Generator: "a"})
	for _, j := range []Judgement{
		{StepID: "j", Slot: 3, Aspect: "response_quality", Attempt: 1, Error: "no [RESULT] marker", Raw: "hmm", Model: "m", InputTokens: 100, OutputTokens: 10, CostUSD: 0.25},
		{StepID: "j", Slot: 3, Aspect: "response_quality", Attempt: 2, Score: 4, Raw: "ok [RESULT] 4", Model: "m", InputTokens: 100, OutputTokens: 12, CostUSD: 0.5},
	} {
		if err := s.RecordJudgement(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordJudgement(ctx, Judgement{StepID: "nope", Aspect: "x"}); err == nil {
		t.Error("judgement of a step never begun accepted")
	}
	js, err := s.Judgements(ctx, "j")
	if err != nil || len(js) != 2 || js[1].Score != 4 || js[0].Error == "" {
		t.Fatalf("judgements %+v %v", js, err)
	}
	// Judge spend is the step's, hence the generator's.
	total, by, err := s.Spend(ctx)
	if err != nil || total != 0.75 || by["a"] != 0.75 {
		t.Errorf("spend %v %v %v", total, by, err)
	}
	st, _, _ := s.Step(ctx, "j")
	if st.Accepted != 1 || st.Rejected != 1 || st.RejectedCostUSD != 0.25 || st.InputTokens != 200 || st.OutputTokens != 22 {
		t.Errorf("step counters %+v", st)
	}

	begin(t, s, StepInfo{ID: "d", Kind: "diversity", Address: "diversity.a", Generator: "a"})
	vecs := [][]float32{{1, -2.5, float32(math.Pi)}, {0, 0.125, -1e-7}}
	if err := s.RecordEmbeddings(ctx, "d", "instruction", []int{7, 9}, vecs, 40, 0.001); err != nil {
		t.Fatal(err)
	}
	got, err := s.Embeddings(ctx, "d", "instruction")
	if err != nil || !reflect.DeepEqual(got, map[int][]float32{7: vecs[0], 9: vecs[1]}) {
		t.Errorf("embeddings %v %v", got, err)
	}
	if r, _ := s.Embeddings(ctx, "d", "response"); len(r) != 0 {
		t.Errorf("response embeddings %v", r)
	}

	begin(t, s, StepInfo{ID: "p", Kind: "perplexity", Address: "perplexity.a", Generator: "a"})
	if err := s.RecordItemValues(ctx, "p", []ItemValue{{Slot: 2, Name: "nll", Value: 1.5, Tokens: 3}, {Slot: 1, Name: "nll", Value: 2, Tokens: 4}}, 10, 2, 0.5); err != nil {
		t.Fatal(err)
	}
	iv, err := s.ItemValues(ctx, "p", "nll")
	if err != nil || len(iv) != 2 || iv[0].Slot != 1 || iv[1].Tokens != 3 {
		t.Errorf("item values %+v %v", iv, err)
	}
	if total, _, _ := s.Spend(ctx); total != 1.251 {
		t.Errorf("spend %v, want 1.251", total)
	}

	lo, hi := 2.5, 3.5
	if err := s.RecordMetrics(ctx, []Metric{{StepID: "j", Name: "response_quality", Value: 3, N: 10, Low: &lo, High: &hi, Detail: `{"distribution":[0,1,8,1,0]}`},
		{StepID: "d", Name: "instruction_diversity", Value: 0.4, N: 2}}); err != nil {
		t.Fatal(err)
	}
	// Survives reopening.
	s.Close()
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := s.Metrics(ctx)
	if err != nil || len(ms) != 2 {
		t.Fatalf("metrics %+v %v", ms, err)
	}
	if m := ms[0]; m.StepID != "d" || m.Low != nil || m.Detail != "{}" || m.Value != 0.4 {
		t.Errorf("diversity metric %+v", m)
	}
	if m := ms[1]; m.Name != "response_quality" || *m.Low != 2.5 || *m.High != 3.5 || m.N != 10 {
		t.Errorf("judge metric %+v", m)
	}
}

// TestMigrateFromVersion2: a version-2 database gains the metric tables.
func TestMigrateFromVersion2(t *testing.T) {
	ctx := context.Background()
	s, dir := openTest(t)
	if err := s.RecordScore(ctx, "e", "gsm8k", "base", 50); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec("DROP TABLE judgements; DROP TABLE embeddings; DROP TABLE item_values; DROP TABLE metrics; DROP TABLE batches; " + dropJobRuns + " PRAGMA user_version = 2"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RecordMetrics(ctx, []Metric{{StepID: "x", Name: "response_reward", Value: 1, N: 1}}); err != nil {
		t.Fatal(err)
	}
	if sc, err := s.Scores(ctx); err != nil || len(sc) != 1 {
		t.Errorf("scores lost: %v %v", sc, err)
	}
}
