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
	seen, _, err := checkSettings(in.Settings)
	if err != nil {
		return nil, err
	}
	gens, err := generators(in)
	if err != nil {
		return nil, err
	}
	rows := make([]rowInput, len(gens))
	for i, g := range gens {
		r := rowInput{name: g, scores: make([]map[string]float64, len(in.Settings)), pgr: make([]*float64, len(in.Settings))}
		for k, s := range in.Settings {
			r.scores[k] = in.Students[g][s.Name]
			if v, ok := in.PGR[g][s.Name]; ok {
				r.pgr[k] = &v
			}
		}
		if c, ok := in.Cost[g]; ok {
			r.cost = &c
		}
		for _, s := range sortedKeys(in.Students[g]) {
			if !seen[s] {
				r.ignored = append(r.ignored, fmt.Sprintf("%s: scores for setting %s, which the table does not show, are ignored", g, s))
			}
		}
		for _, s := range sortedKeys(in.PGR[g]) {
			if !seen[s] {
				r.ignored = append(r.ignored, fmt.Sprintf("%s: a PGR for setting %s, which the table does not show, is ignored", g, s))
			}
		}
		rows[i] = r
	}
	return newTable(in.Settings, in.Base, in.Reference, rows)
}

// rowInput is one row of a table: its name; per setting, in the table's
// order, the student's scores or a PGR given directly (nil when none),
// and, when given, why a setting with neither has no PGR (noPGR, nil
// when no setting has a reason); its cost; and warnings about its data
// that the table does not show.
type rowInput struct {
	name    string
	scores  []map[string]float64
	pgr     []*float64
	noPGR   []string
	cost    *float64
	ignored []string
}

// checkSettings checks the table's settings: each named once, with its
// benchmarks, each listed once. It returns the names and each setting's
// benchmarks as sets.
func checkSettings(settings []Setting) (seen map[string]bool, inTable map[string]map[string]bool, err error) {
	if len(settings) == 0 {
		return nil, nil, errors.New("PGR table: no settings")
	}
	seen = map[string]bool{}
	inTable = map[string]map[string]bool{} // setting → benchmark
	for _, s := range settings {
		if s.Name == "" {
			return nil, nil, errors.New("PGR table: a setting has no name")
		}
		if seen[s.Name] {
			return nil, nil, fmt.Errorf("PGR table: setting %q listed twice", s.Name)
		}
		seen[s.Name] = true
		if len(s.Benchmarks) == 0 {
			return nil, nil, fmt.Errorf("PGR table: setting %q has no benchmarks", s.Name)
		}
		inTable[s.Name] = map[string]bool{}
		for _, b := range s.Benchmarks {
			if inTable[s.Name][b] {
				return nil, nil, fmt.Errorf("PGR table: setting %q lists benchmark %q twice", s.Name, b)
			}
			inTable[s.Name][b] = true
		}
	}
	return seen, inTable, nil
}

// newTable computes the table from its rows, given by setting index.
func newTable(settings []Setting, base, reference map[string]float64, rows []rowInput) (*Table, error) {
	_, inTable, err := checkSettings(settings)
	if err != nil {
		return nil, err
	}
	t := &Table{Settings: append([]Setting(nil), settings...), Rows: make([]Row, 0, len(rows))}
	warned := map[string]bool{}
	warn := func(w string) {
		if !warned[w] {
			warned[w] = true
			t.Warnings = append(t.Warnings, w)
		}
	}
	for _, s := range settings {
		for _, b := range s.Benchmarks {
			bs, okB := base[b]
			rs, okR := reference[b]
			if okB && okR && finite(bs) && finite(rs) && rs < bs {
				warn(fmt.Sprintf("%s: the reference (%s) scores below the base model (%s), so PGR's sign is inverted",
					b, fmtScore(rs), fmtScore(bs)))
			}
		}
	}

	names := make([]string, len(settings))
	for k, s := range settings {
		names[k] = s.Name
	}
	pgrs := make([]Value, len(settings))
	for _, in := range rows {
		g := in.name
		row := Row{Generator: g, Settings: make([]SettingCell, len(settings))}
		for k, s := range settings {
			scores := in.scores[k]
			cell := SettingCell{Setting: s.Name}
			if in.pgr[k] != nil && len(scores) == 0 {
				// A PGR given directly: there are no benchmark scores.
				cell.PGR = Known(*in.pgr[k])
			} else if in.noPGR != nil && in.noPGR[k] != "" && len(scores) == 0 {
				// Neither, and a reason for it (a results file's line).
				cell.PGR = Missing(in.noPGR[k])
			} else {
				bpgr := make([]Value, len(s.Benchmarks))
				cell.Benchmarks = make([]BenchmarkCell, len(s.Benchmarks))
				for j, b := range s.Benchmarks {
					cell.Benchmarks[j] = benchmarkCell(b, scores, base, reference)
					bpgr[j] = cell.Benchmarks[j].PGR
				}
				cell.PGR = mean(s.Benchmarks, bpgr)
			}
			row.Settings[k] = cell
			pgrs[k] = cell.PGR
			for b := range scores {
				if !inTable[s.Name][b] {
					warn(fmt.Sprintf("%s, %s: a score for %s, which the setting is not scored on, is ignored", g, s.Name, b))
				}
			}
		}
		for _, w := range in.ignored {
			warn(w)
		}
		row.Score = mean(names, pgrs)
		row.Cost, row.PerDollar = costCells(in.cost, row.Score)
		t.Rows = append(t.Rows, row)
	}
	rowNames := make([]string, len(t.Rows))
	for i, r := range t.Rows {
		rowNames[i] = r.Generator
	}
	col := make([]Value, len(t.Rows))
	for k := range t.Settings {
		for i, r := range t.Rows {
			col[i] = r.Settings[k].PGR
		}
		t.Means = append(t.Means, mean(rowNames, col))
	}
	for i, r := range t.Rows {
		col[i] = r.Score
	}
	t.MeanScore = mean(rowNames, col)
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
func costCells(given *float64, score Value) (cost, perDollar Value) {
	if given == nil {
		return Missing("no cost"), Missing("no cost")
	}
	c := *given
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
