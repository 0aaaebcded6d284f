package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// lmevalFile is the part of lm-evaluation-harness's results_<time>.json
// that holds scores: per task (or group), metric keys "<metric>,<filter>"
// mapped to a number, or to "N/A" for a standard error not computed, next
// to an "alias" string.
type lmevalFile struct {
	Results map[string]map[string]json.RawMessage `json:"results"`
	Groups  map[string]map[string]json.RawMessage `json:"groups"`
}

// errNoTask: a results file without the task looked for.
var errNoTask = errors.New("task not in file")

// lmevalStamp reads the time from results_<time>.json, where <time> is
// Python's datetime.now().isoformat() with ':' replaced by '-'.
func lmevalStamp(name string) time.Time {
	ts := strings.TrimSuffix(strings.TrimPrefix(name, "results_"), ".json")
	// A fractional second after the seconds is accepted when parsing.
	t, err := time.Parse("2006-01-02T15-04-05", ts)
	if err != nil {
		return time.Time{}
	}
	return t
}

func isLMEvalResults(name string) bool {
	return strings.HasPrefix(name, "results_") && strings.HasSuffix(name, ".json")
}

// parseLMEvalDir reads the newest results file under dir that has the
// task.
func parseLMEvalDir(dir string, m LMEvalMetric) (Score, error) {
	cands, err := findFiles(dir, 2, isLMEvalResults, lmevalStamp)
	if err != nil {
		return Score{}, fmt.Errorf("lm-eval results: %w", err)
	}
	if len(cands) == 0 {
		return Score{}, fmt.Errorf("lm-eval results in %s: no results_<timestamp>.json (looked two directory levels deep)", dir)
	}
	for _, c := range cands {
		data, err := readFile(c.path)
		if err != nil {
			return Score{}, fmt.Errorf("lm-eval results in %s: %w", dir, err)
		}
		s, err := parseLMEval(data, m)
		if errors.Is(err, errNoTask) {
			continue
		}
		if err != nil {
			return Score{}, fmt.Errorf("lm-eval results in %s: %s: %w", dir, rel(dir, c.path), err)
		}
		return s, nil
	}
	return Score{}, fmt.Errorf("lm-eval results in %s: no task %s in any of %d results files (newest: %s)",
		dir, m.Task, len(cands), rel(dir, cands[0].path))
}

// parseLMEval reads the score of m from one results file.
func parseLMEval(data []byte, m LMEvalMetric) (Score, error) {
	var f lmevalFile
	if err := decodePythonJSON(data, &f); err != nil {
		return Score{}, fmt.Errorf("not an lm-eval results file: %w", err)
	}
	if f.Results == nil && f.Groups == nil {
		return Score{}, errors.New(`not an lm-eval results file: no "results" object`)
	}
	metrics, inResults := f.Results[m.Task]
	key := m.Key()
	raw, ok := metrics[key]
	if !ok {
		// lm-eval up to 0.4.2 kept group aggregates under "groups".
		if g, inGroups := f.Groups[m.Task]; inGroups {
			if r, ok2 := g[key]; ok2 {
				metrics, raw, ok = g, r, true
			} else if !inResults {
				metrics = g
			}
			inResults = true
		}
	}
	if !inResults {
		return Score{}, fmt.Errorf("%w: %s", errNoTask, m.Task)
	}
	if !ok {
		return Score{}, fmt.Errorf("no %q for task %s (it has %s)", key, m.Task, metricKeys(metrics))
	}
	v, isNum := number(raw)
	if !isNum {
		return Score{}, fmt.Errorf("%q for task %s is %s, not a number", key, m.Task, shortJSON(raw))
	}
	pct, err := percent(v, 0, 1, 100, fmt.Sprintf("%q for task %s", key, m.Task))
	if err != nil {
		return Score{}, err
	}
	detail := map[string]float64{}
	for k, r := range metrics {
		if x, ok := number(r); ok {
			detail[k] = x * 100
		}
	}
	return Score{Value: pct, Detail: detail}, nil
}

// metricKeys lists the metric keys of a task, for error messages.
func metricKeys(m map[string]json.RawMessage) string {
	var ks []string
	for k := range m {
		if k != "alias" && !strings.Contains(k, "_stderr,") {
			ks = append(ks, fmt.Sprintf("%q", k))
		}
	}
	if len(ks) == 0 {
		return "no metrics"
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// shortJSON renders a JSON value for an error message.
func shortJSON(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	if s == "null" {
		return "null (NaN, ±Infinity or null in the file)"
	}
	return s
}

// rel names path relative to dir where it can.
func rel(dir, path string) string {
	if r, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
