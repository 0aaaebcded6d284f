package spec

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
)

//go:embed schema.cue
var schemaSource []byte

// Schema returns the embedded CUE schema; a spec is unified with its
// #Experiment definition.
func Schema() []byte { return append([]byte(nil), schemaSource...) }

// schemaFile is the name the schema's positions carry.
const schemaFile = "agora/schema.cue"

// Load reads, validates and decodes the spec at path. Every problem is
// returned at once as Diagnostics; other errors (an unreadable file) are
// wrapped plainly.
func Load(path string) (*Experiment, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("spec %s: no such file", path)
		}
		return nil, fmt.Errorf("read spec: %w", err)
	}
	return LoadBytes(path, src, filepath.Dir(path))
}

// LoadBytes validates and decodes a spec held in memory. name is used in
// positions; dir resolves the spec's relative paths.
func LoadBytes(name string, src []byte, dir string) (*Experiment, error) {
	l := &loader{file: name, dir: dir}
	sum := sha256.Sum256(src)
	exp, ds := l.load(src)
	if len(ds) > 0 {
		return nil, ds.sorted()
	}
	exp.Source = Source{File: name, Dir: dir, Digest: "sha256:" + hex.EncodeToString(sum[:]), positions: l.budgetPositions(exp),
		locate: func(labels ...string) string {
			sels := make([]cue.Selector, len(labels))
			for i, lb := range labels {
				sels[i] = cue.Str(lb)
			}
			// The deepest prefix the file sets, not the file itself.
			for n := len(sels); n > 0; n-- {
				if v := l.user.LookupPath(cue.MakePath(sels[:n]...)); v.Exists() {
					if p := v.Pos(); p.IsValid() {
						return fmt.Sprintf("%s:%d:%d", l.file, p.Line(), p.Column())
					}
				}
			}
			return ""
		}}
	return exp, nil
}

// budgetPositions records where each budget is set, so that a plan over a
// budget can point at the line that sets it.
func (l *loader) budgetPositions(exp *Experiment) map[string]string {
	pos := map[string]string{}
	record := func(sels []cue.Selector) {
		if p := l.posOf(sels); p.IsValid() {
			pos[cue.MakePath(sels...).String()] = fmt.Sprintf("%s:%d:%d", l.file, p.Line(), p.Column())
		}
	}
	record(sel("budgets", "usd"))
	record(sel("budgets", "gpu_hours"))
	for name := range exp.Budgets.PerGenerator {
		record(sel("budgets", "per_generator", name, "usd"))
		record(sel("budgets", "per_generator", name, "gpu_hours"))
	}
	return pos
}

// BudgetPath is the CUE path of a generator's budget in unit ("usd" or
// "gpu_hours"), as Source.Position takes it.
func BudgetPath(generator, unit string) string {
	return cue.MakePath(sel("budgets", "per_generator", generator, unit)...).String()
}

type loader struct {
	file  string
	dir   string
	user  cue.Value // the user's file on its own: positions
	value cue.Value // the user's file unified with #Experiment
	top   cue.Value // CUE's top value, _
	diags Diagnostics
	// notAllowed holds paths already reported as unknown fields, so that
	// errors beneath them are not reported again.
	notAllowed []string
}

func (l *loader) load(src []byte) (*Experiment, Diagnostics) {
	ctx := cuecontext.New()
	schema := ctx.CompileBytes(schemaSource, cue.Filename(schemaFile))
	if err := schema.Err(); err != nil {
		// The schema is embedded and tested; this is a bug in agora.
		return nil, Diagnostics{{File: schemaFile, Msg: "internal error: " + err.Error()}}
	}
	if _, err := parser.ParseFile(l.file, src); err != nil {
		// Only the first syntax error: the parser's recovery after it is
		// guesswork, and what follows is often an echo of the first.
		l.addCUE(firstError(err))
		return nil, l.diags
	}
	l.user = ctx.CompileBytes(src, cue.Filename(l.file))
	if err := l.user.Err(); err != nil {
		l.addCUE(err)
		return nil, l.diags
	}
	if k := l.user.IncompleteKind(); k != cue.StructKind {
		l.add(l.user.Pos(), "", "a spec must be a CUE struct (fields at the top level), not %s", kindName(k))
		return nil, l.diags
	}
	l.value = schema.LookupPath(cue.MakePath(cue.Def("Experiment"))).Unify(l.user)

	l.top = ctx.CompileString("_")
	l.checkAllowed(l.user, schema.LookupPath(cue.MakePath(cue.Def("Experiment"))), nil)
	l.walk(l.value, nil)
	if len(l.diags) > 0 {
		return nil, l.diags
	}
	var exp Experiment
	if err := l.value.Decode(&exp); err != nil {
		l.addCUE(err)
		return nil, l.diags
	}
	l.complete(&exp)
	if len(l.diags) > 0 {
		return nil, l.diags
	}
	return &exp, nil
}

// add records a diagnostic at pos, or at the deepest part of path the
// user's file has when pos is unknown.
func (l *loader) add(pos token.Pos, path string, format string, args ...any) {
	d := Diagnostic{File: l.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if pos.IsValid() && pos.Filename() == l.file {
		d.Line, d.Col = pos.Line(), pos.Column()
	}
	l.diags = append(l.diags, d)
}

// at reports a problem at the user's field sels (or its deepest existing
// ancestor).
func (l *loader) at(sels []cue.Selector, format string, args ...any) {
	l.add(l.posOf(sels), cue.MakePath(sels...).String(), format, args...)
}

// posOf returns the position of the deepest prefix of sels present in the
// user's file.
func (l *loader) posOf(sels []cue.Selector) token.Pos {
	for n := len(sels); n >= 0; n-- {
		v := l.user.LookupPath(cue.MakePath(sels[:n]...))
		if v.Exists() {
			if p := v.Pos(); p.IsValid() {
				return p
			}
		}
	}
	return token.NoPos
}

// userPos picks the first of an error's positions that is in the user's
// file.
func (l *loader) userPos(e cueerrors.Error) token.Pos {
	if p := e.Position(); p.IsValid() && p.Filename() == l.file {
		return p
	}
	for _, p := range e.InputPositions() {
		if p.Filename() == l.file {
			return p
		}
	}
	return token.NoPos
}

// pathOf converts an error path to selectors, dropping the #Experiment root.
func pathOf(path []string) []cue.Selector {
	if len(path) > 0 && path[0] == "#Experiment" {
		path = path[1:]
	}
	p := cue.ParsePath(strings.Join(quoteLabels(path), "."))
	if p.Err() != nil {
		return nil
	}
	return p.Selectors()
}

var identRE = regexp.MustCompile(`^[A-Za-z_#][A-Za-z0-9_]*$|^[0-9]+$|^".*"$`)

func quoteLabels(path []string) []string {
	out := make([]string, len(path))
	for i, s := range path {
		if identRE.MatchString(s) {
			out[i] = s
		} else {
			out[i] = fmt.Sprintf("%q", s)
		}
	}
	return out
}

// firstError returns the error of err that comes first in the file.
func firstError(err error) error {
	errs := cueerrors.Errors(err)
	if len(errs) == 0 {
		return err
	}
	first := errs[0]
	for _, e := range errs[1:] {
		if e.Position().Before(first.Position()) {
			first = e
		}
	}
	return first
}

// kindName names a kind with its article, for messages: "a list".
func kindName(k cue.Kind) string {
	switch s := k.String(); {
	case k == cue.NullKind, k == cue.BottomKind:
		return s
	case strings.ContainsAny(s[:1], "aeiou"):
		return "an " + s
	default:
		return "a " + s
	}
}

// addCUE records every error in err.
func (l *loader) addCUE(err error) {
	for _, e := range cueerrors.Errors(err) {
		sels := pathOf(e.Path())
		pos := l.userPos(e)
		if !pos.IsValid() {
			pos = l.posOf(sels)
		}
		f, a := e.Msg()
		msg := fmt.Sprintf(f, a...)
		if msg == "" || strings.Contains(msg, "%!") {
			// Not a CUE error (e.g. one from Decode): it has no message
			// of its own.
			msg = e.Error()
		}
		path := ""
		if len(sels) > 0 {
			path = cue.MakePath(sels...).String()
		}
		l.add(pos, path, "%s", msg)
	}
}

// checkAllowed reports fields of the user's file that the schema does not
// allow, with the nearest allowed name. It walks the user's value beside
// the schema's: unification with the user's open structs would make every
// field look allowed.
func (l *loader) checkAllowed(user, schema cue.Value, sels []cue.Selector) {
	switch user.IncompleteKind() {
	case cue.StructKind:
		it, err := user.Fields(cue.Optional(true))
		if err != nil {
			return
		}
		for it.Next() {
			sel := it.Selector()
			child := append(append([]cue.Selector(nil), sels...), sel)
			if !schema.Allows(sel) {
				l.reportNotAllowed(schema, child, it.Value().Pos())
				continue
			}
			l.checkAllowed(it.Value(), l.schemaStep(schema, sel), child)
		}
	case cue.ListKind:
		it, err := user.List()
		if err != nil {
			return
		}
		for i := 0; it.Next(); i++ {
			child := append(append([]cue.Selector(nil), sels...), cue.Index(i))
			l.checkAllowed(it.Value(), l.schemaStep(schema, cue.Index(i)), child)
		}
	}
}

// schemaStep returns the schema's constraint for the field sel of v,
// including optional fields and pattern constraints.
func (l *loader) schemaStep(v cue.Value, sel cue.Selector) cue.Value {
	p := cue.MakePath(sel)
	return v.FillPath(p, l.top).LookupPath(p)
}

func (l *loader) reportNotAllowed(parent cue.Value, sels []cue.Selector, pos token.Pos) {
	label := unquote(sels[len(sels)-1].String())
	path := cue.MakePath(sels...).String()
	l.notAllowed = append(l.notAllowed, path)
	// Names under a pattern constraint (generators, settings, …) are
	// allowed unless they break the naming rule.
	if len(sels) >= 2 && isMapField(sels[len(sels)-2].String()) {
		l.add(pos, path, "invalid name %q: names start with a letter or digit and use only letters, digits, '_', '.' and '-'", label)
		return
	}
	var names []string
	if it, err := parent.Fields(cue.Optional(true)); err == nil {
		for it.Next() {
			n := unquote(it.Selector().String())
			if n != label && parent.Allows(it.Selector()) {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	msg := fmt.Sprintf("unknown field %q", label)
	if m := suggest(label, names); m != "" {
		msg += fmt.Sprintf("; did you mean %q?", m)
	} else if len(names) > 0 && len(names) <= 12 {
		msg += " (allowed: " + strings.Join(names, ", ") + ")"
	}
	l.add(pos, path, "%s", msg)
}

// isMapField reports whether a field holds user-named entries.
func isMapField(label string) bool {
	switch label {
	case "generators", "settings", "benchmarks", "per_generator", "extra":
		return true
	}
	return false
}

func unquote(s string) string {
	s = strings.TrimRight(s, "?!")
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func (l *loader) underNotAllowed(path string) bool {
	for _, p := range l.notAllowed {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// walk visits every field of the unified value and reports conflicts and
// missing required values; it keeps going past the first error so the
// user sees them all.
func (l *loader) walk(v cue.Value, sels []cue.Selector) int {
	path := cue.MakePath(sels...).String()
	if l.underNotAllowed(path) {
		return 1
	}
	n := 0
	err := v.Err()
	if it, ferr := v.Fields(cue.Optional(false)); ferr == nil {
		for it.Next() {
			n += l.walk(it.Value(), append(append([]cue.Selector(nil), sels...), it.Selector()))
		}
	} else if v.IncompleteKind() == cue.ListKind {
		if it, lerr := v.List(); lerr == nil {
			for i := 0; it.Next(); i++ {
				n += l.walk(it.Value(), append(append([]cue.Selector(nil), sels...), cue.Index(i)))
			}
		}
	} else if err == nil && !v.IsConcrete() {
		if d, ok := v.Default(); ok && d.IsConcrete() {
			return 0
		}
		if k := v.IncompleteKind(); k&(cue.StructKind|cue.ListKind) != 0 && k&^(cue.StructKind|cue.ListKind) == 0 {
			return 0
		}
		if l.user.LookupPath(cue.MakePath(sels...)).Exists() {
			l.at(sels, "incomplete value %v: give a concrete value", v)
		} else {
			l.at(sels[:len(sels)-1], "missing required field %q", unquote(sels[len(sels)-1].String()))
		}
		return 1
	}
	if n == 0 && err != nil {
		l.addValueErr(err, sels)
		return 1
	}
	// Values CUE holds exactly but Go cannot: Decode would fail with no
	// position.
	switch {
	case err != nil:
	case v.Kind() == cue.IntKind:
		if _, ierr := v.Int64(); ierr != nil {
			l.at(sels, "integer %v is out of range (at most %d)", v, int64(math.MaxInt64))
			return 1
		}
	case v.Kind() == cue.FloatKind:
		if _, ferr := v.Float64(); ferr != nil {
			l.at(sels, "number %v is out of range for a 64-bit float", v)
			return 1
		}
	}
	return n
}

var conflictRE = regexp.MustCompile(`^conflicting values (.+) and (.+?)(?: \(mismatched types .*\))?$`)

// addValueErr reports the errors of one field, folding a failed
// disjunction ("N errors in empty disjunction") into one message that
// names the allowed values.
func (l *loader) addValueErr(err error, sels []cue.Selector) {
	errs := cueerrors.Errors(err)
	if len(errs) == 0 {
		return
	}
	first := errs[0]
	f, a := first.Msg()
	msg := fmt.Sprintf(f, a...)
	pos := token.NoPos
	for _, e := range errs {
		if pos = l.userPos(e); pos.IsValid() {
			break
		}
	}
	if !pos.IsValid() {
		pos = l.posOf(sels)
	}
	path := cue.MakePath(sels...).String()
	if (strings.HasSuffix(path, "provider.openai.batch") || strings.HasSuffix(path, "provider.batch")) && strings.Contains(msg, "errors in empty disjunction") {
		// true, false or a block: CUE's account of the three is no help.
		l.add(pos, path, "batch is true, false or a block of settings such as {max_requests: 10000, poll: \"1m\"} (window, max_requests, max_bytes, max_enqueued_tokens, poll, sync_after; docs/batch.md)")
		return
	}
	if !strings.Contains(msg, "errors in empty disjunction") {
		for _, e := range errs {
			f, a := e.Msg()
			l.add(pos, path, "%s", friendly(fmt.Sprintf(f, a...), l.user.LookupPath(cue.MakePath(sels...))))
		}
		return
	}
	userVal := ""
	if uv := l.user.LookupPath(cue.MakePath(sels...)); uv.Exists() {
		userVal = fmt.Sprint(uv)
	}
	type option struct {
		text string
		at   int
	}
	var opts []option
	var others []string
	for _, e := range errs[1:] {
		f, a := e.Msg()
		m := fmt.Sprintf(f, a...)
		if c := conflictRE.FindStringSubmatch(m); c != nil {
			opt := c[1]
			if opt == userVal {
				opt = c[2]
			}
			at := 0
			for _, p := range e.InputPositions() {
				if p.Filename() == schemaFile {
					at = p.Offset()
					break
				}
			}
			opts = append(opts, option{opt, at})
			continue
		}
		others = append(others, m)
	}
	sort.SliceStable(opts, func(i, j int) bool { return opts[i].at < opts[j].at })
	var options []string
	for _, o := range opts {
		options = append(options, o.text)
	}
	if len(others) > 0 {
		l.add(pos, path, "%s", strings.Join(dedupe(others), "; "))
		return
	}
	options = dedupe(options)
	msg = fmt.Sprintf("invalid value %s (want %s)", userVal, joinOr(options))
	if strings.HasPrefix(userVal, `"`) {
		plain := make([]string, len(options))
		for i, o := range options {
			plain[i] = unquote(o)
		}
		msg += didYouMean(unquote(userVal), plain)
	}
	l.add(pos, path, "%s", msg)
}

var mismatchRE = regexp.MustCompile(`^conflicting values (.+) and (.+) \(mismatched types (\w+) and (\w+)\)$`)

// friendly rewrites CUE's type-mismatch message, which names the user's
// value and the schema's type in either order, as "want TYPE, got VALUE".
// user is the user's value of the field, when the file has one: its kind
// tells which side is which. A struct or list is named by its kind only:
// the schema's struct, spelt out, is a wall of text.
func friendly(msg string, user cue.Value) string {
	m := mismatchRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	if user.Exists() {
		k := user.Kind()
		want := ""
		switch k.String() {
		case m[3]:
			want = m[4]
		case m[4]:
			want = m[3]
		}
		switch {
		case want == "":
		case k == cue.StructKind || k == cue.ListKind || k == cue.NullKind:
			return fmt.Sprintf("want %s, got %s", want, k)
		default:
			return fmt.Sprintf("want %s, got %s %v", want, k, user)
		}
	}
	val, typ, valKind := m[1], m[2], m[3]
	if isTypeName(m[1]) && !isTypeName(m[2]) {
		val, typ, valKind = m[2], m[1], m[4]
	}
	if !isTypeName(typ) {
		return msg
	}
	return fmt.Sprintf("want %s, got %s %s", typ, valKind, val)
}

func isTypeName(s string) bool {
	switch s {
	case "number", "int", "float", "string", "bool", "bytes", "struct", "list", "null":
		return true
	}
	return strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[")
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
