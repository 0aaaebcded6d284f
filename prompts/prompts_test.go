package prompts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// sampleDemos returns realistic demonstrations for a domain.
func sampleDemos(domain string) []Example {
	switch domain {
	case "math":
		return []Example{
			{"Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
				"In May she sold $48 / 2 = 24$ clips.\nAltogether she sold $48 + 24 = 72$ clips.\n[RESULT] 72 [/RESULT]"},
			{"What is the sum of all values of $y$ for which $\\frac{y+6}{y^2-5y+4}$ is undefined?",
				"The expression is undefined when $y^2-5y+4=0$. By Vieta's formulas the sum of the roots is $5$.\n[RESULT] 5 [/RESULT]"},
			{"A rectangle has perimeter 30 and area 54. What is the length of its longer side?",
				"Let the sides be $a \\ge b$. Then $a+b=15$ and $ab=54$, so $a$ and $b$ are the roots of $t^2-15t+54=0$, namely $9$ and $6$.\n[RESULT] 9 [/RESULT]"},
		}
	case "code":
		return []Example{
			{"Write a function `remove_odd(nums)` that returns a new list with the odd numbers removed.\nassert remove_odd([1, 2, 3]) == [2]",
				"```python\ndef remove_odd(nums):\n    return [n for n in nums if n % 2 == 0]\n```"},
			{"Write a function `count_chars(s)` that returns a dict mapping each character of s to its count.",
				"```python\nfrom collections import Counter\n\ndef count_chars(s):\n    return dict(Counter(s))\n```"},
			{"Write a function `render(name)` that returns the Jinja snippet \"{{ name }}\" with name substituted for the word name.",
				"```python\ndef render(name):\n    return \"{{ \" + name + \" }}\"\n```"},
		}
	default:
		return []Example{
			{"Can you give me three tips for sleeping better?", "1. Keep a regular schedule.\n2. Avoid screens before bed.\n3. Keep the bedroom cool and dark."},
			{"Write a haiku about autumn rain.", "Cold rain on the roofs\nred leaves slide down the gutter\nthe kettle whistles"},
			{"Explain what an API is to a ten-year-old.", "An API is like a waiter in a restaurant: you tell it what you want, it tells the kitchen, and it brings back your food."},
		}
	}
}

func sampleInput(domain, method string) Input {
	switch method {
	case "instance_generation":
		in := Input{Demonstrations: sampleDemos(domain), Topic: Topics(domain)[3]}
		if domain == "instruction_following" {
			in.Opening = Openings()[5]
		}
		return in
	case "response_generation":
		switch domain {
		case "math":
			return Input{Instruction: "Find all real $x$ such that $\\sqrt{x+3} = x - 3$."}
		case "code":
			return Input{Instruction: "Write a Go function that reverses a slice of ints in place, and a Python template using {{ user.name }}."}
		}
		return Input{Instruction: "Draft a polite email asking my landlord to fix a leaking tap."}
	default:
		switch domain {
		case "math":
			return Input{Instruction: "what is 15% of 80?? thx", Response: "its 12"}
		case "code":
			return Input{Instruction: "python convert list of str to int", Response: "[int(x) for x in lst]"}
		}
		return Input{Instruction: "how do i undo git commit", Response: "git reset HEAD~ &lt;- this"}
	}
}

func wantFields(domain, method string) []string {
	switch method {
	case "instance_generation":
		if domain == "instruction_following" {
			return []string{"Demonstrations", "Opening", "Topic"}
		}
		return []string{"Demonstrations", "Topic"}
	case "response_generation":
		return []string{"Instruction"}
	}
	return []string{"Instruction", "Response"}
}

func split(name string) (domain, method, variant string) {
	p := strings.Split(name, ".")
	return p[0], p[1], p[2]
}

func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	// The templates encode without HTML escaping.
	r := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&")
	return r.Replace(string(b))
}

var placeholderRE = regexp.MustCompile(`\{\{|\}\}|<no value>|\{[a-z_]+\}`)

func TestNames(t *testing.T) {
	names := Names()
	if len(names) != 18 {
		t.Fatalf("Names() has %d entries, want 18", len(names))
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("Names() not sorted: %v", names)
	}
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("Names() has duplicates: %v", names)
	}
	// Every embedded file is a built-in and every built-in has a file.
	files, err := fs.Glob(templateFS, "templates/*.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	var fromFiles []string
	for _, f := range files {
		fromFiles = append(fromFiles, strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".tmpl"))
	}
	sort.Strings(fromFiles)
	if !slices.Equal(fromFiles, names) {
		t.Errorf("embedded files %v != Names() %v", fromFiles, names)
	}
}

func TestBuiltinsRender(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			domain, method, variant := split(name)
			tm, err := Builtin(domain, method, variant)
			if err != nil {
				t.Fatalf("Builtin: %v", err)
			}
			if tm.Name != name {
				t.Errorf("Name = %q, want %q", tm.Name, name)
			}
			if got, want := tm.Fields(), wantFields(domain, method); !slices.Equal(got, want) {
				t.Errorf("Fields() = %v, want %v", got, want)
			}
			in := sampleInput(domain, method)
			out, err := tm.Render(in)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}

			// No placeholder survives, except what the input itself carries.
			check := out
			for _, v := range []string{in.Instruction, in.Response, jsonString(t, in.Instruction), jsonString(t, in.Response)} {
				if v != "" && v != `""` {
					check = strings.ReplaceAll(check, v, "")
				}
			}
			for _, d := range in.Demonstrations {
				for _, v := range []string{d.Instruction, d.Response, jsonString(t, d.Instruction), jsonString(t, d.Response)} {
					check = strings.ReplaceAll(check, v, "")
				}
			}
			if m := placeholderRE.FindString(check); m != "" {
				t.Errorf("rendered text has leftover placeholder %q", m)
			}

			mustContain := func(subs ...string) {
				t.Helper()
				for _, s := range subs {
					if !strings.Contains(out, s) {
						t.Errorf("rendered text lacks %q", s)
					}
				}
			}
			lower := strings.ToLower(out)
			for _, section := range []string{"# general guidelines", "# input requirements", "# output requirements", "# format requirements"} {
				if !strings.Contains(lower, section) {
					t.Errorf("rendered text lacks the section %q", section)
				}
			}

			switch variant {
			case "free-form":
				switch method {
				case "quality_enhancement":
					mustContain("Revised Question:", "Revised Answer:", "[END]")
				default:
					mustContain("INPUT:", "OUTPUT:", "[END]")
				}
				// The prompt ends with the open slot for the generator.
				slot := map[string]string{
					"instance_generation": "INPUT:",
					"response_generation": "OUTPUT:",
					"quality_enhancement": "Revised Question:",
				}[method]
				if !strings.HasSuffix(strings.TrimSpace(out), "\n"+slot) {
					t.Errorf("free-form prompt does not end with the open slot %q:\n...%s", slot, out[max(0, len(out)-200):])
				}
			case "json":
				mustContain("JSON object", `"instruction"`, `"response"`)
				if strings.Contains(out, "[END]") {
					t.Errorf("json prompt mentions the free-form end marker [END]")
				}
				// Every JSON line in the prompt (demonstrations, the inputs) is valid
				// JSON whose values round-trip to the inputs.
				var objs []map[string]string
				for _, line := range strings.Split(out, "\n") {
					if !strings.HasPrefix(line, `{"instruction":`) {
						continue
					}
					var m map[string]string
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("invalid JSON line %q: %v", line, err)
					}
					objs = append(objs, m)
				}
				switch method {
				case "instance_generation":
					if len(objs) != len(in.Demonstrations) {
						t.Fatalf("%d JSON demonstrations, want %d", len(objs), len(in.Demonstrations))
					}
					for i, d := range in.Demonstrations {
						if objs[i]["instruction"] != d.Instruction || objs[i]["response"] != d.Response {
							t.Errorf("demonstration %d does not round-trip: %v", i, objs[i])
						}
					}
				default:
					if len(objs) != 1 || objs[0]["instruction"] != in.Instruction || objs[0]["response"] != in.Response {
						t.Errorf("input object does not round-trip: %v", objs)
					}
				}
			}

			switch domain {
			case "math":
				mustContain("[RESULT]", "[/RESULT]")
			case "code":
				mustContain("```")
				if method == "quality_enhancement" {
					mustContain("assert")
				} else if !strings.Contains(out, "no tests") {
					t.Errorf("code prompt does not forbid tests")
				}
			}

			switch method {
			case "instance_generation":
				mustContain(in.Topic, "NEW")
				if domain == "instruction_following" {
					mustContain(in.Opening)
				}
				if variant == "free-form" {
					for _, d := range in.Demonstrations {
						mustContain("INPUT:\n" + d.Instruction + "\n\nOUTPUT:\n" + d.Response + "\n\n[END]")
					}
				}
			case "response_generation":
				if variant == "free-form" {
					mustContain("INPUT:\n" + in.Instruction + "\n\nOUTPUT:")
				}
			case "quality_enhancement":
				if !strings.Contains(lower, "change only when you are confident") {
					t.Errorf("quality enhancement prompt lacks the change-only-when-confident rule")
				}
				if variant == "free-form" {
					mustContain("Question:\n"+in.Instruction+"\n", "Answer:\n"+in.Response+"\n")
				}
			}
		})
	}
}

func TestBuiltinErrors(t *testing.T) {
	cases := []struct {
		d, m, v string
		want    []string
	}{
		{"physics", "instance_generation", "free-form", []string{"unknown domain", `"physics"`, "code, instruction_following, math"}},
		{"math", "distillation", "free-form", []string{"unknown method", "instance_generation, quality_enhancement, response_generation"}},
		{"math", "instance_generation", "yaml", []string{"unknown variant", "free-form, json"}},
		{"Math", "instance_generation", "json", []string{"unknown domain"}},
	}
	for _, c := range cases {
		tm, err := Builtin(c.d, c.m, c.v)
		if err == nil {
			t.Errorf("Builtin(%q, %q, %q) = %v, want error", c.d, c.m, c.v, tm.Name)
			continue
		}
		msg := err.Error()
		if msg != strings.ToLower(msg[:1])+msg[1:] || !strings.HasPrefix(msg, "prompts: ") {
			t.Errorf("error %q should be lowercase and start with \"prompts: \"", msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("error %q lacks %q", msg, w)
			}
		}
	}
}

func TestDigests(t *testing.T) {
	seen := map[string]string{}
	for _, name := range Names() {
		d, m, v := split(name)
		a, err := Builtin(d, m, v)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Builtin(d, m, v)
		if a.Digest() != b.Digest() || a.Digest() != a.Digest() {
			t.Errorf("%s: digest not stable", name)
		}
		sum := sha256.Sum256([]byte(a.Text))
		if want := "sha256:" + hex.EncodeToString(sum[:]); a.Digest() != want {
			t.Errorf("%s: Digest() = %s, want %s", name, a.Digest(), want)
		}
		if other, dup := seen[a.Digest()]; dup {
			t.Errorf("%s and %s share digest %s", name, other, a.Digest())
		}
		seen[a.Digest()] = name
	}
	// A fixed text has a fixed digest.
	tm, err := Parse("hello.tmpl", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tm.Digest(), "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"; got != want {
		t.Errorf("Digest() = %s, want %s", got, want)
	}
}

func TestBuiltinReturnsIndependentCopies(t *testing.T) {
	a, _ := Builtin("math", "response_generation", "free-form")
	a.Name = "changed"
	b, _ := Builtin("math", "response_generation", "free-form")
	if b.Name != "math.response_generation.free-form" {
		t.Errorf("mutating one Builtin result changed another: %q", b.Name)
	}
}

func TestRenderMissingSlots(t *testing.T) {
	for _, name := range Names() {
		d, m, v := split(name)
		tm, err := Builtin(d, m, v)
		if err != nil {
			t.Fatal(err)
		}
		full := sampleInput(d, m)
		for _, field := range tm.Fields() {
			in := full
			in.Demonstrations = slices.Clone(full.Demonstrations)
			switch field {
			case "Demonstrations":
				in.Demonstrations = nil
			case "Topic":
				in.Topic = "  "
			case "Opening":
				in.Opening = ""
			case "Instruction":
				in.Instruction = "\n\t"
			case "Response":
				in.Response = ""
			}
			_, err := tm.Render(in)
			if !errors.Is(err, ErrMissingSlot) {
				t.Errorf("%s with empty %s: err = %v, want ErrMissingSlot", name, field, err)
				continue
			}
			if !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: error %q should name the template and the field %s", name, err, field)
			}
		}
		if m == "instance_generation" {
			in := full
			in.Demonstrations = slices.Clone(full.Demonstrations)
			in.Demonstrations[1].Response = " "
			_, err := tm.Render(in)
			if !errors.Is(err, ErrMissingSlot) || !strings.Contains(err.Error(), "Demonstrations[1].Response") {
				t.Errorf("%s with an empty demonstration response: err = %v", name, err)
			}
		}
	}
	// The caller's input is not modified.
	in := sampleInput("math", "instance_generation")
	in.Demonstrations[0].Instruction += "\n\n"
	before := in.Demonstrations[0].Instruction
	tm, _ := Builtin("math", "instance_generation", "free-form")
	if _, err := tm.Render(in); err != nil {
		t.Fatal(err)
	}
	if in.Demonstrations[0].Instruction != before {
		t.Errorf("Render modified its input")
	}
}

func TestRenderTidiesValues(t *testing.T) {
	tm, err := Parse("t", "[{{.Instruction}}]")
	if err != nil {
		t.Fatal(err)
	}
	out, err := tm.Render(Input{Instruction: "\n  \n    indented code\n  more  \n\n"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[    indented code\n  more]"; out != want {
		t.Errorf("Render = %q, want %q", out, want)
	}
}

func TestRenderLeftoverBraces(t *testing.T) {
	// Braces in the input are data, not leftovers.
	tm, _ := Builtin("code", "response_generation", "free-form")
	out, err := tm.Render(Input{Instruction: "Render {{ user.name }} in a Jinja template."})
	if err != nil {
		t.Fatalf("Render with braces in the input: %v", err)
	}
	if !strings.Contains(out, "{{ user.name }}") {
		t.Errorf("input braces were altered")
	}
	// Braces produced by the template itself are leftovers.
	bad, err := Parse("bad.tmpl", `Solve {{.Instruction}} for {{"{{"}}x}}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Render(Input{Instruction: "2x=4"}); err == nil || !strings.Contains(err.Error(), "leftover") {
		t.Errorf("Render of a template emitting {{: err = %v, want leftover error", err)
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, text string
		unknown    bool   // wraps ErrUnknownField
		want       string // substring of the error
	}{
		{"foo.tmpl", "line one\n  {{.Foo}}\n", true, "foo.tmpl:2:4"},
		{"demo.tmpl", "{{range .Demonstrations}}\n{{.Topic}}{{end}}", true, "demo.tmpl:2:"},
		{"chain.tmpl", "{{.Topic.Length}}", true, `"Length"`},
		{"var.tmpl", "{{$x := .Instruction}}{{$x.Size}}", true, `"Size"`},
		{"dollar.tmpl", "{{range .Demonstrations}}{{$.Nope}}{{end}}", true, `"Nope"`},
		{"with.tmpl", "{{with .Topic}}{{.Name}}{{end}}", true, `"Name"`},
		{"func.tmpl", "{{printf \"%s\" .Prompt}}", true, `"Prompt"`},
		{"syntax.tmpl", "{{.Topic", false, "syntax.tmpl:1"},
		{"func2.tmpl", "{{upper .Topic}}", false, `"upper" not defined`},
		{"empty.tmpl", "  \n", false, "empty"},
		{"undef.tmpl", `{{template "nope" .}}`, false, `"nope"`},
	}
	for _, c := range cases {
		tm, err := Parse(c.name, c.text)
		if err == nil {
			t.Errorf("Parse(%q) succeeded (fields %v), want error", c.text, tm.Fields())
			continue
		}
		if c.unknown != errors.Is(err, ErrUnknownField) {
			t.Errorf("Parse(%q): errors.Is(err, ErrUnknownField) = %v, want %v (err %v)", c.text, !c.unknown, c.unknown, err)
		}
		if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "prompts: ") {
			t.Errorf("Parse(%q): error %q lacks %q", c.text, err, c.want)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	cases := []struct {
		text     string
		fields   []string
		required []string
	}{
		{"{{range .Demonstrations}}{{.Instruction}} -> {{.Response}}{{end}}\n{{.Topic}}", []string{"Demonstrations", "Topic"}, []string{"Demonstrations", "Topic"}},
		{"{{range $i, $d := .Demonstrations}}{{$i}}: {{$d.Instruction}} {{$.Opening}}{{end}}", []string{"Demonstrations", "Opening"}, []string{"Demonstrations", "Opening"}},
		{"{{if .Opening}}Begin with {{.Opening}}.{{end}} {{.Topic}}", []string{"Opening", "Topic"}, []string{"Topic"}},
		{"{{with .Topic}}Topic: {{.}}{{else}}Any topic.{{end}}", []string{"Topic"}, nil},
		{"{{range .Demonstrations}}x{{else}}none{{end}}", []string{"Demonstrations"}, nil},
		{"{{define \"pair\"}}Q: {{.Instruction}} A: {{.Response}}{{end}}{{range .Demonstrations}}{{template \"pair\" .}}{{end}}{{template \"pair\" .}}", []string{"Demonstrations", "Instruction", "Response"}, []string{"Demonstrations", "Instruction", "Response"}},
		{"{{json .Instruction}} {{len .Demonstrations}}", []string{"Demonstrations", "Instruction"}, []string{"Demonstrations", "Instruction"}},
		{"plain text, no fields", []string{}, nil},
	}
	for _, c := range cases {
		tm, err := Parse("user.tmpl", c.text)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.text, err)
			continue
		}
		if got := tm.Fields(); !slices.Equal(got, c.fields) {
			t.Errorf("Parse(%q).Fields() = %v, want %v", c.text, got, c.fields)
		}
		if got := tm.info.required; !slices.Equal(got, c.required) && !(len(got) == 0 && len(c.required) == 0) {
			t.Errorf("Parse(%q) required = %v, want %v", c.text, got, c.required)
		}
	}

	// An optional (guarded) slot may be empty; a required one may not.
	tm, err := Parse("opt.tmpl", "{{if .Opening}}Begin with {{.Opening}}. {{end}}Topic: {{.Topic}}")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tm.Render(Input{Topic: "graphs"}); err != nil || out != "Topic: graphs" {
		t.Errorf("Render without the optional slot = %q, %v", out, err)
	}
	if _, err := tm.Render(Input{Opening: "Write"}); !errors.Is(err, ErrMissingSlot) {
		t.Errorf("Render without the required slot: err = %v", err)
	}
}

func TestZeroTemplate(t *testing.T) {
	var tm Template
	if _, err := tm.Render(Input{Instruction: "x"}); err == nil {
		t.Error("Render of a zero Template succeeded")
	}
}

func TestTopicsAndOpenings(t *testing.T) {
	checkList := func(what string, list []string, min int) {
		t.Helper()
		if len(list) < min {
			t.Errorf("%s: %d entries, want at least %d", what, len(list), min)
		}
		seen := map[string]bool{}
		for _, s := range list {
			key := strings.ToLower(strings.TrimSpace(s))
			if key == "" || s != strings.TrimSpace(s) {
				t.Errorf("%s: blank or untrimmed entry %q", what, s)
			}
			if strings.ContainsAny(s, "{}\n") {
				t.Errorf("%s: entry %q contains braces or a newline", what, s)
			}
			if seen[key] {
				t.Errorf("%s: duplicate %q", what, s)
			}
			seen[key] = true
		}
	}
	for _, d := range []string{"math", "code", "instruction_following"} {
		checkList("Topics("+d+")", Topics(d), 40)
	}
	checkList("Openings()", Openings(), 20)
	if Topics("physics") != nil || Topics("") != nil {
		t.Error("Topics of an unknown domain should be nil")
	}
	// The lists are copies.
	Topics("math")[0] = "mutated"
	Openings()[0] = "mutated"
	if Topics("math")[0] == "mutated" || Openings()[0] == "mutated" {
		t.Error("Topics/Openings expose their backing arrays")
	}
	// Distinct domains have distinct lists.
	if slices.Equal(Topics("math"), Topics("code")) {
		t.Error("math and code topics are identical")
	}
}

func TestConcurrentBuiltin(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := Names()[i%18]
			d, m, v := split(name)
			tm, err := Builtin(d, m, v)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := tm.Render(sampleInput(d, m)); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
}

func BenchmarkParseAllBuiltins(b *testing.B) {
	texts := map[string]string{}
	for _, n := range Names() {
		data, err := templateFS.ReadFile("templates/" + n + ".tmpl")
		if err != nil {
			b.Fatal(err)
		}
		texts[n] = string(data)
	}
	b.ResetTimer()
	for range b.N {
		for n, text := range texts {
			if _, err := Parse(n, text); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkRender(b *testing.B) {
	tm, err := Builtin("math", "instance_generation", "free-form")
	if err != nil {
		b.Fatal(err)
	}
	in := sampleInput("math", "instance_generation")
	b.ResetTimer()
	for range b.N {
		if _, err := tm.Render(in); err != nil {
			b.Fatal(err)
		}
	}
}

// The multi-language code prompts take every slot of code instance
// generation plus the language, and say "fixing" only for a fixing task.
func TestMultilingual(t *testing.T) {
	for _, v := range []string{"free-form", "json"} {
		tm, err := Multilingual(v)
		if err != nil {
			t.Fatal(err)
		}
		if tm.Name != MultilingualName(v) {
			t.Errorf("name %q", tm.Name)
		}
		if got := tm.Fields(); !slices.Equal(got, []string{"Demonstrations", "Fixing", "Language", "Topic"}) {
			t.Errorf("%s: fields %v", v, got)
		}
		in := Input{Demonstrations: []Example{{"Write f.", "```c\nint f(void) { return 1; }\n```"}}, Topic: "graphs", Language: "Rust"}
		impl, err := tm.Render(in)
		if err != nil {
			t.Fatal(err)
		}
		in.Fixing = true
		fix, err := tm.Render(in)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(impl, "fixing task") || !strings.Contains(fix, "This is a fixing task") || !strings.Contains(fix, "Rust") {
			t.Errorf("%s: fixing wording wrong:\n%s\n---\n%s", v, impl, fix)
		}
		if _, err := tm.Render(Input{Demonstrations: in.Demonstrations, Topic: "graphs"}); !errors.Is(err, ErrMissingSlot) {
			t.Errorf("%s: no language: %v, want a missing slot", v, err)
		}
	}
	if _, err := Multilingual("xml"); err == nil {
		t.Error("unknown variant accepted")
	}
}
