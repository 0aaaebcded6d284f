package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"

	"github.com/agorabench/agora/analysis"
)

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"val": func(v analysis.Value, prec int) template.HTML {
		if !v.Valid {
			return template.HTML(`<span class="missing" title="` + template.HTMLEscapeString(v.Why) + `">—</span>`)
		}
		return template.HTML(template.HTMLEscapeString(v.Format(prec)))
	},
	"num":    num,
	"pct":    pct,
	"pval":   pval,
	"price":  price,
	"fnum":   fnum,
	"svg":    func(s string) template.HTML { return template.HTML(s) }, // rendered by gonum/plot from our own data
	"fit":    FitLine,
	"choice": Choice,
	"add":    func(a, b int) int { return a + b },
	"loading": func(r analysis.PCAReport, feature string, c int) string {
		return num(r.Loadings[indexOf(r.Features, feature)][c], 3)
	},
	"upto": func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	},
	"join": strings.Join,
}).Parse(pageSource))

// htmlData is what the page template shows.
type htmlData struct {
	R          *analysis.Report
	Bars       *figure
	Cost       []*figure
	Scaling    []*figure
	Scree      *figure
	Loadings   *figure
	Regression []*figure
	Warnings   []string
	SameError  bool
}

// WriteHTML writes DIR/index.html: the report as one self-contained page
// (inline CSS and SVG, no scripts, nothing fetched).
func WriteHTML(dir string, r *analysis.Report) error {
	d := htmlData{R: r, Warnings: r.Table.Warnings, SameError: sameError(r.ProblemSolving)}
	gens := map[string]int{}
	for i, row := range r.Table.Rows {
		g := row.Generator
		if i < len(r.Generators) {
			g = r.Generators[i].Generator
		}
		if _, ok := gens[g]; !ok {
			gens[g] = len(gens)
		}
	}
	var firstErr error
	fail := func(what string, e error) {
		if e != nil && firstErr == nil {
			firstErr = fmt.Errorf("plot %s: %w", what, e)
		}
	}
	// The bars follow the table's rows; the other plots colour by
	// generator.
	var e error
	d.Bars, e = barsFigure(r.Table)
	fail("PGR by setting", e)
	for _, dom := range r.Cost.Domains {
		f, e := costFigure(dom, gens)
		fail("cost "+dom.Domain, e)
		if f != nil {
			d.Cost = append(d.Cost, f)
		}
	}
	bySetting := map[string][]analysis.Curve{}
	var settings []string
	for _, c := range r.Cost.Scaling {
		if _, ok := bySetting[c.Setting]; !ok {
			settings = append(settings, c.Setting)
		}
		bySetting[c.Setting] = append(bySetting[c.Setting], c)
	}
	for _, s := range settings {
		f, e := scalingFigure(s, bySetting[s], gens)
		fail("scaling "+s, e)
		if f != nil {
			d.Scaling = append(d.Scaling, f)
		}
	}
	if r.PCA.PCA != nil {
		d.Scree, e = screeFigure(r.PCA)
		fail("scree", e)
		d.Loadings, e = loadingsFigure(r.PCA)
		fail("loadings", e)
	}
	for _, reg := range r.ProblemSolving {
		f, e := regressionFigure(reg)
		fail("regression", e)
		if f != nil {
			d.Regression = append(d.Regression, f)
		}
	}
	if firstErr != nil {
		return firstErr
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	path := filepath.Join(dir, "index.html")
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	if err := page.Execute(f, d); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("html report: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("html report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	return nil
}
