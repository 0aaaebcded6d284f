package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// evalplusDataset is how evalplus names a benchmark: its --dataset and the
// prefix of its task ids.
type evalplusDataset struct{ name, prefix string }

var evalplusDatasets = map[string]evalplusDataset{
	"humaneval": {"humaneval", "HumanEval/"},
	"mbpp":      {"mbpp", "Mbpp/"},
}

// evalplusFile is evalplus's eval_results.json: "date", "hash", "eval"
// (task id → one entry per sample with task_id, solution, base_status,
// plus_status, base_fail_tests, plus_fail_tests) and "pass_at_k"
// ({"base": {"pass@1": 0.61}, "plus": {"pass@1": 0.55}}, fractions).
type evalplusFile struct {
	Eval    map[string]json.RawMessage            `json:"eval"`
	PassAtK map[string]map[string]json.RawMessage `json:"pass_at_k"`
}

type evalplusSample struct {
	BaseStatus string  `json:"base_status"`
	PlusStatus *string `json:"plus_status"`
}

// errOtherDataset: a result file for another dataset than the one looked
// for.
var errOtherDataset = errors.New("results of another dataset")

// isEvalPlusResults: evalplus 0.3.1 (the pinned release) names the file
// after the samples with "_eval_results.json", later versions with
// ".eval_results.json"; a samples directory holds "eval_results.json".
func isEvalPlusResults(name string) bool {
	return name == "eval_results.json" || strings.HasSuffix(name, ".eval_results.json") ||
		strings.HasSuffix(name, "_eval_results.json")
}

func parseEvalPlusDir(dir, benchmark, tests string) (Score, error) {
	ds, ok := evalplusDatasets[benchmark]
	if !ok {
		return Score{}, fmt.Errorf("evalplus: unknown benchmark %q (known: humaneval, mbpp)", benchmark)
	}
	if tests != EvalPlusBase && tests != EvalPlusPlus {
		return Score{}, fmt.Errorf("evalplus: tests %q: want %q or %q", tests, EvalPlusBase, EvalPlusPlus)
	}
	cands, err := findFiles(dir, 3, isEvalPlusResults, nil)
	if err != nil {
		return Score{}, fmt.Errorf("evalplus results: %w", err)
	}
	if len(cands) == 0 {
		return Score{}, fmt.Errorf("evalplus results in %s: no <samples>.eval_results.json or eval_results.json (looked three directory levels deep)", dir)
	}
	for _, c := range cands {
		data, err := readFile(c.path)
		if err != nil {
			return Score{}, fmt.Errorf("evalplus results in %s: %w", dir, err)
		}
		s, err := parseEvalPlus(data, ds, tests)
		if errors.Is(err, errOtherDataset) {
			continue
		}
		if err != nil {
			return Score{}, fmt.Errorf("evalplus results in %s: %s: %w", dir, rel(dir, c.path), err)
		}
		return s, nil
	}
	return Score{}, fmt.Errorf("evalplus results in %s: none of the %d result files is for %s (no task id starts with %q)",
		dir, len(cands), ds.name, ds.prefix)
}

// parseEvalPlus reads pass_at_k.<tests>["pass@1"] from one result file.
func parseEvalPlus(data []byte, ds evalplusDataset, tests string) (Score, error) {
	var f evalplusFile
	if err := decodePythonJSON(data, &f); err != nil {
		return Score{}, fmt.Errorf("not an evalplus eval_results.json: %w", err)
	}
	if f.Eval == nil && f.PassAtK == nil {
		return Score{}, errors.New(`not an evalplus eval_results.json: neither "eval" nor "pass_at_k"`)
	}
	if len(f.Eval) > 0 {
		mine := false
		for id := range f.Eval {
			if strings.HasPrefix(id, ds.prefix) {
				mine = true
				break
			}
		}
		if !mine {
			return Score{}, errOtherDataset
		}
	}
	what := fmt.Sprintf(`pass_at_k.%s["pass@1"]`, tests)
	detail := map[string]float64{}
	for set, ks := range f.PassAtK {
		for k, raw := range ks {
			if v, ok := number(raw); ok {
				detail[set+" "+k] = v * 100
			}
		}
	}
	var v float64
	if f.PassAtK == nil {
		// Written before evalplus stored pass_at_k: recompute pass@1.
		var err error
		if v, err = evalplusPass1(f.Eval, tests); err != nil {
			return Score{}, fmt.Errorf(`no "pass_at_k", and pass@1 cannot be recomputed from "eval": %w`, err)
		}
		detail[tests+" pass@1"] = v * 100
	} else {
		ks, ok := f.PassAtK[tests]
		if !ok {
			hint := ""
			if tests == EvalPlusPlus {
				hint = " (evaluated with --base-only?)"
			}
			return Score{}, fmt.Errorf("no pass_at_k.%s%s", tests, hint)
		}
		raw, ok := ks["pass@1"]
		if !ok {
			return Score{}, fmt.Errorf("no %s", what)
		}
		var isNum bool
		if v, isNum = number(raw); !isNum {
			return Score{}, fmt.Errorf("%s is %s, not a number", what, shortJSON(raw))
		}
	}
	pct, err := percent(v, 0, 1, 100, what)
	if err != nil {
		return Score{}, err
	}
	return Score{Value: pct, Detail: detail}, nil
}

// evalplusPass1 is evalplus's pass@1 estimate: the mean over tasks of the
// fraction of a task's samples that pass (for "plus", pass both the base
// and the extra tests).
func evalplusPass1(eval map[string]json.RawMessage, tests string) (float64, error) {
	if len(eval) == 0 {
		return 0, errors.New(`"eval" is empty`)
	}
	sum := 0.0
	for id, raw := range eval {
		var samples []evalplusSample
		if err := json.Unmarshal(raw, &samples); err != nil {
			return 0, fmt.Errorf("task %s: per-sample results in an unknown format", id)
		}
		if len(samples) == 0 {
			return 0, fmt.Errorf("task %s has no samples", id)
		}
		pass := 0
		for _, s := range samples {
			ok := s.BaseStatus == "pass"
			if tests == EvalPlusPlus {
				if s.PlusStatus == nil {
					return 0, fmt.Errorf("task %s has no plus_status (evaluated with --base-only?)", id)
				}
				ok = ok && *s.PlusStatus == "pass"
			}
			if ok {
				pass++
			}
		}
		sum += float64(pass) / float64(len(samples))
	}
	return sum / float64(len(eval)), nil
}
