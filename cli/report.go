package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/agorabench/agora/analysis"
	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/report"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// stateSource names the state as the source of a cell in messages.
const stateSource = "agora's state"

// listFlag is a flag that may be repeated.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// floatsFlag is a comma-separated list of numbers.
type floatsFlag []float64

func (l *floatsFlag) String() string {
	var s []string
	for _, v := range *l {
		s = append(s, strconv.FormatFloat(v, 'g', -1, 64))
	}
	return strings.Join(s, ",")
}

func (l *floatsFlag) Set(v string) error {
	*l = nil
	for _, part := range strings.Split(v, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a number", part)
		}
		*l = append(*l, f)
	}
	return nil
}

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var format, htmlDir string
	var results listFlag
	targets := floatsFlag{25, 50}
	var opt analysis.Options
	fs := newFlags("report", "report [SPEC] [-format markdown|csv|json] [-results FILE.csv|FILE.json]... [-html DIR] [-k N | -share S]", stderr)
	fs.StringVar(&format, "format", "markdown", "output `format`: markdown, csv or json")
	fs.Var(&results, "results", "import results from `FILE` (.csv or .json; docs/analysis.md); repeatable")
	fs.StringVar(&htmlDir, "html", "", "also write a self-contained HTML report with plots to `DIR`/index.html")
	fs.IntVar(&opt.K, "k", 0, "number of top principal components for the loading strength and the regression (default 5, AgoraBench's)")
	fs.Float64Var(&opt.Share, "share", 0, "instead of -k: the fewest top principal components whose explained variance reaches this `share` (e.g. 0.9)")
	fs.Var(&targets, "targets", "PGR `levels` for the cheapest configuration reaching each, comma-separated")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) > 1 {
		fmt.Fprintln(stderr, "agora report: want at most one spec file")
		return ExitError
	}
	specPath, specGiven := "agora.cue", len(pos) == 1
	if specGiven {
		specPath = pos[0]
	}
	if format != "markdown" && format != "csv" && format != "json" {
		fmt.Fprintf(stderr, "agora report: unknown format %q (want markdown, csv or json)\n", format)
		return ExitError
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["share"] && !(opt.Share > 0 && opt.Share <= 1) { // NaN too
		fmt.Fprintf(stderr, "agora report: -share %v: want a share above 0 and at most 1 (0.9 for 90%%)\n", opt.Share)
		return ExitError
	}
	if opt.K < 0 {
		fmt.Fprintf(stderr, "agora report: -k %d: want a positive number of components (0 for the default, 5)\n", opt.K)
		return ExitError
	}
	if set["share"] && opt.K > 0 {
		fmt.Fprintln(stderr, "agora report: -k and -share both choose the number of principal components: give one")
		return ExitError
	}
	opt.Targets = targets
	if len(results) > 0 {
		// A results file of a million rows makes a heap of a few GB that
		// lives until the report is written: collecting it less often
		// halves the time (docs/benchmarks.md) for about a third more
		// memory.
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	ds, err := gatherReport(ctx, specPath, specGiven, results)
	if err != nil {
		var diags spec.Diagnostics
		if errors.As(err, &diags) {
			printLoadError(stderr, specPath, err)
		} else {
			fmt.Fprintf(stderr, "agora report: %v\n", err)
		}
		return ExitError
	}
	rep, err := analysis.Analyse(*ds, opt)
	if err != nil {
		fmt.Fprintf(stderr, "agora report: %v\n", err)
		return ExitError
	}
	if slices.Contains(rep.Table.Warnings, analysis.NoPGRWarning) {
		fmt.Fprintf(stderr, "agora report: warning: %s\n", analysis.NoPGRWarning)
	}
	if htmlDir != "" {
		if err := report.WriteHTML(htmlDir, rep); err != nil {
			fmt.Fprintf(stderr, "agora report: %v\n", err)
			return ExitError
		}
	}
	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	switch format {
	case "json":
		enc := json.NewEncoder(bw)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	case "csv":
		err = report.WriteCSV(bw, rep)
	default:
		err = report.WriteMarkdown(bw, rep)
	}
	if err == nil && htmlDir != "" {
		fmt.Fprintf(stderr, "agora report: wrote %s\n", filepath.Join(htmlDir, "index.html"))
	}
	if err != nil {
		fmt.Fprintf(stderr, "agora report: %v\n", err)
		return ExitError
	}
	return ExitOK
}

// gatherReport collects the dataset: the spec's recorded results, then
// each results file. With results files, a missing default spec or a spec
// without a state is not an error: the report covers the files.
func gatherReport(ctx context.Context, specPath string, specGiven bool, files []string) (*analysis.Dataset, error) {
	ds := &analysis.Dataset{Base: map[string]float64{}, Reference: map[string]float64{}}
	var exp *spec.Experiment
	if len(files) > 0 && !specGiven {
		if _, err := os.Stat(specPath); errors.Is(err, fs.ErrNotExist) {
			specPath = ""
		}
	}
	if specPath != "" {
		e, err := spec.Load(specPath)
		if err != nil {
			return nil, err
		}
		// Plugin generators priced by their plugins: the report shows
		// the price when the plugin can tell it, and goes on without.
		pluginPrices(ctx, e, false)
		exp = e
		dir := stateDir(exp)
		if err := state.Check(dir); err != nil {
			return nil, err
		}
		_, err = os.Stat(filepath.Join(dir, "state.db"))
		switch {
		case err == nil:
			store, err := state.Open(ctx, dir)
			if err != nil {
				return nil, err
			}
			defer store.Close()
			if err := stateDataset(ctx, exp, store, ds); err != nil {
				return nil, err
			}
		case len(files) == 0:
			return nil, fmt.Errorf("no state in %s yet: run agora apply first", dir)
		}
		// With results files and no state, the spec's settings and
		// prices still serve the files.
	}
	for _, f := range files {
		if err := addResults(ds, exp, f); err != nil {
			return nil, err
		}
	}
	if len(ds.Settings) == 0 {
		if len(files) > 0 {
			return nil, errors.New("nothing to report: the results files have no results")
		}
		return nil, errors.New("nothing to report: the plan has no settings")
	}
	return ds, nil
}

// stateDataset adds the spec's plan and recorded scores: the settings,
// base and reference scores, one cell per generate step's configuration
// with its students' scores and its data's cost, and the generators'
// prices.
func stateDataset(ctx context.Context, exp *spec.Experiment, store *state.Store, ds *analysis.Dataset) error {
	p, err := compiler.Compile(ctx, exp, compiler.Options{})
	if err != nil {
		return err
	}
	scores, err := store.Scores(ctx)
	if err != nil {
		return err
	}
	byStep := map[string]map[string]float64{} // step -> benchmark -> value
	for _, s := range scores {
		if s.Model == state.ModelPGR {
			continue
		}
		if byStep[s.StepID] == nil {
			byStep[s.StepID] = map[string]float64{}
		}
		byStep[s.StepID][s.Benchmark] = s.Value
	}
	features, err := metricFeatures(ctx, store)
	if err != nil {
		return err
	}
	steps, err := store.Steps(ctx)
	if err != nil {
		return err
	}
	cost := map[string]float64{}
	for _, s := range steps {
		cost[s.ID] = s.CostUSD
	}
	type key struct {
		gen, setting, variant string
		n, seed               int
	}
	keyOf := func(s plan.Step) key {
		k := key{gen: s.Generator, setting: s.Setting, variant: s.Variant, n: s.Instances}
		if s.Seed != nil {
			k.seed = *s.Seed
		}
		return k
	}
	cells := map[key]*analysis.Cell{}
	var order []key
	cellOf := func(s plan.Step) *analysis.Cell {
		k := keyOf(s)
		if cells[k] == nil {
			cells[k] = &analysis.Cell{Generator: s.Generator, Setting: s.Setting, Instances: s.Instances,
				Variant: s.Variant, Seed: k.seed, Source: stateSource}
			order = append(order, k)
		}
		return cells[k]
	}
	seenSetting := map[string]bool{}
	for _, s := range p.Steps {
		if s.Setting != "" && !seenSetting[s.Setting] {
			seenSetting[s.Setting] = true
			set := exp.Settings[s.Setting]
			ds.Settings = append(ds.Settings, analysis.Setting{Name: set.Name, Domain: set.Domain, Method: set.Method, Benchmarks: set.Benchmarks})
		}
		switch s.Kind {
		case plan.KindGenerate:
			c := cellOf(s)
			if usd := cost[s.ID]; usd > 0 {
				c.Cost = &usd
			}
		case plan.KindJudge, plan.KindDiversity, plan.KindPerplexity, plan.KindReward:
			for name, v := range features[s.ID] {
				c := cellOf(s)
				if c.Features == nil {
					c.Features = map[string]float64{}
				}
				c.Features[name] = v
			}
		case plan.KindEvaluate:
			v, ok := byStep[s.ID][s.Benchmark]
			if !ok {
				continue
			}
			switch s.Model {
			case "base":
				ds.Base[s.Benchmark] = v
			case "reference":
				ds.Reference[s.Benchmark] = v
			default:
				c := cellOf(s)
				if c.Scores == nil {
					c.Scores = map[string]float64{}
				}
				c.Scores[s.Benchmark] = v
			}
		}
	}
	solved := solveScores(p, scores)
	for _, k := range order {
		c := cells[k]
		c.ProblemSolving = solved.of(c.Generator, exp.Settings[c.Setting], exp)
		ds.Cells = append(ds.Cells, *c)
	}
	for _, g := range sortedGenerators(exp) {
		info := analysis.GeneratorInfo{Name: g}
		if pr := exp.Generators[g].Price; pr != nil {
			in, out := pr.Input, pr.Output
			info.PriceInput, info.PriceOutput = &in, &out
		}
		ds.Generators = append(ds.Generators, info)
	}
	return nil
}

// builtinByDomain names a built-in setting of each domain, for the
// benchmarks of a setting only a results file knows.
var builtinByDomain = map[string]string{spec.DomainMath: "math-ig", spec.DomainCode: "code-ig", spec.DomainInstruction: "if-ig"}

// addResults adds a results file's cells, settings and prices.
func addResults(ds *analysis.Dataset, exp *spec.Experiment, path string) error {
	r, err := analysis.ReadResults(path)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, s := range ds.Settings {
		have[s.Name] = true
	}
	// New settings: the spec's, then the built-in ones in the paper's
	// order, then the file's own in order of appearance.
	var fresh []string
	for _, c := range r.Cells {
		if !have[c.Setting] && !slices.Contains(fresh, c.Setting) {
			fresh = append(fresh, c.Setting)
		}
	}
	rank := func(n string) int {
		if i := slices.Index(spec.BuiltinSettings(), n); i >= 0 {
			return i
		}
		return len(spec.BuiltinSettings())
	}
	sort.SliceStable(fresh, func(a, b int) bool { return rank(fresh[a]) < rank(fresh[b]) })
	for _, name := range fresh {
		s, err := resolveSetting(exp, name, r.Settings[name], r.SettingAt[name])
		if err != nil {
			return err
		}
		ds.Settings = append(ds.Settings, s)
	}
	ds.Cells = append(ds.Cells, r.Cells...)
	known := map[string]int{}
	for i, g := range ds.Generators {
		known[g.Name] = i
	}
	for _, g := range r.Generators {
		if i, ok := known[g.Name]; ok {
			// The spec's price wins; the file fills what it lacks.
			if ds.Generators[i].PriceInput == nil {
				ds.Generators[i].PriceInput = g.PriceInput
			}
			if ds.Generators[i].PriceOutput == nil {
				ds.Generators[i].PriceOutput = g.PriceOutput
			}
			continue
		}
		known[g.Name] = len(ds.Generators)
		ds.Generators = append(ds.Generators, g)
	}
	return nil
}

// resolveSetting finds what a results file's setting is: the spec's
// setting of that name, a built-in one, or the domain and method the file
// gives (with the benchmarks of the domain).
func resolveSetting(exp *spec.Experiment, name string, given analysis.ResultSetting, where string) (analysis.Setting, error) {
	if exp != nil {
		if s, ok := exp.Settings[name]; ok {
			return analysis.Setting{Name: name, Domain: s.Domain, Method: s.Method, Benchmarks: s.Benchmarks}, nil
		}
	}
	if s, ok := spec.BuiltinSetting(name); ok {
		if given.Domain != "" && given.Domain != s.Domain || given.Method != "" && given.Method != s.Method {
			return analysis.Setting{}, fmt.Errorf("%s: setting %s is AgoraBench's %s × %s, not %s × %s", given.Source, name, s.Domain, s.Method, given.Domain, given.Method)
		}
		return analysis.Setting{Name: name, Domain: s.Domain, Method: s.Method, Benchmarks: s.Benchmarks}, nil
	}
	if given.Domain == "" || given.Method == "" {
		return analysis.Setting{}, fmt.Errorf("%s: setting %q is neither built in (%s) nor in the spec: give its domain and method columns",
			where, name, strings.Join(spec.BuiltinSettings(), ", "))
	}
	b, ok := builtinByDomain[given.Domain]
	if !ok {
		return analysis.Setting{}, fmt.Errorf("%s: setting %s: unknown domain %q (want %s, %s or %s)", given.Source, name, given.Domain,
			spec.DomainMath, spec.DomainCode, spec.DomainInstruction)
	}
	if !slices.Contains([]string{spec.MethodInstance, spec.MethodResponse, spec.MethodQuality}, given.Method) {
		return analysis.Setting{}, fmt.Errorf("%s: setting %s: unknown method %q (want %s, %s or %s)", given.MethodSource, name, given.Method,
			spec.MethodInstance, spec.MethodResponse, spec.MethodQuality)
	}
	bs, _ := spec.BuiltinSetting(b)
	return analysis.Setting{Name: name, Domain: given.Domain, Method: given.Method, Benchmarks: bs.Benchmarks}, nil
}

func sortedGenerators(exp *spec.Experiment) []string {
	var names []string
	for n := range exp.Generators {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
