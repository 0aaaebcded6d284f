package generation

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agorabench/agora/prompts"
)

var (
	allDomains  = []string{DomainMath, DomainCode, DomainInstruction}
	allMethods  = []string{MethodInstance, MethodResponse, MethodQuality}
	allVariants = []string{VariantFreeForm, VariantJSON, VariantFile}
)

// testSeeds returns n seed items for a domain, each valid as a
// demonstration.
func testSeeds(domain string, n int) []SeedItem {
	items := make([]SeedItem, n)
	for i := range items {
		id := fmt.Sprintf("seed-%02d", i)
		switch domain {
		case DomainMath:
			items[i] = SeedItem{id,
				fmt.Sprintf("Tom has %d apples and buys %d more. What is $\\frac{1}{2}$ of his apples?", 2*i, 2*i+4),
				fmt.Sprintf("He has $%d + %d = %d$ apples, half of which is $%d$.\n[RESULT] %d [/RESULT]", 2*i, 2*i+4, 4*i+4, 2*i+2, 2*i+2)}
		case DomainCode:
			items[i] = SeedItem{id,
				fmt.Sprintf("Write a function `add_%d(x)` that returns x plus %d.", i, i),
				fmt.Sprintf("```python\ndef add_%d(x):\n    return x + %d\n```", i, i)}
		default:
			items[i] = SeedItem{id,
				fmt.Sprintf("Write a limerick about the number %d.", i),
				fmt.Sprintf("There once was a number, %d,\nwho rhymed with a lot of things ... done.", i)}
		}
	}
	return items
}

// newTask returns a task on a built-in template; variant "file" parses the
// free-form built-in (or, with jsonFile, the json one) as a user template.
func newTask(tb testing.TB, domain, method, variant string, seeds int) *Task {
	tb.Helper()
	v := variant
	if v == VariantFile {
		v = VariantFreeForm
	}
	tpl, err := prompts.Builtin(domain, method, v)
	if err != nil {
		tb.Fatal(err)
	}
	if variant == VariantFile {
		if tpl, err = prompts.Parse("my-prompt.tmpl", tpl.Text); err != nil {
			tb.Fatal(err)
		}
	}
	return &Task{Domain: domain, Method: method, Variant: variant, Template: tpl, Seed: 42, Seeds: testSeeds(domain, seeds), Instances: 200}
}

func forEachCombo(t *testing.T, f func(t *testing.T, task *Task)) {
	for _, d := range allDomains {
		for _, m := range allMethods {
			for _, v := range allVariants {
				t.Run(d+"."+m+"."+v, func(t *testing.T) { f(t, newTask(t, d, m, v, 10)) })
			}
		}
	}
}

func mustRequest(tb testing.TB, task *Task, slot, attempt int) Request {
	tb.Helper()
	req, err := task.Request(slot, attempt)
	if err != nil {
		tb.Fatalf("Request(%d, %d): %v", slot, attempt, err)
	}
	return req
}

func TestRequestDeterministic(t *testing.T) {
	forEachCombo(t, func(t *testing.T, task *Task) {
		type key struct{ slot, attempt int }
		var keys []key
		for s := range 40 {
			for a := 1; a <= 3; a++ {
				keys = append(keys, key{s, a})
			}
		}
		forward := map[key]Request{}
		for _, k := range keys {
			forward[k] = mustRequest(t, task, k.slot, k.attempt)
		}
		// Reverse order, and a fresh but equal task.
		again := *task
		again.Seeds = slices.Clone(task.Seeds)
		for i := len(keys) - 1; i >= 0; i-- {
			k := keys[i]
			if got := mustRequest(t, &again, k.slot, k.attempt); !reflect.DeepEqual(got, forward[k]) {
				t.Fatalf("slot %d attempt %d differs in reverse order", k.slot, k.attempt)
			}
		}
		// Concurrently.
		var wg sync.WaitGroup
		errs := make(chan string, len(keys))
		for _, k := range keys {
			wg.Go(func() {
				got, err := task.Request(k.slot, k.attempt)
				if err != nil || !reflect.DeepEqual(got, forward[k]) {
					errs <- fmt.Sprintf("slot %d attempt %d differs under concurrency (%v)", k.slot, k.attempt, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatal(e)
		}
		req := forward[key{7, 2}]
		if req.Slot != 7 || req.Attempt != 2 || len(req.Messages) != 1 || req.Messages[0].Role != "user" || req.Messages[0].Content == "" {
			t.Fatalf("bad request shape: %+v", req)
		}
	})
}

func TestRequestVaries(t *testing.T) {
	forEachCombo(t, func(t *testing.T, task *Task) {
		distinctSlots := map[string]bool{}
		for s := range 50 {
			distinctSlots[mustRequest(t, task, s, 1).Messages[0].Content] = true
		}
		r1, r2 := mustRequest(t, task, 3, 1), mustRequest(t, task, 3, 2)
		switch task.Method {
		case MethodInstance:
			if len(distinctSlots) < 48 {
				t.Errorf("only %d distinct prompts over 50 slots", len(distinctSlots))
			}
			if r1.Messages[0].Content == r2.Messages[0].Content {
				t.Error("attempts 1 and 2 of slot 3 have the same prompt")
			}
			if r1.SeedItemID != "" || len(r1.Demonstrations) != NumDemonstrations || r1.Topic == "" {
				t.Errorf("instance-generation request: %+v", r1)
			}
			if (r1.Opening != "") != (task.Domain == DomainInstruction) {
				t.Errorf("opening %q in domain %s", r1.Opening, task.Domain)
			}
		default:
			// One prompt per seed item, the same for every attempt.
			if len(distinctSlots) != len(task.Seeds) {
				t.Errorf("%d distinct prompts over 50 slots, want %d", len(distinctSlots), len(task.Seeds))
			}
			if r1.Messages[0].Content != r2.Messages[0].Content {
				t.Error("attempts of the same slot differ")
			}
			for s := range 25 {
				req := mustRequest(t, task, s, 1)
				item := task.Seeds[s%len(task.Seeds)]
				if req.SeedItemID != item.ID || req.Demonstrations != nil || req.Topic != "" {
					t.Fatalf("slot %d: %+v, want seed %s", s, req, item.ID)
				}
				prompt := req.Messages[0].Content
				if !strings.Contains(prompt, jsonish(task, item.Instruction)) {
					t.Fatalf("slot %d: prompt lacks the seed instruction", s)
				}
				if task.Method == MethodQuality && !strings.Contains(prompt, jsonish(task, item.Response)) {
					t.Fatalf("slot %d: prompt lacks the seed response", s)
				}
				if task.Method == MethodResponse && strings.Contains(prompt, jsonish(task, item.Response)) {
					t.Fatalf("slot %d: response-generation prompt shows the seed response", s)
				}
			}
		}
	})
}

// jsonish is s as it appears in the task's prompt.
func jsonish(task *Task, s string) string {
	if task.Variant == VariantJSON {
		return strings.Trim(fmt.Sprintf("%q", s), `"`)
	}
	return s
}

func TestDemonstrationSampling(t *testing.T) {
	for _, d := range allDomains {
		t.Run(d, func(t *testing.T) {
			task := newTask(t, d, MethodInstance, VariantFreeForm, 10)
			task.Instances = 3000
			counts := map[string]int{}
			topics := map[string]int{}
			for s := range task.Instances {
				req := mustRequest(t, task, s, 1+s%4)
				if len(req.Demonstrations) != 3 {
					t.Fatalf("slot %d: %d demonstrations", s, len(req.Demonstrations))
				}
				seen := map[string]bool{}
				for _, id := range req.Demonstrations {
					if seen[id] {
						t.Fatalf("slot %d: demonstration %s drawn twice: %v", s, id, req.Demonstrations)
					}
					seen[id] = true
					counts[id]++
				}
				topics[req.Topic]++
				// The demonstrations shown are the ones reported, in order.
				prompt := req.Messages[0].Content
				last := -1
				for _, id := range req.Demonstrations {
					i := strings.Index(prompt, task.Seeds[idIndex(task, id)].Instruction)
					if i <= last {
						t.Fatalf("slot %d: demonstration %s missing or out of order", s, id)
					}
					last = i
				}
			}
			// 9000 draws over 10 items: 900 each expected.
			for _, it := range task.Seeds {
				if c := counts[it.ID]; c < 750 || c > 1050 {
					t.Errorf("seed %s drawn %d times of 9000, want about 900", it.ID, c)
				}
			}
			all := prompts.Topics(d)
			if len(topics) != len(all) {
				t.Errorf("%d of %d topics drawn in 3000 requests", len(topics), len(all))
			}
		})
	}

	// Small seed sets: every item once, in every order.
	for _, n := range []int{1, 2, 3} {
		task := newTask(t, DomainMath, MethodInstance, VariantJSON, n)
		orders := map[string]bool{}
		for s := range 100 {
			req := mustRequest(t, task, s, 1)
			got := slices.Clone(req.Demonstrations)
			orders[strings.Join(got, ",")] = true
			slices.Sort(got)
			want := make([]string, n)
			for i := range want {
				want[i] = task.Seeds[i].ID
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%d seeds, slot %d: demonstrations %v", n, s, req.Demonstrations)
			}
		}
		if wantOrders := []int{1, 1, 2, 6}[n]; len(orders) != wantOrders {
			t.Errorf("%d seeds: %d demonstration orders seen, want %d", n, len(orders), wantOrders)
		}
	}
}

func idIndex(task *Task, id string) int {
	return slices.IndexFunc(task.Seeds, func(it SeedItem) bool { return it.ID == id })
}

func TestRequestSeedDependence(t *testing.T) {
	a := newTask(t, DomainCode, MethodInstance, VariantFreeForm, 10)
	b := newTask(t, DomainCode, MethodInstance, VariantFreeForm, 10)
	b.Seed = 43
	same := 0
	for s := range 50 {
		if reflect.DeepEqual(mustRequest(t, a, s, 1), mustRequest(t, b, s, 1)) {
			same++
		}
	}
	if same > 2 {
		t.Errorf("seeds 42 and 43 give %d identical requests of 50", same)
	}
}

func TestRequestErrors(t *testing.T) {
	good := newTask(t, DomainMath, MethodInstance, VariantFreeForm, 5)
	tests := []struct {
		name          string
		edit          func(*Task)
		slot, attempt int
		want          string
	}{
		{"slot negative", nil, -1, 1, "slot -1 out of range"},
		{"slot too large", nil, 200, 1, "slot 200 out of range"},
		{"attempt zero", nil, 0, 0, "attempts count from 1"},
		{"no template", func(t *Task) { t.Template = nil }, 0, 1, "no template"},
		{"no seeds", func(t *Task) { t.Seeds = nil }, 0, 1, "no seed data"},
		{"no instances", func(t *Task) { t.Instances = 0 }, 0, 1, "wants 0 instances"},
		{"bad domain", func(t *Task) { t.Domain = "poetry" }, 0, 1, `unknown domain "poetry"`},
		{"bad method", func(t *Task) { t.Method = "distillation" }, 0, 1, `unknown method`},
		{"bad variant", func(t *Task) { t.Variant = "yaml" }, 0, 1, `unknown variant`},
		{"blank demonstration", func(t *Task) {
			t.Seeds = []SeedItem{{"a", "q", ""}, {"b", "q", ""}, {"c", "q", ""}}
		}, 0, 1, "missing required slot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := *good
			if tc.edit != nil {
				tc.edit(&task)
			}
			_, err := task.Request(tc.slot, tc.attempt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "generation: ") {
				t.Errorf("err %q lacks the package prefix", err)
			}
		})
	}
	var nilTask *Task
	if _, err := nilTask.Request(0, 1); err == nil {
		t.Error("nil task: no error")
	}
}

func TestExampleCompletionValid(t *testing.T) {
	forEachCombo(t, func(t *testing.T, task *Task) {
		seen := map[Instance]bool{}
		for s := range 12 {
			for n := range 6 {
				req := mustRequest(t, task, s, 1+n%2)
				text := ExampleCompletion(task, req, 100*s+n)
				inst, err := task.Result(req, Completion{Text: text, FinishReason: "stop"})
				if err != nil {
					t.Fatalf("slot %d n %d: %v\n%s", s, n, err, text)
				}
				if seen[inst] {
					t.Fatalf("slot %d n %d: instance repeated: %+v", s, n, inst)
				}
				seen[inst] = true
				if task.Method == MethodResponse && inst.Instruction != task.Seeds[s%len(task.Seeds)].Instruction {
					t.Fatalf("response generation changed the instruction to %q", inst.Instruction)
				}
				if req.Opening != "" && task.Method == MethodInstance && !strings.HasPrefix(inst.Instruction, req.Opening) {
					t.Fatalf("instruction %q does not begin with the opening %q", inst.Instruction, req.Opening)
				}
			}
		}
	})
	if ExampleCompletion(nil, Request{}, 0) != "" {
		t.Error("nil task: non-empty example")
	}
}

func TestFileVariantFormat(t *testing.T) {
	for _, m := range allMethods {
		free := newTask(t, DomainCode, m, VariantFile, 3)
		if free.jsonFormat() {
			t.Errorf("%s: free-form file template taken for JSON", m)
		}
		tpl, _ := prompts.Builtin(DomainCode, m, VariantJSON)
		tpl, err := prompts.Parse("mine.tmpl", tpl.Text)
		if err != nil {
			t.Fatal(err)
		}
		js := &Task{Domain: DomainCode, Method: m, Variant: VariantFile, Template: tpl, Seeds: testSeeds(DomainCode, 3), Instances: 3}
		if !js.jsonFormat() {
			t.Errorf("%s: JSON file template taken for free-form", m)
		}
		req := mustRequest(t, js, 1, 1)
		if _, err := js.Result(req, Completion{Text: ExampleCompletion(js, req, 0), FinishReason: "stop"}); err != nil {
			t.Errorf("%s: JSON file template: %v", m, err)
		}
	}
}

// A system message comes first; the meta-prompt is unchanged by it.
func TestRequestSystemMessage(t *testing.T) {
	task := newTask(t, DomainMath, MethodInstance, VariantFreeForm, 5)
	plain := mustRequest(t, task, 3, 1)
	task.System = "You generate data."
	req := mustRequest(t, task, 3, 1)
	if len(req.Messages) != 2 || req.Messages[0] != (Message{Role: "system", Content: "You generate data."}) {
		t.Fatalf("messages %+v, want the system message first", req.Messages)
	}
	if req.Messages[1] != plain.Messages[0] || len(plain.Messages) != 1 {
		t.Errorf("user message changed by the system message: %+v vs %+v", req.Messages[1], plain.Messages)
	}
}

// The multi-language prompt draws a language from the task's list for
// every request, and with Fixing about half fixing tasks; the same slot
// and attempt always draw the same.
func TestRequestLanguages(t *testing.T) {
	for _, variant := range []string{VariantFreeForm, VariantJSON} {
		tpl, err := prompts.Multilingual(variant)
		if err != nil {
			t.Fatal(err)
		}
		task := &Task{Domain: DomainCode, Method: MethodInstance, Variant: variant, Template: tpl, Seed: 7,
			Seeds: testSeeds(DomainCode, 5), Instances: 400, Languages: []string{"Go", "Rust", "C"}, Fixing: true}
		langs, fixing := map[string]int{}, 0
		for slot := range task.Instances {
			req := mustRequest(t, task, slot, 1)
			langs[req.Language]++
			text := req.Messages[len(req.Messages)-1].Content
			if !strings.Contains(text, "Language: "+req.Language+"\n") {
				t.Fatalf("slot %d: language %q not in the prompt", slot, req.Language)
			}
			if req.Fixing {
				fixing++
				if !strings.Contains(text, "fixing task") {
					t.Fatalf("slot %d: a fixing draw without the fixing wording", slot)
				}
			} else if strings.Contains(text, "This is a fixing task") {
				t.Fatalf("slot %d: fixing wording in an implementation task", slot)
			}
			if again := mustRequest(t, task, slot, 1); again.Language != req.Language || again.Fixing != req.Fixing {
				t.Fatalf("slot %d: a second Request drew %s/%v, the first %s/%v", slot, again.Language, again.Fixing, req.Language, req.Fixing)
			}
		}
		if len(langs) != 3 || langs["Go"] < 80 || langs["Rust"] < 80 || langs["C"] < 80 {
			t.Errorf("%s: languages drawn %v, want each of the three about a third of 400", variant, langs)
		}
		if fixing < 150 || fixing > 250 {
			t.Errorf("%s: %d fixing tasks of 400, want about half", variant, fixing)
		}
		// Without Fixing, never a fixing task; without languages, the default list.
		task.Fixing, task.Languages = false, nil
		for slot := range 50 {
			req := mustRequest(t, task, slot, 1)
			if req.Fixing || !slices.Contains(prompts.CodeLanguages(), req.Language) {
				t.Fatalf("slot %d: %+v", slot, req)
			}
		}
	}
}

// A task's own topics and openings replace agora's.
func TestRequestOwnTopicsAndOpenings(t *testing.T) {
	task := newTask(t, DomainInstruction, MethodInstance, VariantFreeForm, 5)
	task.Topics, task.Openings = []string{"Sailing", "Knots"}, []string{"Tell me "}
	seen := map[string]bool{}
	for slot := range 40 {
		req := mustRequest(t, task, slot, 1)
		if !slices.Contains(task.Topics, req.Topic) || req.Opening != "Tell me " {
			t.Fatalf("slot %d drew %q, %q", slot, req.Topic, req.Opening)
		}
		seen[req.Topic] = true
	}
	if len(seen) != 2 {
		t.Errorf("topics drawn %v, want both", seen)
	}
}
