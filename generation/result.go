package generation

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Markers of the free-form meta-prompts.
const (
	markerInput           = "INPUT:"
	markerOutput          = "OUTPUT:"
	markerEnd             = "[END]"
	markerRevisedQuestion = "Revised Question:"
	markerRevisedAnswer   = "Revised Answer:"
	resultOpen            = "[RESULT]"
	resultClose           = "[/RESULT]"
)

// leakMarkers are the markers that must not appear inside a parsed field.
var leakMarkers = []string{markerInput, markerOutput, markerEnd, markerRevisedQuestion, markerRevisedAnswer}

// Rejection reasons: a short, fixed vocabulary, fit for counting.
const (
	ReasonLength           = "length"
	ReasonFinish           = "finish reason"
	ReasonEmpty            = "empty completion"
	ReasonNoOutput         = "parse: no OUTPUT marker"
	ReasonNoRevisedAnswer  = "parse: no Revised Answer marker"
	ReasonNoJSON           = "parse: no JSON object"
	ReasonBadJSON          = "parse: invalid JSON"
	ReasonOutsideJSON      = "parse: text outside the JSON object"
	ReasonJSONField        = "parse: missing string field"
	ReasonJSONEscape       = "parse: unescaped backslash"
	ReasonEmptyInstruction = "empty instruction"
	ReasonEmptyResponse    = "empty response"
	ReasonTooLong          = "too long"
	ReasonPlaceholder      = "placeholder leaked"
	ReasonMathNoResult     = "math: no [RESULT]"
	ReasonMathManyResults  = "math: more than one [RESULT]"
	ReasonMathUnbalanced   = "math: unbalanced [RESULT]"
	ReasonMathEmptyResult  = "math: empty [RESULT]"
	ReasonMathNotAtEnd     = "math: no [RESULT] at the end"
	ReasonCodeNoFence      = "code: no fenced block"
	ReasonCodeUnbalanced   = "code: unbalanced fences"
	ReasonCodeManyBlocks   = "code: more than one fenced block"
	ReasonCodeEmpty        = "code: empty code block"
	ReasonCodeProse        = "code: prose outside the code block"
)

// Rejection is a completion that failed parsing or validation. Reason is one
// of the Reason constants; Detail, possibly empty, says more for a person.
type Rejection struct {
	Reason string
	Detail string
}

func (r *Rejection) Error() string {
	if r.Detail == "" {
		return "rejected: " + r.Reason
	}
	return "rejected: " + r.Reason + ": " + r.Detail
}

func reject(reason, detail string) *Rejection { return &Rejection{Reason: reason, Detail: detail} }

// Result parses and validates the completion c of request req. A completion
// that fails is returned as a *Rejection; any other error means that req
// does not belong to the task or the task is invalid. Result never panics.
func (t *Task) Result(req Request, c Completion) (Instance, error) {
	if err := t.Validate(); err != nil {
		return Instance{}, err
	}
	var seed SeedItem
	if t.Method != MethodInstance {
		var err error
		if seed, err = t.seedItem(req); err != nil {
			return Instance{}, err
		}
	}
	jsonOut := t.jsonFormat()
	if rej := checkFinish(c, jsonOut); rej != nil {
		return Instance{}, rej
	}
	if strings.TrimSpace(c.Text) == "" {
		return Instance{}, reject(ReasonEmpty, "")
	}

	var inst Instance
	var rej *Rejection
	switch {
	case jsonOut:
		inst, rej = parseJSON(c.Text, t.Method == MethodResponse, t.Domain == DomainMath)
	case t.Method == MethodInstance:
		inst, rej = parsePair(c.Text, markerInput, markerOutput, ReasonNoOutput)
	case t.Method == MethodQuality:
		inst, rej = parsePair(c.Text, markerRevisedQuestion, markerRevisedAnswer, ReasonNoRevisedAnswer)
	default:
		inst.Response = parseResponse(c.Text)
	}
	if rej != nil {
		return Instance{}, rej
	}
	if t.Method == MethodResponse {
		inst.Instruction = strings.TrimSpace(seed.Instruction)
	}
	if rej := t.validate(inst, seed); rej != nil {
		return Instance{}, rej
	}
	return inst, nil
}

// normalStops are the finish reasons of a completion that ended by itself
// (OpenAI-compatible servers, Anthropic, TGI); "" is a server that does not
// say.
var normalStops = map[string]bool{"": true, "stop": true, "end_turn": true, "stop_sequence": true, "eos": true, "eos_token": true}

// checkFinish rejects a completion that did not stop normally, unless its
// text nevertheless ends with the end marker (for JSON: the object's
// closing brace or fence).
func checkFinish(c Completion, jsonOut bool) *Rejection {
	fr := strings.ToLower(strings.TrimSpace(c.FinishReason))
	if normalStops[fr] {
		return nil
	}
	tail := strings.TrimSpace(c.Text)
	if strings.HasSuffix(tail, markerEnd) {
		return nil
	}
	if jsonOut && (strings.HasSuffix(tail, "}") || strings.HasSuffix(tail, "```")) {
		return nil
	}
	if fr == "length" || fr == "max_tokens" {
		return reject(ReasonLength, "")
	}
	return reject(ReasonFinish, clip(fr, 40))
}

// lastRun finds the last occurrence of marker m in s, extended backwards
// over copies of m that precede it with only white space between. It
// returns the start of the run and the end of its last marker, or -1, -1.
func lastRun(s, m string) (start, end int) {
	i := strings.LastIndex(s, m)
	if i < 0 {
		return -1, -1
	}
	start, end = i, i+len(m)
	for {
		before := strings.TrimRight(s[:start], " \t\r\n")
		if !strings.HasSuffix(before, m) {
			return start, end
		}
		start = len(before) - len(m)
	}
}

// trimLeadingMarker removes leading copies of m (and white space) from s.
func trimLeadingMarker(s, m string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if !strings.HasPrefix(s, m) {
			return s
		}
		s = s[len(m):]
	}
}

// parsePair parses a question/answer completion: the answer is the text
// after the last run of answer markers up to the next end marker (or the
// end); the question is the text before that run, after the last question
// marker before it (or from the start).
func parsePair(text, qMark, aMark, noAnswer string) (Instance, *Rejection) {
	aStart, aEnd := lastRun(text, aMark)
	if aStart < 0 {
		return Instance{}, reject(noAnswer, "")
	}
	q := text[:aStart]
	if i := strings.LastIndex(q, qMark); i >= 0 {
		q = q[i+len(qMark):]
	}
	a := text[aEnd:]
	if i := strings.Index(a, markerEnd); i >= 0 {
		a = a[:i]
	}
	return Instance{Instruction: strings.TrimSpace(q), Response: strings.TrimSpace(a)}, nil
}

// parseResponse parses a response-generation completion: the text up to the
// first end marker, without a repeated leading OUTPUT: marker; a completion
// that echoes the input ("INPUT: ... OUTPUT: ...") keeps what follows the
// last OUTPUT:.
func parseResponse(text string) string {
	if i := strings.Index(text, markerEnd); i >= 0 {
		text = text[:i]
	}
	text = trimLeadingMarker(text, markerOutput)
	if strings.HasPrefix(text, markerInput) {
		if _, end := lastRun(text, markerOutput); end >= 0 {
			text = text[end:]
		}
	}
	return strings.TrimSpace(text)
}

// parseJSON parses a completion that must be exactly one JSON object with
// string values for "instruction" (unless responseOnly) and "response".
// math makes the check for unescaped LaTeX backslashes stricter.
func parseJSON(text string, responseOnly, math bool) (Instance, *Rejection) {
	s := strings.TrimSpace(text)
	s = strings.TrimSpace(strings.TrimSuffix(s, markerEnd))
	if strings.HasPrefix(s, "```") {
		// A fence around the object: drop the opening line (```json) and
		// the closing fence.
		nl := strings.IndexByte(s, '\n')
		if nl < 0 {
			return Instance{}, reject(ReasonNoJSON, "")
		}
		s = strings.TrimSpace(s[nl+1:])
		s = strings.TrimSpace(strings.TrimSuffix(s, "```"))
	}
	if !strings.HasPrefix(s, "{") {
		if strings.Contains(s, "{") {
			return Instance{}, reject(ReasonOutsideJSON, "")
		}
		return Instance{}, reject(ReasonNoJSON, "")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return Instance{}, reject(ReasonBadJSON, clip(err.Error(), 80))
	}
	if rest := s[dec.InputOffset():]; strings.TrimSpace(rest) != "" {
		return Instance{}, reject(ReasonOutsideJSON, "")
	}
	field := func(key string) (string, *Rejection) {
		var v *string
		if raw, ok := obj[key]; !ok || json.Unmarshal(raw, &v) != nil || v == nil {
			return "", reject(ReasonJSONField, key)
		}
		if badEscape(*v, math) {
			return "", reject(ReasonJSONEscape, key)
		}
		return strings.TrimSpace(*v), nil
	}
	var inst Instance
	var rej *Rejection
	if !responseOnly {
		if inst.Instruction, rej = field("instruction"); rej != nil {
			return Instance{}, rej
		}
	}
	if inst.Response, rej = field("response"); rej != nil {
		return Instance{}, rej
	}
	return inst, nil
}

// badEscape reports whether a decoded JSON string holds control characters
// that come from a backslash the model forgot to double: "\frac" and
// "\binom" decode to a form feed and a backspace, "\right" to a carriage
// return, and, in math, "\times" or "\theta" to a tab before a letter.
func badEscape(s string, math bool) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\b', '\f':
			return true
		case '\r':
			if i+1 == len(s) || s[i+1] != '\n' {
				return true
			}
		case '\t':
			if math && i+1 < len(s) && s[i+1] >= 'a' && s[i+1] <= 'z' {
				return true
			}
		}
	}
	return false
}

// templateRef matches a text/template reference to the data of a
// meta-prompt ({{.Topic}}, {{ json .Instruction }}, {{range .Demonstrations}}):
// the only kind of placeholder a meta-prompt has.
var templateRef = regexp.MustCompile(`\{\{-?\s*(?:(?:json|range|with|if)\s+)?\.(?:Demonstrations|Topic|Opening|Instruction|Response|Language|Fixing)\b`)

// validate checks a parsed instance. seed is the seed item given to the
// model (zero for instance generation): markers and template references it
// already contains are not leaks.
func (t *Task) validate(inst Instance, seed SeedItem) *Rejection {
	if inst.Instruction == "" {
		return reject(ReasonEmptyInstruction, "")
	}
	if inst.Response == "" {
		return reject(ReasonEmptyResponse, "")
	}
	limit := t.MaxChars
	if limit == 0 {
		limit = DefaultMaxChars
	}
	if n := len(inst.Instruction) + len(inst.Response); limit > 0 && n > limit {
		return reject(ReasonTooLong, fmt.Sprintf("%d > %d bytes", n, limit))
	}
	given := seed.Instruction + "\n" + seed.Response
	fields := []string{inst.Response}
	if t.Method != MethodResponse { // the seed's own instruction is not checked
		fields = append(fields, inst.Instruction)
	}
	for _, f := range fields {
		for _, m := range leakMarkers {
			if strings.Contains(f, m) && !strings.Contains(given, m) {
				return reject(ReasonPlaceholder, m)
			}
		}
		if ref := templateRef.FindString(f); ref != "" && !templateRef.MatchString(given) {
			return reject(ReasonPlaceholder, ref)
		}
	}
	switch t.Domain {
	case DomainMath:
		return checkMath(inst.Response)
	case DomainCode:
		return checkCode(inst.Response)
	}
	return nil
}

// checkMath requires exactly one [RESULT] ... [/RESULT], non-empty, at the
// very end of the response.
func checkMath(resp string) *Rejection {
	switch strings.Count(resp, resultOpen) {
	case 0:
		return reject(ReasonMathNoResult, "")
	case 1:
	default:
		return reject(ReasonMathManyResults, "")
	}
	open := strings.Index(resp, resultOpen)
	closing := strings.Index(resp, resultClose)
	if strings.Count(resp, resultClose) != 1 || closing < open {
		return reject(ReasonMathUnbalanced, "")
	}
	if strings.TrimSpace(resp[open+len(resultOpen):closing]) == "" {
		return reject(ReasonMathEmptyResult, "")
	}
	if strings.TrimSpace(resp[closing+len(resultClose):]) != "" {
		return reject(ReasonMathNotAtEnd, "")
	}
	return nil
}

// proseOutsideCode are the phrases that mark the tests, usage examples or
// explanations the code prompts forbid (lower case): the seven of the
// AgoraBench reference code's code validator.
var proseOutsideCode = []string{"example usage", "this function", "test the function", "test cases", "this implementation", "explanation", "this solution"}

// checkCode requires the response to be exactly one fenced code block with
// balanced fences and nothing outside it: no text before the opening fence
// or after the closing one. A fence is a line that starts, after
// indentation, with three backticks. A response with text outside the
// block is rejected as prose, naming the first forbidden phrase it holds
// (proseOutsideCode) or else saying where the text is.
func checkCode(resp string) *Rejection {
	lines := strings.Split(resp, "\n")
	var fences []int
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fences = append(fences, i)
		}
	}
	switch {
	case len(fences) == 0:
		return reject(ReasonCodeNoFence, "")
	case len(fences)%2 == 1:
		return reject(ReasonCodeUnbalanced, "")
	case len(fences) > 2:
		return reject(ReasonCodeManyBlocks, "")
	}
	if strings.TrimSpace(lines[fences[1]]) != "```" {
		// A closing fence carries nothing after the backticks; this is
		// another opening one.
		return reject(ReasonCodeUnbalanced, "")
	}
	if strings.TrimSpace(strings.Join(lines[fences[0]+1:fences[1]], "\n")) == "" {
		return reject(ReasonCodeEmpty, "")
	}
	before := strings.TrimSpace(strings.Join(lines[:fences[0]], "\n"))
	after := strings.TrimSpace(strings.Join(lines[fences[1]+1:], "\n"))
	if before == "" && after == "" {
		return nil
	}
	outside := strings.ToLower(before + "\n" + after)
	for _, p := range proseOutsideCode {
		if strings.Contains(outside, p) {
			return reject(ReasonCodeProse, p)
		}
	}
	if before != "" {
		return reject(ReasonCodeProse, "text before the code block")
	}
	return reject(ReasonCodeProse, "text after the code block")
}

// clip shortens s to at most n bytes on a rune boundary and drops control
// characters, for a Detail.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xc0 != 0x80 }

// AsRejection returns the *Rejection in err's chain, if any.
func AsRejection(err error) (*Rejection, bool) {
	var r *Rejection
	ok := errors.As(err, &r)
	return r, ok
}
