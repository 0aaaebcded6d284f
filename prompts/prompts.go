package prompts

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/template"
)

//go:embed templates/*.tmpl templates/multilingual/*.tmpl
var templateFS embed.FS

// The valid built-in coordinates, each list sorted.
var (
	domains  = []string{"code", "instruction_following", "math"}
	methods  = []string{"instance_generation", "quality_enhancement", "response_generation"}
	variants = []string{"free-form", "json"}
)

// ErrMissingSlot is wrapped by Render errors for a required slot left empty.
var ErrMissingSlot = errors.New("missing required slot")

// ErrUnknownField is wrapped by Parse errors for a reference to a field the
// template's data does not have.
var ErrUnknownField = errors.New("unknown field")

// Example is one instruction/response pair shown to the generator as a
// demonstration.
type Example struct{ Instruction, Response string }

// Input is the data a template is rendered with.
type Input struct {
	// Demonstrations are the in-context examples (instance generation).
	Demonstrations []Example
	// Topic and Opening are the diversity slots of instance generation:
	// a topic (a theme, for instruction following) and, for instruction
	// following, the words the new instruction must begin with.
	Topic, Opening string
	// Instruction is the fixed instruction of response generation and the
	// question to revise in quality enhancement; Response is the answer to
	// revise in quality enhancement.
	Instruction, Response string
	// Language is the programming language of a multi-language code task
	// (one of the setting's prompt.languages, drawn per request), and
	// Fixing whether that task is to fix faulty code rather than to
	// implement new code.
	Language string
	Fixing   bool
}

// CodeLanguages are the languages of the multi-language code prompts when
// a setting names none: the seven of the AgoraBench reference code's code
// themes. The slice is a copy.
func CodeLanguages() []string {
	return []string{"Python", "Java", "C++", "C", "JavaScript", "C#", "PHP"}
}

// MultilingualName is the name of the built-in multi-language code
// instance-generation meta-prompt of a variant (docs/apply.md).
func MultilingualName(variant string) string {
	return "code.instance_generation_multilingual." + variant
}

// Multilingual returns the built-in code instance-generation meta-prompt
// that asks for a task in {{.Language}}, implementing or, with
// {{.Fixing}}, fixing code, for variant "free-form" or "json".
func Multilingual(variant string) (*Template, error) {
	if err := checkValue("variant", variant, variants); err != nil {
		return nil, err
	}
	name := MultilingualName(variant)
	return multilingualEntries[variant].get(name, "templates/multilingual/"+name+".tmpl")
}

var multilingualEntries = map[string]*builtinEntry{"free-form": new(builtinEntry), "json": new(builtinEntry)}

// Template is a parsed meta-prompt. Name and Text are informational and must
// not be modified; use Builtin or Parse to obtain a Template.
type Template struct {
	// Name is "domain.method.variant" for a built-in template, or the name
	// given to Parse (typically the file path) for a user template.
	Name string
	// Text is the template source.
	Text string

	tmpl *template.Template
	info *fieldInfo
}

var funcs = template.FuncMap{"json": jsonValue}

// jsonValue writes v as compact JSON without HTML escaping, so that code and
// markup in demonstrations stay readable.
func jsonValue(v any) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

type builtinEntry struct {
	once sync.Once
	t    *Template
	err  error
}

// get parses the built-in template at file once and returns a copy.
func (e *builtinEntry) get(name, file string) (*Template, error) {
	e.once.Do(func() {
		text, err := templateFS.ReadFile(file)
		if err != nil {
			e.err = fmt.Errorf("prompts: built-in template %s: %w", name, err)
			return
		}
		e.t, e.err = Parse(name, string(text))
	})
	if e.err != nil {
		return nil, e.err
	}
	c := *e.t
	return &c, nil
}

var builtinEntries = sync.OnceValue(func() map[string]*builtinEntry {
	m := make(map[string]*builtinEntry, len(domains)*len(methods)*len(variants))
	for _, n := range Names() {
		m[n] = new(builtinEntry)
	}
	return m
})

// Names returns the names of all built-in templates, sorted.
func Names() []string {
	names := make([]string, 0, len(domains)*len(methods)*len(variants))
	for _, d := range domains {
		for _, m := range methods {
			for _, v := range variants {
				names = append(names, d+"."+m+"."+v)
			}
		}
	}
	sort.Strings(names)
	return names
}

// Builtin returns the built-in template for domain ("math", "code",
// "instruction_following"), method ("instance_generation",
// "response_generation", "quality_enhancement") and variant ("free-form",
// "json"). Each built-in is parsed once, on first use.
func Builtin(domain, method, variant string) (*Template, error) {
	if err := checkValue("domain", domain, domains); err != nil {
		return nil, err
	}
	if err := checkValue("method", method, methods); err != nil {
		return nil, err
	}
	if err := checkValue("variant", variant, variants); err != nil {
		return nil, err
	}
	name := domain + "." + method + "." + variant
	return builtinEntries()[name].get(name, "templates/"+name+".tmpl")
}

func checkValue(what, got string, valid []string) error {
	if slices.Contains(valid, got) {
		return nil
	}
	return fmt.Errorf("prompts: unknown %s %q (valid: %s)", what, got, strings.Join(valid, ", "))
}

// Parse parses a user template. name identifies it in errors (typically the
// file path). Besides text/template syntax errors, Parse rejects references
// to fields that Input does not have (or, where the data is a demonstration,
// that Example does not have), reporting the template's line:col.
func Parse(name, text string) (*Template, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("prompts: %s: template is empty", name)
	}
	tm, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	if tm.Tree == nil || tm.Tree.Root == nil {
		return nil, fmt.Errorf("prompts: %s: template has no text outside {{define}} blocks", name)
	}
	info, err := analyze(tm)
	if err != nil {
		return nil, err
	}
	return &Template{Name: name, Text: text, tmpl: tm, info: info}, nil
}

// Digest returns "sha256:" followed by the hex SHA-256 of Text.
func (t *Template) Digest() string {
	sum := sha256.Sum256([]byte(t.Text))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Fields returns the names of the Input fields the template references,
// sorted, e.g. ["Demonstrations", "Topic"].
func (t *Template) Fields() []string {
	if t.info == nil {
		return nil
	}
	return slices.Clone(t.info.fields)
}

// Render executes the template with in.
//
// Every field the template uses outside a guarding {{if}} or {{with}} on that
// field is required: a required string must not be blank, required
// Demonstrations must not be empty, and each demonstration's fields used by
// the template must not be blank; otherwise Render returns an error wrapping
// ErrMissingSlot. Trailing white space and leading blank lines of every value
// are removed before rendering. Render also fails when the rendered text
// contains a "{{" that does not come from the input values.
func (t *Template) Render(in Input) (string, error) {
	if t == nil || t.tmpl == nil || t.info == nil {
		return "", errors.New("prompts: render: template was not created by Builtin or Parse")
	}
	in = tidyInput(in)
	if err := t.info.check(in); err != nil {
		return "", fmt.Errorf("prompts: render %s: %w", t.Name, err)
	}
	var b strings.Builder
	b.Grow(len(t.Text) + inputSize(in) + 256)
	if err := t.tmpl.Execute(&b, in); err != nil {
		return "", fmt.Errorf("prompts: render %s: %w", t.Name, err)
	}
	out := b.String()
	if strings.Contains(out, "{{") {
		// The input values may legitimately contain "{{" (code, templating
		// languages). Render again with every "{" in them neutralised: any
		// "{{" left then comes from the template itself.
		var probe strings.Builder
		if err := t.tmpl.Execute(&probe, braceFree(in)); err == nil && strings.Contains(probe.String(), "{{") {
			return "", fmt.Errorf("prompts: render %s: rendered text contains a leftover \"{{\"", t.Name)
		}
	}
	return out, nil
}

// tidy removes trailing white space and leading blank lines, keeping the
// indentation of the first non-blank line.
func tidy(s string) string {
	s = strings.TrimRight(s, " \t\r\n")
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 || strings.TrimSpace(s[:i]) != "" {
			return s
		}
		s = s[i+1:]
	}
}

func tidyInput(in Input) Input {
	out := Input{
		Topic:       tidy(in.Topic),
		Opening:     tidy(in.Opening),
		Instruction: tidy(in.Instruction),
		Response:    tidy(in.Response),
		Language:    tidy(in.Language),
		Fixing:      in.Fixing,
	}
	if in.Demonstrations != nil {
		out.Demonstrations = make([]Example, len(in.Demonstrations))
		for i, d := range in.Demonstrations {
			out.Demonstrations[i] = Example{Instruction: tidy(d.Instruction), Response: tidy(d.Response)}
		}
	}
	return out
}

func inputSize(in Input) int {
	n := len(in.Topic) + len(in.Opening) + len(in.Instruction) + len(in.Response) + len(in.Language)
	for _, d := range in.Demonstrations {
		n += len(d.Instruction) + len(d.Response) + 64
	}
	return n
}

func braceFree(in Input) Input {
	r := strings.NewReplacer("{", "(")
	out := Input{
		Topic:       r.Replace(in.Topic),
		Opening:     r.Replace(in.Opening),
		Instruction: r.Replace(in.Instruction),
		Response:    r.Replace(in.Response),
		Language:    r.Replace(in.Language),
		Fixing:      in.Fixing,
	}
	for _, d := range in.Demonstrations {
		out.Demonstrations = append(out.Demonstrations, Example{Instruction: r.Replace(d.Instruction), Response: r.Replace(d.Response)})
	}
	return out
}

// check reports the first required slot that in leaves empty.
func (fi *fieldInfo) check(in Input) error {
	v := reflect.ValueOf(in)
	for _, f := range fi.required {
		fv := v.FieldByName(f)
		switch fv.Kind() {
		case reflect.String:
			if strings.TrimSpace(fv.String()) == "" {
				return fmt.Errorf("%w: %s", ErrMissingSlot, f)
			}
		case reflect.Slice:
			if fv.Len() == 0 {
				return fmt.Errorf("%w: %s", ErrMissingSlot, f)
			}
		}
	}
	for i, d := range in.Demonstrations {
		dv := reflect.ValueOf(d)
		for _, f := range fi.requiredDemo {
			if strings.TrimSpace(dv.FieldByName(f).String()) == "" {
				return fmt.Errorf("%w: Demonstrations[%d].%s", ErrMissingSlot, i, f)
			}
		}
	}
	return nil
}

var actionRE = regexp.MustCompile(`(?s)\{\{.*?\}\}`)

// StaticText is Text without its template actions: roughly the part of the
// prompt sent unchanged with every request (a range body counts once).
// Plan estimates count its tokens.
func (t *Template) StaticText() string {
	return actionRE.ReplaceAllString(t.Text, "")
}
