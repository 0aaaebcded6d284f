package plan

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Render writes the plan for people: the steps by stage, a table per
// generator, the budgets, warnings, and a closing summary line.
func (p *Plan) Render(w io.Writer) error {
	ew := &errWriter{w: w}
	name := p.Experiment
	if name == "" {
		name = "(unnamed experiment)"
	}
	ew.printf("Experiment %s from %s (%s)\n", name, p.Spec.File, shortDigest(p.Spec.Digest))
	byKind := map[string][]Step{}
	for _, s := range p.Steps {
		byKind[s.Kind] = append(byKind[s.Kind], s)
	}
	for _, k := range Kinds {
		steps := byKind[k]
		if len(steps) == 0 {
			continue
		}
		ew.printf("\n%s (%d)\n", stageTitle(k), len(steps))
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		for _, s := range steps {
			mark := "+"
			if s.Action == ActionNoop {
				mark = "="
			}
			fmt.Fprintf(tw, "  %s %s\t%s\t%s\t%s\n", mark, s.Address, shortID(s.ID), s.Executor, stepCost(s))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	p.renderGenerators(ew)
	p.renderTime(ew)
	p.renderBudgets(ew)
	if len(p.Warnings) > 0 {
		ew.printf("\nWarnings:\n")
		for _, warn := range p.Warnings {
			ew.printf("  - %s\n", warn)
		}
	}
	ew.printf("\n%s\n", p.Summary())
	return ew.err
}

// Summary is the plan's closing line, e.g. "Plan: 282 steps to run (54
// generate, 54 train, 120 evaluate, 54 score)."
func (p *Plan) Summary() string {
	create := map[string]int{}
	run := 0
	for _, s := range p.Steps {
		if s.Action != ActionNoop {
			create[s.Kind]++
			run++
		}
	}
	done := len(p.Steps) - run
	if run == 0 {
		return fmt.Sprintf("No changes: all %s are done.", steps(len(p.Steps)))
	}
	var parts []string
	for _, k := range Kinds {
		if n := create[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	s := fmt.Sprintf("Plan: %s to run (%s)", steps(run), strings.Join(parts, ", "))
	if done > 0 {
		s += fmt.Sprintf(", %d already done", done)
	}
	return s + "."
}

func steps(n int) string {
	if n == 1 {
		return "1 step"
	}
	return fmt.Sprintf("%d steps", n)
}

func stageTitle(kind string) string {
	switch kind {
	case KindGenerate:
		return "Generate"
	case KindTrain:
		return "Train"
	case KindEvaluate:
		return "Evaluate"
	case KindScore:
		return "Score"
	case KindSolve:
		return "Solve: generators answer their benchmarks"
	case KindJudge, KindDiversity, KindPerplexity, KindReward:
		return "Metric: " + kind + " (docs/metrics.md)"
	}
	return kind
}

func stepCost(s Step) string {
	if s.Action == ActionNoop {
		return "done"
	}
	e := s.Estimate
	var parts []string
	if e.USD > 0 || e.WorstUSD > 0 {
		c := Dollars(e.USD)
		if e.WorstUSD > e.USD*1.005 {
			c += " (worst " + Dollars(e.WorstUSD) + ")"
		}
		parts = append(parts, c)
	}
	if e.GPUHours > 0 {
		parts = append(parts, fmt.Sprintf("%.1f GPU-h", e.GPUHours))
	}
	if e.BatchWindow != "" {
		parts = append(parts, fmt.Sprintf("%d batch%s at the batch price, results within %s", e.Batches, map[bool]string{true: "", false: "es"}[e.Batches == 1], e.BatchWindow))
	}
	return strings.Join(parts, ", ")
}

func (p *Plan) renderGenerators(ew *errWriter) {
	if len(p.Totals.ByGenerator) == 0 {
		return
	}
	ew.printf("\nCost by generator (steps to run)\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  GENERATOR\tINSTANCES\tINPUT TOKENS\tOUTPUT TOKENS\tEXPECTED\tWORST CASE\tGPU-HOURS\t\n")
	names := make([]string, 0, len(p.Totals.ByGenerator))
	for n := range p.Totals.ByGenerator {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g := p.Totals.ByGenerator[n]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%.1f\t\n", n, Count(int64(g.Instances)), Count(g.InputTokens), Count(g.OutputTokens),
			Dollars(g.USD), Dollars(g.WorstUSD), g.GPUHours)
	}
	sh := p.Totals.Shared
	fmt.Fprintf(tw, "  base + reference\t\t%s\t%s\t%s\t%s\t%.1f\t\n", Count(sh.InputTokens), Count(sh.OutputTokens), Dollars(sh.USD), Dollars(sh.WorstUSD), sh.GPUHours)
	t := p.Totals
	fmt.Fprintf(tw, "  total\t\t%s\t%s\t%s\t%s\t%.1f\t\n", Count(t.InputTokens), Count(t.OutputTokens), Dollars(t.USD), Dollars(t.WorstUSD), t.GPUHours)
	tw.Flush()
}

// renderTime shows the estimated wall-clock of the steps to run.
func (p *Plan) renderTime(ew *errWriter) {
	t := p.Time
	if t.Total <= 0 {
		return
	}
	ew.printf("\nTime (estimated wall-clock; docs/estimates.md#time)\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	if t.Generation > 0 {
		fmt.Fprintf(tw, "  generation\t%s\tevery generator at once, each at its limits; the slowest: %s\n", Duration(t.Generation), t.Slowest)
	}
	if t.Jobs > 0 {
		fmt.Fprintf(tw, "  jobs\t%s\tthe longest chain of jobs, from their GPU-hours on the GPUs each asks for\n", Duration(t.Jobs))
	}
	fmt.Fprintf(tw, "  total\t%s\tthe longest path through the plan, every ready job running at once\n", Duration(t.Total))
	tw.Flush()
}

// Duration formats seconds as "3d 4h", "6h 58m", "12m 5s" or "45s".
func Duration(seconds float64) string {
	if math.IsNaN(seconds) || math.IsInf(seconds, 0) || seconds > 1e12 {
		return "unbounded"
	}
	s := int64(math.Round(seconds))
	d, h, m := s/86400, s%86400/3600, s%3600/60
	s %= 60
	switch {
	case d > 0:
		return fmt.Sprintf("%dd %dh", d, h)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

func (p *Plan) renderBudgets(ew *errWriter) {
	if len(p.Budgets) == 0 {
		ew.printf("\nBudgets: none set\n")
		return
	}
	ew.printf("\nBudgets\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	for _, b := range p.Budgets {
		status := "ok"
		if !b.OK {
			status = "EXCEEDED by " + Amount(b.Unit, b.Over)
		}
		pct := 0.0
		if b.Limit > 0 {
			pct = 100 * b.Estimate / b.Limit
		}
		fmt.Fprintf(tw, "  %s\t%s of %s\t(%.0f%%, %s)\t%s\n", b.Name, Amount(b.Unit, b.Estimate), Amount(b.Unit, b.Limit), pct, strings.ReplaceAll(b.Basis, "_", " "), status)
	}
	tw.Flush()
}

// BudgetError describes every exceeded budget, one a line, each at the
// position that sets it and with its largest contributors; "" when all
// hold.
func (p *Plan) BudgetError() string {
	var lines []string
	for _, b := range p.Budgets {
		if b.OK {
			continue
		}
		line := ""
		if b.Source != "" {
			line = b.Source + ": "
		}
		line += fmt.Sprintf("budget %s exceeded: %s estimate is %s, over the %s limit by %s",
			b.Name, strings.ReplaceAll(b.Basis, "_", "-"), Amount(b.Unit, b.Estimate), Amount(b.Unit, b.Limit), Amount(b.Unit, b.Over))
		if len(b.Top) > 0 {
			var top []string
			for _, c := range b.Top {
				top = append(top, fmt.Sprintf("%s %s", c.Name, Amount(b.Unit, c.Amount)))
			}
			line += "; largest: " + strings.Join(top, ", ")
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// Amount formats a quantity in its unit.
func Amount(unit string, v float64) string {
	if unit == "usd" {
		return Dollars(v)
	}
	return fmt.Sprintf("%.1f GPU-hours", v)
}

// Dollars formats v as $1,234.56, for any float: amounts beyond what
// int64 cents hold are grouped from their decimal digits ($1.2e+20 and
// larger in scientific notation), and non-finite ones say so.
func Dollars(v float64) string {
	switch {
	case math.IsNaN(v):
		return "$NaN"
	case math.IsInf(v, 1):
		return "$∞"
	case math.IsInf(v, -1):
		return "-$∞"
	}
	neg := v < 0
	v = math.Abs(v)
	var s string
	switch {
	case v < 1e16: // cents fit an int64 exactly enough: round half up
		cents := int64(math.Round(v * 100))
		s = "$" + Count(cents/100) + fmt.Sprintf(".%02d", cents%100)
	case v >= 1e20:
		s = "$" + strconv.FormatFloat(v, 'e', 2, 64)
	default:
		whole, frac, _ := strings.Cut(strconv.FormatFloat(v, 'f', 2, 64), ".")
		s = "$" + group(whole) + "." + frac
	}
	if neg && s != "$0.00" {
		return "-" + s
	}
	return s
}

// group puts thousands separators into a string of digits.
func group(digits string) string {
	var b strings.Builder
	for i := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(digits[i])
	}
	return b.String()
}

// Count formats n with thousands separators.
func Count(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + Count(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// shortID is the first 8 characters of a step ID, enough to tell steps
// apart on screen (a hand-edited plan file may hold a shorter one).
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
