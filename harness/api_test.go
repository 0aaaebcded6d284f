package harness

import (
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func apiParams() APIParams {
	return APIParams{BaseURL: "http://127.0.0.1:4321/v1", Model: "gpt 4o", KeyEnv: "AGORA_SOLVE_KEY", OutputDir: "/runs/solve/out dir", Concurrency: 12, TaskDir: "/runs/solve/lm_eval_tasks"}
}

// TestEveryBuiltinBenchmarkAPI renders each built-in benchmark's API
// command, with and without a limit, and has bash check its syntax.
func TestEveryBuiltinBenchmarkAPI(t *testing.T) {
	t.Setenv("AGORA_SOLVE_KEY", "proxy-secret-value")
	t.Setenv("OPENAI_API_KEY", "sk-test-secret-value")
	bash, _ := exec.LookPath("bash")
	for _, b := range slices.Sorted(maps.Keys(builtinHarness)) {
		for _, limit := range []int{0, 7} {
			p := apiParams()
			p.Limit = limit
			if builtinHarness[b] == LMEval {
				p.Model = "gpt-4o"
			}
			cmd, err := APICommand(builtinHarness[b], b, p)
			if err != nil {
				t.Errorf("APICommand(%s): %v", b, err)
				continue
			}
			if strings.Contains(cmd, "secret-value") {
				t.Errorf("APICommand(%s) carries a key's value", b)
			}
			if !strings.Contains(cmd, "AGORA_SOLVE_KEY") || !strings.Contains(cmd, "http://127.0.0.1:4321/v1") {
				t.Errorf("APICommand(%s) does not use the API and its key variable:\n%s", b, cmd)
			}
			if strings.Contains(cmd, "vllm serve") {
				t.Errorf("APICommand(%s) serves a model", b)
			}
			if bash != "" {
				if out, err := exec.Command(bash, "-n", "-c", cmd).CombinedOutput(); err != nil {
					t.Errorf("APICommand(%s): bash -n: %v\n%s\n%s", b, err, out, cmd)
				}
			}
		}
	}
}

func TestLMEvalAPICommand(t *testing.T) {
	p := apiParams()
	p.Model, p.Limit = "gpt-4o", 50
	cmd, err := APICommand(LMEval, "math", p)
	if err != nil {
		t.Fatal(err)
	}
	want := `OPENAI_API_KEY="${AGORA_SOLVE_KEY:?AGORA_SOLVE_KEY must hold the API key of http://127.0.0.1:4321/v1}" lm_eval --model local-chat-completions ` +
		`--model_args model=gpt-4o,base_url=http://127.0.0.1:4321/v1/chat/completions,num_concurrent=12,max_retries=3,tokenized_requests=False ` +
		`--tasks agora_math --include_path /runs/solve/lm_eval_tasks --num_fewshot 0 --apply_chat_template --gen_kwargs temperature=0.2,top_p=0.95,max_gen_toks=1024,repetition_penalty=1.03 ` +
		`--batch_size 1 --output_path '/runs/solve/out dir' --log_samples --limit 50`
	if cmd != want {
		t.Errorf("command:\n%s\nwant:\n%s", cmd, want)
	}
	// With the benchmark's size, the limit is a share: ceil(0.0099 × 5000)
	// = 50 for one task; MATH's subjects get their part of it.
	p.Of = 5000
	cmd, err = APICommand(LMEval, "math", p)
	if err != nil || !strings.HasSuffix(cmd, " --limit 0.0099") {
		t.Errorf("share limit: %v\n%s", err, cmd)
	}
	p.Of = 50
	if cmd, _ = APICommand(LMEval, "math", p); !strings.HasSuffix(cmd, " --limit 50") {
		t.Errorf("a limit of every problem: %s", cmd)
	}
	p.Model = "a,b"
	if _, err := APICommand(LMEval, "gsm8k", p); err == nil || !strings.Contains(err.Error(), "--model_args cannot carry") {
		t.Errorf("comma in the model: %v", err)
	}
}

func TestEvalPlusAPICommand(t *testing.T) {
	p := apiParams()
	p.Limit = 20
	cmd, err := APICommand(EvalPlus, "humaneval", p)
	if err != nil {
		t.Fatal(err)
	}
	want := `OPENAI_API_KEY="${AGORA_SOLVE_KEY:?AGORA_SOLVE_KEY must hold the API key of http://127.0.0.1:4321/v1}" evalplus.evaluate --model 'gpt 4o' --dataset humaneval ` +
		`--backend openai --base_url http://127.0.0.1:4321/v1 --greedy --root '/runs/solve/out dir' --id_range '[0, 20]'`
	if cmd != want {
		t.Errorf("command:\n%s\nwant:\n%s", cmd, want)
	}
}

func TestJudgedAPICommands(t *testing.T) {
	p := apiParams()
	p.Limit = 30
	a, err := APICommand(AlpacaEval, "alpacaeval2", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`python - http://127.0.0.1:4321/v1 AGORA_SOLVE_KEY 'gpt 4o' gpt-4o '/runs/solve/out dir/model_outputs.json' '/runs/solve/out dir/reference_outputs.json' 30 12 <<'PY'`,
		"temperature=0.0, top_p=0.95, max_tokens=1024",
		`extra_body={"repetition_penalty": 1.03}`,
		"alpaca_eval --model_outputs '/runs/solve/out dir/model_outputs.json' --reference_outputs '/runs/solve/out dir/reference_outputs.json' --annotators_config weighted_alpaca_eval_gpt4_turbo --name gpt-4o",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("alpaca_eval command lacks %q:\n%s", want, a)
		}
	}
	h, err := APICommand(ArenaHard, "arenahard", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`head -n 30 "$ARENA_HARD_DIR/data/arena-hard-v0.1/question.jsonl" > data/arena-hard-v0.1/question.jsonl`,
		`python - api_config.yaml AGORA_SOLVE_KEY gpt-4o 'gpt 4o' http://127.0.0.1:4321/v1 gpt-4-1106-preview 12 <<'PY'`,
		"model_list:\n  - 'gpt-4o'",
		`) | tee '/runs/solve/out dir/show_result.txt'`,
	} {
		if !strings.Contains(h, want) {
			t.Errorf("arena-hard command lacks %q:\n%s", want, h)
		}
	}
}

func TestAPICommandErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*APIParams)
		want string
	}{
		{"url", func(p *APIParams) { p.BaseURL = "127.0.0.1:80" }, `base URL "127.0.0.1:80"`},
		{"credentials", func(p *APIParams) { p.BaseURL = "http://u:pw@h/v1" }, "must not carry credentials (it is not shown)"},
		{"key variable", func(p *APIParams) { p.KeyEnv = "sk-123" }, `key variable "sk-123"`},
		{"model", func(p *APIParams) { p.Model = "" }, "no model name"},
		{"limit", func(p *APIParams) { p.Limit = -1 }, "limit -1"},
	} {
		p := apiParams()
		tc.edit(&p)
		if _, err := APICommand(EvalPlus, "mbpp", p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := APICommand("command", "x", apiParams()); err == nil || !strings.Contains(err.Error(), "unknown harness") {
		t.Errorf("command harness: %v", err)
	}
}
