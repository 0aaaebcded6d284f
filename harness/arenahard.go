package harness

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ArenaHardResultFile is the file, in the output directory, holding the
// standard output of arena-hard-auto's show_result.py.
const ArenaHardResultFile = "show_result.txt"

// arenaHardLine matches a leaderboard line of arena-hard-auto v0.1's
// show_result.py:
//
//	f"{model : <30} | score: {score : ^5} | 95% CI: {interval : ^12} | average #tokens: {tokens}"
//
// where interval is str() of the tuple (lower − score, upper − score).
// Forks that append further " | name: value" fields are accepted.
var arenaHardLine = regexp.MustCompile(
	`^(.*?)\s*\|\s*score:\s*(\S+)\s*\|\s*95% CI:\s*\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)\s*\|\s*average #tokens:\s*([0-9.]+)\s*(?:\|.*)?$`)

type arenaHardRow struct {
	model                string
	score, lo, hi, toks  float64
	scoreText            string
	lowerText, upperText string
}

func parseArenaHardDir(dir, model, baseline string) (Score, error) {
	path := filepath.Join(dir, ArenaHardResultFile)
	if _, err := os.Stat(dir); err != nil {
		return Score{}, fmt.Errorf("arena-hard-auto results: result directory %s: %w", dir, err)
	}
	data, err := readFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Score{}, fmt.Errorf("arena-hard-auto results in %s: no %s (the saved output of show_result.py)", dir, ArenaHardResultFile)
		}
		return Score{}, fmt.Errorf("arena-hard-auto results in %s: %w", dir, err)
	}
	s, err := parseArenaHard(data, model, baseline)
	if err != nil {
		return Score{}, fmt.Errorf("arena-hard-auto results in %s: %s: %w", dir, ArenaHardResultFile, err)
	}
	return s, nil
}

// parseArenaHard reads the score of model (or of the only model that is
// not the baseline) from show_result.py's output.
func parseArenaHard(data []byte, model, baseline string) (Score, error) {
	var rows []arenaHardRow
	for _, line := range strings.Split(string(data), "\n") {
		// A progress bar sharing the stream rewrites its line with '\r'.
		line = strings.TrimRight(line, "\r")
		if i := strings.LastIndexByte(line, '\r'); i >= 0 {
			line = line[i+1:]
		}
		m := arenaHardLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		r := arenaHardRow{model: strings.TrimSpace(m[1]), scoreText: m[2], lowerText: m[3], upperText: m[4]}
		var err error
		if r.score, err = strconv.ParseFloat(m[2], 64); err != nil {
			r.score = math.NaN()
		}
		if r.lo, err = strconv.ParseFloat(m[3], 64); err != nil {
			r.lo = math.NaN()
		}
		if r.hi, err = strconv.ParseFloat(m[4], 64); err != nil {
			r.hi = math.NaN()
		}
		if r.toks, err = strconv.ParseFloat(m[5], 64); err != nil {
			r.toks = math.NaN()
		}
		// A model printed twice (output appended to): the later line wins.
		replaced := false
		for i := range rows {
			if rows[i].model == r.model {
				rows[i], replaced = r, true
			}
		}
		if !replaced {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return Score{}, errors.New(`no leaderboard line ("MODEL | score: S | 95% CI: (L, U) | average #tokens: N")`)
	}
	var row *arenaHardRow
	if model != "" {
		for i := range rows {
			if rows[i].model == model {
				row = &rows[i]
			}
		}
		if row == nil {
			return Score{}, fmt.Errorf("no line for model %q (%s)", model, arenaHardNames(rows))
		}
	} else {
		var others []int
		for i := range rows {
			if rows[i].model != baseline {
				others = append(others, i)
			}
		}
		switch len(others) {
		case 1:
			row = &rows[others[0]]
		case 0:
			return Score{}, fmt.Errorf("only the baseline %q is listed", baseline)
		default:
			return Score{}, fmt.Errorf("%d models besides the baseline and no model named to choose one (%s)", len(others), arenaHardNames(rows))
		}
	}
	what := fmt.Sprintf("score of %q", row.model)
	if math.IsNaN(row.score) {
		return Score{}, fmt.Errorf("%s is %q, not a number", what, row.scoreText)
	}
	pct, err := percent(row.score, 0, 100, 1, what)
	if err != nil {
		return Score{}, err
	}
	detail := map[string]float64{"score": pct}
	if !isNaNOrInf(row.lo) && !isNaNOrInf(row.hi) {
		detail["ci_lower"] = pct + row.lo
		detail["ci_upper"] = pct + row.hi
	}
	if !isNaNOrInf(row.toks) {
		detail["average_tokens"] = row.toks
	}
	return Score{Value: pct, Detail: detail}, nil
}

func arenaHardNames(rows []arenaHardRow) string {
	var names []string
	for i, r := range rows {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(rows)-5))
			break
		}
		names = append(names, strconv.Quote(r.model))
	}
	return "listed: " + strings.Join(names, ", ")
}

func isNaNOrInf(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }
