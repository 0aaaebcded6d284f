package spec

import (
	"slices"
	"strings"

	"cuelang.org/go/cue"

	"github.com/agorabench/agora/prompts"
)

// NumDemonstrations is the number of in-context demonstrations of
// instance generation (fewer when the seed data has fewer items).
const NumDemonstrations = 3

// isZero reports whether no field of the prompt block is set.
func (p Prompt) isZero() bool {
	return p.Builtin == "" && p.Variant == "" && p.File == "" && p.System == "" &&
		len(p.Stop) == 0 && len(p.Languages) == 0 && !p.Fixing && len(p.Topics) == 0 && len(p.Openings) == 0
}

// Multilingual reports whether the setting's code instance generation asks
// for tasks in several languages (prompt.languages or prompt.fixing).
func (s *Setting) Multilingual() bool {
	return len(s.Prompt.Languages) > 0 || s.Prompt.Fixing
}

// CodeLanguages are the languages a multi-language setting draws from: its
// prompt.languages, or prompts.CodeLanguages when it names none.
func (s *Setting) CodeLanguages() []string {
	if len(s.Prompt.Languages) > 0 {
		return slices.Clone(s.Prompt.Languages)
	}
	return prompts.CodeLanguages()
}

// MetaPrompt returns the meta-prompt of the setting for a grid variant:
// the user's file for VariantFile, the built-in multi-language code
// prompt for a multi-language setting, else the built-in of prompt.builtin
// (by default the setting's own domain and method).
func MetaPrompt(s *Setting, variant string) (*prompts.Template, error) {
	if variant == VariantFile {
		return prompts.Parse(s.Prompt.File, s.Prompt.Text)
	}
	if s.Multilingual() {
		return prompts.Multilingual(variant)
	}
	domain, method := s.Domain, s.Method
	if b := s.Prompt.Builtin; b != "" {
		domain, method, _ = strings.Cut(b, ".")
	}
	return prompts.Builtin(domain, method, variant)
}

// checkPromptOptions checks the options of a setting's prompt block that
// go beyond choosing the meta-prompt: languages and fixing belong to code
// instance generation, with the built-in code prompt or a file that uses
// {{.Language}}.
func (l *loader) checkPromptOptions(s *Setting, at []cue.Selector) {
	p := s.Prompt
	if !s.Multilingual() {
		return
	}
	field := "languages"
	if len(p.Languages) == 0 {
		field = "fixing"
	}
	fat := append(slices.Clone(at), cue.Str(field))
	if s.Domain != DomainCode || s.Method != MethodInstance {
		l.at(fat, "%s applies to code instance generation only (this setting is %s %s)", field, s.Domain, s.Method)
		return
	}
	if p.Builtin != "" && p.Builtin != DomainCode+"."+MethodInstance {
		l.at(fat, "%s needs the built-in code instance-generation meta-prompt, not %q", field, p.Builtin)
	}
	seen := map[string]bool{}
	for i, lang := range p.Languages {
		if seen[strings.ToLower(lang)] {
			l.at(append(slices.Clone(at), cue.Str("languages"), cue.Index(i)), "language %q is listed twice", lang)
		}
		seen[strings.ToLower(lang)] = true
	}
}

// checkFilePromptOptions checks a user's meta-prompt file against the
// multi-language options once it is parsed.
func (l *loader) checkFilePromptOptions(s *Setting, t *prompts.Template, at []cue.Selector) {
	if s.Multilingual() && !slices.Contains(t.Fields(), "Language") {
		l.at(at, "%s: prompt.languages and prompt.fixing need {{.Language}} in the meta-prompt", s.Prompt.File)
	}
	l.checkDraws(s, t, at[:len(at)-1])
	// Render it as a request will be rendered, with as many
	// demonstrations as the seed data gives: a template that indexes
	// beyond them, or fails otherwise, is refused here rather than at
	// apply.
	n := NumDemonstrations
	if sz := s.SeedData.Size; sz > 0 {
		n = min(n, sz)
	}
	in := prompts.Input{Topic: "topic", Opening: "opening", Instruction: "instruction", Response: "response", Language: "language"}
	for range n {
		in.Demonstrations = append(in.Demonstrations, prompts.Example{Instruction: "instruction", Response: "response"})
	}
	if _, err := t.Render(in); err != nil {
		l.at(at, "%s (with %d demonstrations, as the seed data gives)", strings.TrimPrefix(err.Error(), "prompts: "), n)
	}
}

// checkDraws refuses topics or openings for a meta-prompt that never
// draws them (no {{.Topic}} or {{.Opening}}); at is the prompt block.
func (l *loader) checkDraws(s *Setting, t *prompts.Template, at []cue.Selector) {
	for _, d := range []struct {
		field, slot string
		set         bool
	}{{"topics", "Topic", len(s.Prompt.Topics) > 0}, {"openings", "Opening", len(s.Prompt.Openings) > 0}} {
		if d.set && !slices.Contains(t.Fields(), d.slot) {
			l.at(append(slices.Clone(at), cue.Str(d.field)), "%s: the meta-prompt %s has no {{.%s}} to fill", d.field, t.Name, d.slot)
		}
	}
}
