package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agorabench/agora/toolchain/toolchaintest"
)

// Gold solutions of the answer-form cases, written as MATH's are (the
// answer in \boxed{}).
const (
	goldHalf     = `Thus $2x=1$ and $x=\boxed{\frac{1}{2}}$.`
	goldTwelve   = `Adding gives $5+7=\boxed{12}$.`
	goldPoint    = `The intersection is the point $\boxed{(3,4)}$.`
	goldInterval = `We need $x\ge 2$ and $x<5$, so the domain is $\boxed{[2,5)}$.`
	goldRoot     = `So $\sin 45^\circ = \boxed{\frac{\sqrt{2}}{2}}$.`
	goldChoice   = `Only the third one works, so the answer is $\boxed{\text{(C)}}$.`
)

// mathForm is one way a model writes its answer to a MATH problem, with
// the verdict of lm-eval's own math_verify metric (minerva_math: math-verify
// on the whole response) and of agora's agora_math task. Each is a test
// case run through the real code (TestMathAnswerForms, and the real
// lm-eval in TestMathFormsThroughLMEval); docs/evaluation.md's table is
// this one.
type mathForm struct {
	name       string
	gold       string
	response   string
	mathVerify bool // lm-eval's minerva_math math_verify
	agora      bool // agora_math
}

var mathForms = []mathForm{
	{"\\boxed{} after the working", goldHalf, "We solve 2x = 1, so $x = \\frac{1}{2}$.\n\\boxed{\\frac{1}{2}}", true, true},
	{"\\boxed{} inside $…$", goldHalf, "The answer is $\\boxed{\\frac{1}{2}}$.", true, true},
	{"\\boxed{\\dfrac12}", goldHalf, "Hence \\boxed{\\dfrac{1}{2}}", true, true},
	{"\\boxed{1/2}", goldHalf, "The answer is \\boxed{1/2}.", true, true},
	{"[RESULT] LaTeX [/RESULT]", goldHalf, "Solving 2x=1 gives x = 1/2.\n[RESULT] \\frac{1}{2} [/RESULT]", true, true},
	{"[RESULT] 1/2 [/RESULT]", goldHalf, "Solving gives one half.\n[RESULT] 1/2 [/RESULT]", true, true},
	{"[RESULT] integer [/RESULT] after other numbers", goldTwelve, "5 + 7 = 12 so 12 apples, of which 3 are red.\n[RESULT] 12 [/RESULT]", true, true},
	{"[RESULT] $12$ [/RESULT]", goldTwelve, "Adding them:\n[RESULT] $12$ [/RESULT]", true, true},
	{"[RESULT] with a unit [/RESULT]", goldTwelve, "[RESULT] 12 apples [/RESULT]", true, true},
	{"[RESULT] equation [/RESULT]", goldTwelve, "Let x be the total.\n[RESULT] x = 12 [/RESULT]", true, true},
	{"[RESULT] tuple [/RESULT]", goldPoint, "Both lines pass through it.\n[RESULT] (3, 4) [/RESULT]", false, true},
	{"[RESULT] interval [/RESULT]", goldInterval, "x must be at least 2 and below 5.\n[RESULT] [2, 5) [/RESULT]", false, true},
	{"[RESULT] LaTeX without $ [/RESULT]", goldRoot, "Half the diagonal of the unit square.\n[RESULT] \\sqrt{2}/2 [/RESULT]", false, true},
	{"[RESULT] … [/RESULT] then a number", goldTwelve, "[RESULT] 12 [/RESULT]\nThat took 3 steps.", false, true},
	{"[RESULT] unclosed at the end", goldTwelve, "5 + 7 = 12\n[RESULT] 12", true, true},
	{"[RESULT] multiple choice [/RESULT]", goldChoice, "Only (C) holds.\n[RESULT] (C) [/RESULT]", false, true},
	{"[RESULT] wrong [/RESULT]", goldHalf, "[RESULT] \\frac{1}{3} [/RESULT]", false, false},
	{"The answer is N.", goldTwelve, "We add 5 and 7. The answer is 12.", true, true},
	{"The answer is $…$.", goldHalf, "The answer is $\\frac{1}{2}$.", true, true},
	{"Minerva: Final Answer: The final answer is $…$. …", goldHalf, "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", true, true},
	{"Final Answer: N", goldTwelve, "Final Answer: 12", true, true},
	{"Markdown bold **Answer:** N", goldHalf, "**Answer:** 1/2", true, true},
	{"last displayed $$x = …$$", goldHalf, "Hence\n$$x = \\frac{1}{2}$$", true, true},
	{"last displayed \\[ … \\]", goldHalf, "Hence\n\\[ \\frac12 \\]", true, true},
	{"inline \\( … \\)", goldHalf, "So x is \\(\\frac{1}{2}\\).", true, true},
	{"equivalent decimal", goldHalf, "x = 0.5", true, true},
	{"GSM8K's #### N", goldTwelve, "5 + 7 = 12\n#### 12", true, true},
	{"interval in $…$", goldInterval, "The domain is $[2,5)$.", true, true},
	{"two \\boxed{} (read as a set)", goldTwelve, "\\boxed{7} no wait \\boxed{12}", false, false},
	{"last number wrong", goldTwelve, "12 apples is wrong; it is 13.", false, false},
	{"no answer", goldTwelve, "I do not know.", false, false},
}

// verdictScript prints, for each form read from standard input, the
// verdict of lm-eval's math_verify metric (the call minerva_math's
// process_results makes) and of agora_math_utils.process_results, and
// what agora's extraction read.
const verdictScript = `import json, sys
sys.path.insert(0, sys.argv[1])
import agora_math_utils as agora
from math_verify import parse, verify
out = []
for f in json.load(sys.stdin):
    out.append({"math_verify": bool(verify(gold=parse(f["gold"]), target=parse(f["response"]))),
                "agora": agora.process_results({"solution": f["gold"]}, [f["response"]])["math_verify"] == 1,
                "read": [str(x) for x in agora.extract(f["response"])][-1:]})
json.dump(out, sys.stdout)
`

// TestMathAnswerForms runs every answer form through the real math-verify
// and agora's task code.
func TestMathAnswerForms(t *testing.T) {
	toolchaintest.Offline(t)
	py := toolchaintest.Python(t)
	dir := t.TempDir()
	if err := WriteLMEvalTasks(dir); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "verdicts.py")
	writeFile(t, script, verdictScript)
	type in struct {
		Gold     string `json:"gold"`
		Response string `json:"response"`
	}
	var forms []in
	for _, f := range mathForms {
		forms = append(forms, in{f.gold, f.response})
	}
	data, _ := json.Marshal(forms)
	cmd := exec.Command(py, script, dir)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.Bytes())
	}
	var got []struct {
		MathVerify bool     `json:"math_verify"`
		Agora      bool     `json:"agora"`
		Read       []string `json:"read"`
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(mathForms) {
		t.Fatalf("verdicts: %v (%d for %d forms)\n%s", err, len(got), len(mathForms), out)
	}
	for i, f := range mathForms {
		t.Run(f.name, func(t *testing.T) {
			g := got[i]
			if g.MathVerify != f.mathVerify || g.Agora != f.agora {
				t.Errorf("%q: lm-eval math_verify %v, agora_math %v (read %v); want %v, %v",
					f.response, g.MathVerify, g.Agora, g.Read, f.mathVerify, f.agora)
			}
		})
	}
	if n := len(mathForms); n < 20 {
		t.Errorf("%d answer forms; the docs promise at least 20", n)
	}
}

// TestAnswerFormsDocumented: the answer-form tables of docs/evaluation.md
// are these tests' tables (AGORA_UPDATE_DOCS=1 rewrites them).
func TestAnswerFormsDocumented(t *testing.T) {
	verdict := map[bool]string{true: "right", false: "wrong"}
	oneLine := func(s string) string { return "`" + strings.ReplaceAll(s, "\n", " ⏎ ") + "`" }
	var math strings.Builder
	math.WriteString("| # | answer form | response | gold answer | lm-eval `math_verify` | agora_math |\n|---|---|---|---|---|---|\n")
	for i, f := range mathForms {
		gold := goldAnswer.FindStringSubmatch(f.gold)[1]
		fmt.Fprintf(&math, "| %d | %s | %s | %s | %s | %s |\n", i+1, mdEscape(f.name), oneLine(f.response), oneLine(gold),
			verdict[f.mathVerify], verdict[f.agora])
	}
	var gsm strings.Builder
	gsm.WriteString("| # | answer form | response (the answer is 12) | strict-match | flexible-extract |\n|---|---|---|---|---|\n")
	for i, f := range gsmForms {
		fmt.Fprintf(&gsm, "| %d | %s | %s | %s | %s |\n", i+1, mdEscape(f.name), oneLine(f.response), verdict[f.strict], verdict[f.flexible])
	}
	const path = "../docs/evaluation.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, table := range []struct{ name, body string }{{"math-forms", math.String()}, {"gsm8k-forms", gsm.String()}} {
		begin, end := "<!-- "+table.name+": begin -->\n", "<!-- "+table.name+": end -->"
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if i < 0 || j < i {
			t.Fatalf("%s: no %q … %q", path, begin, end)
		}
		if doc[i+len(begin):j] != table.body {
			if os.Getenv("AGORA_UPDATE_DOCS") == "1" {
				doc = doc[:i+len(begin)] + table.body + doc[j:]
				continue
			}
			t.Errorf("%s: the %s table is not the tests' (AGORA_UPDATE_DOCS=1 go test ./harness -run TestAnswerFormsDocumented rewrites it)", path, table.name)
		}
	}
	if os.Getenv("AGORA_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The package documentation's table: the lines after its header up
	// to the next blank comment line.
	var rows strings.Builder
	for i, f := range mathForms {
		fmt.Fprintf(&rows, "//\t%-3d %-53s %-12s %s\n", i+1, f.name, verdict[f.mathVerify], verdict[f.agora])
	}
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	const header = "//\t#   answer form                                           math_verify  agora_math\n"
	i := strings.Index(string(src), header)
	if i < 0 {
		t.Fatal("doc.go: no answer-form table header")
	}
	start := i + len(header)
	end := start + strings.Index(string(src[start:]), "//\n")
	if string(src[start:end]) != rows.String() {
		if os.Getenv("AGORA_UPDATE_DOCS") == "1" {
			if err := os.WriteFile("doc.go", []byte(string(src[:start])+rows.String()+string(src[end:])), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("doc.go: the answer-form table is not the tests' (AGORA_UPDATE_DOCS=1 rewrites it)")
	}
}

var goldAnswer = regexp.MustCompile(`\\boxed\{(.*)\}\$`)

// mdEscape escapes the Markdown in a table cell's text.
func mdEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `$`, `\$`, `_`, `\_`, `|`, `\|`, "`", "\\`")
	return r.Replace(s)
}
