// Package report renders an analysis.Report for people and programs:
// markdown for the terminal, CSV of the PGR cells, and a self-contained
// HTML page whose plots (gonum.org/v1/plot) are inline SVG. It computes
// nothing of its own: every number comes from package analysis.
package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agorabench/agora/analysis"
)

// WriteMarkdown writes the report as markdown: the PGR table (Table 2
// shape), the generators (Table 3 shape), problem solving as a predictor,
// the PCA, and cost-effectiveness. An analysis that could not be computed
// says why.
func WriteMarkdown(w io.Writer, r *analysis.Report) error {
	var b strings.Builder
	b.WriteString("## PGR by generator and setting\n\n")
	if err := r.Table.WriteMarkdown(&b); err != nil {
		return err
	}
	b.WriteString("\n## Generators\n\n")
	writeGenerators(&b, r.Generators)
	b.WriteString("\n## Problem solving as a predictor of PGR\n\n")
	if sameError(r.ProblemSolving) {
		b.WriteString("Not computed: " + md(r.ProblemSolving[0].Error) + "\n")
	} else {
		for _, reg := range r.ProblemSolving {
			writeRegression(&b, reg)
		}
	}
	b.WriteString("\n## PCA of the intrinsic features\n\n")
	writePCA(&b, r.PCA)
	b.WriteString("\n## Cost-effectiveness\n\n")
	writeCost(&b, r.Cost)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeGenerators(b *strings.Builder, lines []analysis.GeneratorLine) {
	b.WriteString("| generator | price in / out ($ per 1M tokens) | problem solving | AgoraBench score | cost (USD) | PGR per $ |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, l := range lines {
		pr := "—"
		if l.PriceInput.Valid || l.PriceOutput.Valid {
			pr = price(l.PriceInput) + " / " + price(l.PriceOutput)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", md(l.Row), pr, l.ProblemSolving.Format(1),
			l.Score.Format(1), l.Cost.Format(2), l.PerDollar.Format(3))
	}
}

// FitLine is a regression in one line: "PGR = a + b × x; R² = …, p = … (n = …)".
func FitLine(f *analysis.Fit) string {
	sign := "+"
	b := f.Slope
	if b < 0 {
		sign, b = "−", -b
	}
	return fmt.Sprintf("y = %s %s %s·x; R² = %s, slope %s (n = %d)", num(f.Intercept, 3), sign, num(b, 3), num(f.R2, 3), pval(f.P), f.N)
}

// sameError reports whether every regression failed for one reason (no
// problem-solving scores at all), which is then said once.
func sameError(rs []analysis.Regression) bool {
	if len(rs) == 0 {
		return false
	}
	for _, r := range rs {
		if r.Fit != nil || r.Error == "" || r.Error != rs[0].Error || len(r.Left) > 0 {
			return false
		}
	}
	return true
}

func writeRegression(b *strings.Builder, r analysis.Regression) {
	fmt.Fprintf(b, "- **%s**: y = %s, x = %s.  \n  ", md(r.Name), md(r.Y), md(r.X))
	if r.Fit != nil {
		b.WriteString(FitLine(r.Fit))
	} else {
		b.WriteString("Not computed: " + md(r.Error))
	}
	b.WriteString("\n")
	if len(r.Left) > 0 {
		fmt.Fprintf(b, "  Left out (%d): %s\n", len(r.Left), strings.Join(mdAll(r.Left), "; "))
	}
}

func writePCA(b *strings.Builder, p analysis.PCAReport) {
	if p.PCA == nil {
		b.WriteString("Not computed: " + md(p.Error) + "\n")
		writeLeft(b, p.Left)
		return
	}
	fmt.Fprintf(b, "%d observations, %d features, standardised; eigen-decomposition of their correlation matrix.\n\n", p.N, len(p.Features))
	b.WriteString("| component | eigenvalue | explained | cumulative |\n|---|---:|---:|---:|\n")
	for c := range p.Eigenvalues {
		fmt.Fprintf(b, "| PC%d | %s | %s%% | %s%% |\n", c+1, num(p.Eigenvalues[c], 3), num(100*p.Explained[c], 1), num(100*p.Cumulative[c], 1))
	}
	fmt.Fprintf(b, "\nLoadings of the top %d component(s) (%s; %s of the variance; unit eigenvectors):\n\n", p.K, md(Choice(p)), pct(p.Cumulative[p.K-1]))
	b.WriteString("| feature |")
	for c := 0; c < p.K; c++ {
		fmt.Fprintf(b, " PC%d |", c+1)
	}
	b.WriteString(" loading strength | share |\n|---|")
	for c := 0; c < p.K; c++ {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|\n")
	imp := map[string]analysis.Importance{}
	for _, im := range p.Importance {
		imp[im.Feature] = im
	}
	for _, im := range p.Importance {
		f := indexOf(p.Features, im.Feature)
		fmt.Fprintf(b, "| %s |", md(im.Feature))
		for c := 0; c < p.K; c++ {
			fmt.Fprintf(b, " %s |", num(p.Loadings[f][c], 3))
		}
		fmt.Fprintf(b, " %s | %s |\n", num(im.MeanAbsLoading, 3), pct(im.Share))
	}
	b.WriteString("\n")
	if p.Fit != nil {
		fmt.Fprintf(b, "PGR on the top %d component score(s): R² = %s, adjusted R² = %s, F(%d, %d) = %s, %s (n = %d).\n",
			p.K, num(p.Fit.R2, 3), num(p.Fit.AdjR2, 3), p.Fit.DF1, p.Fit.DF2, fnum(p.Fit.F), pval(p.Fit.P), p.Fit.N)
	} else {
		b.WriteString("Not computed: " + md(p.FitError) + "\n")
	}
	writeLeft(b, p.Left)
}

// Choice says how the PCA's number of components was chosen.
func Choice(p analysis.PCAReport) string {
	switch p.Choice {
	case analysis.ChoiceShare:
		return fmt.Sprintf("the fewest reaching %s of the variance, -share", pct(p.Share))
	case analysis.ChoiceK:
		return "-k"
	}
	if p.K < analysis.PaperComponents {
		return fmt.Sprintf("all of them: AgoraBench's top %d, with only %d features", analysis.PaperComponents, len(p.Features))
	}
	return fmt.Sprintf("AgoraBench's top %d", analysis.PaperComponents)
}

func writeLeft(b *strings.Builder, left []string) {
	if len(left) > 0 {
		fmt.Fprintf(b, "\nLeft out (%d): %s\n", len(left), strings.Join(mdAll(left), "; "))
	}
}

func writeCost(b *strings.Builder, c analysis.CostReport) {
	drawn := false
	for _, d := range c.Domains {
		if len(d.Points) == 0 {
			continue
		}
		drawn = true
		fmt.Fprintf(b, "**%s** — Pareto frontier (cheapest first): ", md(d.Domain))
		var fr []string
		for _, p := range d.Frontier {
			fr = append(fr, md(p.String()))
		}
		b.WriteString(strings.Join(fr, " → ") + "\n\n")
		for _, t := range d.Cheapest {
			switch {
			case t.Found != nil:
				fmt.Fprintf(b, "- cheapest reaching PGR ≥ %s: %s\n", num(t.Target, 1), md(t.Found.String()))
			case t.Best != nil:
				fmt.Fprintf(b, "- cheapest reaching PGR ≥ %s: none; the best is %s\n", num(t.Target, 1), md(t.Best.String()))
			}
		}
		b.WriteString("\n")
	}
	if !drawn {
		b.WriteString("No cell has both a PGR and a cost.\n\n")
	}
	if len(c.Scaling) == 0 {
		b.WriteString("No scaling curves: no generator has a setting at two instance counts.\n")
		return
	}
	b.WriteString("Scaling over instance counts:\n\n| generator | setting | instances | PGR | cost (USD) |\n|---|---|---:|---:|---:|\n")
	for _, cu := range c.Scaling {
		for _, p := range cu.Points {
			fmt.Fprintf(b, "| %s | %s | %d | %s | %s |\n", md(cu.Generator), md(cu.Setting), p.Instances, num(p.PGR, 1), p.Cost.Format(2))
		}
	}
}

// WriteCSV writes one line per table row and setting: the cell's PGR and
// the row's AgoraBench score, cost and PGR per dollar (repeated); missing
// values are empty fields.
func WriteCSV(w io.Writer, r *analysis.Report) error {
	t := r.Table
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"generator", "setting", "domain", "method", "pgr", "agorabench_score", "cost_usd", "pgr_per_dollar"}); err != nil {
		return err
	}
	val := func(v analysis.Value) string {
		if !v.Valid {
			return ""
		}
		return strconv.FormatFloat(v.V, 'f', 4, 64)
	}
	for _, row := range t.Rows {
		for i, c := range row.Settings {
			s := t.Settings[i]
			if err := cw.Write([]string{csvCell(row.Generator), csvCell(c.Setting), csvCell(s.Domain), csvCell(s.Method),
				val(c.PGR), val(row.Score), val(row.Cost), val(row.PerDollar)}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// md escapes text that comes from the state or a results file (names,
// reasons) for markdown: every character markdown or HTML would read as
// markup is backslash-escaped, so a name shows as written and never as a
// tag, a link or a table cell boundary; line breaks become spaces.
func md(s string) string { return analysis.MarkdownEscape(s) }

// csvCell neutralises a text cell a spreadsheet would execute (OWASP's
// CSV injection rule): a cell starting with =, +, -, @, a tab or a
// carriage return gets a leading apostrophe. Numbers are written by agora
// and left as they are.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// mdAll escapes each of xs.
func mdAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = md(x)
	}
	return out
}

func num(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

func fnum(v float64) string {
	if v > 1e12 {
		return "∞"
	}
	return num(v, 2)
}

func pct(v float64) string { return num(100*v, 1) + "%" }

// pval renders "p = 0.023", or "p < 0.001" below that.
func pval(p float64) string {
	if p < 0.001 {
		return "p < 0.001"
	}
	return "p = " + num(p, 3)
}

// price renders dollars per million tokens without rounding cheap models
// to zero: 2.5, 0.055.
func price(v analysis.Value) string {
	if !v.Valid {
		return "—"
	}
	return strconv.FormatFloat(v.V, 'f', -1, 64)
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}
