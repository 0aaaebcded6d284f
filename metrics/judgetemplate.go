package metrics

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"text/template"
)

// The built-in judge templates (docs/metrics.md).
const (
	// TemplateAgora is agora's own judge prompt (JudgePrompt): one user
	// message with the rubric, the item and the [RESULT] instruction.
	TemplateAgora = "agora"
	// TemplatePrometheus lays the same rubric out in the sections of
	// Prometheus's absolute-grading format (a system message; a task
	// description, the instruction, the response, the score rubric, and
	// an open "###Feedback:" section; output "Feedback: … [RESULT] n"),
	// for judges trained on it such as Prometheus-2.
	TemplatePrometheus = "prometheus"
)

// JudgeTemplateNames lists the built-in judge templates.
func JudgeTemplateNames() []string { return []string{TemplateAgora, TemplatePrometheus} }

// JudgeLevel is one level of a rubric: its score and its description.
type JudgeLevel struct {
	Score int
	Text  string
}

// JudgeData is what a judge template is executed with, once per item and
// aspect.
type JudgeData struct {
	// Aspect is AspectDifficulty or AspectQuality; Quality says it is the
	// latter (the response is judged, and Response is set).
	Aspect  string
	Quality bool
	// Domain is math, code or instruction_following; Task says what the
	// domain's data teaches, in words.
	Domain string
	Task   string
	// Criterion is the question the aspect asks in the domain; Levels
	// are agora's five rubric levels for it, score 1 first.
	Criterion string
	Levels    []JudgeLevel
	// Instruction and Response are the item's (Response empty when
	// judging difficulty).
	Instruction string
	Response    string
}

// JudgeTemplate renders a judge's messages for an item. The built-in
// "agora" template is JudgePrompt; the others are text/template texts
// whose output is the user message and whose optional {{define
// "system"}} block is the system message.
type JudgeTemplate struct {
	// Name is the built-in template's name or the file's.
	Name   string
	text   string
	tmpl   *template.Template
	digest string
}

// judgeTemplateVersion changes when a built-in template's wording or the
// data templates see does; it is part of every digest.
const judgeTemplateVersion = "agora-judge-template-1"

// prometheusText is agora's wording of Prometheus's absolute-grading
// layout: the section headers and the output format are the format's,
// the sentences agora's.
const prometheusText = `{{define "system"}}You are an impartial grader. You grade one example at a time against the rubric you are given, justify the grade in a short feedback, and end with a single integer score.{{end}}###Task Description:
{{if .Quality}}An instruction, a response to it and a score rubric of five levels are given.{{else}}An instruction and a score rubric of five levels are given. The instruction itself is graded: there is no response to it.{{end}}
1. Write a feedback that grades the {{if .Quality}}response{{else}}instruction{{end}} strictly against the score rubric, not in general.
2. Then write the score: one integer from 1 to 5, the rubric level that fits best.
3. Use exactly this output format: "Feedback: (your feedback) [RESULT] (an integer from 1 to 5)"
4. Write nothing before the feedback and nothing after the score.

###The instruction to evaluate:
{{.Instruction}}
{{if .Quality}}
###Response to evaluate:
{{.Response}}
{{end}}
###Score Rubrics:
[{{.Criterion}}]
{{range .Levels}}Score {{.Score}}: {{.Text}}
{{end}}
###Feedback: `

// criteria[aspect] is the question the aspect asks; %s is the domain's task.
var criteria = map[string]string{
	AspectDifficulty: "How difficult is this instruction to answer well, as a task in %s? Judge the instruction alone, not any answer to it.",
	AspectQuality:    "How good is the response as an answer to its instruction, for %s?",
}

// BuiltinJudgeTemplate returns a built-in template by name.
func BuiltinJudgeTemplate(name string) (*JudgeTemplate, error) {
	switch name {
	case TemplateAgora:
		return &JudgeTemplate{Name: TemplateAgora, digest: RubricDigest()}, nil
	case TemplatePrometheus:
		return newJudgeTemplate(TemplatePrometheus, prometheusText)
	}
	return nil, fmt.Errorf("no built-in judge template %q (want %s)", name, strings.Join(JudgeTemplateNames(), " or "))
}

// ParseJudgeTemplate reads a judge template of the user's (name is its
// file, for messages). It is executed for every aspect and domain at
// once, so that a mistake shows now rather than mid-run: it must parse,
// render without error, show the instruction (and the response when
// judging quality), and ask for the "[RESULT] n" line the judgement is
// read by (ParseJudgement).
func ParseJudgeTemplate(name, text string) (*JudgeTemplate, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("judge template %s is empty", name)
	}
	return newJudgeTemplate(name, text)
}

func newJudgeTemplate(name, text string) (*JudgeTemplate, error) {
	tm, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, templateErr(err)
	}
	if tm.Tree == nil || tm.Tree.Root == nil || strings.TrimSpace(tm.Tree.Root.String()) == "" {
		return nil, fmt.Errorf("judge template %s has no text outside {{define}} blocks: that text is the user message", name)
	}
	t := &JudgeTemplate{Name: name, text: text, tmpl: tm}
	const instr, resp = "\x01INSTRUCTION\x01", "\x01RESPONSE\x01"
	for _, a := range []string{AspectDifficulty, AspectQuality} {
		for _, d := range judgeDomains {
			sys, user, err := t.Messages(a, d, instr, resp)
			if err != nil {
				return nil, err
			}
			all := sys + "\n" + user
			if !strings.Contains(all, instr) {
				return nil, fmt.Errorf("judge template %s never shows the instruction ({{.Instruction}}) for %s in %s", name, a, d)
			}
			if a == AspectQuality && !strings.Contains(all, resp) {
				return nil, fmt.Errorf("judge template %s never shows the response ({{.Response}}) for %s in %s", name, a, d)
			}
			if !strings.Contains(strings.ToLower(all), "[result]") {
				return nil, fmt.Errorf("judge template %s never asks for the \"[RESULT] n\" line the judgement is read by (%s in %s; docs/metrics.md)", name, a, d)
			}
		}
	}
	h := sha256.New()
	h.Write([]byte(judgeTemplateVersion + "\x00" + text + "\x00"))
	for _, a := range []string{AspectDifficulty, AspectQuality} {
		for _, d := range judgeDomains {
			sys, user, _ := t.Messages(a, d, "\x00", "\x00")
			h.Write([]byte(sys + "\x00" + user + "\x00"))
		}
	}
	t.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return t, nil
}

// judgeDomains are the domains with rubrics, in a fixed order.
var judgeDomains = []string{"code", "instruction_following", "math"}

// judgeData is what a template sees for an item.
func judgeData(aspect, domain, instruction, response string) (JudgeData, error) {
	levels, err := Rubric(aspect, domain)
	if err != nil {
		return JudgeData{}, err
	}
	d := JudgeData{Aspect: aspect, Quality: aspect == AspectQuality, Domain: domain, Task: domainTask[domain],
		Criterion: fmt.Sprintf(criteria[aspect], domainTask[domain]), Instruction: instruction}
	if d.Quality {
		d.Response = response
	}
	for i, l := range levels {
		d.Levels = append(d.Levels, JudgeLevel{Score: i + 1, Text: l})
	}
	return d, nil
}

// Messages renders the system message (empty when the template has none)
// and the user message for one item and aspect.
func (t *JudgeTemplate) Messages(aspect, domain, instruction, response string) (system, user string, err error) {
	if t.tmpl == nil {
		user, err = JudgePrompt(aspect, domain, instruction, response)
		return "", user, err
	}
	data, err := judgeData(aspect, domain, instruction, response)
	if err != nil {
		return "", "", err
	}
	var b bytes.Buffer
	if s := t.tmpl.Lookup("system"); s != nil {
		if err := s.Execute(&b, data); err != nil {
			return "", "", templateErr(err)
		}
		system = strings.TrimSpace(b.String())
		b.Reset()
	}
	if err := t.tmpl.Execute(&b, data); err != nil {
		return "", "", templateErr(err)
	}
	user = b.String()
	if strings.TrimSpace(user) == "" {
		return "", "", errors.New("judge template " + t.Name + " renders an empty user message")
	}
	return system, user, nil
}

// Digest identifies what the template asks of a judge, for every domain
// and aspect: an input of the judge step's ID. The agora template's is
// RubricDigest.
func (t *JudgeTemplate) Digest() string { return t.digest }

// templateErr words a text/template error as the judge template's:
// "judge template FILE:LINE:COL: …", naming the fields there are when
// one is unknown.
func templateErr(err error) error {
	msg := "judge template " + strings.TrimPrefix(err.Error(), "template: ")
	if i := strings.Index(msg, " in type metrics.JudgeData"); i >= 0 {
		msg = msg[:i] + "; the fields are .Aspect, .Quality, .Domain, .Task, .Criterion, .Levels (each .Score, .Text), .Instruction and .Response (docs/metrics.md)"
	}
	return errors.New(msg)
}
