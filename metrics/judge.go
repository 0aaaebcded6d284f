package metrics

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Judge scores are integers in MinScore..MaxScore.
const (
	MinScore = 1
	MaxScore = 5
)

// The aspects a judge scores (spec.AspectDifficulty, spec.AspectQuality).
const (
	AspectDifficulty = "instruction_difficulty"
	AspectQuality    = "response_quality"
)

// domainTask says what the data of a domain teaches.
var domainTask = map[string]string{
	"math":                  "mathematical problem solving (word problems and competition mathematics, answered with a worked solution)",
	"code":                  "programming (a task stated in words, answered with a working program and, where useful, an explanation)",
	"instruction_following": "following open-ended user instructions (writing, advice, explanation, planning, role play)",
}

// rubrics[aspect][domain] are the five levels, from 1 to 5.
var rubrics = map[string]map[string][5]string{
	AspectDifficulty: {
		"math": {
			"a one-step computation or a fact recall; no reasoning is needed",
			"a routine exercise of two or three steps with one standard technique (grade-school word problems)",
			"several steps combining two techniques, or one step that needs care (multi-step word problems, early high-school algebra)",
			"a non-routine problem: the path is not given, several ideas must be combined, and easy mistakes are likely (advanced high-school or early competition level)",
			"a hard competition or olympiad-style problem that needs an insight, a proof-like argument or long exact reasoning",
		},
		"code": {
			"a one-liner or a direct use of a built-in function",
			"a short function with a loop or a condition and obvious edge cases",
			"a function that needs a standard algorithm or data structure chosen correctly, with edge cases to handle",
			"a problem that needs an efficient algorithm (dynamic programming, graphs, careful complexity) or several cooperating parts",
			"a hard algorithmic or design problem: non-obvious algorithm, tight constraints, or intricate state and corner cases",
		},
		"instruction_following": {
			"a trivial request with a one-sentence answer and no constraints",
			"a simple request with one clear goal and at most one constraint",
			"a request with a few constraints or a need for some domain knowledge or structure",
			"a demanding request: several interacting constraints, expertise, or long structured output",
			"a very demanding request: expert knowledge, many precise constraints that are easy to violate, or careful multi-part reasoning",
		},
	},
	AspectQuality: {
		"math": {
			"wrong or irrelevant: the answer is incorrect and the reasoning does not hold",
			"mostly wrong: some relevant steps, but a major error or a wrong final answer",
			"partly right: the final answer may be right but the reasoning has gaps or errors, or it is right but hard to follow",
			"correct with clear reasoning, minor slips in presentation only",
			"correct, complete and rigorous, every step justified and clearly explained, the final answer clearly stated",
		},
		"code": {
			"does not address the task, or the code cannot run",
			"runs or nearly runs but solves the task wrongly for common inputs",
			"solves the common case but misses edge cases, or is needlessly inefficient or hard to read",
			"correct and readable, with small omissions (an edge case or an explanation)",
			"correct, efficient, idiomatic and well explained, edge cases handled",
		},
		"instruction_following": {
			"ignores or refuses the instruction without reason, or is harmful",
			"addresses the instruction poorly: misses its main point or most constraints, or contains major errors",
			"addresses the main point but misses constraints, lacks depth, or has noticeable errors",
			"helpful, accurate and follows the constraints, with minor flaws in depth, style or completeness",
			"excellent: fully follows every constraint, accurate, thorough where needed and well written",
		},
	},
}

// rubricVersion changes when the judge prompt's wording or format does;
// it is part of the digest, so a new version gives judge steps new IDs.
const rubricVersion = "agora-judge-1"

// Rubric returns the five levels of an aspect in a domain.
func Rubric(aspect, domain string) ([5]string, error) {
	r, ok := rubrics[aspect][domain]
	if !ok {
		return r, fmt.Errorf("no rubric for aspect %q in domain %q", aspect, domain)
	}
	return r, nil
}

// JudgePrompt is the one user message sent to the judge for an item.
// Difficulty is judged on the instruction alone; quality on the pair.
func JudgePrompt(aspect, domain, instruction, response string) (string, error) {
	levels, err := Rubric(aspect, domain)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "You are reviewing one example from a synthetic training data set for %s.\n\n", domainTask[domain])
	switch aspect {
	case AspectDifficulty:
		b.WriteString("Rate how DIFFICULT the instruction below is to answer well, on a scale of 1 to 5. Judge the instruction only, not any particular answer.\n\n")
	case AspectQuality:
		b.WriteString("Rate the QUALITY of the response below as an answer to its instruction, on a scale of 1 to 5.\n\n")
	}
	b.WriteString("Rubric:\n")
	for i, l := range levels {
		fmt.Fprintf(&b, "%d: %s\n", i+1, l)
	}
	b.WriteString("\nInstruction:\n<<<\n")
	b.WriteString(instruction)
	b.WriteString("\n>>>\n")
	if aspect == AspectQuality {
		b.WriteString("\nResponse:\n<<<\n")
		b.WriteString(response)
		b.WriteString("\n>>>\n")
	}
	b.WriteString("\nFirst write a short feedback that justifies your rating against the rubric. Then end with a last line of exactly this form, where N is an integer from 1 to 5:\n[RESULT] N\n")
	return b.String(), nil
}

// RubricDigest identifies the judge prompts of every domain and aspect.
func RubricDigest() string {
	h := sha256.New()
	h.Write([]byte(rubricVersion))
	for _, a := range []string{AspectDifficulty, AspectQuality} {
		for _, d := range []string{"code", "instruction_following", "math"} {
			p, _ := JudgePrompt(a, d, "\x00", "\x00")
			h.Write([]byte(p))
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// resultRE finds the judgement's last "[RESULT] N" marker.
var resultRE = regexp.MustCompile(`(?i)\[\s*result\s*\]\s*:?\s*`)

// trailingOK are the characters a judge may put after the score.
var trailingRE = regexp.MustCompile(`^(\s*/\s*5)?[\s.*)\]]*$`)

// ParseJudgement reads a judgement: feedback, then "[RESULT] N" with N in
// 1..5 as the last thing written (a "/5", a full stop or markdown
// emphasis after N are allowed). Anything else is an error saying why,
// and the judgement is asked again.
func ParseJudgement(text string) (score int, feedback string, err error) {
	locs := resultRE.FindAllStringIndex(text, -1)
	if len(locs) == 0 {
		return 0, "", fmt.Errorf("no [RESULT] marker")
	}
	last := locs[len(locs)-1]
	rest := text[last[1]:]
	digits := 0
	for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
		digits++
	}
	if digits == 0 {
		return 0, "", fmt.Errorf("no score after [RESULT]")
	}
	if !trailingRE.MatchString(rest[digits:]) {
		return 0, "", fmt.Errorf("text after the score: %q", clip(strings.TrimSpace(rest[digits:]), 40))
	}
	n, err := strconv.Atoi(rest[:digits])
	if err != nil || n < MinScore || n > MaxScore {
		return 0, "", fmt.Errorf("score %s is not an integer from %d to %d", rest[:digits], MinScore, MaxScore)
	}
	return n, strings.TrimSpace(text[:last[0]]), nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
