package analysis

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func f64(v float64) *float64 { return &v }

func twoSettings() []Setting {
	return []Setting{
		{Name: "math-ig", Domain: "math", Method: "instance_generation", Benchmarks: []string{"gsm8k", "math"}},
		{Name: "code-ig", Domain: "code", Method: "instance_generation", Benchmarks: []string{"mbpp", "humaneval"}},
	}
}

// fourGenerators: PGR (math-ig, code-ig) and problem solving (math, code)
//
//	g1 (10, 20) (40, 30)    g2 (30, 25) (60, 50)
//	g3 (22, 41) (55, 45)    g4 (50, 44) (80, 70)
func fourGenerators() Dataset {
	pgr := map[string][2]float64{"g1": {10, 20}, "g2": {30, 25}, "g3": {22, 41}, "g4": {50, 44}}
	ps := map[string][2]float64{"g1": {40, 30}, "g2": {60, 50}, "g3": {55, 45}, "g4": {80, 70}}
	ds := Dataset{Settings: twoSettings()}
	for _, g := range []string{"g1", "g2", "g3", "g4"} {
		for i, s := range []string{"math-ig", "code-ig"} {
			ds.Cells = append(ds.Cells, Cell{Generator: g, Setting: s, PGR: f64(pgr[g][i]), ProblemSolving: f64(ps[g][i]),
				Cost: f64(float64(i + 1)), Source: "test"})
		}
	}
	ds.Generators = []GeneratorInfo{{Name: "g4", PriceInput: f64(2.5), PriceOutput: f64(10)}}
	return ds
}

func TestAnalyseProblemSolving(t *testing.T) {
	rep, err := Analyse(fourGenerators(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range rep.Table.Rows {
		order = append(order, r.Generator)
	}
	if strings.Join(order, ",") != "g4,g1,g2,g3" {
		t.Errorf("rows %v: want the listed generator first, then the rest by name", order)
	}
	// Table 3: g4's problem solving (80 + 70) / 2 = 75, score (50 + 44) / 2
	// = 47, cost 1 + 2 = $3, 47 / 3 PGR per dollar.
	g4 := rep.Generators[0]
	if g4.ProblemSolving.V != 75 || g4.Score.V != 47 || g4.Cost.V != 3 || !near(g4.PerDollar.V, 47.0/3) || g4.PriceInput.V != 2.5 {
		t.Errorf("g4's line: %+v", g4)
	}
	if rep.Generators[1].PriceInput.Valid {
		t.Errorf("g1 has a price: %+v", rep.Generators[1])
	}
	// scipy.stats.linregress over generators: x = 35, 55, 50, 75 (mean
	// problem solving), y = 15, 27.5, 31.5, 47 (mean PGR).
	gen := rep.ProblemSolving[0]
	if gen.Fit == nil {
		t.Fatalf("no per-generator fit: %s", gen.Error)
	}
	close(t, "slope", gen.Fit.Slope, 0.7740458015267175, 1e-12)
	close(t, "intercept", gen.Fit.Intercept, -11.354961832061065, 1e-12)
	close(t, "R²", gen.Fit.R2, 0.9393040243514736, 1e-12)
	close(t, "p", gen.Fit.P, 0.030823017013159912, 1e-9)
	// Over the 8 cells: x = the domain's score, y = the cell's PGR.
	cell := rep.ProblemSolving[1]
	if cell.Fit == nil || cell.Fit.N != 8 {
		t.Fatalf("per-cell fit: %+v", cell)
	}
	close(t, "slope", cell.Fit.Slope, 0.6408163265306123, 1e-12)
	close(t, "intercept", cell.Fit.Intercept, -4.193877551020407, 1e-12)
	close(t, "R²", cell.Fit.R2, 0.57798638413619, 1e-12)
	close(t, "p", cell.Fit.P, 0.028552850064089676, 1e-9)
	if rep.PCA.Error == "" || !strings.Contains(rep.PCA.Error, "no intrinsic features") {
		t.Errorf("PCA without features: %q", rep.PCA.Error)
	}
}

func TestAnalyseDegenerate(t *testing.T) {
	// Two generators: too few points for a regression; a missing cell
	// leaves its generator out, with the reason.
	ds := Dataset{Settings: twoSettings(), Cells: []Cell{
		{Generator: "a", Setting: "math-ig", PGR: f64(10), ProblemSolving: f64(40)},
		{Generator: "a", Setting: "code-ig", PGR: f64(20), ProblemSolving: f64(30)},
		{Generator: "b", Setting: "math-ig", PGR: f64(30), ProblemSolving: f64(60)},
		{Generator: "c", Setting: "math-ig", PGR: f64(5)},
	}}
	rep, err := Analyse(ds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	gen := rep.ProblemSolving[0]
	if gen.Fit != nil || !strings.Contains(gen.Error, "n = 1: a regression needs at least 3 points") {
		t.Errorf("per generator: fit %+v error %q", gen.Fit, gen.Error)
	}
	if len(gen.Left) != 2 || gen.Left[0] != "b: problem solving missing code (no score)" {
		t.Errorf("left out: %q", gen.Left)
	}
	cell := rep.ProblemSolving[1]
	if cell.Fit == nil || cell.Fit.N != 3 {
		t.Errorf("per cell: %+v", cell)
	}
	if len(cell.Left) != 1 || cell.Left[0] != "c × math-ig: no problem-solving score" {
		t.Errorf("per cell left out: %q", cell.Left)
	}
	// Every cell scores the same: zero variance, said, not NaN.
	ds = Dataset{Settings: twoSettings()[:1]}
	for i, g := range []string{"a", "b", "c"} {
		ds.Cells = append(ds.Cells, Cell{Generator: g, Setting: "math-ig", PGR: f64(10), ProblemSolving: f64(float64(i))})
	}
	rep, err = Analyse(ds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.ProblemSolving[0].Error, "y has zero variance") {
		t.Errorf("zero variance: %q", rep.ProblemSolving[0].Error)
	}
}

func TestAnalyseStructuralErrors(t *testing.T) {
	ds := fourGenerators()
	ds.Cells[3].Setting = "if-ig"
	ds.Cells[3].Source = "r.csv:5"
	_, err := Analyse(ds, Options{})
	wantErr(t, err, "r.csv:5", `setting "if-ig" is not one of`)

	ds = fourGenerators()
	ds.Settings = append(ds.Settings, Setting{Name: "math-rg", Domain: "math", Benchmarks: []string{"gsm8k"}})
	ds.Cells = append(ds.Cells, Cell{Generator: "g1", Setting: "math-rg", ProblemSolving: f64(41), Source: "r.csv:9"})
	_, err = Analyse(ds, Options{})
	wantErr(t, err, "r.csv:9", "problem_solving of g1 on math is 41 here but 40")

	// Two cells of one configuration.
	ds = fourGenerators()
	ds.Cells[0].Instances, ds.Cells[2].Instances = 10, 10
	ds.Cells = append(ds.Cells, Cell{Generator: "g1", Setting: "math-ig", Instances: 10, Source: "r.csv:12"})
	_, err = Analyse(ds, Options{})
	wantErr(t, err, "r.csv:12", "generator g1, setting math-ig (n=10) is given twice (also at test)")

	// Without instance counts two cells of a generator and setting are
	// the same cell.
	ds = fourGenerators()
	ds.Cells = append(ds.Cells, Cell{Generator: "g2", Setting: "code-ig", Instances: 500, Source: "r.csv:14"})
	_, err = Analyse(ds, Options{})
	wantErr(t, err, "r.csv:14", "generator g2, setting code-ig is given twice (also at test)", "give both instance counts")
}

func TestAnalysePCA(t *testing.T) {
	// The six observations of TestPCA as cells of one setting; the third
	// feature is given as feature_… (an undocumented name).
	d := [][]float64{{2.0, 1.0, 3.5}, {3.0, 2.5, 2.0}, {4.0, 2.0, 4.5}, {5.0, 4.0, 1.0}, {6.0, 3.5, 3.0}, {7.0, 5.5, 2.5}}
	pgr := []float64{10, 14, 13, 22, 20, 27}
	ds := Dataset{Settings: twoSettings()[:1]}
	for i, row := range d {
		ds.Cells = append(ds.Cells, Cell{Generator: string(rune('a' + i)), Setting: "math-ig", PGR: f64(pgr[i]),
			Features: map[string]float64{"instruction_difficulty": row[0], "response_quality": row[1], "zz_custom": row[2]}})
	}
	// A seventh cell without a feature is left out, with the reason.
	ds.Cells = append(ds.Cells, Cell{Generator: "z", Setting: "math-ig", PGR: f64(1), Features: map[string]float64{"response_quality": 1}})
	rep, err := Analyse(ds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := rep.PCA
	if p.PCA == nil {
		t.Fatalf("no PCA: %s", p.Error)
	}
	if strings.Join(p.Features, ",") != "instruction_difficulty,response_quality,zz_custom" {
		t.Errorf("features %v", p.Features)
	}
	if len(p.Left) != 1 || p.Left[0] != "z × math-ig: no instruction_difficulty, zz_custom" {
		t.Errorf("left out %q", p.Left)
	}
	// By default AgoraBench's top 5, here every one of the 3 components:
	// PGR on all of them is PGR on the three features (numpy.linalg.lstsq,
	// scipy.stats.f.sf), and each feature's loading strength is its mean
	// absolute loading over the three (numpy.linalg.eigh).
	if p.K != 3 || p.Choice != ChoiceAgoraBench || p.Share != 0 || p.Fit == nil {
		t.Fatalf("k = %d (%s, share %v), fit %v (%s)", p.K, p.Choice, p.Share, p.Fit, p.FitError)
	}
	close(t, "R²", p.Fit.R2, 0.9900337087459824, 1e-10)
	close(t, "p", p.Fit.P, 0.014912127168037548, 1e-8)
	strength := map[string]float64{"instruction_difficulty": 0.57293995, "response_quality": 0.50837557, "zz_custom": 0.51295205}
	for _, im := range p.Importance {
		close(t, "loading strength of "+im.Feature, im.MeanAbsLoading, strength[im.Feature], 1e-8)
	}
	// -share 0.9: the fewest components reaching 90%, here 2.
	rep, err = Analyse(ds, Options{Share: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.PCA; p.K != 2 || p.Choice != ChoiceShare || p.Share != 0.9 || p.Fit == nil {
		t.Fatalf("share 0.9: k = %d (%s), fit %v (%s)", p.K, p.Choice, p.Fit, p.FitError)
	}
	close(t, "R²", rep.PCA.Fit.R2, 0.9882492104502222, 1e-10)
	close(t, "p", rep.PCA.Fit.P, 0.0012737980289761594, 1e-8)
	rep, err = Analyse(ds, Options{K: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PCA.K != 1 || rep.PCA.Choice != ChoiceK || rep.PCA.Fit == nil || rep.PCA.Fit.K != 1 {
		t.Errorf("K = 1: %+v", rep.PCA)
	}
}

func TestAnalyseCost(t *testing.T) {
	// One generator at three sizes and another at one, on math-ig.
	ds := Dataset{Settings: twoSettings()[:1], Cells: []Cell{
		{Generator: "mini", Setting: "math-ig", Instances: 10000, PGR: f64(20), Cost: f64(1)},
		{Generator: "mini", Setting: "math-ig", Instances: 50000, PGR: f64(45), Cost: f64(5)},
		{Generator: "mini", Setting: "math-ig", Instances: 20000, PGR: f64(30), Cost: f64(2)},
		{Generator: "big", Setting: "math-ig", Instances: 10000, PGR: f64(40), Cost: f64(17)},
	}}
	rep, err := Analyse(ds, Options{Targets: []float64{25, 42, 60}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Table.Rows) != 4 || rep.Table.Rows[0].Generator != "big" || rep.Table.Rows[1].Generator != "mini (n=10000)" {
		t.Errorf("rows %+v", rep.Table.Rows)
	}
	d := rep.Cost.Domains[0]
	var fr []string
	for _, p := range d.Frontier {
		fr = append(fr, p.Label)
	}
	// big (17, 40) is dominated by mini at 50000 (5, 45).
	if strings.Join(fr, "; ") != "mini math-ig (n=10000); mini math-ig (n=20000); mini math-ig (n=50000)" {
		t.Errorf("frontier %q", fr)
	}
	if d.Cheapest[0].Found == nil || d.Cheapest[0].Found.Cost != 2 || d.Cheapest[1].Found.Cost != 5 || d.Cheapest[2].Found != nil || d.Cheapest[2].Best.PGR != 45 {
		t.Errorf("cheapest %+v", d.Cheapest)
	}
	if len(rep.Cost.Scaling) != 1 || rep.Cost.Scaling[0].Generator != "mini" {
		t.Fatalf("scaling %+v", rep.Cost.Scaling)
	}
	var ns []int
	for _, p := range rep.Cost.Scaling[0].Points {
		ns = append(ns, p.Instances)
	}
	if len(ns) != 3 || ns[0] != 10000 || ns[2] != 50000 {
		t.Errorf("scaling instances %v", ns)
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadResultsCSV(t *testing.T) {
	p := writeFile(t, "r.csv", "generator,setting,instances,pgr,cost_usd,problem_solving,price_input,price_output,response_quality,feature_judge2\n"+
		"gpt-4o,math-ig,10000,20.6,24.5,75.5,2.5,10,3.9,4.1\n"+
		"gpt-4o,code-ig,,-1.5,,,2.5,,,\n"+
		"\n"+
		"custom,my-setting,,7,,,,,,\n")
	r, err := ReadResults(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Cells) != 3 {
		t.Fatalf("%d cells", len(r.Cells))
	}
	c := r.Cells[0]
	if c.Generator != "gpt-4o" || c.Instances != 10000 || *c.PGR != 20.6 || *c.Cost != 24.5 || *c.ProblemSolving != 75.5 ||
		c.Features["response_quality"] != 3.9 || c.Features["judge2"] != 4.1 || c.Source != p+":2:1" || c.NoPGR != "" {
		t.Errorf("cell %+v", c)
	}
	if c := r.Cells[1]; *c.PGR != -1.5 || c.Cost != nil || len(c.Features) != 0 {
		t.Errorf("cell 2 %+v", c)
	}
	if r.Cells[2].Source != p+":5:1" {
		t.Errorf("blank lines count: source %s", r.Cells[2].Source)
	}
	if len(r.Generators) != 2 || *r.Generators[0].PriceInput != 2.5 || *r.Generators[0].PriceOutput != 10 || r.Generators[1].PriceInput != nil {
		t.Errorf("generators %+v", r.Generators)
	}
}

func TestReadResultsJSON(t *testing.T) {
	p := writeFile(t, "r.json", `[
  {"generator": "gpt-4o", "setting": "math-ig", "pgr": 20.6, "cost_usd": null, "instruction_diversity": 0.4},
  {"generator": "x", "setting": "s", "domain": "math", "method": "response_generation", "pgr": 3}
]`)
	r, err := ReadResults(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Cells) != 2 || *r.Cells[0].PGR != 20.6 || r.Cells[0].Cost != nil || r.Cells[0].Features["instruction_diversity"] != 0.4 || r.Cells[1].Source != p+":3:3" {
		t.Errorf("cells %+v", r.Cells)
	}
	if s := r.Settings["s"]; s.Domain != "math" || s.Method != "response_generation" || s.Source != p+":3:48" {
		t.Errorf("settings %+v", r.Settings)
	}
	if r.SettingAt["s"] != p+":3:33" || r.SettingAt["math-ig"] != p+":2:38" {
		t.Errorf("settings named at %v", r.SettingAt)
	}
}

// A line without a pgr value is a cell whose PGR the file does not give,
// and the report says so rather than "no student score".
func TestReadResultsNoPGR(t *testing.T) {
	p := writeFile(t, "r.csv", "generator,setting,pgr,response_quality\na,math-ig,,3\na,code-ig,12,4\n")
	r, err := ReadResults(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cells[0].NoPGR != NoPGRInFile || r.Cells[1].NoPGR != "" {
		t.Fatalf("cells %+v", r.Cells)
	}
	ds := Dataset{Settings: []Setting{{Name: "math-ig", Domain: "math", Benchmarks: []string{"gsm8k"}}, {Name: "code-ig", Domain: "code", Benchmarks: []string{"mbpp"}}},
		Cells: r.Cells}
	rep, err := Analyse(ds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Table.Rows[0].Settings[0]; c.PGR.Valid || c.PGR.Why != "the file gives no PGR" || c.Benchmarks != nil {
		t.Errorf("math-ig cell %+v", c)
	}
	if s := rep.Table.Rows[0].Score; s.Valid || s.Why != "missing math-ig (the file gives no PGR)" {
		t.Errorf("score %+v", s)
	}
	if len(rep.Table.Warnings) != 0 {
		t.Errorf("warnings %q with a PGR in the table", rep.Table.Warnings)
	}
}

// With no PGR anywhere the table warns.
func TestAnalyseWarnsWithoutPGR(t *testing.T) {
	p := writeFile(t, "r.csv", "generator,setting,response_quality\na,math-ig,3\nb,math-ig,4\n")
	r, err := ReadResults(p)
	if err != nil {
		t.Fatal(err)
	}
	ds := Dataset{Settings: []Setting{{Name: "math-ig", Domain: "math", Benchmarks: []string{"gsm8k"}}}, Cells: r.Cells}
	rep, err := Analyse(ds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Table.Warnings) != 1 || rep.Table.Warnings[0] != NoPGRWarning {
		t.Errorf("warnings %q, want the no-PGR warning", rep.Table.Warnings)
	}
}

// A problem-solving score given on one line of a generator and domain
// holds for the generator's other cells of that domain: the per-cell
// regression and the PCA keep them.
func TestProblemSolvingCarriedToDomain(t *testing.T) {
	ps := func(v float64) *float64 { return &v }
	settings := []Setting{{Name: "math-ig", Domain: "math", Benchmarks: []string{"gsm8k"}}, {Name: "math-rg", Domain: "math", Benchmarks: []string{"gsm8k"}},
		{Name: "code-ig", Domain: "code", Benchmarks: []string{"mbpp"}}}
	var cells []Cell
	pgr := map[string][3]float64{"a": {10, 14, 30}, "b": {20, 18, 25}, "c": {35, 31, 12}, "d": {5, 9, 40}}
	solve := map[string][2]float64{"a": {40, 60}, "b": {55, 50}, "c": {70, 30}, "d": {30, 75}}
	for _, g := range []string{"a", "b", "c", "d"} {
		for i, s := range settings {
			v := pgr[g][i]
			c := Cell{Generator: g, Setting: s.Name, PGR: &v, Source: g + s.Name}
			// The score is given on the first cell of each domain only.
			switch s.Name {
			case "math-ig":
				c.ProblemSolving = ps(solve[g][0])
			case "code-ig":
				c.ProblemSolving = ps(solve[g][1])
			}
			cells = append(cells, c)
		}
	}
	rep, err := Analyse(Dataset{Settings: settings, Cells: cells}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	perCell := rep.ProblemSolving[1]
	if perCell.Fit == nil || perCell.Fit.N != 12 || len(perCell.Left) != 0 {
		t.Fatalf("per cell: n %v, left %q, error %q", perCell.Fit, perCell.Left, perCell.Error)
	}
	for i, l := range perCell.Labels {
		if l == "a × math-rg" && perCell.Points[i][0] != 40 {
			t.Errorf("a × math-rg problem solving %v, want math's 40", perCell.Points[i][0])
		}
	}
	if g := rep.Generators[0]; !g.ProblemSolving.Valid || g.ProblemSolving.V != 50 {
		t.Errorf("a's problem solving %+v, want (40 + 60)/2", g.ProblemSolving)
	}
	// The input is not changed.
	if cells[1].ProblemSolving != nil {
		t.Error("Analyse changed its input's cells")
	}
}

func TestReadResultsErrors(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"a.csv", "generator,setting,pgrr\n", `:1:19: unknown column "pgrr" (did you mean "pgr"?)`},
		{"a.csv", "generator,pgr\n", `:1:1: no "setting" column`},
		{"a.csv", "generator,setting,pgr,pgr\n", `:1:23: column "pgr" appears twice`},
		{"a.csv", "generator,setting,pgr\nx,math-ig,abc\n", `:2:11: pgr: "abc" is not a finite number`},
		{"a.csv", "generator,setting,pgr\nx,math-ig,NaN\n", `:2:11: pgr: "NaN" is not a finite number`},
		{"a.csv", "generator,setting,pgr\nx,math-ig\n", `:2:3: 2 fields, but the header has 3`},
		{"a.csv", "generator,setting,instances\nx,math-ig,1.5\n", `:2:11: instances: "1.5" is not a whole number`},
		{"a.csv", "generator,setting,cost_usd\nx,math-ig,-1\n", `:2:11: cost_usd: -1: a cost cannot be negative`},
		{"a.csv", "generator,setting\n,math-ig\n", `:2:1: the result has no generator`},
		{"a.csv", "generator,setting,price_input\nx,a,1\nx,b,2\n", `a.csv:3:5: price_input of x is 2 here but 1 at `},
		{"a.csv", "generator,setting,domain,method\nx,s,math,instance_generation\ny,s,code,instance_generation\n", `a.csv:3:5: setting s: domain "code"`},
		{"a.csv", "generator,setting\nx,\"a\n", `:2:6: extraneous or missing " in quoted-field`},
		{"a.csv", "", `empty results file`},
		{"a.csv", "generator,setting,feature_\n", `:1:19: column "feature_" names no feature`},
		{"a.json", `{"generator": "x"}`, `:1:1: want a JSON array`},
		{"a.json", "[\n  {\"generator\": \"x\"}\n]", `:2:3: the result has no "setting"`},
		{"a.json", "[\n  {\"generator\": \"x\", \"setting\": \"s\", \"pgr\": \"12\"}\n]", `:2:45: pgr: want a number, not the string "12"`},
		{"a.json", "[\n  {\"generator\": 3, \"setting\": \"s\"}\n]", `:2:17: generator: want a string, not 3`},
		{"a.json", "[\n  {\"generator\": \"x\", \"setting\": \"s\", \"cost\": 1}\n]", `:2:38: unknown column "cost"`},
		{"a.json", "[\n  {\"generator\": \"x\", \"setting\": \"s\", \"pgr\": [1]}\n]", `:2:45: pgr: want a string or a number, not an array`},
		{"a.json", "[\n  {\"generator\": \"x\",\n", `unexpected end of JSON`},
		{"a.json", "[\n  {\"generator\" \"x\"}\n]", `:2:16: expected colon after object key`},
		{"a.json", "[\n  3\n]", `:2:3: want a result object, not a number`},
		{"a.json", "[] []", `:1:4: an array after the array: want one array`},
		{"a.json", "[]\n x", `:2:2: invalid character 'x' looking for beginning of value`},
		{"a.txt", "", `unknown results format ".txt"`},
	} {
		p := writeFile(t, c.name, c.text)
		_, err := ReadResults(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
}
