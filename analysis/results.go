package analysis

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Results are the cells and generator prices of an imported results file
// (docs/analysis.md, "Results files").
type Results struct {
	Path  string
	Cells []Cell
	// Settings holds the domain and method the file gives for a setting
	// (needed for settings agora does not know), with where it said so.
	Settings map[string]ResultSetting
	// Generators holds the prices the file gives, in the order the
	// generators first appear.
	Generators []GeneratorInfo
	// SettingAt is where each setting is first named: "FILE:LINE:COL"
	// of its setting field.
	SettingAt map[string]string
}

// ResultSetting is what a results file says of a setting; Source is
// "FILE:LINE:COL" of the field that first said it (domain, else method),
// MethodSource that of the method field.
type ResultSetting struct {
	Domain, Method       string
	Source, MethodSource string
}

// NoPGRInFile is why an imported cell without a pgr value has no PGR.
const NoPGRInFile = "the file gives no PGR"

// The columns of a results file.
const (
	colGenerator      = "generator"
	colSetting        = "setting"
	colDomain         = "domain"
	colMethod         = "method"
	colInstances      = "instances"
	colVariant        = "variant"
	colSeed           = "seed"
	colPGR            = "pgr"
	colCost           = "cost_usd"
	colProblemSolving = "problem_solving"
	colPriceInput     = "price_input"
	colPriceOutput    = "price_output"
	// FeaturePrefix starts the column of an intrinsic feature without a
	// documented name: feature_NAME is feature NAME.
	FeaturePrefix = "feature_"
)

var textColumns = []string{colGenerator, colSetting, colDomain, colMethod, colVariant}

func isTextColumn(name string) bool {
	switch name {
	case colGenerator, colSetting, colDomain, colMethod, colVariant:
		return true
	}
	return false
}

// ResultColumns lists the columns a results file may have, besides
// feature_NAME ones.
func ResultColumns() []string {
	cols := append([]string(nil), textColumns...)
	cols = append(cols, colInstances, colSeed, colPGR, colCost, colProblemSolving, colPriceInput, colPriceOutput)
	return append(cols, knownFeatures...)
}

// field is one value of a result row with its position.
type field struct {
	name      string
	text      string
	null      bool // JSON null or an empty CSV field
	isString  bool // a JSON string (CSV fields are both)
	isNumber  bool // a JSON number
	line, col int
}

// ReadResults reads a results file: CSV (.csv) or JSON (.json). Every
// mistake is an error "FILE:LINE:COL: message".
func ReadResults(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	r := &resultReader{res: &Results{Path: path, Settings: map[string]ResultSetting{}, SettingAt: map[string]string{}}, prices: map[string]*priceSeen{}}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		err = r.readCSV(path, data)
	case ".json":
		err = r.readJSON(path, data)
	default:
		return nil, fmt.Errorf("%s: unknown results format %q (want .csv or .json)", path, filepath.Ext(path))
	}
	if err != nil {
		return nil, err
	}
	for _, g := range r.order {
		p := r.prices[g]
		r.res.Generators = append(r.res.Generators, GeneratorInfo{Name: g, PriceInput: p.in.v, PriceOutput: p.out.v})
	}
	return r.res, nil
}

type resultReader struct {
	res    *Results
	prices map[string]*priceSeen
	order  []string
}

type sourced struct {
	v   *float64
	src string
}

type priceSeen struct{ in, out sourced }

func posErr(path string, line, col int, format string, args ...any) error {
	return fmt.Errorf("%s: %s", pos(path, line, col), fmt.Sprintf(format, args...))
}

// pos is "FILE:LINE:COL".
func pos(path string, line, col int) string {
	return path + ":" + strconv.Itoa(line) + ":" + strconv.Itoa(col)
}

func (r *resultReader) readCSV(path string, data []byte) error {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: empty results file: want a header line (docs/analysis.md)", path)
		}
		return csvErr(path, err)
	}
	cols := make([]string, len(header))
	seen := map[string]int{}
	for i, h := range header {
		line, col := cr.FieldPos(i)
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if err := checkColumn(h); err != nil {
			return posErr(path, line, col, "%v", err)
		}
		if j, dup := seen[h]; dup {
			return posErr(path, line, col, "column %q appears twice (also column %d)", h, j+1)
		}
		seen[h] = i
		cols[i] = h
	}
	for _, need := range []string{colGenerator, colSetting} {
		if _, ok := seen[need]; !ok {
			return posErr(path, 1, 1, "no %q column (the header has %s)", need, strings.Join(cols, ", "))
		}
	}
	cr.ReuseRecord = true
	fs := make([]field, 0, len(cols))
	// A cell per line at most: sized once rather than grown (a cell is
	// large, and a file can hold a million).
	r.res.Cells = slices.Grow(r.res.Cells, bytes.Count(data, []byte{'\n'})+1)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return csvErr(path, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(cols) {
			_, col := cr.FieldPos(len(rec) - 1)
			return posErr(path, line, col, "%d fields, but the header has %d", len(rec), len(cols))
		}
		fs = fs[:0] // row keeps nothing of it
		for i, v := range rec {
			l, c := cr.FieldPos(i)
			v = strings.TrimSpace(v)
			fs = append(fs, field{name: cols[i], text: v, null: v == "", isString: true, isNumber: true, line: l, col: c})
		}
		if err := r.row(path, line, 1, fs); err != nil {
			return err
		}
	}
}

func csvErr(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return posErr(path, pe.Line, pe.Column, "%v", pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

func checkColumn(h string) error {
	if h == "" {
		return errors.New("a column has no name")
	}
	if strings.HasPrefix(h, FeaturePrefix) {
		if len(h) == len(FeaturePrefix) {
			return fmt.Errorf("column %q names no feature (want %sNAME)", h, FeaturePrefix)
		}
		return nil
	}
	known := ResultColumns()
	for _, k := range known {
		if h == k {
			return nil
		}
	}
	msg := fmt.Sprintf("unknown column %q", h)
	if near := nearest(h, known); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return errors.New(msg + "; an intrinsic feature without a documented name is " + FeaturePrefix + "NAME")
}

// nearest is the known name within edit distance 2 of s, or else the
// first that s begins (cost → cost_usd), if any.
func nearest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" && len(s) >= 3 {
		for _, k := range known {
			if strings.HasPrefix(k, s) {
				return k
			}
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (r *resultReader) readJSON(path string, data []byte) error {
	// Positions are found moving forward through the file: counting lines
	// from its start each time would make reading quadratic.
	pos := &positions{data: data, line: 1}
	lineCol := pos.at
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	syntax := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// The decoder's offset is the end of the last good token;
			// the culprit is the first non-blank byte after it.
			off := max(int(se.Offset), int(dec.InputOffset()))
			for off < len(data) && strings.ContainsRune(" \t\r\n", rune(data[off])) {
				off++
			}
			l, c := lineCol(data, off)
			return posErr(path, l, c, "%v", se)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			l, c := lineCol(data, len(data))
			return posErr(path, l, c, "unexpected end of JSON")
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	tok, err := dec.Token()
	if err != nil {
		return syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		l, c := lineCol(data, skipSpace(data, 0))
		return posErr(path, l, c, "want a JSON array of result objects (docs/analysis.md)")
	}
	for dec.More() {
		start := skipSpace(data, int(dec.InputOffset()))
		sl, sc := lineCol(data, start)
		tok, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return posErr(path, sl, sc, "want a result object, not %v", describeToken(tok))
		}
		var fs []field
		seen := map[string]bool{}
		for dec.More() {
			koff := skipSpace(data, int(dec.InputOffset()))
			kl, kc := lineCol(data, koff)
			ktok, err := dec.Token()
			if err != nil {
				return syntax(err)
			}
			key := ktok.(string)
			if err := checkColumn(key); err != nil {
				return posErr(path, kl, kc, "%v", err)
			}
			if seen[key] {
				return posErr(path, kl, kc, "field %q appears twice", key)
			}
			seen[key] = true
			voff := skipSpace(data, int(dec.InputOffset()))
			vl, vc := lineCol(data, voff)
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return syntax(err)
			}
			f := field{name: key, line: vl, col: vc}
			switch raw[0] {
			case 'n':
				f.null = true
			case '"':
				var s string
				_ = json.Unmarshal(raw, &s)
				f.text, f.isString = strings.TrimSpace(s), true
			case '{', '[', 't', 'f':
				return posErr(path, vl, vc, "%s: want a string or a number, not %s", key, describeRaw(raw))
			default:
				f.text, f.isNumber = string(raw), true
			}
			fs = append(fs, f)
		}
		if _, err := dec.Token(); err != nil {
			return syntax(err)
		}
		for _, need := range []string{colGenerator, colSetting} {
			if !seen[need] {
				return posErr(path, sl, sc, "the result has no %q", need)
			}
		}
		if err := r.row(path, sl, sc, fs); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return syntax(err)
	}
	off := skipSpace(data, int(dec.InputOffset()))
	tok, err = dec.Token()
	switch {
	case err == nil:
		l, c := lineCol(data, off)
		return posErr(path, l, c, "%v after the array: want one array", describeToken(tok))
	case !errors.Is(err, io.EOF):
		return syntax(err)
	}
	return nil
}

func describeToken(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return string(v)
	case string:
		return "a string"
	case nil:
		return "null"
	case bool:
		return "a boolean"
	}
	return "a number"
}

func describeRaw(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "a boolean"
}

func skipSpace(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\n', '\r', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

// positions finds the line and column of offsets that mostly increase.
type positions struct {
	data      []byte
	off, line int // lines before off, plus one
	lineStart int // offset of the line holding off
}

// at is the 1-based line and byte column of offset off.
func (p *positions) at(_ []byte, off int) (int, int) {
	off = min(max(off, 0), len(p.data))
	if off < p.off {
		p.off, p.line, p.lineStart = 0, 1, 0
	}
	for i := p.off; i < off; i++ {
		if p.data[i] == '\n' {
			p.line++
			p.lineStart = i + 1
		}
	}
	p.off = off
	return p.line, off - p.lineStart + 1
}

// lineCol is the 1-based line and byte column of offset off.
func lineCol(data []byte, off int) (int, int) {
	off = min(off, len(data))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// row turns one result into a cell.
func (r *resultReader) row(path string, line, col int, fs []field) error {
	c := Cell{Source: pos(path, line, col), Features: map[string]float64{}}
	var domain, method string
	// Where fields are, formatted only when a message or a first mention
	// needs it (a file may have a million lines).
	var settingAt, givenAt, methodAt, priceInAt, priceOutAt *field
	var priceIn, priceOut *float64
	for i, f := range fs {
		at := func(format string, args ...any) error {
			return posErr(path, f.line, f.col, "%s: %s", f.name, fmt.Sprintf(format, args...))
		}
		if isTextColumn(f.name) {
			if !f.null && !f.isString {
				return at("want a string, not %s", f.text)
			}
			switch f.name {
			case colGenerator:
				c.Generator = f.text
			case colSetting:
				c.Setting = f.text
				settingAt = &fs[i]
			case colDomain:
				domain = f.text
				if domain != "" {
					givenAt = &fs[i]
				}
			case colMethod:
				method = f.text
				if method != "" {
					methodAt = &fs[i]
				}
			case colVariant:
				c.Variant = f.text
			}
			continue
		}
		if f.null {
			continue
		}
		if !f.isNumber {
			return at("want a number, not the string %q", f.text)
		}
		switch f.name {
		case colInstances, colSeed:
			n, err := strconv.Atoi(f.text)
			if err != nil {
				return at("%q is not a whole number", f.text)
			}
			if f.name == colInstances {
				if n <= 0 {
					return at("%d: want a positive number of instances", n)
				}
				c.Instances = n
			} else {
				c.Seed = n
			}
			continue
		}
		v, err := strconv.ParseFloat(f.text, 64)
		if err != nil || !finite(v) {
			return at("%q is not a finite number", f.text)
		}
		switch f.name {
		case colPGR:
			c.PGR = &v
		case colCost:
			if v < 0 {
				return at("%s: a cost cannot be negative", f.text)
			}
			c.Cost = &v
		case colProblemSolving:
			c.ProblemSolving = &v
		case colPriceInput, colPriceOutput:
			if v < 0 {
				return at("%s: a price cannot be negative", f.text)
			}
			if f.name == colPriceInput {
				priceIn, priceInAt = &v, &fs[i]
			} else {
				priceOut, priceOutAt = &v, &fs[i]
			}
		default:
			c.Features[strings.TrimPrefix(f.name, FeaturePrefix)] = v
		}
	}
	if c.Generator == "" {
		return posErr(path, line, col, "the result has no generator")
	}
	if c.Setting == "" {
		return posErr(path, line, col, "the result has no setting")
	}
	if c.PGR == nil {
		c.NoPGR = NoPGRInFile
	}
	where := func(f *field) string {
		if f == nil {
			return pos(path, line, col)
		}
		return pos(path, f.line, f.col)
	}
	if _, ok := r.res.SettingAt[c.Setting]; !ok {
		r.res.SettingAt[c.Setting] = where(settingAt)
	}
	if givenAt == nil {
		givenAt = methodAt
	}
	if domain != "" || method != "" {
		prev, ok := r.res.Settings[c.Setting]
		if ok && (prev.Domain != domain || prev.Method != method) {
			return fmt.Errorf("%s: setting %s: domain %q and method %q differ from %q and %q at %s",
				where(givenAt), c.Setting, domain, method, prev.Domain, prev.Method, prev.Source)
		}
		if !ok {
			r.res.Settings[c.Setting] = ResultSetting{Domain: domain, Method: method, Source: where(givenAt), MethodSource: where(methodAt)}
		}
	}
	p := r.prices[c.Generator]
	if p == nil {
		p = &priceSeen{}
		r.prices[c.Generator] = p
		r.order = append(r.order, c.Generator)
	}
	for _, pr := range []struct {
		name string
		v    *float64
		at   *field
		seen *sourced
	}{{colPriceInput, priceIn, priceInAt, &p.in}, {colPriceOutput, priceOut, priceOutAt, &p.out}} {
		if pr.v == nil {
			continue
		}
		if pr.seen.v != nil && *pr.seen.v != *pr.v {
			return fmt.Errorf("%s: %s of %s is %s here but %s at %s", where(pr.at), pr.name, c.Generator,
				fmtScore(*pr.v), fmtScore(*pr.seen.v), pr.seen.src)
		}
		if pr.seen.v == nil {
			*pr.seen = sourced{pr.v, where(pr.at)}
		}
	}
	r.res.Cells = append(r.res.Cells, c)
	return nil
}
