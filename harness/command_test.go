package harness

import (
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// builtinHarness is spec's builtin benchmark → harness table (spec's
// TestBuiltinBenchmarksHaveCommands checks it against spec's own).
var builtinHarness = map[string]string{
	"gsm8k": LMEval, "math": LMEval,
	"humaneval": EvalPlus, "mbpp": EvalPlus,
	"alpacaeval2": AlpacaEval, "arenahard": ArenaHard,
}

func params() CommandParams {
	return CommandParams{ModelPath: "/ckpt/student math-ig", OutputDir: "/runs/eval/gsm8k", Port: 8123, TaskDir: "/runs/eval/lm_eval_tasks"}
}

// TestEveryBuiltinBenchmark renders each builtin benchmark's command, for
// a student and for the base model, and has bash check its syntax.
func TestEveryBuiltinBenchmark(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-test-secret-value")
	bash, _ := exec.LookPath("bash")
	for _, b := range slices.Sorted(maps.Keys(builtinHarness)) {
		h, ok := builtinHarness[b]
		if !ok {
			t.Errorf("builtin benchmark %q: no harness known to this test", b)
			continue
		}
		for _, few := range []bool{false, true} {
			p := params()
			p.FewShot = few
			cmd, err := Command(h, b, p)
			if err != nil {
				t.Errorf("Command(%s, %s): %v", h, b, err)
				continue
			}
			if strings.Contains(cmd, "sk-test-secret-value") {
				t.Errorf("Command(%s, %s) carries the key's value", h, b)
			}
			if !strings.Contains(cmd, "'/ckpt/student math-ig'") && !strings.Contains(cmd, "'pretrained=/ckpt/student math-ig,") {
				t.Errorf("Command(%s, %s) does not quote the model path:\n%s", h, b, cmd)
			}
			if bash != "" {
				out, err := exec.Command(bash, "-n", "-c", cmd).CombinedOutput()
				if err != nil {
					t.Errorf("Command(%s, %s): bash -n: %v\n%s\n%s", h, b, err, out, cmd)
				}
			}
		}
	}
}

func TestLMEvalCommand(t *testing.T) {
	p := params()
	cmd, err := Command(LMEval, "gsm8k", p)
	if err != nil {
		t.Fatal(err)
	}
	want := "lm_eval --model vllm --model_args 'pretrained=/ckpt/student math-ig,dtype=auto,max_model_len=4096'" +
		" --tasks gsm8k --include_path /runs/eval/lm_eval_tasks --num_fewshot 0 --apply_chat_template" +
		" --gen_kwargs temperature=0.2,top_p=0.95,max_gen_toks=1024,repetition_penalty=1.03,do_sample=True" +
		" --batch_size auto --output_path /runs/eval/gsm8k --log_samples"
	if cmd != want {
		t.Errorf("student:\n got %s\nwant %s", cmd, want)
	}
	p.FewShot = true
	cmd, err = Command(LMEval, "math", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"--tasks agora_math --include_path /runs/eval/lm_eval_tasks", "--num_fewshot 4 ", "temperature=0.2,"} {
		if !strings.Contains(cmd, part) {
			t.Errorf("base model on MATH: %q not in %s", part, cmd)
		}
	}
	if strings.Contains(cmd, "--apply_chat_template") {
		t.Errorf("base model prompted through a chat template: %s", cmd)
	}
	// lm-eval's transformers backend, for machines without vLLM.
	p.LMEvalBackend = LMEvalHF
	cmd, err = Command(LMEval, "math", p)
	if err != nil || !strings.HasPrefix(cmd, "lm_eval --model hf --model_args 'pretrained=/ckpt/student math-ig,dtype=auto' --tasks agora_math ") ||
		!strings.Contains(cmd, " --batch_size 8 ") {
		t.Errorf("hf backend: %v\n%s", err, cmd)
	}
	p.LMEvalBackend = "sglang"
	_, err = Command(LMEval, "math", p)
	wantErr(t, err, `backend "sglang"`)
	p.LMEvalBackend = ""
	// agora's MATH task is found only through its directory.
	p.TaskDir = ""
	_, err = Command(LMEval, "math", p)
	wantErr(t, err, "task agora_math is agora's own")
	if cmd, err = Command(LMEval, "gsm8k", p); err != nil || strings.Contains(cmd, "--include_path") {
		t.Errorf("gsm8k without a task directory: %v\n%s", err, cmd)
	}
	p.ModelPath = "/ckpt/a,b"
	_, err = Command(LMEval, "gsm8k", p)
	wantErr(t, err, "contains a comma")
}

func TestEvalPlusCommand(t *testing.T) {
	p := params()
	cmd, err := Command(EvalPlus, "mbpp", p)
	if err != nil {
		t.Fatal(err)
	}
	want := "evalplus.evaluate --model '/ckpt/student math-ig' --dataset mbpp --backend vllm --greedy --root /runs/eval/gsm8k"
	if cmd != want {
		t.Errorf("\n got %s\nwant %s", cmd, want)
	}
	p.FewShot = true
	if cmd, _ := Command(EvalPlus, "humaneval", p); !strings.HasSuffix(cmd, " --force_base_prompt") {
		t.Errorf("base model: %s", cmd)
	}
}

func TestAlpacaEvalCommand(t *testing.T) {
	cmd, err := Command(AlpacaEval, "alpacaeval2", params())
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{
		`: "${OPENAI_API_KEY:?OPENAI_API_KEY must hold the API key of the judge}"`,
		"vllm serve '/ckpt/student math-ig' --host 127.0.0.1 --port 8123 --served-model-name student-math-ig",
		"--generation-config /runs/eval/gsm8k/generation_config",
		`{"top_p": 0.95, "repetition_penalty": 1.03, "max_new_tokens": 1024}`,
		"curl -sf http://127.0.0.1:8123/health",
		"temperature=0.0, top_p=0.95, max_tokens=1024",
		`extra_body={"repetition_penalty": 1.03}`,
		"alpaca_eval --model_outputs /runs/eval/gsm8k/model_outputs.json --reference_outputs /runs/eval/gsm8k/reference_outputs.json --annotators_config weighted_alpaca_eval_gpt4_turbo" +
			" --name student-math-ig --output_path /runs/eval/gsm8k --precomputed_leaderboard None",
	} {
		if !strings.Contains(cmd, part) {
			t.Errorf("%q not in\n%s", part, cmd)
		}
	}
	p := params()
	p.JudgeKeyEnv = "AGORA_JUDGE_KEY"
	cmd, _ = Command(AlpacaEval, "alpacaeval2", p)
	if !strings.Contains(cmd, `export OPENAI_API_KEY="${AGORA_JUDGE_KEY:?AGORA_JUDGE_KEY must hold the API key of the judge}"`) {
		t.Errorf("judge key from AGORA_JUDGE_KEY:\n%s", cmd)
	}
	p.JudgeKeyEnv = "$(rm -rf /)"
	_, err = Command(AlpacaEval, "alpacaeval2", p)
	wantErr(t, err, "not an environment variable name")
	p = params()
	p.JudgeModel = "gpt-4o"
	_, err = Command(AlpacaEval, "alpacaeval2", p)
	wantErr(t, err, `judge "gpt-4o"`, "calibrated")
	p = params()
	p.Port = 0
	_, err = Command(AlpacaEval, "alpacaeval2", p)
	wantErr(t, err, "port 0")
}

func TestArenaHardCommand(t *testing.T) {
	p := params()
	p.JudgeModel = "gpt-4o-2024-08-06"
	cmd, err := Command(ArenaHard, "arenahard", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{
		`: "${ARENA_HARD_DIR:?`,
		"cd /runs/eval/gsm8k/arena-hard\n",
		`ln -sfn "$ARENA_HARD_DIR/data/arena-hard-v0.1/model_answer/gpt-4-0314.jsonl"`,
		"temperature: 0.0\nmax_tokens: 1024\n",
		"api_base: 'http://127.0.0.1:8123/v1'",
		"'gpt-4o-2024-08-06':\n  model_name: 'gpt-4o-2024-08-06'\n  endpoints: null\n",
		`python "$ARENA_HARD_DIR/gen_answer.py" --setting-file gen_answer_config.yaml --endpoint-file api_config.yaml >&2`,
		`python "$ARENA_HARD_DIR/gen_judgment.py" --setting-file judge_config.yaml --endpoint-file api_config.yaml >&2`,
		`python "$ARENA_HARD_DIR/show_result.py" --bench-name arena-hard-v0.1 --judge-name gpt-4o-2024-08-06 --baseline gpt-4-0314` + "\n) | tee /runs/eval/gsm8k/show_result.txt",
	} {
		if !strings.Contains(cmd, part) {
			t.Errorf("%q not in\n%s", part, cmd)
		}
	}
	p.JudgeModel = "gpt'; rm -rf /"
	_, err = Command(ArenaHard, "arenahard", p)
	wantErr(t, err, "judge model")
}

func TestCommandErrors(t *testing.T) {
	_, err := Command(LMEval, "gsm8k", CommandParams{OutputDir: "/o"})
	wantErr(t, err, "no model path")
	_, err = Command(LMEval, "gsm8k", CommandParams{ModelPath: "/m"})
	wantErr(t, err, "no output directory")
	_, err = Command("helm", "gsm8k", params())
	wantErr(t, err, `unknown harness "helm"`)
	_, err = Command(EvalPlus, "apps", params())
	wantErr(t, err, `unknown benchmark "apps"`)
	_, err = Command(LMEval, "mmlu", params())
	wantErr(t, err, `no task configured for benchmark "mmlu"`)
}

func TestServedName(t *testing.T) {
	for in, want := range map[string]string{
		"/ckpt/student-math-ig/":  "student-math-ig",
		"meta-llama/Llama-3.1-8B": "Llama-3.1-8B",
		"/ckpt/a b:c":             "a-b-c",
		"/":                       "model",
		"":                        "model",
	} {
		if got := ServedName(in); got != want {
			t.Errorf("ServedName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTemperature(t *testing.T) {
	if Temperature("gsm8k") != 0.2 || Temperature("math") != 0.2 || Temperature("humaneval") != 0 || Temperature("arenahard") != 0 {
		t.Error("temperature: 0.2 on math, 0.0 elsewhere")
	}
}
