package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agorabench/agora/toolchain/toolchaintest"
)

// The tests in this file run the real harnesses from the pinned toolchain
// (toolchaintest), offline, on local data: lm-eval against a stand-in
// OpenAI-compatible model that answers with known texts, and on a tiny
// random-weight model through its hf backend.

// chatStandIn is an OpenAI-compatible chat endpoint whose answer to each
// request is reply(the last user message). It records the request bodies.
type chatStandIn struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
}

func newChatStandIn(t *testing.T, reply func(prompt string) string) *chatStandIn {
	t.Helper()
	return newChatStandInChoice(t, func(prompt string) map[string]any {
		return map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": reply(prompt)}}
	})
}

// newChatStandInChoice is newChatStandIn with the whole choice of each
// answer made by choice.
func newChatStandInChoice(t *testing.T, choice func(prompt string) map[string]any) *chatStandIn {
	t.Helper()
	s := &chatStandIn{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Role    string `json:"role"`
				Content any    `json:"content"`
			} `json:"messages"`
		}
		body := map[string]any{}
		raw, _ := readAll(r)
		if err := json.Unmarshal(raw, &req); err != nil || !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			http.Error(w, "want a chat completion", http.StatusBadRequest)
			return
		}
		_ = json.Unmarshal(raw, &body)
		s.mu.Lock()
		s.bodies = append(s.bodies, body)
		s.mu.Unlock()
		prompt := ""
		for _, m := range req.Messages {
			if m.Role == "user" {
				prompt = fmt.Sprint(m.Content)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-standin", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
			"choices": []any{choice(prompt)},
			"usage":   map[string]any{"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
		})
	}))
	t.Cleanup(s.Close)
	return s
}

func readAll(r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	var b strings.Builder
	_, err := bufio.NewReader(r.Body).WriteTo(&b)
	return []byte(b.String()), err
}

var formTag = regexp.MustCompile(`Form (\d+):`)

// formIndex reads the form number a stand-in prompt carries.
func formIndex(prompt string) int {
	m := formTag.FindStringSubmatch(prompt)
	if m == nil {
		return -1
	}
	i, _ := strconv.Atoi(m[1])
	return i
}

// writeJSONL writes rows as JSON lines.
func writeJSONL(t *testing.T, path string, rows []map[string]string) {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	writeFile(t, path, b.String())
}

// runShell runs a rendered command with bash in dir, failing the test on a
// non-zero exit; it returns the wall time.
func runShell(t *testing.T, dir, command string, env ...string) time.Duration {
	t.Helper()
	start := time.Now()
	c := exec.Command("bash", "-c", command)
	c.Dir = dir
	c.Env = append(os.Environ(), env...)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s\n--- command:\n%s", err, tail(out, 6000), command)
	}
	return time.Since(start)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// samples reads lm-eval's --log_samples file of task under out: per
// document (its field key), per filter, the value of metric.
func samples(t *testing.T, out, task, key, metric string) map[string]map[string]float64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(out, "*", "samples_"+task+"_*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("samples of %s under %s: %v", task, out, files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var s map[string]any
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("samples line %q: %v", line, err)
		}
		doc, _ := s["doc"].(map[string]any)
		k := fmt.Sprint(doc[key])
		filter := fmt.Sprint(s["filter"])
		v, ok := s[metric].(float64)
		if !ok {
			t.Fatalf("sample of %s has no %s: %s", k, metric, line)
		}
		if got[k] == nil {
			got[k] = map[string]float64{}
		}
		got[k][filter] = v
	}
	return got
}

// lmevalDir is the installed lm_eval package.
func lmevalDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(toolchaintest.Python(t), "-c", "import os, lm_eval; print(os.path.dirname(lm_eval.__file__))").Output()
	if err != nil {
		t.Fatalf("find lm_eval: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestMathFormsThroughLMEval has the real lm-eval score fixed answers, one
// per answer form, given by a stand-in model through lm-eval's API-model
// mode and agora's command (APICommandWith), on agora's MATH task read
// from a local file: each form's verdict in lm-eval's samples and the
// score Parse reads must match the hand count.
func TestMathFormsThroughLMEval(t *testing.T) {
	toolchaintest.Offline(t)
	api := newChatStandIn(t, func(prompt string) string {
		if i := formIndex(prompt); i >= 0 && i < len(mathForms) {
			return mathForms[i].response
		}
		return "no such form"
	})
	work := t.TempDir()
	tasks := filepath.Join(work, LMEvalTaskDir)
	if err := WriteLMEvalTasks(tasks); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(work, "math_forms.jsonl")
	var rows []map[string]string
	right := 0
	for i, f := range mathForms {
		rows = append(rows, map[string]string{"problem": fmt.Sprintf("Form %02d: %s", i, f.name), "solution": f.gold})
		if f.agora {
			right++
		}
	}
	writeJSONL(t, data, rows)
	// The real task, its data from the local file instead of the hub.
	writeFile(t, filepath.Join(tasks, "agora_math_forms.yaml"), fmt.Sprintf(
		"include: _agora_math_template\ntask: agora_math_forms\ndataset_path: json\ndataset_name: null\n"+
			"dataset_kwargs:\n  data_files:\n    test: %s\ntraining_split: null\ntest_split: test\n", data))
	o := DefaultOptions()
	o.LMEval["math"] = LMEvalMetric{Task: "agora_math_forms", Metric: "math_verify", Filter: "none"}
	out := filepath.Join(work, "results")
	cmd, err := APICommandWith(LMEval, "math", APIParams{BaseURL: api.URL + "/v1", Model: "stand-in", KeyEnv: "STANDIN_KEY",
		OutputDir: out, TaskDir: tasks, Concurrency: 4}, o)
	if err != nil {
		t.Fatal(err)
	}
	took := runShell(t, work, cmd, "STANDIN_KEY=k")
	t.Logf("lm-eval on %d fixed MATH answers: %v", len(mathForms), took.Round(time.Second))
	got := samples(t, out, "agora_math_forms", "problem", "math_verify")
	for i, f := range mathForms {
		v, ok := got[fmt.Sprintf("Form %02d: %s", i, f.name)]["none"]
		if !ok || (v == 1) != f.agora {
			t.Errorf("form %d %q: lm-eval's math_verify %v (found %v), want %v", i, f.name, v, ok, f.agora)
		}
	}
	s, err := ParseWith(LMEval, "math", out, o)
	if err != nil {
		t.Fatal(err)
	}
	if want := 100 * float64(right) / float64(len(mathForms)); !near(s.Value, want) {
		t.Errorf("math = %v, want %v (%d of %d forms right)", s.Value, want, right, len(mathForms))
	}
	// The paper's decoding reached the model.
	b := api.bodies[0]
	if b["temperature"] != 0.2 || b["top_p"] != 0.95 || b["repetition_penalty"] != 1.03 || b["max_tokens"] != float64(MaxNewTokens) {
		t.Errorf("request decoding: %v", b)
	}
}

// gsmForm is one way a model writes its answer to a GSM8K problem whose
// answer is 12, with the verdicts of GSM8K's two filters.
type gsmForm struct {
	name, response   string
	strict, flexible bool
}

var gsmForms = []gsmForm{
	{"#### N (the few-shot format)", "5 + 7 = 12\n#### 12", true, true},
	{"The answer is N.", "She has 5 + 7 = 12 apples. The answer is 12.", false, true},
	{"[RESULT] N [/RESULT]", "5 + 7 = 12\n[RESULT] 12 [/RESULT]", false, true},
	{"\\boxed{N}", "5 + 7 = 12, so \\boxed{12}", false, true},
	{"Minerva phrasing", "Final Answer: The final answer is $12$. I hope it is correct.", false, true},
	{"N with a unit", "In total she has 12 apples.", false, true},
	{"$N.", "She pays 5 + 7 = 12 dollars in all: $12.", false, true},
	{"N.00", "The answer is 12.00", false, false},
	{"#### N then more numbers", "#### 12\nThat took 3 steps.", true, false},
	{"[RESULT] N [/RESULT] then more numbers", "[RESULT] 12 [/RESULT]\nThat took 3 steps.", false, false},
	{"wrong number", "5 + 7 = 13", false, false},
}

// TestGSM8KFormsThroughLMEval scores the GSM8K answer forms with the real
// lm-eval's gsm8k task (its filters), read from a local file, as
// TestMathFormsThroughLMEval does for MATH.
func TestGSM8KFormsThroughLMEval(t *testing.T) {
	toolchaintest.Offline(t)
	api := newChatStandIn(t, func(prompt string) string {
		if i := formIndex(prompt); i >= 0 && i < len(gsmForms) {
			return gsmForms[i].response
		}
		return "no such form"
	})
	work := t.TempDir()
	tasks := filepath.Join(work, LMEvalTaskDir)
	data := filepath.Join(work, "gsm8k_forms.jsonl")
	var rows []map[string]string
	right := 0
	for i, f := range gsmForms {
		rows = append(rows, map[string]string{"question": fmt.Sprintf("Form %02d: %s", i, f.name),
			"answer": "She has 5 + 7 = <<5+7=12>>12 apples.\n#### 12"})
		if f.flexible {
			right++
		}
	}
	writeJSONL(t, data, rows)
	writeFile(t, filepath.Join(tasks, "gsm8k_forms.yaml"), fmt.Sprintf(
		"include: %s\ntask: gsm8k_forms\ndataset_path: json\ndataset_name: null\n"+
			"dataset_kwargs:\n  data_files:\n    test: %s\ntraining_split: null\nfewshot_split: null\ntest_split: test\n",
		filepath.Join(lmevalDir(t), "tasks", "gsm8k", "gsm8k.yaml"), data))
	o := DefaultOptions()
	m := o.LMEval["gsm8k"]
	m.Task = "gsm8k_forms"
	o.LMEval["gsm8k"] = m
	out := filepath.Join(work, "results")
	cmd, err := APICommandWith(LMEval, "gsm8k", APIParams{BaseURL: api.URL + "/v1", Model: "stand-in", KeyEnv: "STANDIN_KEY",
		OutputDir: out, TaskDir: tasks, Concurrency: 4}, o)
	if err != nil {
		t.Fatal(err)
	}
	took := runShell(t, work, cmd, "STANDIN_KEY=k")
	t.Logf("lm-eval on %d fixed GSM8K answers: %v", len(gsmForms), took.Round(time.Second))
	got := samples(t, out, "gsm8k_forms", "question", "exact_match")
	for i, f := range gsmForms {
		v := got[fmt.Sprintf("Form %02d: %s", i, f.name)]
		if (v["strict-match"] == 1) != f.strict || (v["flexible-extract"] == 1) != f.flexible {
			t.Errorf("form %d %q: strict-match %v, flexible-extract %v; want %v, %v", i, f.name,
				v["strict-match"], v["flexible-extract"], f.strict, f.flexible)
		}
	}
	s, err := ParseWith(LMEval, "gsm8k", out, o)
	if err != nil {
		t.Fatal(err)
	}
	if want := 100 * float64(right) / float64(len(gsmForms)); !near(s.Value, want) {
		t.Errorf("gsm8k = %v, want %v", s.Value, want)
	}
}

// TestLMEvalTinyModel runs the real lm-eval, through agora's command
// (CommandWith, lm-eval's hf backend), on a tiny random-weight Llama made
// offline: a student zero-shot on a GSM8K-shaped task and the base model
// few-shot (minerva_math's four exemplars) on agora's MATH task, both read
// from local files; Parse reads what each run wrote. The model's answers
// are noise: the score is whatever they earn, in [0, 100].
func TestLMEvalTinyModel(t *testing.T) {
	toolchaintest.Offline(t)
	// One thread: a model this small gains nothing from more, and on a
	// busy machine torch's spinning threads double the run's time.
	t.Setenv("OMP_NUM_THREADS", "1")
	model := toolchaintest.TinyModel(t, toolchaintest.Causal)
	work := t.TempDir()
	tasks := filepath.Join(work, LMEvalTaskDir)
	if err := WriteLMEvalTasks(tasks); err != nil {
		t.Fatal(err)
	}
	mathData := filepath.Join(work, "math.jsonl")
	writeJSONL(t, mathData, []map[string]string{
		{"problem": "What is $5+7$?", "solution": "$5+7=\\boxed{12}$."},
		{"problem": "Solve $2x=1$.", "solution": "$x=\\boxed{\\frac{1}{2}}$."},
	})
	writeFile(t, filepath.Join(tasks, "agora_math_local.yaml"), fmt.Sprintf(
		"include: _agora_math_template\ntask: agora_math_local\ndataset_path: json\ndataset_name: null\n"+
			"dataset_kwargs:\n  data_files:\n    test: %s\ntraining_split: null\ntest_split: test\n", mathData))
	gsmData := filepath.Join(work, "gsm8k.jsonl")
	writeJSONL(t, gsmData, []map[string]string{
		{"question": "Ann has 5 apples and buys 7 more. How many apples does she have?", "answer": "5 + 7 = <<5+7=12>>12\n#### 12"},
		{"question": "Bob reads 3 pages a day for 4 days. How many pages does he read?", "answer": "3 * 4 = <<3*4=12>>12\n#### 12"},
	})
	writeFile(t, filepath.Join(tasks, "gsm8k_local.yaml"), fmt.Sprintf(
		"include: %s\ntask: gsm8k_local\ndataset_path: json\ndataset_name: null\n"+
			"dataset_kwargs:\n  data_files:\n    test: %s\ntraining_split: null\nfewshot_split: null\ntest_split: test\n",
		filepath.Join(lmevalDir(t), "tasks", "gsm8k", "gsm8k.yaml"), gsmData))
	o := DefaultOptions()
	o.LMEval["gsm8k"] = LMEvalMetric{Task: "gsm8k_local", Metric: "exact_match", Filter: "flexible-extract", FewShot: 5}
	o.LMEval["math"] = LMEvalMetric{Task: "agora_math_local", Metric: "math_verify", Filter: "none", FewShot: 4}
	for _, c := range []struct {
		benchmark string
		fewShot   bool
	}{{"gsm8k", false}, {"math", true}} {
		t.Run(c.benchmark, func(t *testing.T) {
			out := filepath.Join(work, c.benchmark)
			cmd, err := CommandWith(LMEval, c.benchmark, CommandParams{ModelPath: model, OutputDir: out, FewShot: c.fewShot,
				TaskDir: tasks, LMEvalBackend: LMEvalHF}, o)
			if err != nil {
				t.Fatal(err)
			}
			took := runShell(t, work, cmd)
			t.Logf("lm-eval (hf) on the tiny model, %s, few-shot %v: %v", c.benchmark, c.fewShot, took.Round(time.Second))
			s, err := ParseWith(LMEval, c.benchmark, out, o)
			if err != nil {
				t.Fatal(err)
			}
			if s.Value < 0 || s.Value > 100 {
				t.Errorf("%s = %v", c.benchmark, s.Value)
			}
			// The run used the prompt agora asked for.
			files, _ := filepath.Glob(filepath.Join(out, "*", "results_*.json"))
			data, _ := os.ReadFile(files[0])
			var r struct {
				NShot        map[string]int `json:"n-shot"`
				ChatTemplate *string        `json:"chat_template"`
			}
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
			task := o.LMEval[c.benchmark].Task
			if want := map[bool]int{false: 0, true: o.LMEval[c.benchmark].FewShot}[c.fewShot]; r.NShot[task] != want {
				t.Errorf("n-shot %v, want %d", r.NShot, want)
			}
			if (r.ChatTemplate != nil) == c.fewShot {
				t.Errorf("chat template used: %v, want %v", r.ChatTemplate != nil, !c.fewShot)
			}
		})
	}
}

// TestEvalPlusLocalProblems runs the real evalplus, through agora's API
// command (the solve path: --backend openai), on three HumanEval-shaped
// problems of a local file (HUMANEVAL_OVERRIDE_PATH) answered by a
// stand-in model: add right on every test, mul wrong, ident right on the
// base tests only. Parse reads the result file evalplus wrote:
// pass@1 2/3 on the base tests, 1/3 with the extra ones.
func TestEvalPlusLocalProblems(t *testing.T) {
	toolchaintest.Offline(t)
	api := newChatStandIn(t, func(prompt string) string {
		code := "def add(a, b):\n    return a + b\n"
		switch {
		case strings.Contains(prompt, "def mul("):
			code = "def mul(a, b):\n    return a + b\n"
		case strings.Contains(prompt, "def ident("):
			code = "def ident(x):\n    return abs(x)\n"
		}
		return "Here it is:\n```python\n" + code + "```\n"
	})
	work := t.TempDir()
	problems := filepath.Join(work, "HumanEvalPlus.jsonl")
	var b strings.Builder
	for i, p := range []struct {
		name, doc, body string
		base, plus      string
	}{
		{"add", "Return a + b.", "return a + b", "[[1, 2], [3, 4]]", "[[-1, 1], [1000000, 1]]"},
		{"mul", "Return a * b.", "return a * b", "[[2, 3], [4, 5]]", "[[0, 7]]"},
		{"ident", "Return x.", "return x", "[[1], [2]]", "[[-3]]"},
	} {
		fmt.Fprintf(&b, `{"task_id": "HumanEval/%d", "prompt": "def %s(%s):\n    \"\"\"%s\"\"\"\n", "entry_point": %q, `+
			`"canonical_solution": "    %s\n", "contract": "", "base_input": %s, "plus_input": %s, "atol": 0}`+"\n",
			i, p.name, map[bool]string{true: "x", false: "a, b"}[p.name == "ident"], p.doc, p.name, p.body, p.base, p.plus)
	}
	writeFile(t, problems, b.String())
	checkEvalPlusLocal(t, api.URL, work, "humaneval", "HUMANEVAL_OVERRIDE_PATH="+problems)
}

// checkEvalPlusLocal runs agora's evalplus API command for benchmark in
// work against the stand-in model at apiURL, with env naming the local
// problem file, and checks what Parse reads of the result file: pass@1
// 2/3 on the base tests, 1/3 with the extra ones.
func checkEvalPlusLocal(t *testing.T, apiURL, work, benchmark, env string) {
	t.Helper()
	out := filepath.Join(work, "results")
	cmd, err := APICommand(EvalPlus, benchmark, APIParams{BaseURL: apiURL + "/v1", Model: "stand-in", KeyEnv: "STANDIN_KEY", OutputDir: out})
	if err != nil {
		t.Fatal(err)
	}
	took := runShell(t, work, cmd, "STANDIN_KEY=k", env, "XDG_CACHE_HOME="+t.TempDir())
	t.Logf("evalplus on 3 local %s problems: %v", benchmark, took.Round(time.Second))
	files, _ := filepath.Glob(filepath.Join(out, benchmark, "*eval_results.json"))
	t.Logf("evalplus wrote %v", files)
	s, err := Parse(EvalPlus, benchmark, out)
	if err != nil {
		t.Fatal(err)
	}
	if !near(s.Value, 200.0/3) {
		t.Errorf("%s = %v, want %v (detail %v)", benchmark, s.Value, 200.0/3, s.Detail)
	}
	o := DefaultOptions()
	o.EvalPlusTests = EvalPlusPlus
	if s, err = ParseWith(EvalPlus, benchmark, out, o); err != nil || !near(s.Value, 100.0/3) {
		t.Errorf("%s+ = %v, %v; want %v", benchmark, s.Value, err, 100.0/3)
	}
}

// TestEvalPlusLocalMBPP is TestEvalPlusLocalProblems for the mbpp set:
// the real evalplus, through agora's API command, on three MBPP+-shaped
// problems ("Mbpp/N" ids, a docstring prompt with its assertion) of a
// local file (MBPP_OVERRIDE_PATH, the variable evalplus 0.3.1 reads in
// evalplus/data/mbpp.py) answered by a stand-in model: add right on every
// test, mul wrong, ident right on the base tests only. Parse reads the
// result file evalplus wrote under mbpp/: pass@1 2/3 on the base tests,
// 1/3 with the extra ones.
func TestEvalPlusLocalMBPP(t *testing.T) {
	toolchaintest.Offline(t)
	api := newChatStandIn(t, func(prompt string) string {
		code := "def add(a, b):\n    return a + b\n"
		switch {
		case strings.Contains(prompt, "product"):
			code = "def mul(a, b):\n    return a + b\n"
		case strings.Contains(prompt, "same number"):
			code = "def ident(x):\n    return abs(x)\n"
		}
		return "Here it is:\n```python\n" + code + "```\n"
	})
	work := t.TempDir()
	problems := filepath.Join(work, "MbppPlus.jsonl")
	var b strings.Builder
	// Task ids evalplus deserializes as given (not among those whose
	// inputs it turns into tuples or sets).
	for _, p := range []struct {
		id                     int
		name, args, doc, check string
		body, base, plus       string
	}{
		{11, "add", "a, b", "Write a function to return the sum of two numbers.", "add(1, 2) == 3", "return a + b", "[[1, 2], [3, 4]]", "[[-1, 1], [1000000, 1]]"},
		{12, "mul", "a, b", "Write a function to return the product of two numbers.", "mul(2, 3) == 6", "return a * b", "[[2, 3], [4, 5]]", "[[0, 7]]"},
		{14, "ident", "x", "Write a function that returns the same number it is given.", "ident(1) == 1", "return x", "[[1], [2]]", "[[-3]]"},
	} {
		fmt.Fprintf(&b, `{"task_id": "Mbpp/%d", "prompt": "\"\"\"\n%s\nassert %s\n\"\"\"\n", "entry_point": %q, `+
			`"canonical_solution": "def %s(%s):\n    %s\n", "contract": "", "base_input": %s, "plus_input": %s, "atol": 0, "assertion": "assert %s"}`+"\n",
			p.id, p.doc, p.check, p.name, p.name, p.args, p.body, p.base, p.plus, p.check)
	}
	writeFile(t, problems, b.String())
	checkEvalPlusLocal(t, api.URL, work, "mbpp", "MBPP_OVERRIDE_PATH="+problems)
}

// judgeChoice answers an alpaca_eval weighted_alpaca_eval_gpt4_turbo
// annotation as gpt-4-1106-preview does: one token, "m" or "M" (the
// identifier of the better output), with its top log-probabilities, which
// alpaca_eval's logprob_parser reads. The better output is the one whose
// text contains "WIN", else the one without "LOSE".
func judgeChoice(prompt string) map[string]any {
	// The outputs follow "model_identifier": "m" and "M" in the prompt.
	first, second, _ := strings.Cut(prompt, `"model_identifier": "M"`)
	best := "M"
	if strings.Contains(first, "WIN") || strings.Contains(second, "LOSE") {
		best = "m"
	}
	other := map[string]string{"m": "M", "M": "m"}[best]
	lp := func(tok string, v float64) map[string]any {
		return map[string]any{"token": tok, "logprob": v, "bytes": []byte(tok)}
	}
	return map[string]any{"index": 0, "finish_reason": "length",
		"message": map[string]any{"role": "assistant", "content": best},
		"logprobs": map[string]any{"content": []any{map[string]any{"token": best, "logprob": -0.01, "bytes": []byte(best),
			"top_logprobs": []any{lp(best, -0.01), lp(other, -6)}}}}}
}

// TestAlpacaEvalLocalJudge runs agora's whole AlpacaEval API command with
// the real alpaca_eval: the model (a stand-in) answers six instructions
// read from a local hub cache (alpaca_eval.json, with the reference
// outputs and df_gamed.csv beside it, as offline staging leaves them),
// then alpaca_eval's annotator (weighted_alpaca_eval_gpt4_turbo) asks a
// stand-in judge; four answers beat the reference. Parse reads the
// leaderboard.csv it wrote.
func TestAlpacaEvalLocalJudge(t *testing.T) {
	toolchaintest.Offline(t)
	judge := newChatStandInChoice(t, judgeChoice)
	instruction := func(i int) string { return fmt.Sprintf("Instruction %d: give three tips for staying healthy.", i) }
	model := newChatStandIn(t, func(prompt string) string {
		for i := 0; i < 6; i++ {
			if prompt == instruction(i) {
				verdict := "WIN"
				if i%3 == 2 {
					verdict = "LOSE"
				}
				return fmt.Sprintf("Answer %d (%s): eat well, sleep, exercise%s.", i, verdict, strings.Repeat(" daily", i))
			}
		}
		return "?"
	})
	work := t.TempDir()
	out := filepath.Join(work, "results")
	cmd, err := APICommand(AlpacaEval, "alpacaeval2", APIParams{BaseURL: model.URL + "/v1", Model: "student-x", KeyEnv: "STANDIN_KEY", OutputDir: out})
	if err != nil {
		t.Fatal(err)
	}
	// The hub's tatsu-lab/alpaca_eval, in a local hub cache: the
	// instructions, GPT-4 Turbo's reference outputs, and the instructions'
	// difficulty that the length-controlled win rate reads (df_gamed.csv).
	hfHome := t.TempDir()
	repo := filepath.Join(hfHome, "hub", "datasets--tatsu-lab--alpaca_eval")
	const rev = "0000000000000000000000000000000000000000"
	writeFile(t, filepath.Join(repo, "refs", "main"), rev)
	type output struct {
		Dataset     string `json:"dataset"`
		Instruction string `json:"instruction"`
		Output      string `json:"output"`
		Generator   string `json:"generator"`
	}
	var evalSet, ref []output
	for i := 0; i < 6; i++ {
		evalSet = append(evalSet, output{"local", instruction(i), "text-davinci-003's answer", "text_davinci_003"})
		ref = append(ref, output{"local", instruction(i), "A reference answer: eat vegetables, sleep eight hours and walk.", "gpt4_turbo"})
	}
	for name, v := range map[string]any{"alpaca_eval.json": evalSet, "alpaca_eval_gpt4_baseline.json": ref} {
		data, _ := json.Marshal(v)
		writeFile(t, filepath.Join(repo, "snapshots", rev, name), string(data))
	}
	var gamed strings.Builder
	gamed.WriteString("model,index,instruction_difficulty,preference,std_delta_len,not_gamed_baseline\n")
	for _, m := range []string{"gamed_long", "gamed_short"} {
		for i := 0; i < 6; i++ {
			fmt.Fprintf(&gamed, "%s,%d,%v,%v,%v,False\n", m, i, float64(i%3)-1, map[string]float64{"gamed_long": 0.8, "gamed_short": 0.2}[m],
				map[string]float64{"gamed_long": 1.5, "gamed_short": -1.5}[m])
		}
	}
	writeFile(t, filepath.Join(repo, "snapshots", rev, "df_gamed.csv"), gamed.String())
	took := runShell(t, work, cmd, "STANDIN_KEY=k", "OPENAI_API_KEY=judge-key", "OPENAI_API_BASE="+judge.URL+"/v1", "HF_HOME="+hfHome)
	if len(model.bodies) != 6 {
		t.Errorf("the model was asked %d times, want 6", len(model.bodies))
	}
	if b := model.bodies[0]; b["temperature"] != 0.0 || b["top_p"] != 0.95 || b["repetition_penalty"] != 1.03 || b["max_tokens"] != float64(MaxNewTokens) {
		t.Errorf("the model's decoding: %v", b)
	}
	t.Logf("agora's AlpacaEval command (answers and alpaca_eval) on 6 instructions with stand-in model and judge: %v", took.Round(time.Second))
	if len(judge.bodies) != 6 {
		t.Errorf("the judge was asked %d times, want 6", len(judge.bodies))
	}
	if b := judge.bodies[0]; b["model"] != DefaultJudge || b["logprobs"] != true || b["max_tokens"] != 1.0 {
		t.Errorf("judge request: %v", b)
	}
	for _, f := range []string{AlpacaEvalCache, "glm_weights"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("alpaca_eval's %s is not in the output directory: %v", f, err)
		}
	}
	s, err := ParseWith(AlpacaEval, "alpacaeval2", out, Options{Model: "student-x"})
	if err != nil {
		t.Fatal(err)
	}
	// Four wins of six, each with probability 1 − e^−6 or so.
	if wr := s.Detail["win_rate"]; wr < 60 || wr > 70 {
		t.Errorf("win rate %v, want about 66.4 (detail %v)", wr, s.Detail)
	}
	if s.Value < 0 || s.Value > 100 || s.Value != s.Detail["length_controlled_winrate"] {
		t.Errorf("length-controlled win rate %v (detail %v)", s.Value, s.Detail)
	}
	t.Logf("alpaca_eval leaderboard: %v", s.Detail)
}
