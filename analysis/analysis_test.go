package analysis

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func TestPGRWorkedExample(t *testing.T) {
	// The AgoraBench paper's MATH scores (Kim et al., 2024,
	// arXiv:2412.03679): base 19.84, student 28.08, reference 34.60.
	// 100 × (28.08 − 19.84) / (34.60 − 19.84) = 100 × 8.24 / 14.76 = 55.826… → 55.8
	p, err := PGR(28.08, 19.84, 34.60)
	if err != nil {
		t.Fatal(err)
	}
	if got := math.Round(p*10) / 10; got != 55.8 {
		t.Errorf("PGR = %v, rounds to %v, want 55.8", p, got)
	}
	if !near(p, 100*8.24/14.76) {
		t.Errorf("PGR = %v, want %v", p, 100*8.24/14.76)
	}
}

func TestPGRHandComputed(t *testing.T) {
	for _, c := range []struct{ s, b, r, want float64 }{
		{68, 56, 80, 50},  // 100 × 12 / 24
		{56, 56, 80, 0},   // no better than the base model
		{80, 56, 80, 100}, // as good as the reference
		{50, 56, 80, -25}, // 100 × −6 / 24: worse than the base model
		{62, 40, 60, 110}, // 100 × 22 / 20: better than the reference
		{45, 50, 40, 50},  // reference below base: 100 × (45 − 50) / (40 − 50) = 100 × −5 / −10
		{55, 50, 40, -50}, // 100 × 5 / −10: better than the base, negative PGR (the inverted sign)
		{0.5, 0.25, 1, 100 * 0.25 / 0.75},
	} {
		got, err := PGR(c.s, c.b, c.r)
		if err != nil {
			t.Errorf("PGR(%v, %v, %v): %v", c.s, c.b, c.r, err)
			continue
		}
		if !near(got, c.want) {
			t.Errorf("PGR(%v, %v, %v) = %v, want %v", c.s, c.b, c.r, got, c.want)
		}
	}
}

func TestPGRDegenerate(t *testing.T) {
	_, err := PGR(30, 40, 40)
	wantErr(t, err, "zero gap", "both score 40")
	_, err = PGR(math.NaN(), 19.84, 34.6)
	wantErr(t, err, "student score is NaN")
	_, err = PGR(28, math.NaN(), 34.6)
	wantErr(t, err, "base score is NaN")
	_, err = PGR(28, 19.84, math.Inf(1))
	wantErr(t, err, "reference score is +Inf")
	_, err = PGR(1e308, -1e308, 0) // 1e308 − (−1e308) overflows to +Inf
	wantErr(t, err, "overflows")
}

func TestPerDollar(t *testing.T) {
	// 43.9 PGR points for $20 → 2.195 per dollar.
	r, err := PerDollar(43.9, 20)
	if err != nil || !near(r, 2.195) {
		t.Errorf("PerDollar(43.9, 20) = %v, %v; want 2.195", r, err)
	}
	_, err = PerDollar(43.9, 0)
	wantErr(t, err, "cost is $0", "must be positive")
	_, err = PerDollar(43.9, -3)
	wantErr(t, err, "must be positive")
	_, err = PerDollar(math.NaN(), 3)
	wantErr(t, err, "PGR is NaN")
	_, err = PerDollar(10, math.Inf(1))
	wantErr(t, err, "cost is +Inf")
}

var (
	mathIG = Setting{Name: "math-ig", Domain: "math", Method: "instance", Benchmarks: []string{"gsm8k", "math"}}
	codeIG = Setting{Name: "code-ig", Domain: "code", Method: "instance", Benchmarks: []string{"mbpp", "humaneval"}}
)

// input: two settings, three generators.
//
//	benchmark  base   reference
//	gsm8k      56.0   80.0     gap 24
//	math       19.84  34.60    gap 14.76
//	mbpp       40.0   60.0     gap 20
//	humaneval  30.0   60.0     gap 30
func input() Input {
	return Input{
		Settings:  []Setting{mathIG, codeIG},
		Base:      map[string]float64{"gsm8k": 56, "math": 19.84, "mbpp": 40, "humaneval": 30},
		Reference: map[string]float64{"gsm8k": 80, "math": 34.60, "mbpp": 60, "humaneval": 60},
		Students: map[string]map[string]map[string]float64{
			"gpt-4o": {
				"math-ig": {"gsm8k": 68, "math": 28.08},
				"code-ig": {"mbpp": 50, "humaneval": 36},
			},
			"llama-70b": {
				"math-ig": {"gsm8k": 50}, // MATH not evaluated
				"code-ig": {"mbpp": 62, "humaneval": 45},
			},
		},
		Cost: map[string]float64{"gpt-4o": 20, "llama-70b": 5, "claude": 12},
	}
}

func TestTable(t *testing.T) {
	tab, err := NewTable(input())
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{tab.Rows[0].Generator, tab.Rows[1].Generator, tab.Rows[2].Generator}; strings.Join(got, ",") != "claude,gpt-4o,llama-70b" {
		t.Errorf("rows %v, want sorted generators of Students and Cost", got)
	}

	g, _ := tab.Row("gpt-4o")
	// gsm8k: 100 × (68 − 56) / 24 = 50
	// math:  100 × 8.24 / 14.76 = 55.82655826558266
	// math-ig = (50 + 55.82655826558266) / 2 = 52.91327913279133
	// mbpp: 100 × 10 / 20 = 50; humaneval: 100 × 6 / 30 = 20; code-ig = 35
	// score = (52.91327913279133 + 35) / 2 = 43.956639566395665
	// per dollar = 43.956639566395665 / 20 = 2.1978319783197833
	check := func(what string, v Value, want float64) {
		t.Helper()
		if !v.Valid || !near(v.V, want) {
			t.Errorf("%s = %+v, want %v", what, v, want)
		}
	}
	mi, _ := tab.Cell("gpt-4o", "math-ig")
	check("gpt-4o gsm8k", mi.Benchmarks[0].PGR, 50)
	check("gpt-4o math", mi.Benchmarks[1].PGR, 100*8.24/14.76)
	check("gpt-4o math-ig", mi.PGR, (50+100*8.24/14.76)/2)
	ci, _ := tab.Cell("gpt-4o", "code-ig")
	check("gpt-4o mbpp", ci.Benchmarks[0].PGR, 50)
	check("gpt-4o humaneval", ci.Benchmarks[1].PGR, 20)
	check("gpt-4o code-ig", ci.PGR, 35)
	check("gpt-4o score", g.Score, ((50+100*8.24/14.76)/2+35)/2)
	check("gpt-4o cost", g.Cost, 20)
	check("gpt-4o PGR per $", g.PerDollar, ((50+100*8.24/14.76)/2+35)/2/20)
	if math.Round(g.Score.V*10)/10 != 44.0 {
		t.Errorf("gpt-4o score rounds to %v, want 44.0", math.Round(g.Score.V*10)/10)
	}

	l, _ := tab.Row("llama-70b")
	// gsm8k: 100 × (50 − 56) / 24 = −25; MATH missing → math-ig missing.
	// mbpp: 100 × 22 / 20 = 110; humaneval: 100 × 15 / 30 = 50; code-ig = 80.
	lm, _ := tab.Cell("llama-70b", "math-ig")
	check("llama gsm8k", lm.Benchmarks[0].PGR, -25)
	if lm.Benchmarks[1].PGR.Valid || lm.Benchmarks[1].PGR.Why != "no student score" {
		t.Errorf("llama math = %+v, want missing: no student score", lm.Benchmarks[1].PGR)
	}
	if lm.PGR.Valid || !strings.Contains(lm.PGR.Why, "math (no student score)") {
		t.Errorf("llama math-ig = %+v, want missing naming math", lm.PGR)
	}
	lc, _ := tab.Cell("llama-70b", "code-ig")
	check("llama code-ig", lc.PGR, 80)
	if l.Score.Valid || !strings.Contains(l.Score.Why, "math-ig") {
		t.Errorf("llama score = %+v, want missing naming math-ig", l.Score)
	}
	check("llama cost", l.Cost, 5)
	if l.PerDollar.Valid || !strings.Contains(l.PerDollar.Why, "no score") {
		t.Errorf("llama PGR per $ = %+v, want missing", l.PerDollar)
	}

	c, _ := tab.Row("claude")
	for _, cell := range c.Settings {
		if cell.PGR.Valid {
			t.Errorf("claude %s = %v with no scores", cell.Setting, cell.PGR)
		}
	}
	check("claude cost", c.Cost, 12)
	noNaN(t, tab)
}

// noNaN checks every value of the table: present ones finite, missing ones
// zero with a reason.
func noNaN(t *testing.T, tab *Table) {
	t.Helper()
	vals := func(r Row) []Value {
		vs := []Value{r.Score, r.Cost, r.PerDollar}
		for _, c := range r.Settings {
			vs = append(vs, c.PGR)
			for _, b := range c.Benchmarks {
				vs = append(vs, b.Student, b.Base, b.Reference, b.PGR)
			}
		}
		return vs
	}
	for _, r := range tab.Rows {
		for _, v := range vals(r) {
			if v.Valid && !finite(v.V) {
				t.Errorf("%s: value %v", r.Generator, v.V)
			}
			if !v.Valid && (v.V != 0 || v.Why == "") {
				t.Errorf("%s: missing value %+v without a reason or with a number", r.Generator, v)
			}
		}
	}
	b, err := json.Marshal(tab)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	if bytes.Contains(b, []byte("NaN")) {
		t.Errorf("NaN in %s", b)
	}
}

func TestTableDegenerate(t *testing.T) {
	in := input()
	in.Reference["humaneval"] = 30 // zero gap: base and reference both 30
	in.Students["gpt-4o"]["math-ig"]["math"] = math.NaN()
	in.Base["mbpp"] = math.Inf(-1)
	in.Cost["gpt-4o"] = math.NaN()
	in.Cost["llama-70b"] = 0
	tab, err := NewTable(in)
	if err != nil {
		t.Fatal(err)
	}
	noNaN(t, tab)
	ci, _ := tab.Cell("gpt-4o", "code-ig")
	if ci.Benchmarks[1].PGR.Valid || ci.Benchmarks[1].PGR.Why != "zero gap: base and reference both score 30" {
		t.Errorf("humaneval = %+v, want the zero gap", ci.Benchmarks[1].PGR)
	}
	if ci.Benchmarks[0].PGR.Valid || ci.Benchmarks[0].PGR.Why != "base model score is -Inf" {
		t.Errorf("mbpp = %+v, want the infinite base score", ci.Benchmarks[0].PGR)
	}
	mi, _ := tab.Cell("gpt-4o", "math-ig")
	if mi.Benchmarks[1].PGR.Valid || mi.Benchmarks[1].PGR.Why != "student score is NaN" {
		t.Errorf("math = %+v, want the NaN student score", mi.Benchmarks[1].PGR)
	}
	g, _ := tab.Row("gpt-4o")
	if g.Cost.Valid || g.PerDollar.Valid || g.Cost.Why != "cost is NaN" {
		t.Errorf("cost %+v, per $ %+v", g.Cost, g.PerDollar)
	}

	// A zero cost is a cost, but no PGR per dollar.
	in = input()
	in.Students["llama-70b"]["math-ig"]["math"] = 27.0
	in.Cost["llama-70b"] = 0
	tab, err = NewTable(in)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := tab.Row("llama-70b")
	if !l.Score.Valid || !l.Cost.Valid || l.PerDollar.Valid || !strings.Contains(l.PerDollar.Why, "must be positive") {
		t.Errorf("score %+v, cost %+v, per $ %+v", l.Score, l.Cost, l.PerDollar)
	}
}

func TestTableWarnings(t *testing.T) {
	in := input()
	in.Base["gsm8k"], in.Reference["gsm8k"] = 80, 56 // reference below base
	in.Students["gpt-4o"]["if-ig"] = map[string]float64{"alpacaeval2": 10}
	in.Students["gpt-4o"]["math-ig"]["minerva"] = 3
	tab, err := NewTable(in)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(tab.Warnings, "\n")
	for _, w := range []string{
		"gsm8k: the reference (56) scores below the base model (80), so PGR's sign is inverted",
		"gpt-4o: scores for setting if-ig, which the table does not show, are ignored",
		"gpt-4o, math-ig: a score for minerva, which the setting is not scored on, is ignored",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("warnings lack %q:\n%s", w, all)
		}
	}
	// The inverted PGR is still computed: 100 × (68 − 80) / (56 − 80) = 50.
	mi, _ := tab.Cell("gpt-4o", "math-ig")
	if !near(mi.Benchmarks[0].PGR.V, 50) {
		t.Errorf("gsm8k = %+v, want 50", mi.Benchmarks[0].PGR)
	}
}

func TestTableStructuralErrors(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(*Input)
		want string
	}{
		"no settings":       {func(in *Input) { in.Settings = nil }, "no settings"},
		"unnamed setting":   {func(in *Input) { in.Settings = []Setting{{Benchmarks: []string{"gsm8k"}}} }, "a setting has no name"},
		"setting twice":     {func(in *Input) { in.Settings = []Setting{mathIG, mathIG} }, `setting "math-ig" listed twice`},
		"no benchmarks":     {func(in *Input) { in.Settings = []Setting{{Name: "x"}} }, `setting "x" has no benchmarks`},
		"benchmark twice":   {func(in *Input) { in.Settings = []Setting{{Name: "x", Benchmarks: []string{"a", "a"}}} }, `lists benchmark "a" twice`},
		"generator twice":   {func(in *Input) { in.Generators = []string{"a", "a"} }, `generator "a" listed twice`},
		"unnamed generator": {func(in *Input) { in.Cost[""] = 1 }, "a generator has no name"},
	} {
		t.Run(name, func(t *testing.T) {
			in := input()
			c.edit(&in)
			_, err := NewTable(in)
			wantErr(t, err, c.want)
		})
	}
}

func TestTableGeneratorOrder(t *testing.T) {
	in := input()
	in.Generators = []string{"llama-70b", "gpt-4o", "absent"}
	tab, err := NewTable(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Rows) != 3 || tab.Rows[0].Generator != "llama-70b" || tab.Rows[2].Generator != "absent" {
		t.Errorf("rows %+v", tab.Rows)
	}
	if tab.Rows[2].Score.Valid || tab.Rows[2].Cost.Why != "no cost" {
		t.Errorf("absent generator: %+v", tab.Rows[2])
	}
}

func TestMarkdownAndJSON(t *testing.T) {
	in := input()
	in.Generators = []string{"gpt-4o", "llama-70b"}
	tab, err := NewTable(in)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tab.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	// gpt-4o: math-ig 52.913… → 52.9, code-ig 35.0, score 43.956… → 44.0,
	// $20.00, 2.1978… → 2.198 per dollar.
	want := "| generator | math-ig | code-ig | score | cost (USD) | PGR per $ |\n" +
		"|---|---:|---:|---:|---:|---:|\n" +
		"| gpt-4o | 52.9 | 35.0 | 44.0 | 20.00 | 2.198 |\n" +
		"| llama-70b | — | 80.0 | — | 5.00 | — |\n" +
		// Column means: math-ig is missing for llama-70b, so its mean is
		// missing; code-ig (35 + 80) / 2 = 57.5.
		"| *mean* | — | 57.5 | — | | |\n"
	if b.String() != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", b.String(), want)
	}

	j, err := json.Marshal(tab.Rows[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{`"score":null`, `"pgr_per_dollar":null`, `"cost_usd":5`, `"pgr":80`} {
		if !strings.Contains(string(j), part) {
			t.Errorf("%s not in %s", part, j)
		}
	}
}

func TestValue(t *testing.T) {
	if v := Known(math.NaN()); v.Valid || v.Why == "" {
		t.Errorf("Known(NaN) = %+v, want missing", v)
	}
	if Known(55.826).String() != "55.8" || Missing("x").String() != "—" || Known(-0.04).Format(2) != "-0.04" {
		t.Error("formatting")
	}
	if v := mean(nil, nil); v.Valid {
		t.Errorf("mean of nothing = %+v", v)
	}
	// (1e308 + 1e308) / 2 overflows the sum: missing, not +Inf.
	if v := mean([]string{"a", "b"}, []Value{Known(1e308), Known(1e308)}); v.Valid {
		t.Errorf("overflowing mean = %+v", v)
	}
}

func TestTableGivenPGR(t *testing.T) {
	// Imported cells carry their PGR; scores, when present, win.
	in := Input{
		Settings:  []Setting{{Name: "math-ig", Benchmarks: []string{"gsm8k"}}, {Name: "code-ig", Benchmarks: []string{"mbpp"}}},
		Base:      map[string]float64{"gsm8k": 40},
		Reference: map[string]float64{"gsm8k": 80},
		Students:  map[string]map[string]map[string]float64{"a": {"math-ig": {"gsm8k": 60}}},
		PGR:       map[string]map[string]float64{"a": {"math-ig": 99, "code-ig": 30}, "b": {"math-ig": 10, "code-ig": 20, "if-ig": 5}},
	}
	tab, err := NewTable(in)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tab.Cell("a", "math-ig")
	if a.PGR.V != 50 {
		t.Errorf("a math-ig = %v, want 50 from the scores (100 × 20 / 40), not the given 99", a.PGR)
	}
	b, _ := tab.Row("b")
	if !b.Score.Valid || b.Score.V != 15 {
		t.Errorf("b's score = %v, want (10 + 20) / 2 = 15", b.Score)
	}
	// Means: math-ig (50 + 10) / 2 = 30, code-ig (30 + 20) / 2 = 25;
	// scores a (50 + 30) / 2 = 40, b 15, mean 27.5.
	if tab.Means[0].V != 30 || tab.Means[1].V != 25 || tab.MeanScore.V != 27.5 {
		t.Errorf("means %v, mean score %v", tab.Means, tab.MeanScore)
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "b: a PGR for setting if-ig") {
		t.Errorf("warnings %q", tab.Warnings)
	}
}
