package metrics

import (
	"strings"
	"testing"
)

// The agora template is JudgePrompt, with no system message, and keeps
// RubricDigest as its digest: judge steps planned before templates
// existed keep their IDs.
func TestJudgeTemplateAgora(t *testing.T) {
	tm, err := BuiltinJudgeTemplate(TemplateAgora)
	if err != nil {
		t.Fatal(err)
	}
	sys, user, err := tm.Messages(AspectQuality, "math", "INSTR", "RESP")
	want, _ := JudgePrompt(AspectQuality, "math", "INSTR", "RESP")
	if err != nil || sys != "" || user != want {
		t.Errorf("agora: system %q, user %q, err %v", sys, user, err)
	}
	if tm.Digest() != RubricDigest() {
		t.Errorf("digest %s, want RubricDigest", tm.Digest())
	}
	if _, err := BuiltinJudgeTemplate("g-eval"); err == nil || !strings.Contains(err.Error(), `no built-in judge template "g-eval" (want agora or prometheus)`) {
		t.Errorf("unknown template: %v", err)
	}
}

// The Prometheus layout: a system message, the sections in order, the
// rubric's five levels as "Score n:", the response only when it is
// judged, and the open feedback section last.
func TestJudgeTemplatePrometheus(t *testing.T) {
	tm, err := BuiltinJudgeTemplate(TemplatePrometheus)
	if err != nil {
		t.Fatal(err)
	}
	sys, user, err := tm.Messages(AspectQuality, "code", "Reverse a list.", "def f(x): return x[::-1]")
	if err != nil {
		t.Fatal(err)
	}
	if sys == "" || strings.Contains(sys, "###") {
		t.Errorf("system %q", sys)
	}
	levels, _ := Rubric(AspectQuality, "code")
	order := []string{"###Task Description:\n", `"Feedback: (your feedback) [RESULT] (an integer from 1 to 5)"`,
		"###The instruction to evaluate:\nReverse a list.\n", "###Response to evaluate:\ndef f(x): return x[::-1]\n",
		"###Score Rubrics:\n[How good is the response as an answer to its instruction, for programming",
		"Score 1: " + levels[0] + "\n", "Score 5: " + levels[4] + "\n", "###Feedback: "}
	at := 0
	for _, w := range order {
		i := strings.Index(user[at:], w)
		if i < 0 {
			t.Fatalf("user message lacks %q after offset %d:\n%s", w, at, user)
		}
		at += i + len(w)
	}
	if !strings.HasSuffix(user, "###Feedback: ") {
		t.Errorf("user message does not end with the open feedback section:\n%q", user[len(user)-40:])
	}
	// Difficulty: the instruction alone.
	_, user, err = tm.Messages(AspectDifficulty, "math", "What is 2 + 2?", "4")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(user, "###Response to evaluate:") || strings.Contains(user, "\n4\n") || !strings.Contains(user, "How difficult is this instruction") {
		t.Errorf("difficulty message:\n%s", user)
	}
	// A judge answering in the format is read.
	if n, _, err := ParseJudgement("Feedback: The reversal is correct and idiomatic. [RESULT] 5"); err != nil || n != 5 {
		t.Errorf("parse: %d, %v", n, err)
	}
	if tm.Digest() == RubricDigest() || !strings.HasPrefix(tm.Digest(), "sha256:") {
		t.Errorf("digest %s", tm.Digest())
	}
}

func TestParseJudgeTemplate(t *testing.T) {
	text := `{{define "system"}}Grade {{.Domain}} data.{{end}}Rate the {{if .Quality}}answer{{else}}question{{end}}.
Q: {{.Instruction}}
{{if .Quality}}A: {{.Response}}
{{end}}{{range .Levels}}{{.Score}} = {{.Text}}
{{end}}End with [RESULT] and the score.`
	tm, err := ParseJudgeTemplate("judge.tmpl", text)
	if err != nil {
		t.Fatal(err)
	}
	sys, user, err := tm.Messages(AspectQuality, "instruction_following", "Write a haiku.", "Snow on the old pond")
	if err != nil {
		t.Fatal(err)
	}
	if sys != "Grade instruction_following data." || !strings.HasPrefix(user, "Rate the answer.\nQ: Write a haiku.\nA: Snow on the old pond\n1 = ") {
		t.Errorf("system %q, user %q", sys, user)
	}
	// The digest follows the text; the same text, the same digest.
	other, _ := ParseJudgeTemplate("other-name.tmpl", text)
	changed, _ := ParseJudgeTemplate("judge.tmpl", text+" ")
	if tm.Digest() != other.Digest() || tm.Digest() == changed.Digest() {
		t.Errorf("digests %s %s %s", tm.Digest(), other.Digest(), changed.Digest())
	}
	for _, c := range []struct{ text, want string }{
		{"", "judge template j.tmpl is empty"},
		{"{{.Instruction", "judge template j.tmpl:1: unclosed action"},
		{`{{define "system"}}x{{end}}`, "has no text outside {{define}} blocks"},
		{"{{.Question}} [RESULT]", `judge template j.tmpl:1:2: executing "j.tmpl" at <.Question>: can't evaluate field Question; the fields are .Aspect,`},
		{"Rate it. [RESULT] n", "never shows the instruction ({{.Instruction}}) for instruction_difficulty in code"},
		{"{{.Instruction}} [RESULT] n", "never shows the response ({{.Response}}) for response_quality in code"},
		{"{{.Instruction}} {{.Response}} Score:", `never asks for the "[RESULT] n" line`},
	} {
		_, err := ParseJudgeTemplate("j.tmpl", c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
}
