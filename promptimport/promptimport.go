// Package promptimport turns the AgoraBench authors' meta-prompts, read
// from a local checkout of their public repository (neulab/data-agora),
// into agora meta-prompt templates and the spec fragment that uses them:
// each built-in setting's prompt file, the system message and stop
// sequence their generation script sends, and the themes and opening
// phrases it draws from. agora ships none of that text; the user's
// checkout is read at import time (docs/prompts.md).
package promptimport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/prompts"
	"github.com/agorabench/agora/spec"
)

// The checkout's layout: the prompt files and the generation script.
const (
	PromptsDir = "agora_scripts/prompts"
	Script     = "agora_scripts/run.py"
)

// A prompt file is METHOD_DOMAIN_prompt.txt, the JSON-format variant
// METHOD_DOMAIN_prompt_json_formatted.txt; DOMAIN "general" is agora's
// instruction_following.
var (
	methods = []string{spec.MethodInstance, spec.MethodResponse, spec.MethodQuality}
	domains = map[string]string{"math": spec.DomainMath, "code": spec.DomainCode, "general": spec.DomainInstruction}
	// settings names agora's built-in setting of a domain and method.
	settings = map[string]string{
		spec.DomainMath + "/" + spec.MethodInstance: "math-ig", spec.DomainMath + "/" + spec.MethodResponse: "math-rg", spec.DomainMath + "/" + spec.MethodQuality: "math-qe",
		spec.DomainCode + "/" + spec.MethodInstance: "code-ig", spec.DomainCode + "/" + spec.MethodResponse: "code-rg", spec.DomainCode + "/" + spec.MethodQuality: "code-qe",
		spec.DomainInstruction + "/" + spec.MethodInstance: "if-ig", spec.DomainInstruction + "/" + spec.MethodResponse: "if-rg", spec.DomainInstruction + "/" + spec.MethodQuality: "if-qe",
	}
)

// Options say where to read and write.
type Options struct {
	// Checkout is the root of the local checkout (or a directory holding
	// the prompt files themselves).
	Checkout string
	// OutDir receives the templates and the fragment (settings.cue).
	OutDir string
	// Ref is how the fragment names OutDir: the templates' paths as the
	// spec will read them (relative to the spec's directory); OutDir when
	// empty.
	Ref string
	// Force overwrites files already in OutDir.
	Force bool
}

// Setting is one imported setting.
type Setting struct {
	Name, Domain, Method string
	// File and JSONFile are the templates written (JSONFile empty when the
	// checkout has no JSON-format prompt for it).
	File, JSONFile string
	// Topics and Openings are the themes and opening phrases of instance
	// generation read from the script (nil when it has none).
	Topics, Openings []string
}

// Result is what an import wrote.
type Result struct {
	Settings []Setting
	// System and Stop are the script's system message and stop phrase
	// ("" when it has none).
	System, Stop string
	// Fragment is the path of the spec fragment written.
	Fragment string
	// Notes say what the checkout lacks (no script, a missing prompt).
	Notes []string
}

// Error is a problem at a position of a file of the checkout.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Import reads the prompt files and the script of the checkout and writes
// one template per prompt file and the fragment into OutDir.
func Import(o Options) (*Result, error) {
	if o.Checkout == "" || o.OutDir == "" {
		return nil, errors.New("promptimport: a checkout and an output directory are needed")
	}
	dir := filepath.Join(o.Checkout, PromptsDir)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = o.Checkout
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("read the checkout: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", o.Checkout)
	}
	res := &Result{}
	sc, err := readScript(filepath.Join(o.Checkout, Script))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Notes = append(res.Notes, fmt.Sprintf("no %s in the checkout: no system message, stop sequence, themes or opening phrases imported", Script))
	case err != nil:
		return nil, err
	}
	res.System, res.Stop = sc.system, sc.stop

	type out struct{ name, text string }
	var files []out
	for _, m := range methods {
		for _, short := range slices.Sorted(maps.Keys(domains)) {
			d := domains[short]
			name := settings[d+"/"+m]
			s := Setting{Name: name, Domain: d, Method: m}
			for _, variant := range []string{"", "_json_formatted"} {
				src := filepath.Join(dir, m+"_"+short+"_prompt"+variant+".txt")
				b, err := os.ReadFile(src)
				if errors.Is(err, fs.ErrNotExist) {
					if variant == "" {
						res.Notes = append(res.Notes, fmt.Sprintf("no %s: %s keeps agora's own meta-prompt", filepath.Base(src), name))
					}
					continue
				}
				if err != nil {
					return nil, fmt.Errorf("read %s: %w", src, err)
				}
				text, err := Convert(src, string(b), m)
				if err != nil {
					return nil, err
				}
				base := name + ".tmpl"
				if variant != "" {
					base = name + ".json.tmpl"
					s.JSONFile = base
				} else {
					s.File = base
				}
				files = append(files, out{base, text})
			}
			if s.File == "" {
				continue
			}
			if m == spec.MethodInstance {
				s.Topics = sc.themes[short]
				if short == "general" {
					s.Openings = sc.openings
				}
			}
			res.Settings = append(res.Settings, s)
		}
	}
	if len(res.Settings) == 0 {
		return nil, fmt.Errorf("%s holds none of the authors' prompt files (METHOD_DOMAIN_prompt.txt, e.g. instance_generation_math_prompt.txt): is it a checkout of their repository?", dir)
	}
	sort.Slice(res.Settings, func(i, j int) bool { return res.Settings[i].Name < res.Settings[j].Name })

	fragment := Fragment(res, o.ref(), o.Checkout)
	files = append(files, out{"settings.cue", fragment})
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	if !o.Force {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(o.OutDir, f.name)); err == nil {
				return nil, fmt.Errorf("%s exists: use -force to overwrite the files of an earlier import", filepath.Join(o.OutDir, f.name))
			}
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(o.OutDir, f.name), []byte(f.text), 0o644); err != nil {
			return nil, err
		}
	}
	res.Fragment = filepath.Join(o.OutDir, "settings.cue")
	return res, nil
}

func (o Options) ref() string {
	if o.Ref != "" {
		return filepath.ToSlash(o.Ref)
	}
	return filepath.ToSlash(o.OutDir)
}

// placeholder matches the authors' placeholders: <inputN>/<outputN> (a
// demonstration; "@" stands for N in their configuration, the files
// number them), <input>/<output> (the item to answer or to improve),
// <input_theme> and <first_word>. Any other <...> is the prompt's own
// text (e.g. <revised_answer> in a format description) and stays as it is.
var placeholder = regexp.MustCompile(`<(input|output)(\d+)>|<input>|<output>|<input_theme>|<first_word>`)

// Convert turns one prompt file of the authors' (read from path, for
// positions) into an agora template for method: each placeholder becomes
// the template action that fills it, the rest of the text stays byte for
// byte. The result parses (prompts.Parse) and uses what the method needs.
func Convert(path, text, method string) (string, error) {
	if i := strings.Index(text, "{{"); i >= 0 {
		line, col := position(text, i)
		return "", &Error{path, line, col, `"{{" would open a template action in agora's templates`}
	}
	var b strings.Builder
	last := 0
	for _, m := range placeholder.FindAllStringSubmatchIndex(text, -1) {
		tok := text[m[0]:m[1]]
		line, col := position(text, m[0])
		var action string
		switch {
		case m[2] >= 0: // <inputN> / <outputN>
			if method != spec.MethodInstance {
				return "", &Error{path, line, col, fmt.Sprintf("%s: a demonstration placeholder in a %s prompt", tok, method)}
			}
			n, err := strconv.Atoi(text[m[4]:m[5]])
			if err != nil || n < 1 || n > generation.NumDemonstrations {
				return "", &Error{path, line, col, fmt.Sprintf("%s: agora shows %d demonstrations, numbered 1 to %d", tok, generation.NumDemonstrations, generation.NumDemonstrations)}
			}
			field := "Instruction"
			if text[m[2]:m[3]] == "output" {
				field = "Response"
			}
			action = fmt.Sprintf("{{(index .Demonstrations %d).%s}}", n-1, field)
		case tok == "<input>":
			if method == spec.MethodInstance {
				return "", &Error{path, line, col, "<input>: the item to answer in an instance-generation prompt, which has demonstrations instead"}
			}
			action = "{{.Instruction}}"
		case tok == "<output>":
			if method != spec.MethodQuality {
				return "", &Error{path, line, col, fmt.Sprintf("<output>: the answer to improve, in a %s prompt", method)}
			}
			action = "{{.Response}}"
		case tok == "<input_theme>":
			action = "{{.Topic}}"
		case tok == "<first_word>":
			action = "{{.Opening}}"
		}
		b.WriteString(text[last:m[0]])
		b.WriteString(action)
		last = m[1]
	}
	b.WriteString(text[last:])
	out := b.String()
	t, err := prompts.Parse(path, out)
	if err != nil {
		return "", &Error{File: path, Msg: strings.TrimPrefix(err.Error(), "prompts: ")}
	}
	need := map[string][]string{spec.MethodInstance: {"Demonstrations"}, spec.MethodResponse: {"Instruction"}, spec.MethodQuality: {"Instruction", "Response"}}[method]
	for _, f := range need {
		if !slices.Contains(t.Fields(), f) {
			return "", &Error{File: path, Msg: fmt.Sprintf("a %s prompt needs %s, which the file has no placeholder for", method, map[string]string{
				"Demonstrations": "demonstrations (<input1>, <output1>, …)", "Instruction": "the item (<input>)", "Response": "the answer (<output>)"}[f])}
		}
	}
	return out, nil
}

// position is the 1-based line and column (in bytes) of offset i.
func position(text string, i int) (int, int) {
	line := 1 + strings.Count(text[:i], "\n")
	return line, i - strings.LastIndex(text[:i], "\n")
}

// script is what the generation script holds.
type script struct {
	system, stop string
	// themes by the script's domain name (math, code, general).
	themes   map[string][]string
	openings []string
}

var (
	systemRE = regexp.MustCompile(`system_message\s*=\s*`)
	stopRE   = regexp.MustCompile(`["']stop_phrase["']\s*:\s*`)
	listRE   = regexp.MustCompile(`(?m)^(\w+)\s*=\s*\[`)
)

// readScript reads the values the authors' generation script assigns: the
// system message (system_message=...), the stop phrase ("stop_phrase":
// ...), the lists <domain>_themes and general_triggers. Python's string
// literals are read as Python reads them, adjacent literals joined.
func readScript(path string) (script, error) {
	sc := script{themes: map[string][]string{}}
	b, err := os.ReadFile(path)
	if err != nil {
		return sc, err
	}
	src := string(b)
	if loc := systemRE.FindStringIndex(src); loc != nil {
		if sc.system, _, err = pyString(src, loc[1]); err != nil {
			return sc, scriptErr(path, src, loc[1], err)
		}
	}
	if loc := stopRE.FindStringIndex(src); loc != nil {
		if sc.stop, _, err = pyString(src, loc[1]); err != nil {
			return sc, scriptErr(path, src, loc[1], err)
		}
	}
	for _, m := range listRE.FindAllStringSubmatchIndex(src, -1) {
		name := src[m[2]:m[3]]
		domain, isTheme := strings.CutSuffix(name, "_themes")
		if !isTheme && name != "general_triggers" {
			continue
		}
		list, err := pyList(src, m[1])
		if err != nil {
			return sc, scriptErr(path, src, m[1], err)
		}
		if isTheme {
			sc.themes[domain] = list
		} else {
			sc.openings = list
		}
	}
	return sc, nil
}

type posErr struct {
	off int
	msg string
}

func (e *posErr) Error() string { return e.msg }

func scriptErr(path, src string, at int, err error) error {
	var pe *posErr
	if errors.As(err, &pe) {
		at = pe.off
	}
	line, col := position(src, at)
	return &Error{path, line, col, err.Error()}
}

// pyString reads one Python string literal expression at src[i:] (after
// white space): one literal or several adjacent ones, joined. It returns
// the value and the offset after it.
func pyString(src string, i int) (string, int, error) {
	var sb strings.Builder
	n := 0
	for {
		j := skipSpace(src, i)
		if j >= len(src) || (src[j] != '"' && src[j] != '\'') {
			if n == 0 {
				return "", i, &posErr{j, "want a string literal"}
			}
			return sb.String(), i, nil
		}
		s, end, err := pyLiteral(src, j)
		if err != nil {
			return "", i, err
		}
		sb.WriteString(s)
		n++
		i = end
	}
}

// pyLiteral reads one single- or double-quoted literal (not triple-quoted,
// no prefix) at src[i].
func pyLiteral(src string, i int) (string, int, error) {
	q := src[i]
	var sb strings.Builder
	for j := i + 1; j < len(src); j++ {
		switch c := src[j]; {
		case c == q:
			return sb.String(), j + 1, nil
		case c == '\n':
			return "", 0, &posErr{i, "unterminated string literal"}
		case c == '\\' && j+1 < len(src):
			j++
			switch e := src[j]; e {
			case 'n':
				sb.WriteByte('\n')
			case 't':
				sb.WriteByte('\t')
			case '\\', '\'', '"':
				sb.WriteByte(e)
			case '\n':
			default:
				sb.WriteByte('\\')
				sb.WriteByte(e)
			}
		default:
			sb.WriteByte(c)
		}
	}
	return "", 0, &posErr{i, "unterminated string literal"}
}

// pyList reads the string elements of a list whose "[" ends at src[i-1],
// up to its "]": literals separated by commas (adjacent literals joined,
// as Python does), comments skipped.
func pyList(src string, i int) ([]string, error) {
	var out []string
	for {
		i = skipSpace(src, i)
		if i >= len(src) {
			return nil, &posErr{len(src), "unterminated list"}
		}
		switch src[i] {
		case ']':
			return out, nil
		case ',':
			i++
			continue
		}
		s, end, err := pyString(src, i)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		i = end
	}
}

// skipSpace skips white space and comments.
func skipSpace(src string, i int) int {
	for i < len(src) {
		switch src[i] {
		case ' ', '\t', '\r', '\n':
			i++
		case '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

// Fragment is the spec fragment of an import: each imported setting's
// prompt block, its templates named under ref.
func Fragment(r *Result, ref, checkout string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Written by `agora prompts import` from %s: the authors' meta-prompts\n", checkout)
	b.WriteString("// (free-form; each setting's JSON-format one is named beside it), the\n")
	b.WriteString("// system message and stop sequence of their generation script, and the\n")
	b.WriteString("// themes and opening phrases it draws from. Add it to your spec\n")
	b.WriteString("// (docs/prompts.md).\n")
	b.WriteString("settings: {\n")
	for _, s := range r.Settings {
		fmt.Fprintf(&b, "\t%s: prompt: {\n", cueString(s.Name))
		fmt.Fprintf(&b, "\t\tfile: %s\n", cueString(ref+"/"+s.File))
		if s.JSONFile != "" {
			fmt.Fprintf(&b, "\t\t// the JSON-format prompt: file: %s\n", cueString(ref+"/"+s.JSONFile))
		}
		if r.System != "" {
			fmt.Fprintf(&b, "\t\tsystem: %s\n", cueString(r.System))
		}
		if r.Stop != "" {
			fmt.Fprintf(&b, "\t\tstop: [%s]\n", cueString(r.Stop))
		}
		if len(s.Topics) > 0 {
			fmt.Fprintf(&b, "\t\ttopics: %s\n", cueList(s.Topics))
		}
		if len(s.Openings) > 0 {
			fmt.Fprintf(&b, "\t\topenings: %s\n", cueList(s.Openings))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// cueString quotes s for CUE: JSON's string syntax is CUE's.
func cueString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

func cueList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = cueString(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
