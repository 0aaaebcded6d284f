package analysis

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Cell is one configuration's results: a generator's data for one setting
// at one size (and variant and seed), from agora's state or an imported
// results file.
type Cell struct {
	Generator string
	Setting   string
	// Instances is the data set's size; 0 when unknown.
	Instances int
	Variant   string
	Seed      int
	// Scores are the student's benchmark scores (PGR is computed from
	// them and the dataset's base and reference scores); PGR is a PGR
	// given directly, used when there are no scores.
	Scores map[string]float64
	PGR    *float64
	// NoPGR, when set, is why a cell with neither Scores nor PGR has no
	// PGR (an imported line without one: NoPGRInFile).
	NoPGR string
	// Cost is what the data cost in US dollars.
	Cost *float64
	// ProblemSolving is the generator's own score on the setting's
	// domain benchmarks (the mean of them), in percent. One generator has
	// one per domain: Analyse carries a score given for one cell to the
	// generator's other cells of that domain.
	ProblemSolving *float64
	// Features are intrinsic metrics of the data (docs/analysis.md).
	Features map[string]float64
	// row is the cell's row in the table, named by Analyse.
	row string
	// Source says where the cell came from, for messages: the state, or
	// "FILE:LINE:COL" of the line (CSV) or object (JSON) in a results
	// file.
	Source string
}

// GeneratorInfo is what is known of a generator besides its cells: its
// API price in US dollars per million input and output tokens.
type GeneratorInfo struct {
	Name                    string
	PriceInput, PriceOutput *float64
}

// Dataset is everything a report is computed from.
type Dataset struct {
	// Settings are the columns, in order; every cell's setting must be
	// one of them.
	Settings []Setting
	// Base and Reference are the base and reference models' scores per
	// benchmark, for cells given as scores.
	Base, Reference map[string]float64
	Cells           []Cell
	// Generators orders the generators and carries their prices; a
	// generator with cells but not listed follows, sorted by name.
	Generators []GeneratorInfo
}

// Options tune the analyses; the zero value is the documented default.
type Options struct {
	// K, when positive, fixes the number of top principal components the
	// PCA's loading strength and regression use; else Share, when
	// positive, chooses the fewest whose explained variance reaches it
	// (0.9 for 90%); else the paper's choice: the top PaperComponents
	// (every component when there are fewer features).
	Share float64
	K     int
	// Targets are the PGR levels for "the cheapest configuration reaching
	// PGR ≥ x" (default 25 and 50).
	Targets []float64
}

// Report is every analysis of a dataset. An analysis that cannot be
// computed (too few points, zero variance, no features) says why in its
// Error field; nothing is NaN.
type Report struct {
	// Table is PGR by generator × setting with row and column means (the
	// paper's Table 2 shape).
	Table *Table `json:"table"`
	// Generators is one line per table row with price, problem-solving,
	// AgoraBench score, cost and PGR per dollar (the paper's Table 3
	// shape, plus PGR per dollar).
	Generators []GeneratorLine `json:"generators"`
	// ProblemSolving regresses PGR on the generators' own benchmark
	// scores, per generator and per cell.
	ProblemSolving []Regression `json:"problem_solving"`
	PCA            PCAReport    `json:"pca"`
	Cost           CostReport   `json:"cost"`
}

// GeneratorLine is one row of the Table 3 shape.
type GeneratorLine struct {
	Row         string `json:"row"`
	Generator   string `json:"generator"`
	PriceInput  Value  `json:"price_input_per_mtok"`
	PriceOutput Value  `json:"price_output_per_mtok"`
	// ProblemSolving is the mean of the generator's domain scores over
	// the domains of the table's settings.
	ProblemSolving Value `json:"problem_solving"`
	Score          Value `json:"agorabench_score"`
	Cost           Value `json:"cost_usd"`
	PerDollar      Value `json:"pgr_per_dollar"`
}

// Regression is one OLS fit of a report, or why there is none.
type Regression struct {
	Name string `json:"name"`
	X    string `json:"x"`
	Y    string `json:"y"`
	Fit  *Fit   `json:"fit,omitempty"`
	// Points are the observations, Labels their names.
	Points [][2]float64 `json:"points"`
	Labels []string     `json:"labels"`
	// Left lists the observations left out, with the reason.
	Left  []string `json:"left_out,omitempty"`
	Error string   `json:"error,omitempty"`
}

// PCAReport is the PCA over the cells' intrinsic features and the
// regression of PGR on the top components, or why there is none. K is the
// number of top components used, chosen as Choice says (ChoiceAgoraBench,
// ChoiceShare, ChoiceK); Share is the explained variance that chose it
// (ChoiceShare only).
type PCAReport struct {
	*PCA         `json:"pca,omitempty"`
	Observations []string     `json:"observations,omitempty"`
	PGR          []float64    `json:"pgr,omitempty"`
	K            int          `json:"k,omitempty"`
	Choice       string       `json:"choice,omitempty"`
	Share        float64      `json:"share,omitempty"`
	Importance   []Importance `json:"importance,omitempty"`
	Fit          *MultiFit    `json:"fit,omitempty"`
	FitError     string       `json:"fit_error,omitempty"`
	Left         []string     `json:"left_out,omitempty"`
	Error        string       `json:"error,omitempty"`
}

// CostReport is PGR against dollars per domain, and PGR against the
// number of instances per generator and setting.
type CostReport struct {
	Domains []DomainCost `json:"domains"`
	Scaling []Curve      `json:"scaling"`
}

// CostPoint is one cell's cost and PGR.
type CostPoint struct {
	Point
	Generator string `json:"generator"`
	Setting   string `json:"setting"`
	Method    string `json:"method,omitempty"`
	Instances int    `json:"instances,omitempty"`
}

// DomainCost is the cost analysis of one domain's cells.
type DomainCost struct {
	Domain   string      `json:"domain"`
	Points   []CostPoint `json:"points"`
	Frontier []Point     `json:"frontier"`
	Cheapest []Target    `json:"cheapest"`
}

// Target is the cheapest cell of a domain reaching PGR ≥ Target, or the
// best there is when none does.
type Target struct {
	Target float64 `json:"target"`
	Found  *Point  `json:"found,omitempty"`
	Best   *Point  `json:"best,omitempty"`
}

// Curve is one generator's PGR on one setting over instance counts.
type Curve struct {
	Generator string       `json:"generator"`
	Setting   string       `json:"setting"`
	Points    []CurvePoint `json:"points"`
}

// CurvePoint is one instance count's PGR (and cost, when known).
type CurvePoint struct {
	Instances int     `json:"instances"`
	PGR       float64 `json:"pgr"`
	Cost      Value   `json:"cost_usd"`
}

// The intrinsic features with documented names (docs/analysis.md), in
// the order reports list them; other features follow, sorted by name.
var knownFeatures = []string{
	"instruction_difficulty", "instruction_difficulty_2",
	"response_quality", "response_quality_2", "response_reward",
	"response_perplexity", "instruction_diversity", "response_diversity",
}

// FeatureProblemSolving is the name of the generator's problem-solving
// score when the PCA uses it as a feature, as the paper does.
const FeatureProblemSolving = "problem_solving"

// KnownFeatures lists the intrinsic features with documented names.
func KnownFeatures() []string { return append([]string(nil), knownFeatures...) }

type rowKey struct {
	gen, setting string
}

// tableRow is what a table row is made of: its cells, in the order of
// the settings (-1 where the row has none), over the cells of a Dataset.
type tableRow struct {
	name, gen string
	rank      int // the generator's place among the listed ones
	cells     []int
}

// Analyse computes the report. Structural mistakes (a cell for a setting
// that is not a column, two cells with the same configuration) are
// errors; everything else is a missing value or an analysis's Error.
//
// A results file can hold a million cells, so the work is linear and
// keeps cells by index: each cell's setting column, row and PGR are
// worked out once and looked up by position afterwards.
func Analyse(ds Dataset, opt Options) (*Report, error) {
	if opt.Targets == nil {
		opt.Targets = []float64{25, 50}
	}
	cs := ds.Cells
	settings := map[string]Setting{}
	column := map[string]int{}
	for i, s := range ds.Settings {
		settings[s.Name] = s
		column[s.Name] = i
	}
	// Each cell's column in the table.
	col := make([]int, len(cs))
	for i := range cs {
		k, ok := column[cs[i].Setting]
		if !ok {
			return nil, fmt.Errorf("%s: setting %q is not one of the report's settings", cs[i].Source, cs[i].Setting)
		}
		col[i] = k
	}
	// Rows: a generator, or a generator and configuration when some
	// generator has several cells for one setting. A cell without an
	// instance count cannot be told apart from another of its generator
	// and setting: that is the same cell given twice.
	type seen struct{ n, first int }
	count := map[rowKey]seen{}
	for i := range cs {
		c := &cs[i]
		k := rowKey{c.Generator, c.Setting}
		s := count[k]
		if s.n > 0 && (cs[s.first].Instances == 0 || c.Instances == 0) {
			return nil, fmt.Errorf("%s: generator %s, setting %s is given twice (also at %s); rename the generator in one place to compare the two, or give both instance counts",
				c.Source, c.Generator, c.Setting, cs[s.first].Source)
		}
		if s.n == 0 {
			s.first = i
		}
		s.n++
		count[k] = s
	}
	// A generator has one problem-solving score per domain.
	type psKey struct{ gen, domain string }
	ps := map[psKey]int{}
	for i := range cs {
		c := &cs[i]
		if c.ProblemSolving == nil {
			continue
		}
		k := psKey{c.Generator, ds.Settings[col[i]].Domain}
		if j, ok := ps[k]; ok && *cs[j].ProblemSolving != *c.ProblemSolving {
			return nil, fmt.Errorf("%s: problem_solving of %s on %s is %s here but %s at %s (one score per generator and domain)",
				c.Source, c.Generator, orDash(k.domain), fmtScore(*c.ProblemSolving), fmtScore(*cs[j].ProblemSolving), cs[j].Source)
		}
		ps[k] = i
	}
	// A problem-solving score is the generator's on a domain: given once
	// (a results file's line), it holds for each of the generator's cells
	// in that domain. solved[i] is cell i's, given or carried.
	var solved []*float64
	if len(ps) > 0 {
		solved = make([]*float64, len(cs))
		for i := range cs {
			solved[i] = cs[i].ProblemSolving
			if solved[i] == nil {
				if j, ok := ps[psKey{cs[i].Generator, ds.Settings[col[i]].Domain}]; ok {
					solved[i] = cs[j].ProblemSolving
				}
			}
		}
	}
	solvedOf := func(i int) *float64 {
		if solved == nil {
			return nil
		}
		return solved[i]
	}
	// A generator with several cells for one setting (instance counts,
	// variants, seeds) gets a row per configuration, named by what varies
	// among its cells.
	split := map[string]*configSet{}
	for k, s := range count {
		if s.n > 1 {
			split[k.gen] = newConfigSet()
		}
	}
	all := newConfigSet()
	for i := range cs {
		all.add(&cs[i])
		if s := split[cs[i].Generator]; s != nil {
			s.add(&cs[i])
		}
	}
	label := all.label
	rowOf := make([]string, len(cs))
	for i := range cs {
		rowOf[i] = cs[i].Generator
		if s := split[cs[i].Generator]; s != nil {
			rowOf[i] += prefixSpace(s.label(&cs[i]))
		}
	}

	// Row order: the listed generators' rows, then the rest by name; a
	// generator's configurations by instances, variant, seed. The cells
	// of a row are then next to each other.
	genRank := map[string]int{}
	for i, g := range ds.Generators {
		genRank[g.Name] = i
	}
	order, rank := sortPerm(cs, genRank, compareCells)
	var runs []tableRow
	named := map[string]bool{}
	for a := 0; a < len(order); {
		b := a + 1
		for b < len(order) && rowOf[order[b]] == rowOf[order[a]] {
			b++
		}
		name := rowOf[order[a]]
		if named[name] {
			return nil, fmt.Errorf("%s: generator %s has two configurations both named %q; rename a variant", cs[order[a]].Source, cs[order[a]].Generator, name)
		}
		named[name] = true
		runs = append(runs, tableRow{name: name, gen: cs[order[a]].Generator, rank: rank[order[a]], cells: order[a:b]})
		a = b
	}
	// Two cells of one row and setting: report the first such cell of
	// the input, with the first cell it repeats.
	dup, dupOf := -1, -1
	first, second := make([]int, len(ds.Settings)), make([]int, len(ds.Settings))
	for _, r := range runs {
		for k := range first {
			first[k], second[k] = -1, -1
		}
		for _, i := range r.cells {
			k := col[i]
			switch {
			case first[k] < 0:
				first[k] = i
			case i < first[k]:
				first[k], second[k] = i, first[k]
			case second[k] < 0 || i < second[k]:
				second[k] = i
			}
		}
		for k := range first {
			if second[k] >= 0 && (dup < 0 || second[k] < dup) {
				dup, dupOf = second[k], first[k]
			}
		}
	}
	if dup >= 0 {
		c := &cs[dup]
		return nil, fmt.Errorf("%s: generator %s, setting %s%s is given twice (also at %s); rename the generator in one place to compare the two",
			c.Source, c.Generator, c.Setting, prefixSpace(label(c)), cs[dupOf].Source)
	}
	// A listed generator without results still gets its (empty) row, in
	// its place among the listed ones.
	withCells := make(map[string]bool, len(ds.Generators))
	for i := range cs {
		withCells[cs[i].Generator] = true
	}
	rows := runs
	for _, g := range ds.Generators {
		if !withCells[g.Name] {
			withCells[g.Name] = true
			rows = append(rows, tableRow{name: g.Name, gen: g.Name, rank: genRank[g.Name]})
		}
	}
	if len(rows) > len(runs) {
		// Stable: the runs keep their order, each empty row goes to its rank.
		slices.SortStableFunc(rows, func(a, b tableRow) int { return cmp.Compare(a.rank, b.rank) })
	}

	// The table: a row's cells by column; its cost is the sum over its
	// cells, when every setting of the table has one.
	inputs := make([]rowInput, len(rows))
	for ri, r := range rows {
		in := rowInput{name: r.name, scores: make([]map[string]float64, len(ds.Settings)), pgr: make([]*float64, len(ds.Settings))}
		sum, ok := 0.0, len(r.cells) == len(ds.Settings)
		for _, i := range r.cells {
			c := &cs[i]
			if len(c.Scores) > 0 {
				in.scores[col[i]] = c.Scores
			} else if c.PGR != nil {
				in.pgr[col[i]] = c.PGR
			} else if c.NoPGR != "" {
				if in.noPGR == nil {
					in.noPGR = make([]string, len(ds.Settings))
				}
				in.noPGR[col[i]] = c.NoPGR
			}
			if c.Cost == nil {
				ok = false
			} else {
				sum += *c.Cost
			}
		}
		if ok && len(r.cells) > 0 {
			in.cost = &sum
		}
		inputs[ri] = in
	}
	table, err := newTable(ds.Settings, ds.Base, ds.Reference, inputs)
	if err != nil {
		return nil, err
	}
	// Each cell's PGR, from its row and column.
	pgr := make([]Value, len(cs))
	for ri, r := range rows {
		for _, i := range r.cells {
			pgr[i] = table.Rows[ri].Settings[col[i]].PGR
		}
	}
	rep := &Report{Table: table}
	if !anyPGR(table) {
		table.Warnings = append(table.Warnings, NoPGRWarning)
	}
	info := map[string]GeneratorInfo{}
	for _, g := range ds.Generators {
		info[g.Name] = g
	}

	// Table 3 and the per-generator regression.
	perGen := Regression{Points: [][2]float64{}, Labels: []string{}, Name: "per generator", X: "problem-solving score (mean over domains)", Y: "AgoraBench score (mean PGR over settings)"}
	for ri, row := range table.Rows {
		g := rows[ri].gen
		line := GeneratorLine{Row: row.Generator, Generator: g, Score: row.Score, Cost: row.Cost, PerDollar: row.PerDollar,
			PriceInput: ptrValue(info[g].PriceInput, "no price"), PriceOutput: ptrValue(info[g].PriceOutput, "no price")}
		line.ProblemSolving = problemSolving(cs, rows[ri].cells, col, ds.Settings)
		rep.Generators = append(rep.Generators, line)
		switch {
		case !line.ProblemSolving.Valid:
			perGen.Left = append(perGen.Left, row.Generator+": problem solving "+line.ProblemSolving.Why)
		case !row.Score.Valid:
			var missing []string
			for _, sc := range row.Settings {
				if !sc.PGR.Valid {
					missing = append(missing, sc.Setting)
				}
			}
			perGen.Left = append(perGen.Left, fmt.Sprintf("%s: no AgoraBench score (no PGR for %s)", row.Generator, strings.Join(missing, ", ")))
		default:
			perGen.Points = append(perGen.Points, [2]float64{line.ProblemSolving.V, row.Score.V})
			perGen.Labels = append(perGen.Labels, row.Generator)
		}
	}
	fitPoints(&perGen)

	// Per cell: the cell's PGR on the generator's domain score.
	perCell := Regression{Points: [][2]float64{}, Labels: []string{}, Name: "per cell", X: "problem-solving score on the setting's domain", Y: "PGR of the cell"}
	byCol := make([]int, len(ds.Settings))
	for ri, row := range table.Rows {
		for k := range byCol {
			byCol[k] = -1
		}
		for _, i := range rows[ri].cells {
			byCol[col[i]] = i
		}
		for k, sc := range row.Settings {
			i := byCol[k]
			if i < 0 {
				continue
			}
			name := row.Generator + " × " + sc.Setting
			switch ps := solvedOf(i); {
			case ps == nil:
				perCell.Left = append(perCell.Left, name+": no problem-solving score")
			case !sc.PGR.Valid:
				perCell.Left = append(perCell.Left, name+": PGR missing: "+sc.PGR.Why)
			default:
				perCell.Points = append(perCell.Points, [2]float64{*ps, sc.PGR.V})
				perCell.Labels = append(perCell.Labels, name)
			}
		}
	}
	fitPoints(&perCell)
	if !anyProblemSolving(ds.Cells) {
		// Nothing to regress on: say so once instead of listing every
		// observation as left out.
		for _, r := range []*Regression{&perGen, &perCell} {
			r.Error, r.Left = NoProblemSolving, nil
		}
	}
	rep.ProblemSolving = []Regression{perGen, perCell}

	sorted := cellView{cells: cs, order: order, row: rowOf, pgr: pgr, col: col, solved: solved}
	rep.PCA = pcaReport(sorted, opt)
	rep.Cost = costReport(sorted, ds.Settings, label, opt.Targets)
	return rep, nil
}

// cellView is the cells of a Dataset in table order, with each cell's
// row name, column, PGR and problem-solving score, given or carried (all
// indexed like the Dataset's cells; solved is nil when no cell has one).
type cellView struct {
	cells  []Cell
	order  []int
	row    []string
	col    []int
	pgr    []Value
	solved []*float64
}

// NoPGRWarning is the report's warning when no cell has a PGR: every
// analysis of PGR is then empty.
const NoPGRWarning = "no cell has a PGR, so nothing is ranked or regressed: give results files a pgr column (docs/analysis.md, \"Results files\"), or run agora apply until students, the base and the reference model are scored"

func anyPGR(t *Table) bool {
	for _, r := range t.Rows {
		for _, c := range r.Settings {
			if c.PGR.Valid {
				return true
			}
		}
	}
	return false
}

// NoProblemSolving is the reason the problem-solving regressions give when
// no cell has the generator's own score.
const NoProblemSolving = "no problem-solving scores: add problem_solving: {} to the spec and run agora apply, so that each generator answers its domains' benchmarks (solve steps), or import them with -results (column problem_solving, docs/analysis.md)"

func anyProblemSolving(cells []Cell) bool {
	for _, c := range cells {
		if c.ProblemSolving != nil {
			return true
		}
	}
	return false
}

func ptrValue(p *float64, why string) Value {
	if p == nil {
		return Missing(why)
	}
	return Known(*p)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func fitPoints(r *Regression) {
	x := make([]float64, len(r.Points))
	y := make([]float64, len(r.Points))
	for i, p := range r.Points {
		x[i], y[i] = p[0], p[1]
	}
	f, err := SimpleOLS(x, y)
	if err != nil {
		r.Error = err.Error()
		return
	}
	r.Fit = &f
}

// configSet gathers the configurations of some cells, to name a cell's
// configuration by the parts that vary among them: "(n=10000)",
// "(n=10000, json, seed 2)"; "" when none does.
type configSet struct {
	inst, seed map[int]bool
	variant    map[string]bool
}

func newConfigSet() *configSet {
	return &configSet{inst: map[int]bool{}, seed: map[int]bool{}, variant: map[string]bool{}}
}

func (s *configSet) add(c *Cell) {
	s.inst[c.Instances], s.variant[c.Variant], s.seed[c.Seed] = true, true, true
}

func (s *configSet) label(c *Cell) string {
	var parts []string
	if len(s.inst) > 1 {
		if c.Instances > 0 {
			parts = append(parts, "n="+strconv.Itoa(c.Instances))
		} else {
			parts = append(parts, "n=?")
		}
	}
	if len(s.variant) > 1 {
		parts = append(parts, orDash(c.Variant))
	}
	if len(s.seed) > 1 {
		parts = append(parts, "seed "+strconv.Itoa(c.Seed))
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// sortPerm orders cells stably by compare, which is given each cell's
// generator's rank (unlisted generators rank after every listed one): it
// returns the cells' indices in that order, and each cell's rank.
func sortPerm(cells []Cell, genRank map[string]int, compare func(a, b *Cell, ra, rb int) int) (perm, rank []int) {
	perm = make([]int, len(cells))
	rank = make([]int, len(cells))
	for i := range perm {
		perm[i] = i
		r, ok := genRank[cells[i].Generator]
		if !ok {
			r = len(genRank)
		}
		rank[i] = r
	}
	slices.SortFunc(perm, func(a, b int) int {
		if c := compare(&cells[a], &cells[b], rank[a], rank[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return perm, rank
}

// compareCells orders cells for the table: the listed generators' first
// (by rank), then the rest by name; a generator's configurations by
// instances, variant, seed.
func compareCells(ca, cb *Cell, ra, rb int) int {
	switch {
	case ra != rb:
		return cmp.Compare(ra, rb)
	case ca.Generator != cb.Generator:
		return strings.Compare(ca.Generator, cb.Generator)
	case ca.Instances != cb.Instances:
		return cmp.Compare(ca.Instances, cb.Instances)
	case ca.Variant != cb.Variant:
		return strings.Compare(ca.Variant, cb.Variant)
	}
	return cmp.Compare(ca.Seed, cb.Seed)
}

// PaperComponents is the number of top principal components the paper
// reports, defines loading strength over and regresses PGR on.
const PaperComponents = 5

// How a PCA report's number of components was chosen (PCAReport.Choice).
const (
	// ChoiceAgoraBench: the paper's top PaperComponents, the default.
	ChoiceAgoraBench = "agorabench"
	// ChoiceShare: the fewest reaching Options.Share of the variance.
	ChoiceShare = "share"
	// ChoiceK: the number Options.K fixes.
	ChoiceK = "k"
)

// pcaReport runs the PCA over the cells with every feature and a PGR.
func pcaReport(v cellView, opt Options) PCAReport {
	var r PCAReport
	present := map[string]bool{}
	anyPS := false
	for i := range v.cells {
		c := &v.cells[i]
		for f, x := range c.Features {
			if finite(x) {
				present[f] = true
			}
		}
		if v.solved != nil && v.solved[i] != nil {
			anyPS = true
		}
	}
	var features []string
	for _, f := range knownFeatures {
		if present[f] {
			features = append(features, f)
			delete(present, f)
		}
	}
	features = append(features, sortedKeys(present)...)
	if len(features) == 0 {
		r.Error = "no intrinsic features: import a results file with feature columns (docs/analysis.md)"
		return r
	}
	if anyPS {
		features = append(features, FeatureProblemSolving)
	}
	// The observations' rows share one array.
	data := make([]float64, 0, len(v.order)*len(features))
	r.Observations, r.PGR = make([]string, 0, len(v.order)), make([]float64, 0, len(v.order))
	row := make([]float64, len(features))
	var x [][]float64
	for _, i := range v.order {
		c := &v.cells[i]
		var missing []string
		for j, f := range features {
			x, ok := c.Features[f]
			if f == FeatureProblemSolving {
				ok = v.solved != nil && v.solved[i] != nil
				if ok {
					x = *v.solved[i]
				}
			}
			if !ok || !finite(x) {
				missing = append(missing, f)
			}
			row[j] = x
		}
		p := v.pgr[i]
		switch {
		case len(missing) > 0:
			r.Left = append(r.Left, v.row[i]+" × "+c.Setting+": no "+strings.Join(missing, ", "))
		case !p.Valid:
			r.Left = append(r.Left, v.row[i]+" × "+c.Setting+": PGR missing: "+p.Why)
		default:
			start := len(data)
			data = append(data, row...)
			x = append(x, data[start:len(data):len(data)])
			r.Observations = append(r.Observations, v.row[i]+" × "+c.Setting)
			r.PGR = append(r.PGR, p.V)
		}
	}
	pca, err := NewPCA(features, x)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.PCA = pca
	switch {
	case opt.K > 0:
		r.Choice, r.K = ChoiceK, min(opt.K, len(features))
	case opt.Share > 0:
		r.Choice, r.Share, r.K = ChoiceShare, opt.Share, pca.ComponentsFor(opt.Share)
	default:
		r.Choice, r.K = ChoiceAgoraBench, min(PaperComponents, len(features))
	}
	r.Importance, _ = pca.Importance(r.K)
	f, err := pca.RegressOnComponents(r.PGR, r.K)
	if err != nil {
		r.FitError = "PGR on the top " + strconv.Itoa(r.K) + " components: " + err.Error()
		return r
	}
	r.Fit = &f
	return r
}

func costReport(v cellView, order []Setting, label func(*Cell) string, targets []float64) CostReport {
	rep := CostReport{Domains: []DomainCost{}, Scaling: []Curve{}}
	byDomain := map[string]*DomainCost{}
	var domains []string
	for _, s := range order {
		if _, ok := byDomain[s.Domain]; !ok {
			byDomain[s.Domain] = &DomainCost{Domain: orDash(s.Domain)}
			domains = append(domains, s.Domain)
		}
	}
	// Each column's domain, looked up once; each domain's points
	// allocated once.
	colDomain := make([]*DomainCost, len(order))
	for k, s := range order {
		colDomain[k] = byDomain[s.Domain]
	}
	points := map[*DomainCost]int{}
	for _, i := range v.order {
		if c := &v.cells[i]; v.pgr[i].Valid && c.Cost != nil && *c.Cost > 0 {
			points[colDomain[v.col[i]]]++
		}
	}
	for d, n := range points {
		d.Points = make([]CostPoint, 0, n)
	}
	type curveKey struct {
		gen     string
		col     int
		variant string
	}
	curves := map[curveKey]*Curve{}
	var curveOrder []curveKey
	for _, i := range v.order {
		p := v.pgr[i]
		if !p.Valid {
			continue
		}
		c := &v.cells[i]
		s := order[v.col[i]]
		cost := ptrValue(c.Cost, "no cost")
		if c.Cost != nil && *c.Cost > 0 {
			l := c.Generator + " " + c.Setting
			if lab := label(c); lab != "" {
				l += " " + lab
			}
			d := colDomain[v.col[i]]
			d.Points = append(d.Points, CostPoint{Point: Point{Label: l, Cost: *c.Cost, PGR: p.V},
				Generator: c.Generator, Setting: c.Setting, Method: s.Method, Instances: c.Instances})
		}
		if c.Instances > 0 {
			k := curveKey{c.Generator, v.col[i], c.Variant}
			cv := curves[k]
			if cv == nil {
				cv = &Curve{Generator: c.Generator, Setting: c.Setting}
				curves[k] = cv
				curveOrder = append(curveOrder, k)
			}
			cv.Points = append(cv.Points, CurvePoint{Instances: c.Instances, PGR: p.V, Cost: cost})
		}
	}
	for _, dn := range domains {
		d := byDomain[dn]
		pts := make([]Point, len(d.Points))
		for i, p := range d.Points {
			pts[i] = p.Point
		}
		d.Frontier = Frontier(pts)
		for _, t := range targets {
			tg := Target{Target: t}
			if p, ok, best := Cheapest(pts, t); ok {
				tg.Found = &p
			} else if best.Label != "" {
				tg.Best = &best
			}
			d.Cheapest = append(d.Cheapest, tg)
		}
		rep.Domains = append(rep.Domains, *d)
	}
	// A curve needs two instance counts; seeds of one count are averaged.
	for _, k := range curveOrder {
		c := curves[k]
		byN := map[int][]CurvePoint{}
		for _, p := range c.Points {
			byN[p.Instances] = append(byN[p.Instances], p)
		}
		if len(byN) < 2 {
			continue
		}
		var ns []int
		for n := range byN {
			ns = append(ns, n)
		}
		sort.Ints(ns)
		var pts []CurvePoint
		for _, n := range ns {
			ps := byN[n]
			sum, cost, costOK := 0.0, 0.0, true
			for _, p := range ps {
				sum += p.PGR
				if p.Cost.Valid {
					cost += p.Cost.V
				} else {
					costOK = false
				}
			}
			cp := CurvePoint{Instances: n, PGR: sum / float64(len(ps)), Cost: Missing("no cost")}
			if costOK {
				cp.Cost = Known(cost / float64(len(ps)))
			}
			pts = append(pts, cp)
		}
		c.Points = pts
		rep.Scaling = append(rep.Scaling, *c)
	}
	return rep
}

// problemSolving is the mean of a row's domain scores over the domains of
// the table's settings; missing when a domain has none.
func problemSolving(cells []Cell, row, col []int, order []Setting) Value {
	byDomain := map[string]float64{}
	for _, i := range row {
		if c := &cells[i]; c.ProblemSolving != nil {
			byDomain[order[col[i]].Domain] = *c.ProblemSolving
		}
	}
	var names []string
	var parts []Value
	done := map[string]bool{}
	for _, s := range order {
		if done[s.Domain] {
			continue
		}
		done[s.Domain] = true
		names = append(names, orDash(s.Domain))
		if v, ok := byDomain[s.Domain]; ok {
			parts = append(parts, Known(v))
		} else {
			parts = append(parts, Missing("no score"))
		}
	}
	return mean(names, parts)
}

func prefixSpace(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}
