package report

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agorabench/agora/analysis"
	"github.com/agorabench/agora/spec"
)

// sweep is the report of testdata/sweep.csv: made-up results for five
// generators on the nine AgoraBench settings, one of them at three sizes
// on the instance-generation settings, with prices, problem-solving
// scores and seven intrinsic features.
func sweep(t testing.TB) *analysis.Report {
	t.Helper()
	res, err := analysis.ReadResults(filepath.Join("testdata", "sweep.csv"))
	if err != nil {
		t.Fatal(err)
	}
	ds := analysis.Dataset{Cells: res.Cells, Generators: res.Generators}
	for _, name := range spec.BuiltinSettings() {
		s, _ := spec.BuiltinSetting(name)
		ds.Settings = append(ds.Settings, analysis.Setting{Name: name, Domain: s.Domain, Method: s.Method, Benchmarks: s.Benchmarks})
	}
	rep, err := analysis.Analyse(ds, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestHTML(t *testing.T) {
	rep := sweep(t)
	dir := t.TempDir()
	if err := WriteHTML(dir, rep); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	// 1 bar chart, 3 cost panels (one per domain), 3 scaling panels (the
	// instance-generation settings of small-api), 2 regressions, the
	// scree plot and the loadings.
	if n := strings.Count(page, "<svg"); n != 11 {
		t.Errorf("%d plots, want 11", n)
	}
	for _, bad := range []string{"<script", "<?xml", `src="http`, `href="http`, "NaN", "Inf"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	// Every plot scales with the page.
	for _, tag := range regexp.MustCompile(`<svg[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, `width="100%"`) || !strings.Contains(tag, "viewBox=") || strings.Contains(tag, "pt\"") {
			t.Errorf("svg tag %s", tag)
		}
	}
	// A missing value carries its reason.
	if !regexp.MustCompile(`<span class="missing" title="[^"]+">—</span>`).MatchString(page) {
		t.Error("no missing value with its reason")
	}
	for _, want := range []string{
		"large-api", "small-api (n=50000)", "Pareto frontier", "PC1", "loading strength",
		num(rep.PCA.Fit.R2, 3), FitLine(rep.ProblemSolving[0].Fit),
		"0.055 / 0.055", // a cheap price is not rounded to zero
	} {
		if !strings.Contains(page, escaped(want)) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// escaped escapes s as html/template does in text.
func escaped(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "+", "&#43;")
	return r.Replace(s)
}

func TestMarkdown(t *testing.T) {
	rep := sweep(t)
	var b bytes.Buffer
	if err := WriteMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## PGR by generator and setting", "## Generators", "## Problem solving as a predictor of PGR",
		"## PCA of the intrinsic features", "## Cost-effectiveness",
		"| large-api | 2.5 / 10 |", "Scaling over instance counts", "cheapest reaching PGR ≥ 25.0: ",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

// TestDegenerate renders a report where nothing beyond the table can be
// computed: every analysis says why, in markdown and HTML, with no NaN.
func TestDegenerate(t *testing.T) {
	pgr := 12.5
	ds := analysis.Dataset{
		Settings: []analysis.Setting{{Name: "math-ig", Domain: "math", Method: "instance_generation", Benchmarks: []string{"gsm8k"}}},
		Cells:    []analysis.Cell{{Generator: "only", Setting: "math-ig", PGR: &pgr}},
	}
	rep, err := analysis.Analyse(ds, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"Not computed: no problem-solving scores: add problem_solving: {} to the spec",
		"Not computed: no intrinsic features",
		"No cell has both a PGR and a cost.",
		"No scaling curves",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	dir := t.TempDir()
	if err := WriteHTML(dir, rep); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	if strings.Contains(string(page), "NaN") || !strings.Contains(string(page), "Not computed: no intrinsic features") {
		t.Errorf("degenerate page:\n%s", page)
	}
	if n := strings.Count(string(page), "<svg"); n != 1 {
		t.Errorf("%d plots, want the bar chart only", n)
	}

	// No PGR at all: no empty chart, a sentence instead.
	rep.Table.Rows[0].Settings[0].PGR = analysis.Missing("no student score")
	if err := WriteHTML(dir, rep); err != nil {
		t.Fatal(err)
	}
	page, _ = os.ReadFile(filepath.Join(dir, "index.html"))
	if strings.Contains(string(page), "<svg") || !strings.Contains(string(page), "No PGR to plot yet") {
		t.Errorf("page without any PGR:\n%s", page)
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{10000: "10k", 1500: "1.5k", 2_000_000: "2M", 874: "874", 10001: "10001"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
