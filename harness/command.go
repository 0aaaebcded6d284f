package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The paper's decoding settings for evaluation.
const (
	// MathTemperature is the sampling temperature on math benchmarks.
	MathTemperature = 0.2
	// OtherTemperature is the temperature everywhere else (greedy).
	OtherTemperature = 0.0
	TopP             = 0.95
	MaxNewTokens     = 1024
	// RepetitionPenalty is applied where the harness lets it through.
	RepetitionPenalty = 1.03
)

// Defaults of the judged benchmarks.
const (
	// DefaultJudge is the judge of AlpacaEval 2.0 and Arena-Hard v0.1.
	DefaultJudge = "gpt-4-1106-preview"
	// DefaultJudgeKeyEnv is the environment variable the judge's API key
	// is read from at run time.
	DefaultJudgeKeyEnv = "OPENAI_API_KEY"
	// AlpacaEvalAnnotators is the annotator configuration of AlpacaEval
	// 2.0 (gpt-4-1106-preview, length-controlled win rate).
	AlpacaEvalAnnotators = "weighted_alpaca_eval_gpt4_turbo"
	// AlpacaEvalCache is the file, in the output directory, where
	// alpaca_eval caches the judge's annotations (--caching_path).
	AlpacaEvalCache = "annotations.json"
	// ArenaHardBench is the arena-hard-auto benchmark version run.
	ArenaHardBench = "arena-hard-v0.1"
	// ArenaHardBaseline is the model Arena-Hard v0.1 compares against.
	ArenaHardBaseline = "gpt-4-0314"
	// ArenaHardDirEnv names the environment variable holding the path of
	// an arena-hard-auto checkout (its data/ must hold the v0.1 questions
	// and the baseline's answers).
	ArenaHardDirEnv = "ARENA_HARD_DIR"
	// servedMaxModelLen bounds the context of a vLLM server or engine:
	// prompts plus MaxNewTokens fit, and the KV cache stays small.
	servedMaxModelLen = 8192
	lmevalMaxModelLen = 4096
)

// ServedArgs are the `vllm serve` options that make the paper's decoding
// the default of a server under evaluation, for requests that do not set
// it themselves: arena-hard-auto v0.1's gen_answer.py sends only the
// temperature and max_tokens, so top_p 0.95 and the repetition penalty
// 1.03 must be the server's (vLLM ≥ 0.8 merges --override-generation-config
// into the defaults of every request, over vLLM's own as executors/vllm
// passes --generation-config vllm, so the model's generation_config.json
// plays no part; a request's own values still win, as alpaca_eval's
// answers send them too).
func ServedArgs() []string {
	return []string{"--override-generation-config",
		fmt.Sprintf(`{"top_p": %s, "repetition_penalty": %s}`, num(TopP), num(RepetitionPenalty))}
}

// mathBenchmarks are sampled at MathTemperature.
var mathBenchmarks = map[string]bool{"gsm8k": true, "math": true}

// Temperature is the evaluation temperature of a benchmark.
func Temperature(benchmark string) float64 {
	if mathBenchmarks[benchmark] {
		return MathTemperature
	}
	return OtherTemperature
}

// CommandParams describe one evaluation run.
type CommandParams struct {
	// ModelPath is the checkpoint directory (or hub id) evaluated.
	ModelPath string
	// OutputDir receives the harness's result files, where Parse reads
	// them.
	OutputDir string
	// FewShot evaluates the base model few-shot where the harness
	// supports --num_fewshot; students and the reference run zero-shot.
	FewShot bool
	// Port is the vLLM server's port, for the harnesses that query a
	// served model (alpaca_eval, arena-hard-auto).
	Port int
	// JudgeModel is the judge of alpaca_eval and arena-hard-auto; empty:
	// DefaultJudge.
	JudgeModel string
	// JudgeKeyEnv names the environment variable holding the judge's API
	// key; empty: DefaultJudgeKeyEnv. Only the name is written into the
	// command, never a key.
	JudgeKeyEnv string
	// TaskDir is the directory holding agora's lm-eval tasks
	// (WriteLMEvalTasks), passed as --include_path; needed by the tasks
	// named agora_* (MATH).
	TaskDir string
	// LMEvalBackend is lm-eval's model backend: LMEvalVLLM (empty: the
	// default) or LMEvalHF (transformers, for machines without vLLM).
	LMEvalBackend string
}

// lm-eval's model backends agora renders.
const (
	LMEvalVLLM = "vllm"
	LMEvalHF   = "hf"
)

// Command renders the shell command that evaluates p.ModelPath on
// benchmark with harness, writing the harness's result files under
// p.OutputDir in the layout Parse reads. Values are shell-quoted. The
// commands that serve the model run in a subshell, so that the options,
// traps and working directory they set do not leak into the calling
// script.
func Command(harness, benchmark string, p CommandParams) (string, error) {
	return CommandWith(harness, benchmark, p, DefaultOptions())
}

// CommandWith is Command with the lm-eval tasks of o.
func CommandWith(harness, benchmark string, p CommandParams, o Options) (string, error) {
	if p.ModelPath == "" {
		return "", errors.New("harness command: no model path")
	}
	if p.OutputDir == "" {
		return "", errors.New("harness command: no output directory")
	}
	switch harness {
	case LMEval:
		m, ok := o.LMEval[benchmark]
		if !ok {
			return "", fmt.Errorf("lm-eval: no task configured for benchmark %q (configured: %s)",
				benchmark, strings.Join(sortedKeys(o.LMEval), ", "))
		}
		return lmevalCommand(benchmark, m, p)
	case EvalPlus:
		return evalplusCommand(benchmark, p)
	case AlpacaEval:
		return alpacaEvalCommand(benchmark, p)
	case ArenaHard:
		return arenaHardCommand(benchmark, p)
	}
	return "", fmt.Errorf("unknown harness %q (known: %s)", harness, strings.Join(Harnesses(), ", "))
}

// lmevalCommand runs lm-evaluation-harness on its own vLLM backend:
//
//	lm_eval --model vllm
//	  --model_args pretrained=CKPT,dtype=auto,max_model_len=4096
//	  --tasks gsm8k | agora_math [--include_path TASKDIR]
//	  --num_fewshot 0 --apply_chat_template     (students, reference)
//	  --num_fewshot 5 | 4                       (base model: the task's few-shot count)
//	  --gen_kwargs temperature=0.2,top_p=0.95,max_gen_toks=1024,repetition_penalty=1.03,do_sample=True
//	  --batch_size auto --output_path DIR --log_samples
//
// --gen_kwargs overrides the task's generation_kwargs (GSM8K and MATH are
// math: temperature 0.2); max_gen_toks is lm-eval's name for the new-token
// limit, and the other keys reach vLLM's SamplingParams. Zero-shot models
// are prompted through their chat template; the base model gets the
// task's plain few-shot prompt. With LMEvalHF the model runs in
// transformers instead (--model hf --model_args pretrained=CKPT,dtype=auto
// --batch_size 8), the same task, prompts and decoding.
func lmevalCommand(benchmark string, m LMEvalMetric, p CommandParams) (string, error) {
	if err := CheckModelArg(p.ModelPath); err != nil {
		return "", err
	}
	if m.Task == "" {
		return "", fmt.Errorf("lm-eval: benchmark %q has no task", benchmark)
	}
	var args []string
	batch := "auto"
	switch p.LMEvalBackend {
	case "", LMEvalVLLM:
		args = []string{"lm_eval", "--model", "vllm",
			"--model_args", fmt.Sprintf("pretrained=%s,dtype=auto,max_model_len=%d", p.ModelPath, lmevalMaxModelLen)}
	case LMEvalHF:
		args = []string{"lm_eval", "--model", "hf", "--model_args", fmt.Sprintf("pretrained=%s,dtype=auto", p.ModelPath)}
		// A fixed batch: lm-eval's hf auto batch size first runs a
		// full-context forward pass at batch 64 (a third of a tiny
		// model's run on a CPU, and gigabytes).
		batch = "8"
	default:
		return "", fmt.Errorf("lm-eval: backend %q: want %q or %q", p.LMEvalBackend, LMEvalVLLM, LMEvalHF)
	}
	args = append(args, "--tasks", m.Task)
	inc, err := includePath(m, p.TaskDir)
	if err != nil {
		return "", err
	}
	args = append(args, inc...)
	if p.FewShot {
		args = append(args, "--num_fewshot", strconv.Itoa(m.FewShot))
	} else {
		args = append(args, "--num_fewshot", "0", "--apply_chat_template")
	}
	args = append(args,
		"--gen_kwargs", fmt.Sprintf("temperature=%s,top_p=%s,max_gen_toks=%d,repetition_penalty=%s,do_sample=True",
			num(Temperature(benchmark)), num(TopP), MaxNewTokens, num(RepetitionPenalty)),
		"--batch_size", batch,
		"--output_path", p.OutputDir,
		"--log_samples",
	)
	return shellJoin(args), nil
}

// includePath is the --include_path of a task: agora's task directory
// when one is given, an error when the task is agora's and none is.
func includePath(m LMEvalMetric, dir string) ([]string, error) {
	if dir == "" {
		if agoraTask(m.Task) {
			return nil, fmt.Errorf("lm-eval: task %s is agora's own: its directory (WriteLMEvalTasks) must be given", m.Task)
		}
		return nil, nil
	}
	return []string{"--include_path", dir}, nil
}

// evalplusCommand runs evalplus's code generation and evaluation in one
// call, on its vLLM backend:
//
//	evalplus.evaluate --model CKPT --dataset humaneval | mbpp
//	  --backend vllm --greedy --root DIR
//	  [--force_base_prompt]                     (base model)
//
// --greedy is temperature 0 with one sample (pass@1). evalplus exposes no
// top_p, repetition penalty or new-token limit (its vLLM decoder stops at
// its own 768 new tokens) and no few-shot prompting: the base model is
// evaluated zero-shot on the completion-style prompt (--force_base_prompt),
// students and the reference through their chat template. Results land in
// DIR/<dataset>/<model>_vllm_temp_0.0.eval_results.json.
func evalplusCommand(benchmark string, p CommandParams) (string, error) {
	ds, ok := evalplusDatasets[benchmark]
	if !ok {
		return "", fmt.Errorf("evalplus: unknown benchmark %q (known: humaneval, mbpp)", benchmark)
	}
	args := []string{"evalplus.evaluate", "--model", p.ModelPath, "--dataset", ds.name,
		"--backend", "vllm", "--greedy", "--root", p.OutputDir}
	if p.FewShot {
		args = append(args, "--force_base_prompt")
	}
	return shellJoin(args), nil
}

// alpacaEvalCommand serves the model with vLLM, answers the 805 AlpacaEval
// instructions (alpacaEvalHub) through its OpenAI-compatible API
// (temperature 0, top_p 0.95, 1024 new tokens, repetition penalty 1.03),
// then has alpaca_eval judge them against the reference outputs:
//
//	alpaca_eval --model_outputs DIR/model_outputs.json
//	  --reference_outputs DIR/reference_outputs.json
//	  --annotators_config weighted_alpaca_eval_gpt4_turbo
//	  --name NAME --output_path DIR --precomputed_leaderboard None
//	  --caching_path DIR/annotations.json
//	  --metric_kwargs '{"save_weights_dir": "DIR/glm_weights"}'
//
// With no precomputed leaderboard, DIR/weighted_alpaca_eval_gpt4_turbo/
// leaderboard.csv holds this model's row alone. The judge's annotations
// are cached in the output directory (alpaca_eval's default caches them
// inside its installed package, which may be read-only and is shared by
// every run), so a rerun of the step judges only what is new; the
// weights of the length-controlled win rate's GLM go there too (by
// default alpaca_eval writes them into its package). alpaca_eval reads the
// judge's key from OPENAI_API_KEY. alpaca_eval has no few-shot mode: the
// base model, too, is answered zero-shot (its tokenizer needs a chat
// template for the chat API).
func alpacaEvalCommand(benchmark string, p CommandParams) (string, error) {
	if err := CheckJudge(AlpacaEval, p.JudgeModel); err != nil {
		return "", err
	}
	name := ServedName(p.ModelPath)
	var b strings.Builder
	b.WriteString("(\n")
	if err := writePrelude(&b, p, name); err != nil {
		return "", fmt.Errorf("alpaca_eval: %w", err)
	}
	outputs := filepath.Join(p.OutputDir, "model_outputs.json")
	ref := filepath.Join(p.OutputDir, AlpacaEvalReference)
	fmt.Fprintf(&b, "python - %s %s %s %s <<'PY'\n", strconv.Itoa(p.Port), shellQuote(name), shellQuote(outputs), shellQuote(ref))
	fmt.Fprintf(&b, alpacaEvalGenerate, num(Temperature(benchmark)), num(TopP), MaxNewTokens, num(RepetitionPenalty))
	b.WriteString("PY\n")
	b.WriteString(shellJoin([]string{"alpaca_eval", "--model_outputs", outputs, "--reference_outputs", ref,
		"--annotators_config", AlpacaEvalAnnotators, "--name", name,
		"--output_path", p.OutputDir, "--precomputed_leaderboard", "None",
		"--caching_path", filepath.Join(p.OutputDir, AlpacaEvalCache),
		"--metric_kwargs", alpacaEvalMetricKwargs(p.OutputDir)}) + "\n")
	b.WriteString(")")
	return b.String(), nil
}

// alpacaEvalMetricKwargs is alpaca_eval's --metric_kwargs: the GLM
// weights of the length-controlled win rate saved under out. A JSON object
// is also a Python literal, which is how alpaca_eval's command line (Fire)
// reads it.
func alpacaEvalMetricKwargs(out string) string {
	b, _ := json.Marshal(map[string]string{"save_weights_dir": filepath.Join(out, "glm_weights")})
	return string(b)
}

// alpacaEvalHub is Python that reads AlpacaEval's files from the hub's
// data set repository tatsu-lab/alpaca_eval with hf_hub_download (from the
// hub cache on an offline node): alpaca_eval.json, the 805 instructions, and
// alpaca_eval_gpt4_baseline.json, AlpacaEval 2.0's reference outputs
// (GPT-4 Turbo's). datasets.load_dataset cannot read that repository any
// more: datasets ≥ 4 (the pins have 5.2) refuses its loading script
// alpaca_eval.py, and so does alpaca_eval 0.6.6's own default for the
// reference outputs, hence --reference_outputs.
const alpacaEvalHub = `from huggingface_hub import hf_hub_download
def hub(name):
    with open(hf_hub_download("tatsu-lab/alpaca_eval", name, repo_type="dataset"), encoding="utf-8") as f:
        return json.load(f)
def reference_for(eval_set, ref_path):
    wanted = {ex["instruction"] for ex in eval_set}
    with open(ref_path, "w") as f:
        json.dump([r for r in hub("alpaca_eval_gpt4_baseline.json") if r["instruction"] in wanted], f, indent=2)
`

// alpacaEvalGenerate answers the AlpacaEval set through the served model
// and writes the reference outputs; argv: port, served model name, output
// file, reference file. Format verbs: temperature, top_p, max_tokens,
// repetition_penalty.
const alpacaEvalGenerate = `import json, sys
from concurrent.futures import ThreadPoolExecutor
import openai
` + alpacaEvalHub + `port, name, path, ref_path = sys.argv[1:5]
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY")
eval_set = hub("alpaca_eval.json")
def answer(ex):
    r = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": ex["instruction"]}],
        temperature=%s, top_p=%s, max_tokens=%d,
        extra_body={"repetition_penalty": %s})
    return {"instruction": ex["instruction"], "output": r.choices[0].message.content,
            "generator": name, "dataset": ex["dataset"]}
with ThreadPoolExecutor(32) as pool:
    outputs = list(pool.map(answer, eval_set))
with open(path, "w") as f:
    json.dump(outputs, f, indent=2)
reference_for(eval_set, ref_path)
`

// AlpacaEvalReference is the file, in the output directory, holding the
// reference outputs the model is compared with.
const AlpacaEvalReference = "reference_outputs.json"

// arenaHardCommand serves the model with vLLM and runs arena-hard-auto
// v0.1 from the checkout in $ARENA_HARD_DIR, in a private working
// directory DIR/arena-hard whose data/ holds links to the checkout's
// questions and baseline answers, so that show_result.py lists this model
// and the baseline only:
//
//	python $ARENA_HARD_DIR/gen_answer.py   --setting-file gen_answer_config.yaml --endpoint-file api_config.yaml
//	python $ARENA_HARD_DIR/gen_judgment.py --setting-file judge_config.yaml --endpoint-file api_config.yaml
//	python $ARENA_HARD_DIR/show_result.py  --bench-name arena-hard-v0.1 --judge-name JUDGE --baseline gpt-4-0314
//
// (show_result.py's standard output saved as DIR/show_result.txt).
//
// gen_answer_config.yaml sets temperature 0.0 and max_tokens 1024;
// gen_answer.py sends only those, so top_p 0.95 and the repetition
// penalty 1.03 are the server's defaults (vllm serve --generation-config).
// judge_config.yaml is the checkout's config/judge_config.yaml with this
// model and the judge filled in. The judge is called with no endpoint, so
// the OpenAI client reads its key from OPENAI_API_KEY.
func arenaHardCommand(benchmark string, p CommandParams) (string, error) {
	judge := p.JudgeModel
	if judge == "" {
		judge = DefaultJudge
	}
	if err := CheckJudge(ArenaHard, judge); err != nil {
		return "", err
	}
	name := ServedName(p.ModelPath)
	work := filepath.Join(p.OutputDir, "arena-hard")
	bench := "data/" + ArenaHardBench
	var b strings.Builder
	b.WriteString("(\n")
	fmt.Fprintf(&b, ": \"${%s:?set %s to a checkout of arena-hard-auto with the %s data}\"\n", ArenaHardDirEnv, ArenaHardDirEnv, ArenaHardBench)
	if err := writePrelude(&b, p, name); err != nil {
		return "", fmt.Errorf("arena-hard-auto: %w", err)
	}
	fmt.Fprintf(&b, "mkdir -p %s\n", shellQuote(filepath.Join(work, bench, "model_answer")))
	// The steps run in the private directory, in a nested subshell whose
	// standard output is show_result.py's alone (the others' goes to
	// standard error), saved where Parse reads it; a relative output
	// directory still names the same place for tee.
	b.WriteString("(\n")
	fmt.Fprintf(&b, "cd %s\n", shellQuote(work))
	fmt.Fprintf(&b, "ln -sfn \"$%s/%s/question.jsonl\" %s/question.jsonl\n", ArenaHardDirEnv, bench, bench)
	fmt.Fprintf(&b, "ln -sfn \"$%s/%s/model_answer/%s.jsonl\" %s/model_answer/%s.jsonl\n",
		ArenaHardDirEnv, bench, ArenaHardBaseline, bench, ArenaHardBaseline)
	b.WriteString("cat > gen_answer_config.yaml <<'YAML'\n")
	fmt.Fprintf(&b, "name: config of answer generation for %s\nbench_name: %s\ntemperature: %s\nmax_tokens: %d\nnum_choices: 1\nmodel_list:\n  - %s\n",
		ArenaHardBench, ArenaHardBench, num(Temperature(benchmark)), MaxNewTokens, yamlQuote(name))
	b.WriteString("YAML\n")
	b.WriteString("cat > api_config.yaml <<'YAML'\n")
	fmt.Fprintf(&b, "%s:\n  model_name: %s\n  endpoints:\n    - api_base: %s\n      api_key: EMPTY\n  api_type: openai\n  parallel: 16\n",
		yamlQuote(name), yamlQuote(name), yamlQuote(fmt.Sprintf("http://127.0.0.1:%d/v1", p.Port)))
	fmt.Fprintf(&b, "%s:\n  model_name: %s\n  endpoints: null\n  api_type: openai\n  parallel: 8\n", yamlQuote(judge), yamlQuote(judge))
	b.WriteString("YAML\n")
	fmt.Fprintf(&b, "python - \"$%s/config/judge_config.yaml\" judge_config.yaml %s %s %s %s <<'PY'\n",
		ArenaHardDirEnv, shellQuote(judge), shellQuote(name), shellQuote(ArenaHardBench), shellQuote(ArenaHardBaseline))
	b.WriteString(arenaHardJudgeConfig)
	b.WriteString("PY\n")
	fmt.Fprintf(&b, "python \"$%s/gen_answer.py\" --setting-file gen_answer_config.yaml --endpoint-file api_config.yaml >&2\n", ArenaHardDirEnv)
	fmt.Fprintf(&b, "python \"$%s/gen_judgment.py\" --setting-file judge_config.yaml --endpoint-file api_config.yaml >&2\n", ArenaHardDirEnv)
	fmt.Fprintf(&b, "python \"$%s/show_result.py\" --bench-name %s --judge-name %s --baseline %s\n",
		ArenaHardDirEnv, ArenaHardBench, shellQuote(judge), ArenaHardBaseline)
	fmt.Fprintf(&b, ") | tee %s\n", shellQuote(filepath.Join(p.OutputDir, ArenaHardResultFile)))
	b.WriteString(")")
	return b.String(), nil
}

// arenaHardJudgeConfig copies arena-hard-auto's judge configuration with
// the judge and the evaluated model filled in; argv: source, destination,
// judge, model, bench name, baseline.
const arenaHardJudgeConfig = `import sys, yaml
src, dst, judge, model, bench, baseline = sys.argv[1:7]
with open(src) as f:
    c = yaml.safe_load(f)
c.update(judge_model=judge, model_list=[model], bench_name=bench, baseline=True, baseline_model=baseline)
with open(dst, "w") as f:
    yaml.safe_dump(c, f, sort_keys=False)
`

// writePrelude writes the lines that check the judge's key, start
// `vllm serve` with the paper's sampling defaults and wait until it
// answers GET /health; the server is stopped when the subshell exits.
func writePrelude(b *strings.Builder, p CommandParams, name string) error {
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("port %d: want 1–65535 for the vLLM server", p.Port)
	}
	keyEnv := p.JudgeKeyEnv
	if keyEnv == "" {
		keyEnv = DefaultJudgeKeyEnv
	}
	if !envName.MatchString(keyEnv) {
		return fmt.Errorf("judge key variable %q is not an environment variable name", keyEnv)
	}
	b.WriteString("set -euo pipefail\n")
	if keyEnv == DefaultJudgeKeyEnv {
		fmt.Fprintf(b, ": \"${%s:?%s must hold the API key of the judge}\"\n", keyEnv, keyEnv)
	} else {
		fmt.Fprintf(b, "export %s=\"${%s:?%s must hold the API key of the judge}\"\n", DefaultJudgeKeyEnv, keyEnv, keyEnv)
	}
	gen := filepath.Join(p.OutputDir, "generation_config")
	fmt.Fprintf(b, "mkdir -p %s\n", shellQuote(gen))
	fmt.Fprintf(b, "cat > %s <<'JSON'\n", shellQuote(filepath.Join(gen, "generation_config.json")))
	fmt.Fprintf(b, "{\"top_p\": %s, \"repetition_penalty\": %s, \"max_new_tokens\": %d}\nJSON\n",
		num(TopP), num(RepetitionPenalty), MaxNewTokens)
	log := filepath.Join(p.OutputDir, "vllm.log")
	fmt.Fprintf(b, "%s >%s 2>&1 &\n", shellJoin([]string{"vllm", "serve", p.ModelPath,
		"--host", "127.0.0.1", "--port", strconv.Itoa(p.Port), "--served-model-name", name,
		"--max-model-len", strconv.Itoa(servedMaxModelLen), "--generation-config", gen}), shellQuote(log))
	b.WriteString("vllm_pid=$!\n")
	b.WriteString("trap 'kill \"$vllm_pid\" 2>/dev/null || true; wait \"$vllm_pid\" 2>/dev/null || true' EXIT\n")
	fmt.Fprintf(b, "until curl -sf http://127.0.0.1:%d/health >/dev/null; do\n", p.Port)
	fmt.Fprintf(b, "  kill -0 \"$vllm_pid\" 2>/dev/null || { echo \"vllm serve exited before it was ready; see \"%s >&2; exit 1; }\n", shellQuote(log))
	b.WriteString("  sleep 5\ndone\n")
	return nil
}

var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	judgeName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]*$`)
	nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// ServedName is the name a model is served and listed under: the last
// element of its path, with characters other than letters, digits and
// . _ - replaced by '-'.
func ServedName(modelPath string) string {
	base := filepath.Base(filepath.Clean(modelPath))
	s := strings.Trim(nameUnsafe.ReplaceAllString(base, "-"), "-.")
	if s == "" {
		return "model"
	}
	return s
}

// num formats a decoding parameter the way Python reads it.
func num(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// shellQuote quotes s for a POSIX shell, leaving plain words bare.
func shellQuote(s string) string {
	if s != "" && plainWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// yamlQuote writes s as a single-quoted YAML scalar.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
