package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/agorabench/agora/analysis"
	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var format string
	fs := newFlags("report", "report [SPEC] [-format markdown|csv|json]", stderr)
	fs.StringVar(&format, "format", "markdown", "output `format`: markdown, csv or json")
	specPath, code, ok := specArg(fs, args, stderr)
	if !ok {
		return code
	}
	if format != "markdown" && format != "csv" && format != "json" {
		fmt.Fprintf(stderr, "agora report: unknown format %q (want markdown, csv or json)\n", format)
		return ExitError
	}
	exp, store, err := openState(ctx, specPath)
	if err != nil {
		var ds spec.Diagnostics
		if errors.As(err, &ds) {
			printLoadError(stderr, specPath, err)
		} else {
			fmt.Fprintf(stderr, "agora report: %v\n", err)
		}
		return ExitError
	}
	defer store.Close()
	table, err := buildReport(ctx, exp, store)
	if err != nil {
		fmt.Fprintf(stderr, "agora report: %v\n", err)
		return ExitError
	}
	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	switch format {
	case "json":
		enc := json.NewEncoder(bw)
		enc.SetIndent("", "  ")
		err = enc.Encode(table)
	case "csv":
		err = writeReportCSV(bw, table)
	default:
		err = table.WriteMarkdown(bw)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agora report: %v\n", err)
		return ExitError
	}
	return ExitOK
}

// buildReport gathers the recorded scores of the spec's plan into the PGR
// table: base and reference scores per benchmark, each student's scores
// by generator and setting, and each generator's recorded spend. A row is
// a generator, or a generator's cell when the grid has several per
// setting (instance counts, variants, seeds).
func buildReport(ctx context.Context, exp *spec.Experiment, store *state.Store) (*analysis.Table, error) {
	p, err := compiler.Compile(ctx, exp, compiler.Options{})
	if err != nil {
		return nil, err
	}
	scores, err := store.Scores(ctx)
	if err != nil {
		return nil, err
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
	// Several cells of one generator and setting get rows of their own.
	cellsPer := map[string]map[string]bool{}
	for _, s := range p.Steps {
		if s.Kind == plan.KindGenerate {
			k := s.Generator + "\x00" + s.Setting
			if cellsPer[k] == nil {
				cellsPer[k] = map[string]bool{}
			}
			cellsPer[k][cellLabel(s)] = true
		}
	}
	split := false
	for _, c := range cellsPer {
		if len(c) > 1 {
			split = true
		}
	}
	in := analysis.Input{Base: map[string]float64{}, Reference: map[string]float64{},
		Students: map[string]map[string]map[string]float64{}, Cost: map[string]float64{}}
	seenSetting := map[string]bool{}
	var rows []string
	seenRow := map[string]bool{}
	for _, s := range p.Steps {
		if s.Kind != plan.KindEvaluate && s.Kind != plan.KindGenerate {
			continue
		}
		if s.Setting != "" && !seenSetting[s.Setting] {
			seenSetting[s.Setting] = true
			set := exp.Settings[s.Setting]
			in.Settings = append(in.Settings, analysis.Setting{Name: set.Name, Domain: set.Domain, Method: set.Method, Benchmarks: set.Benchmarks})
		}
		if s.Kind != plan.KindEvaluate {
			continue
		}
		v, ok := byStep[s.ID][s.Benchmark]
		if !ok {
			continue
		}
		switch s.Model {
		case "base":
			in.Base[s.Benchmark] = v
		case "reference":
			in.Reference[s.Benchmark] = v
		default:
			row := s.Generator
			if split {
				row += " " + cellLabel(s)
			}
			if !seenRow[row] {
				seenRow[row] = true
				rows = append(rows, row)
			}
			if in.Students[row] == nil {
				in.Students[row] = map[string]map[string]float64{}
			}
			if in.Students[row][s.Setting] == nil {
				in.Students[row][s.Setting] = map[string]float64{}
			}
			in.Students[row][s.Setting][s.Benchmark] = v
		}
	}
	if !split {
		_, byGen, err := store.Spend(ctx)
		if err != nil {
			return nil, err
		}
		for _, g := range sortedGenerators(exp) {
			if c, ok := byGen[g]; ok && c > 0 {
				in.Cost[g] = c
			}
			if !seenRow[g] {
				seenRow[g] = true
				rows = append(rows, g)
			}
		}
	}
	in.Generators = rows
	return analysis.NewTable(in)
}

func cellLabel(s plan.Step) string {
	seed := 0
	if s.Seed != nil {
		seed = *s.Seed
	}
	return fmt.Sprintf("(n=%d, %s, seed %d)", s.Instances, s.Variant, seed)
}

func sortedGenerators(exp *spec.Experiment) []string {
	var names []string
	for n := range exp.Generators {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// writeReportCSV writes one line per generator and setting, with the
// generator's score, cost and PGR per dollar repeated; missing values are
// empty fields.
func writeReportCSV(w io.Writer, t *analysis.Table) error {
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
	for _, r := range t.Rows {
		for i, c := range r.Settings {
			s := t.Settings[i]
			if err := cw.Write([]string{r.Generator, c.Setting, s.Domain, s.Method, val(c.PGR), val(r.Score), val(r.Cost), val(r.PerDollar)}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
