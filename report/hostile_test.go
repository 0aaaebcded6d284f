package report

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agorabench/agora/analysis"
)

// Names from a results file or the state are data, never markup or
// formulas: a spreadsheet opening the CSV executes nothing, the markdown
// and the HTML page show them as written.
func TestHostileNames(t *testing.T) {
	pgr, pgr2, cost := -12.5, 30.0, 3.0
	evil := `<script>alert(1)</script>`
	formula := `=cmd|' /C calc'!A0`
	ds := analysis.Dataset{
		Settings: []analysis.Setting{{Name: "+SUM(A1)", Domain: "math", Method: "@method", Benchmarks: []string{"gsm8k"}}},
		Cells: []analysis.Cell{
			{Generator: formula, Setting: "+SUM(A1)", PGR: &pgr, Cost: &cost},
			{Generator: evil, Setting: "+SUM(A1)", PGR: &pgr2, Cost: &cost},
			{Generator: "-2+3", Setting: "+SUM(A1)", PGR: &pgr2},
		},
	}
	rep, err := analysis.Analyse(ds, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows[1:] {
		for i, cell := range row[:4] {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %d %q would be executed", i, cell)
			}
		}
		if row[0] == "'"+formula && row[4] != "-12.5000" {
			t.Errorf("a negative PGR must stay a number: %q", row[4])
		}
	}
	if !strings.Contains(out, "'"+strings.ReplaceAll(formula, `'`, `'`)) {
		t.Errorf("the formula is not kept, neutralised:\n%s", out)
	}

	b.Reset()
	if err := WriteMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<script>") || !strings.Contains(b.String(), `\<script\>alert(1)\</script\>`) {
		t.Errorf("markdown carries raw markup:\n%s", b.String())
	}
	if strings.Contains(b.String(), `=cmd|'`) {
		t.Errorf("a name breaks the table with a raw |:\n%s", b.String())
	}

	dir := t.TempDir()
	if err := WriteHTML(dir, rep); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	if strings.Contains(string(page), "<script>alert") {
		t.Errorf("the page carries a raw <script>")
	}
}

func TestMarkdownEscape(t *testing.T) {
	for in, want := range map[string]string{
		"gpt-4o":           "gpt-4o",
		"problem_solving":  "problem_solving",
		"_x_":              `\_x\_`,
		"a|b":              `a\|b`,
		"[link](http://x)": `\[link\](http://x)`,
		"line\nbreak":      "line break",
		"&lt;b&gt;":        `\&lt;b\&gt;`,
	} {
		if got := analysis.MarkdownEscape(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
