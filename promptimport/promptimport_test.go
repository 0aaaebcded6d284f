package promptimport

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/prompts"
	"github.com/agorabench/agora/spec"
)

// The fixture checkout (testdata/checkout) has the authors' layout and
// file format with wording of its own: five prompt files and a script.
func TestImport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "imported")
	res, err := Import(Options{Checkout: "testdata/checkout", OutDir: out, Ref: "prompts"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.Settings {
		names = append(names, s.Name)
	}
	if want := []string{"code-qe", "if-ig", "math-ig", "math-rg"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("settings %v, want %v", names, want)
	}
	if res.System != `You write training data "carefully" and follow the given format.` || res.Stop != "[END]" {
		t.Errorf("system %q, stop %q", res.System, res.Stop)
	}
	byName := map[string]Setting{}
	for _, s := range res.Settings {
		byName[s.Name] = s
	}
	// Python's reading of the lists: both quote styles, a comment, and
	// adjacent literals joined ("Plan a " "Trip: ").
	if got := byName["if-ig"].Topics; !reflect.DeepEqual(got, []string{"Gardening", "Board Games", "Astronomy"}) {
		t.Errorf("if-ig topics %q", got)
	}
	if got := byName["if-ig"].Openings; !reflect.DeepEqual(got, []string{"Tell me ", "Plan a Trip: ", "How "}) {
		t.Errorf("if-ig openings %q", got)
	}
	if got := byName["math-ig"].Topics; !reflect.DeepEqual(got, []string{"Sequences", "Probability"}) || byName["math-ig"].Openings != nil {
		t.Errorf("math-ig topics %q openings %q", got, byName["math-ig"].Openings)
	}
	if byName["math-ig"].JSONFile != "math-ig.json.tmpl" || byName["math-rg"].JSONFile != "" {
		t.Errorf("JSON files %+v", res.Settings)
	}
	if len(res.Notes) != 5 { // code-ig, code-rg, if-qe, if-rg, math-qe keep agora's
		t.Errorf("notes %q", res.Notes)
	}

	// The math instance-generation template renders the demonstrations
	// where the placeholders were, and the rest byte for byte.
	b, err := os.ReadFile(filepath.Join(out, "math-ig.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := prompts.Parse("math-ig.tmpl", string(b))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.Render(prompts.Input{Topic: "Sequences", Demonstrations: []prompts.Example{{Instruction: "Q1", Response: "A1"}, {Instruction: "Q2", Response: "A2"}, {Instruction: "Q3", Response: "A3"}}})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile("testdata/checkout/agora_scripts/prompts/instance_generation_math_prompt.txt")
	want := strings.NewReplacer("<input_theme>", "Sequences", "<input1>", "Q1", "<output1>", "A1", "<input2>", "Q2", "<output2>", "A2", "<input3>", "Q3", "<output3>", "A3").Replace(string(src))
	if got != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, want)
	}

	// The fragment, added to a spec, loads, and its settings use the
	// templates, the system message, the stop sequence and the draws.
	frag, err := os.ReadFile(res.Fragment)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Rename(out, filepath.Join(dir, "prompts")); err != nil {
		t.Fatal(err)
	}
	specSrc := `generators: g: {
	provider: openai: api_key_env: "OPENAI_API_KEY"
	model: "gpt-4o-mini-2024-07-18"
	price: {input: 0.15, output: 0.60}
}
` + string(frag)
	if err := os.WriteFile(filepath.Join(dir, "agora.cue"), []byte(specSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	exp, err := spec.Load(filepath.Join(dir, "agora.cue"))
	if err != nil {
		t.Fatalf("%v\n%s", err, specSrc)
	}
	ig := exp.Settings["if-ig"]
	if ig.Prompt.File != "prompts/if-ig.tmpl" || ig.Prompt.System != res.System || !reflect.DeepEqual(ig.Prompt.Stop, []string{"[END]"}) ||
		!reflect.DeepEqual(ig.Prompt.Openings, byName["if-ig"].Openings) || ig.Domain != spec.DomainInstruction || ig.Method != spec.MethodInstance {
		t.Fatalf("if-ig prompt %+v", ig.Prompt)
	}
	// A request of the imported setting: the system message, then the
	// authors' prompt with a drawn theme and opening (agora's rendering
	// drops a value's trailing white space: "Tell me " shows as "Tell me").
	itpl, err := spec.MetaPrompt(ig, spec.VariantFile)
	if err != nil {
		t.Fatal(err)
	}
	task := &generation.Task{Domain: ig.Domain, Method: ig.Method, Variant: spec.VariantFile, Template: itpl, Seed: 1, Instances: 4,
		Seeds:  []generation.SeedItem{{ID: "a", Instruction: "Qa", Response: "Ra"}, {ID: "b", Instruction: "Qb", Response: "Rb"}, {ID: "c", Instruction: "Qc", Response: "Rc"}},
		System: ig.Prompt.System, Topics: ig.Prompt.Topics, Openings: ig.Prompt.Openings}
	req, err := task.Request(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Messages) != 2 || req.Messages[0].Content != res.System {
		t.Fatalf("messages %+v", req.Messages)
	}
	user := req.Messages[1].Content
	if !strings.Contains(user, "on the theme "+req.Topic+" and") || !strings.Contains(user, `start with the words "`+strings.TrimSpace(req.Opening)+`"`) {
		t.Errorf("theme %q or opening %q not in:\n%s", req.Topic, req.Opening, user)
	}
	// A completion in the authors' format parses.
	if _, err := task.Result(req, generation.Completion{Text: "Tell me about roses.\nOUTPUT: Roses are shrubs.\n", FinishReason: "stop"}); err != nil {
		t.Errorf("a completion in the format: %v", err)
	}
}

func TestImportRefusesOverwrite(t *testing.T) {
	out := t.TempDir()
	if _, err := Import(Options{Checkout: "testdata/checkout", OutDir: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(Options{Checkout: "testdata/checkout", OutDir: out}); err == nil || !strings.Contains(err.Error(), "use -force") {
		t.Fatalf("second import: %v", err)
	}
	if _, err := Import(Options{Checkout: "testdata/checkout", OutDir: out, Force: true}); err != nil {
		t.Fatal(err)
	}
}

func TestImportNotACheckout(t *testing.T) {
	_, err := Import(Options{Checkout: t.TempDir(), OutDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "none of the authors' prompt files") {
		t.Fatalf("err %v", err)
	}
	if _, err := Import(Options{Checkout: "testdata/nothing-here", OutDir: t.TempDir()}); err == nil {
		t.Fatal("a missing checkout imported")
	}
}

func TestConvertErrors(t *testing.T) {
	cases := []struct{ method, text, want string }{
		{spec.MethodInstance, "Demos:\nINPUT: <input1>\nOUTPUT: <output4>\n", "f.txt:3:9: <output4>: agora shows 3 demonstrations, numbered 1 to 3"},
		{spec.MethodResponse, "Answer <input>\nlike <output1>\n", "f.txt:2:6: <output1>: a demonstration placeholder in a response_generation prompt"},
		{spec.MethodResponse, "Answer <input>, then <output>\n", "f.txt:1:22: <output>: the answer to improve, in a response_generation prompt"},
		{spec.MethodInstance, "New one please: <input>\n", "f.txt:1:17: <input>: the item to answer in an instance-generation prompt, which has demonstrations instead"},
		{spec.MethodQuality, "Fix <input> only\n", "f.txt: a quality_enhancement prompt needs the answer (<output>), which the file has no placeholder for"},
		{spec.MethodResponse, "x\n  {{ y }} <input>\n", `f.txt:2:3: "{{" would open a template action in agora's templates`},
	}
	for _, c := range cases {
		_, err := Convert("f.txt", c.text, c.method)
		var e *Error
		if !errors.As(err, &e) || err.Error() != c.want {
			t.Errorf("Convert(%q) = %v, want %s", c.text, err, c.want)
		}
	}
	// Placeholders of the prompt's own text stay.
	got, err := Convert("f.txt", "Q: <input>\nA: <output>\nWrite <revised_answer> after Revised Answer:\n", spec.MethodQuality)
	if err != nil || got != "Q: {{.Instruction}}\nA: {{.Response}}\nWrite <revised_answer> after Revised Answer:\n" {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestScriptErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "run.py")
	os.WriteFile(p, []byte("x = 1\nmath_themes = [\n    \"Algebra\",\n    \"Geometry\n]\n"), 0o644)
	_, err := readScript(p)
	if err == nil || err.Error() != p+":4:5: unterminated string literal" {
		t.Errorf("err %v", err)
	}
	os.WriteFile(p, []byte("system_message = build()\n"), 0o644)
	if _, err := readScript(p); err == nil || err.Error() != p+":1:18: want a string literal" {
		t.Errorf("err %v", err)
	}
}
