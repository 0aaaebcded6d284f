package harness

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// alpacaEvalScoreColumn is the AlpacaEval 2.0 score: the length-controlled
// win rate against the reference (gpt4_1106_preview), in percent.
const alpacaEvalScoreColumn = "length_controlled_winrate"

func parseAlpacaEvalDir(dir, model string) (Score, error) {
	cands, err := findFiles(dir, 1, func(n string) bool { return n == "leaderboard.csv" }, nil)
	if err != nil {
		return Score{}, fmt.Errorf("alpaca_eval results: %w", err)
	}
	if len(cands) == 0 {
		return Score{}, fmt.Errorf("alpaca_eval results in %s: no leaderboard.csv (looked in it and its subdirectories)", dir)
	}
	path := cands[0].path
	data, err := readFile(path)
	if err != nil {
		return Score{}, fmt.Errorf("alpaca_eval results in %s: %w", dir, err)
	}
	s, err := parseAlpacaEval(data, model)
	if err != nil {
		return Score{}, fmt.Errorf("alpaca_eval results in %s: %s: %w", dir, rel(dir, path), err)
	}
	return s, nil
}

// parseAlpacaEval reads the length-controlled win rate of model (or of
// the only row) from a leaderboard.csv.
func parseAlpacaEval(data []byte, model string) (Score, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return Score{}, errors.New("empty file")
	}
	if err != nil {
		return Score{}, fmt.Errorf("not a CSV leaderboard: %w", err)
	}
	col := -1
	for i, h := range header {
		if i > 0 && h == alpacaEvalScoreColumn {
			col = i
		}
	}
	if col < 0 {
		return Score{}, fmt.Errorf("no %s column (columns: %s)", alpacaEvalScoreColumn, strings.Join(header, ", "))
	}
	var rows [][]string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Score{}, fmt.Errorf("not a CSV leaderboard: %w", err)
		}
		if len(rec) != len(header) {
			line, _ := r.FieldPos(0)
			return Score{}, fmt.Errorf("line %d has %d fields, the header %d", line, len(rec), len(header))
		}
		rows = append(rows, rec)
	}
	var row []string
	switch {
	case len(rows) == 0:
		return Score{}, errors.New("no rows: the leaderboard lists no model")
	case model != "":
		for _, rec := range rows {
			if rec[0] == model {
				row = rec
				break
			}
		}
		if row == nil {
			return Score{}, fmt.Errorf("no row for model %q (%s)", model, listNames(rows))
		}
	case len(rows) == 1:
		row = rows[0]
	default:
		return Score{}, fmt.Errorf("%d rows and no model named to choose one (%s)", len(rows), listNames(rows))
	}
	what := fmt.Sprintf("%s of %q", alpacaEvalScoreColumn, row[0])
	cell := strings.TrimSpace(row[col])
	if cell == "" {
		return Score{}, fmt.Errorf("%s is empty (NaN)", what)
	}
	v, err := strconv.ParseFloat(cell, 64)
	if err != nil {
		return Score{}, fmt.Errorf("%s is %q, not a number", what, cell)
	}
	pct, err := percent(v, 0, 100, 1, what)
	if err != nil {
		return Score{}, err
	}
	detail := map[string]float64{}
	for i := 1; i < len(header); i++ {
		if x, err := strconv.ParseFloat(strings.TrimSpace(row[i]), 64); err == nil && !isNaNOrInf(x) {
			detail[header[i]] = x
		}
	}
	return Score{Value: pct, Detail: detail}, nil
}

// listNames names the first rows of a leaderboard, for error messages.
func listNames(rows [][]string) string {
	var names []string
	for i, r := range rows {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(rows)-5))
			break
		}
		names = append(names, strconv.Quote(r[0]))
	}
	return "rows: " + strings.Join(names, ", ")
}
