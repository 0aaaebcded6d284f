package metrics

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestCosineDiversityClosedForm(t *testing.T) {
	// The standard basis of R^n: every pair is orthogonal (distance 1);
	// the centroid is (1/n, …, 1/n), at cosine 1/√n from every vector.
	for _, n := range []int{2, 3, 10, 50} {
		vecs := make([][]float64, n)
		for i := range vecs {
			vecs[i] = make([]float64, n)
			vecs[i][i] = float64(i + 1) // scale must not matter
		}
		d, err := CosineDiversity(vecs)
		if err != nil {
			t.Fatal(err)
		}
		if !near(d.MeanPairwise, 1, 1e-12) || !near(d.ToCentroid, 1-1/math.Sqrt(float64(n)), 1e-12) {
			t.Errorf("basis of R^%d: pairwise %v, centroid %v; want 1, %v", n, d.MeanPairwise, d.ToCentroid, 1-1/math.Sqrt(float64(n)))
		}
	}
	// Two vectors at angle θ: pairwise 1 − cos θ; the centroid bisects
	// the angle, so each is at cos(θ/2) from it.
	for _, th := range []float64{0.1, math.Pi / 3, math.Pi / 2, 2.5} {
		vecs := [][]float64{{1, 0}, {3 * math.Cos(th), 3 * math.Sin(th)}}
		d, err := CosineDiversity(vecs)
		if err != nil {
			t.Fatal(err)
		}
		if !near(d.MeanPairwise, 1-math.Cos(th), 1e-12) || !near(d.ToCentroid, 1-math.Cos(th/2), 1e-12) {
			t.Errorf("θ=%v: pairwise %v centroid %v; want %v %v", th, d.MeanPairwise, d.ToCentroid, 1-math.Cos(th), 1-math.Cos(th/2))
		}
	}
	// Identical directions: no diversity. Opposite pairs: distance 2,
	// the centroid is zero (distance 1 by the formula 1 − ‖S‖/n).
	d, _ := CosineDiversity([][]float64{{1, 2, 3}, {2, 4, 6}, {0.5, 1, 1.5}})
	if !near(d.MeanPairwise, 0, 1e-12) || !near(d.ToCentroid, 0, 1e-12) {
		t.Errorf("parallel: %+v", d)
	}
	d, _ = CosineDiversity([][]float64{{1, 1}, {-1, -1}})
	if !near(d.MeanPairwise, 2, 1e-12) || !near(d.ToCentroid, 1, 1e-12) {
		t.Errorf("opposite: %+v", d)
	}
	// The identity agrees with the direct O(n²) mean on arbitrary vectors.
	vecs := [][]float64{{0.3, -1.2, 2.2, 0.1}, {1, 1, 1, 1}, {-0.5, 0.25, 3, -2}, {9, 0.1, -0.3, 0.7}, {0.01, 0.02, -0.03, 5}}
	d, _ = CosineDiversity(vecs)
	if want := PairwiseCosineDistances(vecs); !near(d.MeanPairwise, want, 1e-12) {
		t.Errorf("identity %v, direct %v", d.MeanPairwise, want)
	}
	for _, bad := range [][][]float64{{{1, 0}}, {{1, 0}, {0, 0}}, {{1, 0}, {1, 0, 0}}, {{math.NaN(), 1}, {1, 0}}} {
		if _, err := CosineDiversity(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestSummarize(t *testing.T) {
	s, err := SummarizeScores([]int{1, 2, 3, 4, 5, 3})
	if err != nil {
		t.Fatal(err)
	}
	// 1,2,3,4,5,3: mean 3, sd = √(10/5) = √2, t(0.975, 5) = 2.5705818366147395.
	half := 2.5705818366147395 * math.Sqrt2 / math.Sqrt(6)
	if s.N != 6 || !near(s.Mean, 3, 1e-12) || !near(s.SD, math.Sqrt2, 1e-12) || !near(s.Low, 3-half, 1e-9) || !near(s.High, 3+half, 1e-9) {
		t.Errorf("got %+v; want mean 3 sd √2 ci ±%v", s, half)
	}
	if !slices.Equal(s.Distribution, []int{1, 1, 2, 1, 1}) {
		t.Errorf("distribution %v", s.Distribution)
	}
	one, _ := Summarize([]float64{4})
	if one.Low != 4 || one.High != 4 || one.SD != 0 {
		t.Errorf("one value: %+v", one)
	}
	if _, err := SummarizeScores([]int{6}); err == nil {
		t.Error("score 6 accepted")
	}
	if _, err := Summarize(nil); err == nil {
		t.Error("empty accepted")
	}
}

func TestParseJudgement(t *testing.T) {
	good := map[string]int{
		"The problem is routine.\n[RESULT] 2":                   2,
		"Feedback: fine.\n[RESULT] 5\n":                         5,
		"ok [result]: 4.":                                       4,
		"**Feedback** good\n**[RESULT] 3**":                     3,
		"first [RESULT] 1 was wrong; reconsidering\n[RESULT] 4": 4,
		"fine [RESULT] 3/5":                                     3,
	}
	for text, want := range good {
		got, fb, err := ParseJudgement(text)
		if err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", text, got, err, want)
		}
		if strings.Contains(fb, "[RESULT]") && !strings.Contains(text, "first") {
			t.Errorf("%q: feedback %q keeps the marker", text, fb)
		}
	}
	bad := map[string]string{
		"I would say 4":             "no [RESULT] marker",
		"[RESULT] excellent":        "no score after",
		"[RESULT] 7":                "not an integer from 1 to 5",
		"[RESULT] 0":                "not an integer from 1 to 5",
		"[RESULT] 4 but maybe 5":    "text after the score",
		"[RESULT] 3\nMore thoughts": "text after the score",
	}
	for text, want := range bad {
		if _, _, err := ParseJudgement(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", text, err, want)
		}
	}
}

func TestJudgePrompt(t *testing.T) {
	for _, a := range []string{AspectDifficulty, AspectQuality} {
		for _, d := range []string{"math", "code", "instruction_following"} {
			p, err := JudgePrompt(a, d, "INSTR", "RESP")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p, "INSTR") || strings.Contains(p, "RESP") != (a == AspectQuality) || !strings.HasSuffix(p, "[RESULT] N\n") {
				t.Errorf("%s/%s:\n%s", a, d, p)
			}
		}
	}
	if _, err := JudgePrompt(AspectQuality, "poetry", "", ""); err == nil {
		t.Error("unknown domain accepted")
	}
	if RubricDigest() != RubricDigest() || !strings.HasPrefix(RubricDigest(), "sha256:") {
		t.Error("digest")
	}
}

func TestSample(t *testing.T) {
	a := Sample(10000, 1000, 7, "step-a")
	b := Sample(10000, 1000, 7, "step-a")
	c := Sample(10000, 1000, 7, "step-b")
	d := Sample(10000, 1000, 8, "step-a")
	if !slices.Equal(a, b) || slices.Equal(a, c) || slices.Equal(a, d) || len(a) != 1000 {
		t.Fatal("sample is not a deterministic function of seed and key")
	}
	if !slices.IsSorted(a) || slices.Compact(slices.Clone(a))[999] != a[999] || a[999] >= 10000 {
		t.Fatal("sample not sorted, distinct and in range")
	}
	if all := Sample(5, 0, 1, "x"); !slices.Equal(all, []int{0, 1, 2, 3, 4}) {
		t.Errorf("k=0: %v", all)
	}
	if all := Sample(3, 10, 1, "x"); !slices.Equal(all, []int{0, 1, 2}) {
		t.Errorf("k>n: %v", all)
	}
}

func f(v float64) *float64 { return &v }

func TestResponseNLL(t *testing.T) {
	// Prompt "Add 2+2\n\nIt is 4" with "é" to check that offsets count
	// characters: prefix "Addé 2\n\n" is 8 characters (9 bytes).
	prefix := PerplexityPrefix("Addé 2")
	resp := "It is 4"
	lp := Logprobs{
		Tokens:        []string{"Add", "é", " 2", "\n\n", "It", " is", " 4", "<gen>"},
		TokenLogprobs: []*float64{nil, f(-3), f(-2), f(-1), f(-0.5), f(-0.25), f(-1.25), f(-9)},
		TextOffset:    []int{0, 3, 4, 6, 8, 10, 13, 15},
	}
	n, err := ResponseNLL(lp, prefix, resp)
	if err != nil {
		t.Fatal(err)
	}
	// −(−0.5 −0.25 −1.25) = 2 over 3 tokens: perplexity e^(2/3).
	if n.Tokens != 3 || n.Sum != 2 || !near(n.Perplexity(), 1.9477340410546757, 1e-15) {
		t.Errorf("got %+v ppl %v", n, n.Perplexity())
	}
	r, err := AggregatePerplexity([]ItemNLL{n, {Sum: 3, Tokens: 1}})
	if err != nil {
		t.Fatal(err)
	}
	// items e^(2/3) and e^3; corpus e^(5/4).
	if !near(r.Items.Mean, (math.Exp(2.0/3)+math.Exp(3))/2, 1e-12) || !near(r.Corpus, math.Exp(1.25), 1e-12) || r.Tokens != 4 {
		t.Errorf("aggregate %+v", r)
	}
	lp.TokenLogprobs[4] = nil
	if _, err := ResponseNLL(lp, prefix, resp); err == nil {
		t.Error("missing response logprob accepted")
	}
	if _, err := ResponseNLL(Logprobs{TokenLogprobs: []*float64{nil}, TextOffset: []int{0}}, prefix, resp); err == nil {
		t.Error("no response tokens accepted")
	}
}

func TestParseRewards(t *testing.T) {
	got, err := ParseRewards("r.jsonl", strings.NewReader("{\"index\": 1, \"score\": -0.5}\n\n{\"index\":0,\"score\":2.25}\n"), 2)
	if err != nil || !slices.Equal(got, []float64{2.25, -0.5}) {
		t.Fatalf("%v %v", got, err)
	}
	bad := map[string]string{
		`{"index": 0, "score": 1}` + "\n" + `{"index": 0, "score": 2}`: "r.jsonl:2:2: index 0 was already scored on line 1",
		`{"index": 2, "score": 1}`:                                     "r.jsonl:1:2: index 2 is outside 0..1",
		`{"index": 0}`:                                                 "r.jsonl:1:1: missing \"score\"",
		`{"index": 0, "score": 1}`:                                     "r.jsonl: 1 of 2 items have no score (the first is index 1)",
		`{"index": 0, "score": 1}` + "\n" + `{"index": 1, "score": }`:  "r.jsonl:2:",
		`{"index": 0.5, "score": 1}`:                                   "r.jsonl:1:",
	}
	for in, want := range bad {
		if _, err := ParseRewards("r.jsonl", strings.NewReader(in), 2); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", in, err, want)
		}
	}
}
