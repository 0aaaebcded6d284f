package analysis

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Setting is a column of the table: a domain × generation method scored
// on its domain's benchmarks.
type Setting struct {
	Name       string   `json:"name"`
	Domain     string   `json:"domain,omitempty"`
	Method     string   `json:"method,omitempty"`
	Benchmarks []string `json:"benchmarks"`
}

// Input holds the scores a table is built from, in percent. A score that
// is absent is missing; it is never read as zero.
type Input struct {
	// Settings are the table's columns, in order.
	Settings []Setting
	// Base and Reference map a benchmark to the score of the base model
	// (S_Ø) and of the reference model (S_ref), shared by all generators.
	Base      map[string]float64
	Reference map[string]float64
	// Students maps generator → setting → benchmark → the score of the
	// student trained on that generator's data for that setting.
	Students map[string]map[string]map[string]float64
	// PGR maps generator → setting → a PGR given directly (imported from
	// another team's or a paper's results) for cells without student
	// scores; scores, when present, win.
	PGR map[string]map[string]float64
	// Cost maps a generator to the US dollars its data cost over the
	// table's settings (optional).
	Cost map[string]float64
	// Generators orders the rows; empty: every generator of Students and
	// Cost, sorted by name.
	Generators []string
}

// BenchmarkCell is one generator's PGR on one benchmark of one setting.
type BenchmarkCell struct {
	Benchmark string `json:"benchmark"`
	Student   Value  `json:"student"`
	Base      Value  `json:"base"`
	Reference Value  `json:"reference"`
	PGR       Value  `json:"pgr"`
}

// SettingCell is one generator's PGR on one setting: the mean of its
// benchmarks' PGR.
type SettingCell struct {
	Setting    string          `json:"setting"`
	PGR        Value           `json:"pgr"`
	Benchmarks []BenchmarkCell `json:"benchmarks"`
}

// Row is one generator's line of the table.
type Row struct {
	Generator string `json:"generator"`
	// Settings are aligned with Table.Settings.
	Settings []SettingCell `json:"settings"`
	// Score is the AgoraBench score: the mean of the settings' PGR.
	Score Value `json:"score"`
	// Cost is the data's cost in US dollars; PerDollar is Score / Cost.
	Cost      Value `json:"cost_usd"`
	PerDollar Value `json:"pgr_per_dollar"`
}

// Table is PGR per generator, per setting and per benchmark.
type Table struct {
	Settings []Setting `json:"settings"`
	Rows     []Row     `json:"rows"`
	// Means are the column means: for each setting, the mean PGR over
	// the rows; MeanScore is the mean of the rows' scores.
	Means     []Value `json:"setting_means"`
	MeanScore Value   `json:"mean_score"`
	// Warnings are facts about the input a reader should know: PGR with
	// an inverted sign, scores given for settings or benchmarks the table
	// does not show.
	Warnings []string `json:"warnings,omitempty"`

	// rowIndex is each row's index by generator, built by NewTable (a
	// table with a million rows is looked up once per cell).
	rowIndex map[string]int
}

// NewTable computes the table. Structural mistakes in the input (no
// settings, a setting without benchmarks, a name used twice) are errors;
// missing or degenerate scores are missing cells with the reason.
func NewTable(in Input) (*Table, error) {
	if len(in.Settings) == 0 {
		return nil, errors.New("PGR table: no settings")
	}
	seen := map[string]bool{}
	inTable := map[string]map[string]bool{} // setting → benchmark
	for _, s := range in.Settings {
		if s.Name == "" {
			return nil, errors.New("PGR table: a setting has no name")
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("PGR table: setting %q listed twice", s.Name)
		}
		seen[s.Name] = true
		if len(s.Benchmarks) == 0 {
			return nil, fmt.Errorf("PGR table: setting %q has no benchmarks", s.Name)
		}
		inTable[s.Name] = map[string]bool{}
		for _, b := range s.Benchmarks {
			if inTable[s.Name][b] {
				return nil, fmt.Errorf("PGR table: setting %q lists benchmark %q twice", s.Name, b)
			}
			inTable[s.Name][b] = true
		}
	}
	gens, err := generators(in)
	if err != nil {
		return nil, err
	}

	t := &Table{Settings: append([]Setting(nil), in.Settings...)}
	warned := map[string]bool{}
	warn := func(format string, args ...any) {
		w := fmt.Sprintf(format, args...)
		if !warned[w] {
			warned[w] = true
			t.Warnings = append(t.Warnings, w)
		}
	}
	for _, s := range in.Settings {
		for _, b := range s.Benchmarks {
			base, okB := in.Base[b]
			ref, okR := in.Reference[b]
			if okB && okR && finite(base) && finite(ref) && ref < base {
				warn("%s: the reference (%s) scores below the base model (%s), so PGR's sign is inverted",
					b, fmtScore(ref), fmtScore(base))
			}
		}
	}

	for _, g := range gens {
		row := Row{Generator: g}
		var names []string
		var pgrs []Value
		for _, s := range in.Settings {
			scores := in.Students[g][s.Name]
			cell := SettingCell{Setting: s.Name}
			var bpgr []Value
			for _, b := range s.Benchmarks {
				bc := benchmarkCell(b, scores, in.Base, in.Reference)
				cell.Benchmarks = append(cell.Benchmarks, bc)
				bpgr = append(bpgr, bc.PGR)
			}
			cell.PGR = mean(s.Benchmarks, bpgr)
			if given, ok := in.PGR[g][s.Name]; ok && len(scores) == 0 {
				cell.PGR, cell.Benchmarks = Known(given), nil
			}
			row.Settings = append(row.Settings, cell)
			names = append(names, s.Name)
			pgrs = append(pgrs, cell.PGR)
			for b := range scores {
				if !inTable[s.Name][b] {
					warn("%s, %s: a score for %s, which the setting is not scored on, is ignored", g, s.Name, b)
				}
			}
		}
		for _, s := range sortedKeys(in.Students[g]) {
			if !seen[s] {
				warn("%s: scores for setting %s, which the table does not show, are ignored", g, s)
			}
		}
		for _, s := range sortedKeys(in.PGR[g]) {
			if !seen[s] {
				warn("%s: a PGR for setting %s, which the table does not show, is ignored", g, s)
			}
		}
		row.Score = mean(names, pgrs)
		row.Cost, row.PerDollar = costCells(in.Cost, g, row.Score)
		t.Rows = append(t.Rows, row)
	}
	var names []string
	for _, r := range t.Rows {
		names = append(names, r.Generator)
	}
	for i := range t.Settings {
		var col []Value
		for _, r := range t.Rows {
			col = append(col, r.Settings[i].PGR)
		}
		t.Means = append(t.Means, mean(names, col))
	}
	var scores []Value
	for _, r := range t.Rows {
		scores = append(scores, r.Score)
	}
	t.MeanScore = mean(names, scores)
	t.rowIndex = make(map[string]int, len(t.Rows))
	for i, r := range t.Rows {
		t.rowIndex[r.Generator] = i
	}
	return t, nil
}

// generators lists the rows: in.Generators, or every generator named.
func generators(in Input) ([]string, error) {
	if len(in.Generators) > 0 {
		seen := map[string]bool{}
		for _, g := range in.Generators {
			if g == "" {
				return nil, errors.New("PGR table: a generator has no name")
			}
			if seen[g] {
				return nil, fmt.Errorf("PGR table: generator %q listed twice", g)
			}
			seen[g] = true
		}
		return append([]string(nil), in.Generators...), nil
	}
	set := map[string]bool{}
	for g := range in.Students {
		set[g] = true
	}
	for g := range in.Cost {
		set[g] = true
	}
	for g := range in.PGR {
		set[g] = true
	}
	if set[""] {
		return nil, errors.New("PGR table: a generator has no name")
	}
	return sortedKeys(set), nil
}

// benchmarkCell computes one benchmark's PGR, or why there is none.
func benchmarkCell(b string, student, base, ref map[string]float64) BenchmarkCell {
	c := BenchmarkCell{Benchmark: b}
	c.Student = score(student, b, "student")
	c.Base = score(base, b, "base model")
	c.Reference = score(ref, b, "reference model")
	for _, v := range []Value{c.Student, c.Base, c.Reference} {
		if !v.Valid {
			c.PGR = Missing(v.Why)
			return c
		}
	}
	p, err := PGR(c.Student.V, c.Base.V, c.Reference.V)
	if err != nil {
		c.PGR = Missing(strings.TrimPrefix(err.Error(), "PGR: "))
		return c
	}
	c.PGR = Known(p)
	return c
}

// score is the score of whose (student, base model, reference model) on b.
func score(m map[string]float64, b, whose string) Value {
	v, ok := m[b]
	if !ok {
		return Missing("no " + whose + " score")
	}
	if !finite(v) {
		return Missing(fmt.Sprintf("%s score is %v", whose, v))
	}
	return Known(v)
}

// costCells are a generator's cost and PGR per dollar.
func costCells(costs map[string]float64, g string, score Value) (cost, perDollar Value) {
	c, ok := costs[g]
	if !ok {
		return Missing("no cost"), Missing("no cost")
	}
	if !finite(c) || c < 0 {
		why := fmt.Sprintf("cost is %v", c)
		return Missing(why), Missing(why)
	}
	cost = Known(c)
	if !score.Valid {
		return cost, Missing("no score: " + score.Why)
	}
	r, err := PerDollar(score.V, c)
	if err != nil {
		return cost, Missing(strings.TrimPrefix(err.Error(), "PGR per dollar: "))
	}
	return cost, Known(r)
}

// Row returns the row of a generator.
func (t *Table) Row(generator string) (Row, bool) {
	if i, ok := t.rowIndex[generator]; ok && i < len(t.Rows) && t.Rows[i].Generator == generator {
		return t.Rows[i], true
	}
	for _, r := range t.Rows {
		if r.Generator == generator {
			return r, true
		}
	}
	return Row{}, false
}

// Cell returns a generator's cell for a setting.
func (t *Table) Cell(generator, setting string) (SettingCell, bool) {
	r, ok := t.Row(generator)
	if !ok {
		return SettingCell{}, false
	}
	for _, c := range r.Settings {
		if c.Setting == setting {
			return c, true
		}
	}
	return SettingCell{}, false
}

// WriteMarkdown writes the table as markdown: a row per generator, a
// column per setting, then the AgoraBench score, the cost and PGR per
// dollar. Missing values print as "—"; the warnings follow the table.
func (t *Table) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| generator |")
	for _, s := range t.Settings {
		b.WriteString(" " + mdEscape(s.Name) + " |")
	}
	b.WriteString(" score | cost (USD) | PGR per $ |\n|---|")
	for range t.Settings {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|---:|\n")
	for _, r := range t.Rows {
		b.WriteString("| " + mdEscape(r.Generator) + " |")
		for _, c := range r.Settings {
			b.WriteString(" " + c.PGR.Format(1) + " |")
		}
		fmt.Fprintf(&b, " %s | %s | %s |\n", r.Score.Format(1), r.Cost.Format(2), r.PerDollar.Format(3))
	}
	if len(t.Rows) > 1 {
		b.WriteString("| *mean* |")
		for _, m := range t.Means {
			b.WriteString(" " + m.Format(1) + " |")
		}
		fmt.Fprintf(&b, " %s | | |\n", t.MeanScore.Format(1))
	}
	for _, warning := range t.Warnings {
		b.WriteString("\nWarning: " + mdEscape(warning) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdEscape(s string) string { return MarkdownEscape(s) }

// markdownSpecial are the characters markdown or HTML read as markup
// inside a line (a name is never at the start of one).
const markdownSpecial = "\\`*_[]<>|~&"

// MarkdownEscape makes s literal text in markdown: each character of
// inline markup is backslash-escaped (so a name never shows as a tag, a
// link, emphasis or a table cell boundary; an underscore inside a word,
// which is no emphasis, is left as it is) and line breaks become spaces.
func MarkdownEscape(s string) string {
	if !strings.ContainsAny(s, markdownSpecial+"\n\r") {
		return s
	}
	word := func(i int) bool {
		if i < 0 || i >= len(s) {
			return false
		}
		c := s[i]
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n' || c == '\r':
			b.WriteByte(' ')
		case c == '_' && word(i-1) && word(i+1):
			b.WriteByte(c)
		case strings.IndexByte(markdownSpecial, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
