package generation

import (
	"errors"
	"strings"
	"testing"
)

const (
	goodMath = "Add them: $2 + 3 = 5$.\n[RESULT] 5 [/RESULT]"
	goodCode = "```python\ndef f(x):\n    return x\n```"
)

var rejectionCases = []struct {
	name                    string
	domain, method, variant string
	text, finish            string
	want                    string
}{
	// Finish reasons.
	{"truncated", DomainMath, MethodInstance, VariantFreeForm, "Q\nOUTPUT:\nA lot of work and then", "length", ReasonLength},
	{"truncated max_tokens", DomainInstruction, MethodResponse, VariantFreeForm, "Sure, here", "max_tokens", ReasonLength},
	{"truncated json", DomainInstruction, MethodInstance, VariantJSON, `{"instruction": "Write", "response": "Once upon`, "length", ReasonLength},
	{"content filter", DomainInstruction, MethodResponse, VariantFreeForm, "I", "content_filter", ReasonFinish},
	{"empty", DomainCode, MethodInstance, VariantFreeForm, " \n\t", "stop", ReasonEmpty},

	// Free-form parsing.
	{"no OUTPUT", DomainMath, MethodInstance, VariantFreeForm, "What is 2+3?\n[RESULT] 5 [/RESULT]\n[END]", "stop", ReasonNoOutput},
	{"lower-case output", DomainMath, MethodInstance, VariantFreeForm, "What is 2+3?\noutput:\n" + goodMath, "stop", ReasonNoOutput},
	{"no Revised Answer", DomainInstruction, MethodQuality, VariantFreeForm, "How do I undo a commit?\nAnswer: git reset HEAD~\n[END]", "stop", ReasonNoRevisedAnswer},

	// JSON parsing.
	{"no json", DomainMath, MethodInstance, VariantJSON, "I cannot do that.", "stop", ReasonNoJSON},
	{"prose before json", DomainMath, MethodInstance, VariantJSON, `Here it is: {"instruction": "Q", "response": "` + goodMath + `"}`, "stop", ReasonOutsideJSON},
	{"two objects", DomainInstruction, MethodInstance, VariantJSON, `{"instruction": "Q", "response": "A"} {"instruction": "Q2", "response": "A2"}`, "stop", ReasonOutsideJSON},
	{"invalid json", DomainInstruction, MethodInstance, VariantJSON, `{"instruction": "Q", "response": "a "quoted" word"}`, "stop", ReasonBadJSON},
	{"bad escape", DomainMath, MethodInstance, VariantJSON, `{"instruction": "Find \sqrt{2}", "response": "x"}`, "stop", ReasonBadJSON},
	{"unescaped frac", DomainMath, MethodInstance, VariantJSON, `{"instruction": "Find \frac{1}{2} of 8", "response": "[RESULT] 4 [/RESULT]"}`, "stop", ReasonJSONEscape},
	{"unescaped right", DomainInstruction, MethodQuality, VariantJSON, `{"instruction": "Q", "response": "(x \right)"}`, "stop", ReasonJSONEscape},
	{"unescaped times", DomainMath, MethodResponse, VariantJSON, `{"response": "$2 \times 3 = 6$ [RESULT] 6 [/RESULT]"}`, "stop", ReasonJSONEscape},
	{"missing response", DomainInstruction, MethodInstance, VariantJSON, `{"instruction": "Q"}`, "stop", ReasonJSONField},
	{"response not a string", DomainInstruction, MethodQuality, VariantJSON, `{"instruction": "Q", "response": ["A"]}`, "stop", ReasonJSONField},
	{"null instruction", DomainInstruction, MethodInstance, VariantJSON, `{"instruction": null, "response": "A"}`, "stop", ReasonJSONField},
	{"array", DomainInstruction, MethodInstance, VariantJSON, `[{"instruction": "Q", "response": "A"}]`, "stop", ReasonOutsideJSON},

	// Empty fields.
	{"empty instruction", DomainInstruction, MethodInstance, VariantFreeForm, "INPUT:\n\nOUTPUT:\nAn answer.\n[END]", "stop", ReasonEmptyInstruction},
	{"empty response", DomainInstruction, MethodInstance, VariantFreeForm, "A question?\nOUTPUT:\n  \n[END]", "stop", ReasonEmptyResponse},
	{"empty response rg", DomainInstruction, MethodResponse, VariantFreeForm, "[END]", "stop", ReasonEmptyResponse},
	{"empty json instruction", DomainInstruction, MethodQuality, VariantJSON, `{"instruction": " ", "response": "A"}`, "stop", ReasonEmptyInstruction},

	// Length.
	{"too long", DomainInstruction, MethodInstance, VariantFreeForm, "Q?\nOUTPUT:\n" + strings.Repeat("x", DefaultMaxChars) + "\n[END]", "stop", ReasonTooLong},

	// Leaks.
	{"template ref", DomainInstruction, MethodInstance, VariantFreeForm, "Write about {{.Topic}}.\nOUTPUT:\nSure.\n[END]", "stop", ReasonPlaceholder},
	{"json template ref", DomainInstruction, MethodQuality, VariantJSON, `{"instruction": "Q", "response": "{{ json .Response }}"}`, "stop", ReasonPlaceholder},
	{"INPUT in response", DomainInstruction, MethodInstance, VariantFreeForm, "Q?\nOUTPUT:\nA.\nINPUT:\nQ2\n", "stop", ReasonPlaceholder},
	{"END in instruction", DomainInstruction, MethodInstance, VariantFreeForm, "Q? [END] more\nOUTPUT:\nA.", "stop", ReasonPlaceholder},
	{"OUTPUT in rg response", DomainInstruction, MethodResponse, VariantFreeForm, "Here: OUTPUT: 5", "stop", ReasonPlaceholder},
	{"Revised Question in answer", DomainInstruction, MethodQuality, VariantFreeForm, "Q?\nRevised Answer:\nA.\nRevised Question: again?", "stop", ReasonPlaceholder},
	{"OUTPUT in json", DomainInstruction, MethodInstance, VariantJSON, `{"instruction": "Q\nOUTPUT:", "response": "A"}`, "stop", ReasonPlaceholder},

	// Math.
	{"math no result", DomainMath, MethodResponse, VariantFreeForm, "The answer is 5.\n[END]", "stop", ReasonMathNoResult},
	{"math two results", DomainMath, MethodInstance, VariantFreeForm, "Q?\nOUTPUT:\n[RESULT] 4 [/RESULT] or\n[RESULT] 5 [/RESULT]\n[END]", "stop", ReasonMathManyResults},
	{"math not at end", DomainMath, MethodQuality, VariantFreeForm, "Q?\nRevised Answer:\n[RESULT] 5 [/RESULT]\nThat is all.\n[END]", "stop", ReasonMathNotAtEnd},
	{"math unclosed", DomainMath, MethodResponse, VariantJSON, `{"response": "so [RESULT] 5"}`, "stop", ReasonMathUnbalanced},
	{"math reversed", DomainMath, MethodResponse, VariantFreeForm, "so [/RESULT] 5 [RESULT]", "stop", ReasonMathUnbalanced},
	{"math empty result", DomainMath, MethodInstance, VariantJSON, `{"instruction": "Q", "response": "so [RESULT]  [/RESULT]"}`, "stop", ReasonMathEmptyResult},

	// Code.
	{"code no fence", DomainCode, MethodInstance, VariantFreeForm, "Write f.\nOUTPUT:\ndef f(x):\n    return x\n[END]", "stop", ReasonCodeNoFence},
	{"code unbalanced", DomainCode, MethodResponse, VariantFreeForm, "```python\ndef f(x):\n    return x\n[END]", "stop", ReasonCodeUnbalanced},
	{"code two openings", DomainCode, MethodResponse, VariantFreeForm, "```python\ndef f(x):\n```python\n    return x\n", "stop", ReasonCodeUnbalanced},
	{"code two blocks", DomainCode, MethodQuality, VariantFreeForm, "Write f.\nRevised Answer:\n" + goodCode + "\n\n```python\nassert f(1) == 1\n```\n[END]", "stop", ReasonCodeManyBlocks},
	{"code empty block", DomainCode, MethodInstance, VariantJSON, `{"instruction": "Write f.", "response": "` + "```python\\n\\n```" + `"}`, "stop", ReasonCodeEmpty},
	{"code example usage", DomainCode, MethodInstance, VariantFreeForm, "Write f.\nOUTPUT:\n" + goodCode + "\n\nExample usage: f(1) returns 1.\n[END]", "stop", ReasonCodeProse},
	{"code test cases", DomainCode, MethodResponse, VariantJSON, `{"response": "Test cases are below.\n` + "```python\\nx = 1\\n```" + `"}`, "stop", ReasonCodeProse},
	{"code explanation", DomainCode, MethodQuality, VariantFreeForm, "Write f.\nRevised Answer:\n" + goodCode + "\n**Explanation:** it returns x.", "stop", ReasonCodeProse},
}

func TestRejections(t *testing.T) {
	for _, tc := range rejectionCases {
		t.Run(tc.name, func(t *testing.T) {
			task := newTask(t, tc.domain, tc.method, tc.variant, 4)
			req := mustRequest(t, task, 1, 1)
			inst, err := task.Result(req, Completion{Text: tc.text, FinishReason: tc.finish})
			rej, ok := AsRejection(err)
			if !ok {
				t.Fatalf("got %+v, %v; want rejection %q", inst, err, tc.want)
			}
			if rej.Reason != tc.want {
				t.Fatalf("reason %q (%v), want %q", rej.Reason, rej, tc.want)
			}
			if inst != (Instance{}) {
				t.Errorf("rejection came with an instance: %+v", inst)
			}
			if !strings.HasPrefix(err.Error(), "rejected: "+tc.want) {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

// Every Reason constant is produced by some case of TestRejections.
func TestEveryReasonCovered(t *testing.T) {
	all := []string{ReasonLength, ReasonFinish, ReasonEmpty, ReasonNoOutput, ReasonNoRevisedAnswer, ReasonNoJSON,
		ReasonBadJSON, ReasonOutsideJSON, ReasonJSONField, ReasonJSONEscape, ReasonEmptyInstruction, ReasonEmptyResponse, ReasonTooLong,
		ReasonPlaceholder, ReasonMathNoResult, ReasonMathManyResults, ReasonMathUnbalanced, ReasonMathEmptyResult,
		ReasonMathNotAtEnd, ReasonCodeNoFence, ReasonCodeUnbalanced, ReasonCodeManyBlocks, ReasonCodeEmpty, ReasonCodeProse}
	covered := map[string]bool{}
	for _, tc := range rejectionCases {
		covered[tc.want] = true
	}
	for _, r := range all {
		if !covered[r] {
			t.Errorf("no rejection case produces %q", r)
		}
	}
}

func TestParseTolerance(t *testing.T) {
	const q, a = "What is 2 + 3?", goodMath
	tests := []struct {
		name                    string
		domain, method, variant string
		text, finish            string
		want                    Instance
	}{
		{"ig plain", DomainMath, MethodInstance, VariantFreeForm, q + "\nOUTPUT:\n" + a + "\n[END]", "stop", Instance{q, a}},
		{"ig repeats INPUT", DomainMath, MethodInstance, VariantFreeForm, "INPUT:\n" + q + "\nOUTPUT:\n" + a + "\n[END]", "stop", Instance{q, a}},
		{"ig repeated markers", DomainMath, MethodInstance, VariantFreeForm, "INPUT:\nINPUT:\n" + q + "\nOUTPUT:\n\nOUTPUT:\n" + a + "\n[END]\n[END]", "stop", Instance{q, a}},
		{"ig whitespace", DomainMath, MethodInstance, VariantFreeForm, "\n\n   " + q + "   \r\n\nOUTPUT:   \r\n" + a + "  \n\n[END]\n\n", "stop", Instance{q, a}},
		{"ig no END (stop sequence)", DomainMath, MethodInstance, VariantFreeForm, q + "\nOUTPUT:\n" + a, "stop", Instance{q, a}},
		{"ig same line", DomainMath, MethodInstance, VariantFreeForm, "INPUT: " + q + " OUTPUT: " + a + " [END]", "stop", Instance{q, a}},
		{"ig last pair wins", DomainMath, MethodInstance, VariantFreeForm, "INPUT:\nold\nOUTPUT:\nold [RESULT] 1 [/RESULT]\n[END]\nINPUT:\n" + q + "\nOUTPUT:\n" + a + "\n[END]", "stop", Instance{q, a}},
		{"ig junk after END", DomainMath, MethodInstance, VariantFreeForm, q + "\nOUTPUT:\n" + a + "\n[END]\nINPUT:\nhalf a new one", "stop", Instance{q, a}},
		{"ig length but END", DomainMath, MethodInstance, VariantFreeForm, q + "\nOUTPUT:\n" + a + "\n[END]", "length", Instance{q, a}},
		{"ig empty finish reason", DomainMath, MethodInstance, VariantFreeForm, q + "\nOUTPUT:\n" + a, "", Instance{q, a}},
		{"ig end_turn", DomainMath, MethodInstance, VariantFreeForm, q + "\nOUTPUT:\n" + a, "end_turn", Instance{q, a}},
		{"ig latex braces", DomainMath, MethodInstance, VariantFreeForm, "Find $\\frac{1}{\\sqrt{2}}$ squared.\nOUTPUT:\n$\\left(\\frac{1}{\\sqrt{2}}\\right)^2 = \\frac{1}{2}$, and ${{n}\\choose{k}}$ is unused.\n[RESULT] \\frac{1}{2} [/RESULT]", "stop",
			Instance{"Find $\\frac{1}{\\sqrt{2}}$ squared.", "$\\left(\\frac{1}{\\sqrt{2}}\\right)^2 = \\frac{1}{2}$, and ${{n}\\choose{k}}$ is unused.\n[RESULT] \\frac{1}{2} [/RESULT]"}},

		{"rg plain", DomainMath, MethodResponse, VariantFreeForm, a + "\n[END]", "stop", Instance{"", a}},
		{"rg repeats OUTPUT", DomainMath, MethodResponse, VariantFreeForm, "OUTPUT:\n" + a + "\n[END]", "stop", Instance{"", a}},
		{"rg echoes input", DomainMath, MethodResponse, VariantFreeForm, "INPUT:\nsomething\nOUTPUT:\nOUTPUT:\n" + a + "\n[END]", "stop", Instance{"", a}},
		{"rg whitespace", DomainMath, MethodResponse, VariantFreeForm, "\n  " + a + "\n\n  [END]  \n", "stop", Instance{"", a}},

		{"qe from open slot", DomainCode, MethodQuality, VariantFreeForm, "Write f.\nRevised Answer:\n" + goodCode + "\n[END]", "stop", Instance{"Write f.", goodCode}},
		{"qe repeats marker", DomainCode, MethodQuality, VariantFreeForm, "Revised Question:\nRevised Question:\nWrite f.\n\nRevised Answer:\n" + goodCode + "\n[END]", "stop", Instance{"Write f.", goodCode}},
		{"qe code with asserts", DomainCode, MethodQuality, VariantFreeForm, "Write f.\nRevised Answer:\n```python\ndef f(x):\n    return x\n\nassert f(1) == 1\n```", "stop", Instance{"Write f.", "```python\ndef f(x):\n    return x\n\nassert f(1) == 1\n```"}},
		{"code jinja and fstring", DomainCode, MethodInstance, VariantFreeForm, "Write g.\nOUTPUT:\n```python\ndef g(n):\n    return f\"{{{n}}}\" + \"{{ user.name }}\"\n```", "stop",
			Instance{"Write g.", "```python\ndef g(n):\n    return f\"{{{n}}}\" + \"{{ user.name }}\"\n```"}},
		{"code blank lines around the block", DomainCode, MethodResponse, VariantFreeForm, "\n\n" + goodCode + "\n\n", "stop", Instance{"", goodCode}},

		{"json plain", DomainMath, MethodInstance, VariantJSON, `{"instruction": "What is 2 + 3?", "response": "Add them: $2 + 3 = 5$.\n[RESULT] 5 [/RESULT]"}`, "stop", Instance{q, a}},
		{"json fenced", DomainMath, MethodInstance, VariantJSON, "\n```json\n{\"instruction\": \"What is 2 + 3?\", \"response\": \"Add them: $2 + 3 = 5$.\\n[RESULT] 5 [/RESULT]\"}\n```\n", "stop", Instance{q, a}},
		{"json extra key", DomainMath, MethodInstance, VariantJSON, `{"instruction": " What is 2 + 3? ", "response": "Add them: $2 + 3 = 5$.\n[RESULT] 5 [/RESULT]", "notes": 1}`, "stop", Instance{q, a}},
		{"json length but closed", DomainMath, MethodInstance, VariantJSON, `{"instruction": "What is 2 + 3?", "response": "Add them: $2 + 3 = 5$.\n[RESULT] 5 [/RESULT]"}`, "length", Instance{q, a}},
		{"json END appended", DomainMath, MethodInstance, VariantJSON, `{"instruction": "What is 2 + 3?", "response": "Add them: $2 + 3 = 5$.\n[RESULT] 5 [/RESULT]"}` + "\n[END]", "stop", Instance{q, a}},
		{"json crlf and tabs in code", DomainCode, MethodInstance, VariantJSON, `{"instruction": "Write f.\r\nIt is short.", "response": "` + "```python\\ndef f(x):\\n\\treturn x\\n```" + `"}`, "stop", Instance{"Write f.\r\nIt is short.", "```python\ndef f(x):\n\treturn x\n```"}},
		{"json latex escapes", DomainMath, MethodQuality, VariantJSON, `{"instruction": "Simplify \\frac{2}{4}.", "response": "[RESULT] \\frac{1}{2} [/RESULT]"}`, "stop", Instance{"Simplify \\frac{2}{4}.", "[RESULT] \\frac{1}{2} [/RESULT]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := newTask(t, tc.domain, tc.method, tc.variant, 4)
			req := mustRequest(t, task, 1, 1)
			want := tc.want
			if tc.method == MethodResponse {
				want.Instruction = task.Seeds[1].Instruction
			}
			got, err := task.Result(req, Completion{Text: tc.text, FinishReason: tc.finish})
			if err != nil {
				t.Fatalf("%v\n%s", err, tc.text)
			}
			if got != want {
				t.Fatalf("got\n%#v\nwant\n%#v", got, want)
			}
		})
	}
}

func TestResponseGenerationKeepsSeedInstruction(t *testing.T) {
	task := newTask(t, DomainInstruction, MethodResponse, VariantJSON, 4)
	req := mustRequest(t, task, 2, 1)
	got, err := task.Result(req, Completion{Text: `{"instruction": "Something else entirely", "response": "A limerick."}`, FinishReason: "stop"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Instruction != task.Seeds[2].Instruction || got.Response != "A limerick." {
		t.Fatalf("got %+v", got)
	}
	// The echoed instruction is not required.
	if _, err := task.Result(req, Completion{Text: `{"response": "A limerick."}`, FinishReason: "stop"}); err != nil {
		t.Fatal(err)
	}
}

// Markers and template references that the seed item itself contains are
// not leaks: the model was given them.
func TestLeakExemptWhenInSeed(t *testing.T) {
	for _, method := range []string{MethodResponse, MethodQuality} {
		task := newTask(t, DomainInstruction, method, VariantJSON, 1)
		task.Seeds[0].Instruction = "My program prints INPUT: and then OUTPUT: lines; in Helm I wrote {{ .Response }}. Why?"
		task.Seeds[0].Response = "no idea"
		req := mustRequest(t, task, 0, 1)
		text := `{"instruction": "Why does my program print INPUT: and OUTPUT: lines?", "response": "Because of the print calls; a Helm {{ .Response }} is unrelated."}`
		if _, err := task.Result(req, Completion{Text: text, FinishReason: "stop"}); err != nil {
			t.Errorf("%s: %v", method, err)
		}
		text = `{"instruction": "Q", "response": "A [END]"}`
		if rej, ok := AsRejection(mustErr(task.Result(req, Completion{Text: text}))); !ok || rej.Reason != ReasonPlaceholder {
			t.Errorf("%s: [END] not flagged: %v", method, rej)
		}
	}
}

func mustErr(_ Instance, err error) error { return err }

func TestMaxChars(t *testing.T) {
	task := newTask(t, DomainInstruction, MethodInstance, VariantFreeForm, 3)
	req := mustRequest(t, task, 0, 1)
	mk := func(n int) Completion {
		return Completion{Text: "Qq\nOUTPUT:\n" + strings.Repeat("a", n-2), FinishReason: "stop"}
	}
	for _, tc := range []struct {
		max, size int
		ok        bool
	}{
		{0, DefaultMaxChars, true}, {0, DefaultMaxChars + 1, false},
		{100, 100, true}, {100, 101, false},
		{-1, 10 * DefaultMaxChars, true},
	} {
		task.MaxChars = tc.max
		_, err := task.Result(req, mk(tc.size))
		if (err == nil) != tc.ok {
			t.Errorf("MaxChars %d, size %d: err = %v", tc.max, tc.size, err)
		}
		if err != nil {
			if rej, ok := AsRejection(err); !ok || rej.Reason != ReasonTooLong {
				t.Errorf("MaxChars %d, size %d: %v", tc.max, tc.size, err)
			}
		}
	}
}

func TestResultForeignRequest(t *testing.T) {
	task := newTask(t, DomainMath, MethodResponse, VariantFreeForm, 4)
	good := mustRequest(t, task, 1, 1)
	for name, req := range map[string]Request{
		"wrong seed item": {Slot: 1, Attempt: 1, SeedItemID: "seed-02"},
		"slot too large":  {Slot: 1000, Attempt: 1, SeedItemID: good.SeedItemID},
		"negative slot":   {Slot: -5, Attempt: 1},
	} {
		_, err := task.Result(req, Completion{Text: goodMath, FinishReason: "stop"})
		var rej *Rejection
		if err == nil || errors.As(err, &rej) {
			t.Errorf("%s: err = %v, want a non-rejection error", name, err)
		}
	}
	var nilTask *Task
	if _, err := nilTask.Result(good, Completion{Text: goodMath}); err == nil {
		t.Error("nil task: no error")
	}
}

func TestClip(t *testing.T) {
	if got := clip("héllo\nworld", 2); got != "h…" {
		t.Errorf("clip = %q", got)
	}
	if got := clip("a\tb", 10); got != "a b" {
		t.Errorf("clip = %q", got)
	}
}

func FuzzResult(f *testing.F) {
	for _, d := range allDomains {
		for _, m := range allMethods {
			for _, v := range []string{VariantFreeForm, VariantJSON} {
				task := newTask(f, d, m, v, 3)
				req := mustRequest(f, task, 1, 1)
				for n := range 3 {
					f.Add(d, m, v, ExampleCompletion(task, req, n), "stop", 1)
				}
			}
		}
	}
	f.Add(DomainMath, MethodInstance, VariantFreeForm, "OUTPUT:OUTPUT:[RESULT][/RESULT][END]", "length", 0)
	f.Add(DomainCode, MethodQuality, VariantJSON, "```json\n{\"instruction\":\"\\ud800\",\"response\":\"```\"}", "", 7)
	f.Add(DomainCode, MethodResponse, VariantFreeForm, "```", "stop", -3)
	f.Add(DomainInstruction, MethodQuality, VariantFreeForm, "Revised Answer:Revised Answer:", "\x00", 2)
	f.Fuzz(func(t *testing.T, domain, method, variant, text, finish string, slot int) {
		pick := func(s string, from []string) string {
			n := 0
			for _, r := range s {
				n += int(r)
			}
			return from[n%len(from)]
		}
		domain, method, variant = pick(domain, allDomains), pick(method, allMethods), pick(variant, allVariants)
		task := newTask(t, domain, method, variant, 3)
		task.MaxChars = 2000
		req, err := task.Request(((slot%200)+200)%200, 1)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := task.Result(req, Completion{Text: text, FinishReason: finish})
		if err != nil {
			if _, ok := AsRejection(err); !ok {
				t.Fatalf("non-rejection error on a valid request: %v", err)
			}
			return
		}
		// An accepted instance satisfies the invariants.
		if inst.Instruction == "" || inst.Response == "" || len(inst.Instruction)+len(inst.Response) > 2000 {
			t.Fatalf("accepted a bad instance: %+v", inst)
		}
		if inst.Response != strings.TrimSpace(inst.Response) {
			t.Fatalf("response not trimmed: %q", inst.Response)
		}
		if domain == DomainMath && !strings.HasSuffix(inst.Response, resultClose) {
			t.Fatalf("math response does not end with [/RESULT]: %q", inst.Response)
		}
		if domain == DomainCode && strings.Count(inst.Response, "```") < 2 {
			t.Fatalf("code response without a fenced block: %q", inst.Response)
		}
		// A foreign request never panics either.
		_, _ = task.Result(Request{Slot: slot, SeedItemID: text}, Completion{Text: text, FinishReason: finish})
		_ = ExampleCompletion(task, Request{Slot: slot, Topic: text, Opening: finish}, slot)
	})
}

// The code filter: exactly one fenced block and nothing outside it; text
// outside is named by the first of the seven forbidden phrases it holds,
// else by where it is.
func TestCodeFilter(t *testing.T) {
	block := "```java\nint f(int x) { return x; }\n```"
	cases := []struct{ text, detail string }{
		{"Here is the function:\n" + block, "text before the code block"},
		{block + "\nHope this helps.", "text after the code block"},
		{block + "\nExample usage: f(1).", "example usage"},
		{"This function returns x.\n" + block, "this function"},
		{block + "\nTo test the function, call it.", "test the function"},
		{block + "\nTest cases: f(1) == 1.", "test cases"},
		{block + "\nThis implementation is linear.", "this implementation"},
		{"**Explanation** first.\n" + block, "explanation"},
		{block + "\nThis solution works.", "this solution"},
	}
	for _, c := range cases {
		if rej := checkCode(c.text); rej == nil || rej.Reason != ReasonCodeProse || rej.Detail != c.detail {
			t.Errorf("checkCode(%q) = %v, want %q: %q", c.text, rej, ReasonCodeProse, c.detail)
		}
	}
	if len(proseOutsideCode) != 7 {
		t.Errorf("%d forbidden phrases, the documented seven expected", len(proseOutsideCode))
	}
	// Inside the block, the phrases are code comments and allowed.
	if rej := checkCode("```python\n# Explanation: this function returns x\ndef f(x):\n    return x\n```"); rej != nil {
		t.Errorf("phrases inside the block rejected: %v", rej)
	}
}
