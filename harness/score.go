package harness

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// The harness names, as spec names them (spec.HarnessLMEval and so on).
const (
	LMEval     = "lm-eval"
	EvalPlus   = "evalplus"
	AlpacaEval = "alpaca_eval"
	ArenaHard  = "arena-hard-auto"
)

// Harnesses lists the harnesses this package runs and reads.
func Harnesses() []string { return []string{LMEval, EvalPlus, AlpacaEval, ArenaHard} }

// Score is one model's result on one benchmark.
type Score struct {
	Benchmark string
	// Value is the benchmark's score in percent (0–100).
	Value float64
	// Detail holds the harness's other numbers under the harness's own
	// names: percentages in percent, counts as counts (see the package
	// documentation per harness). It is never nil on success.
	Detail map[string]float64
}

// LMEvalMetric names the lm-evaluation-harness task run for a benchmark and
// the key of its results that is the score.
type LMEvalMetric struct {
	// Task is the lm-eval task (--tasks).
	Task string
	// Metric and Filter make the results key "<Metric>,<Filter>".
	Metric string
	Filter string
	// FewShot is the number of exemplars the base model is shown
	// (--num_fewshot); students and the reference run zero-shot.
	FewShot int
}

// Key is the results key of the score, e.g. "exact_match,flexible-extract".
func (m LMEvalMetric) Key() string { return m.Metric + "," + m.Filter }

// EvalPlus test sets.
const (
	EvalPlusBase = "base"
	EvalPlusPlus = "plus"
)

// Options choose what Parse reads as the score.
type Options struct {
	// LMEval maps a benchmark run by lm-evaluation-harness to its task and
	// score key.
	LMEval map[string]LMEvalMetric
	// EvalPlusTests is EvalPlusBase (the original tests) or EvalPlusPlus
	// (original and extra tests).
	EvalPlusTests string
	// Model selects the row of alpaca_eval's leaderboard.csv and of
	// arena-hard-auto's show_result output. Empty: the only row (for
	// arena-hard-auto, the only row that is not the baseline).
	Model string
	// ArenaHardBaseline is the model Arena-Hard scores against, skipped
	// when picking the only row.
	ArenaHardBaseline string
}

// DefaultOptions are the choices documented in the package documentation.
func DefaultOptions() Options {
	return Options{
		LMEval: map[string]LMEvalMetric{
			"gsm8k": {Task: "gsm8k", Metric: "exact_match", Filter: "flexible-extract", FewShot: 5},
			"math":  {Task: "agora_math", Metric: "math_verify", Filter: "none", FewShot: 4},
		},
		EvalPlusTests:     EvalPlusBase,
		ArenaHardBaseline: "gpt-4-0314",
	}
}

// Parse reads the score of benchmark from the result files harness wrote
// under dir, with DefaultOptions.
func Parse(harness, benchmark, dir string) (Score, error) {
	return ParseWith(harness, benchmark, dir, DefaultOptions())
}

// ParseWith is Parse with the given options.
func ParseWith(harness, benchmark, dir string, o Options) (Score, error) {
	var (
		s   Score
		err error
	)
	switch harness {
	case LMEval:
		m, ok := o.LMEval[benchmark]
		if !ok {
			return Score{}, fmt.Errorf("lm-eval: no task configured for benchmark %q (configured: %s)",
				benchmark, strings.Join(sortedKeys(o.LMEval), ", "))
		}
		s, err = parseLMEvalDir(dir, m)
	case EvalPlus:
		s, err = parseEvalPlusDir(dir, benchmark, o.EvalPlusTests)
	case AlpacaEval:
		s, err = parseAlpacaEvalDir(dir, o.Model)
	case ArenaHard:
		s, err = parseArenaHardDir(dir, o.Model, o.ArenaHardBaseline)
	default:
		return Score{}, fmt.Errorf("unknown harness %q (known: %s)", harness, strings.Join(Harnesses(), ", "))
	}
	if err != nil {
		return Score{}, err
	}
	s.Benchmark = benchmark
	return s, nil
}

// percent checks that v is a finite number within [lo, hi] and scales it to
// percent.
func percent(v, lo, hi, scale float64, what string) (float64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s is %v, not a number", what, v)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%s is %v, outside [%v, %v]", what, v, lo, hi)
	}
	return v * scale, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// CheckJudge reports whether the harness can score with the judge model
// (empty: DefaultJudge): alpaca_eval's length-controlled win rate is
// calibrated for its default annotator only, and arena-hard-auto writes the
// model's name into its configuration. The commands refuse what it
// refuses, and the spec's check calls it so that a plan refuses it first.
func CheckJudge(harness, judge string) error {
	if judge == "" {
		judge = DefaultJudge
	}
	switch harness {
	case AlpacaEval:
		if judge != DefaultJudge {
			return fmt.Errorf("alpaca_eval: judge %q: the length-controlled win rate of %s is calibrated for %s; use a command template to run another annotator",
				judge, AlpacaEvalAnnotators, DefaultJudge)
		}
	case ArenaHard:
		if !judgeName.MatchString(judge) {
			return fmt.Errorf("arena-hard-auto: judge model %q: want letters, digits and . _ - : /", judge)
		}
	}
	return nil
}

// CheckModelArg reports whether lm-eval's --model_args can carry a model
// path or name: its values are separated by commas, with no way to escape
// one.
func CheckModelArg(model string) error {
	if strings.Contains(model, ",") {
		return fmt.Errorf("lm-eval: model path %q contains a comma, which --model_args cannot carry", model)
	}
	return nil
}

// CheckBenchmark reports whether the harness has a benchmark of that name
// with DefaultOptions, as Command and APICommand need: lm-eval runs the
// tasks of DefaultOptions().LMEval (gsm8k, math), evalplus its two data
// sets (humaneval, mbpp); alpaca_eval and arena-hard-auto take any name.
func CheckBenchmark(harness, benchmark string) error {
	switch harness {
	case LMEval:
		o := DefaultOptions()
		if _, ok := o.LMEval[benchmark]; !ok {
			return fmt.Errorf("lm-eval: no task configured for benchmark %q (configured: %s)",
				benchmark, strings.Join(sortedKeys(o.LMEval), ", "))
		}
	case EvalPlus:
		if _, ok := evalplusDatasets[benchmark]; !ok {
			return fmt.Errorf("evalplus: unknown benchmark %q (known: humaneval, mbpp)", benchmark)
		}
	}
	return nil
}
