package harness

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// APIParams describe a model that answers a benchmark through an
// OpenAI-compatible API instead of being served from a checkpoint: a
// generator measuring its own problem solving, behind agora's proxy.
type APIParams struct {
	// BaseURL is the API's base, e.g. http://127.0.0.1:PORT/v1.
	BaseURL string
	// Model is the model name sent with each request.
	Model string
	// KeyEnv names the environment variable holding the API's key at run
	// time. Only the name is written into the command.
	KeyEnv string
	// OutputDir receives the harness's result files, in the layout Parse
	// reads.
	OutputDir string
	// Limit answers the benchmark's first Limit problems; 0 answers all.
	Limit int
	// Of is the benchmark's number of problems, when known: lm-eval is
	// then given the share Limit/Of, which it applies to each task of a
	// group (MATH's seven subjects) instead of Limit problems per task.
	Of int
	// Concurrency is the number of requests the harness keeps in flight
	// (default 8).
	Concurrency int
	// JudgeModel, JudgeKeyEnv and TaskDir are as in CommandParams.
	JudgeModel, JudgeKeyEnv string
	TaskDir                 string
}

// APICommand renders the shell command that has the model behind p.BaseURL
// answer benchmark with harness, writing the harness's result files under
// p.OutputDir where Parse reads them, with the paper's evaluation decoding
// wherever the harness passes it on. The model is named in the results
// after p.Model (ServedName).
func APICommand(harness, benchmark string, p APIParams) (string, error) {
	return APICommandWith(harness, benchmark, p, DefaultOptions())
}

// APICommandWith is APICommand with the lm-eval tasks of o.
func APICommandWith(harness, benchmark string, p APIParams, o Options) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	switch harness {
	case LMEval:
		m, ok := o.LMEval[benchmark]
		if !ok {
			return "", fmt.Errorf("lm-eval: no task configured for benchmark %q (configured: %s)",
				benchmark, strings.Join(sortedKeys(o.LMEval), ", "))
		}
		return lmevalAPICommand(benchmark, m, p)
	case EvalPlus:
		return evalplusAPICommand(benchmark, p)
	case AlpacaEval:
		return alpacaEvalAPICommand(benchmark, p)
	case ArenaHard:
		return arenaHardAPICommand(benchmark, p)
	}
	return "", fmt.Errorf("unknown harness %q (known: %s)", harness, strings.Join(Harnesses(), ", "))
}

func (p APIParams) check() error {
	u, err := url.Parse(p.BaseURL)
	switch {
	case err == nil && u.User != nil:
		return errors.New("harness command: the base URL must not carry credentials (it is not shown)")
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return fmt.Errorf("harness command: base URL %q: want http(s)://host[:port]/path", p.BaseURL)
	}
	if p.Model == "" {
		return errors.New("harness command: no model name")
	}
	if p.OutputDir == "" {
		return errors.New("harness command: no output directory")
	}
	if !envName.MatchString(p.KeyEnv) {
		return fmt.Errorf("harness command: key variable %q is not an environment variable name", p.KeyEnv)
	}
	if p.Limit < 0 {
		return fmt.Errorf("harness command: limit %d: want 0 (all) or more", p.Limit)
	}
	return nil
}

func (p APIParams) concurrency() int {
	if p.Concurrency > 0 {
		return p.Concurrency
	}
	return 8
}

// keyFrom is the shell expression of the API key: the variable's value,
// or an error naming it when it is unset.
func (p APIParams) keyFrom() string {
	return fmt.Sprintf("\"${%s:?%s must hold the API key of %s}\"", p.KeyEnv, p.KeyEnv, p.BaseURL)
}

// lmevalAPICommand runs lm-evaluation-harness against the API:
//
//	OPENAI_API_KEY="$KEY" lm_eval --model local-chat-completions
//	  --model_args model=NAME,base_url=URL/chat/completions,num_concurrent=N,max_retries=3,tokenized_requests=False
//	  --tasks gsm8k | agora_math [--include_path TASKDIR] --num_fewshot 0 --apply_chat_template
//	  --gen_kwargs temperature=0.2,top_p=0.95,max_gen_toks=1024,repetition_penalty=1.03
//	  --batch_size 1 --output_path DIR --log_samples [--limit N | SHARE]
//
// lm-eval applies --limit to each task: a group such as minerva_math (seven
// subjects) would answer seven times N problems. With the benchmark's size
// known (Of), --limit is the share (N − ½) / Of instead, which lm-eval
// turns into ceil(share × the task's size) per task: exactly N for a single
// task, N in proportion to the subjects' sizes (up to one more per
// subject) for a group. local-chat-completions sends the key it reads from OPENAI_API_KEY, turns
// max_gen_toks into max_tokens, and passes the other --gen_kwargs in the
// request body. Generators answer zero-shot through their chat template,
// as the students and the reference do.
func lmevalAPICommand(benchmark string, m LMEvalMetric, p APIParams) (string, error) {
	if strings.ContainsAny(p.Model+p.BaseURL, ",=") {
		return "", fmt.Errorf("lm-eval: model name %q or base URL %q contains ',' or '=', which --model_args cannot carry", p.Model, p.BaseURL)
	}
	if m.Task == "" {
		return "", fmt.Errorf("lm-eval: benchmark %q has no task", benchmark)
	}
	args := []string{
		"lm_eval", "--model", "local-chat-completions",
		"--model_args", fmt.Sprintf("model=%s,base_url=%s/chat/completions,num_concurrent=%d,max_retries=3,tokenized_requests=False",
			p.Model, strings.TrimRight(p.BaseURL, "/"), p.concurrency()),
		"--tasks", m.Task,
	}
	inc, err := includePath(m, p.TaskDir)
	if err != nil {
		return "", err
	}
	args = append(args, inc...)
	args = append(args,
		"--num_fewshot", "0", "--apply_chat_template",
		"--gen_kwargs", fmt.Sprintf("temperature=%s,top_p=%s,max_gen_toks=%d,repetition_penalty=%s",
			num(Temperature(benchmark)), num(TopP), MaxNewTokens, num(RepetitionPenalty)),
		"--batch_size", "1",
		"--output_path", p.OutputDir,
		"--log_samples",
	)
	switch {
	case p.Limit > 0 && p.Of > p.Limit:
		args = append(args, "--limit", strconv.FormatFloat((float64(p.Limit)-0.5)/float64(p.Of), 'g', 8, 64))
	case p.Limit > 0:
		args = append(args, "--limit", strconv.Itoa(p.Limit))
	}
	return "OPENAI_API_KEY=" + p.keyFrom() + " " + shellJoin(args), nil
}

// evalplusAPICommand runs evalplus's generation and evaluation against the
// API:
//
//	OPENAI_API_KEY="$KEY" evalplus.evaluate --model NAME --dataset humaneval | mbpp
//	  --backend openai --base_url URL --greedy --root DIR [--id_range '[0, N]']
//
// evalplus's OpenAI backend sends temperature 0 (--greedy) and its own
// new-token limit; it has no top_p or repetition penalty. --id_range
// selects tasks by their number (HumanEval/0 … HumanEval/N−1): the first
// N of HumanEval, but fewer than N of MBPP+, whose numbers start at 2 and
// have gaps, so the plan's estimate is an upper bound there. Results land in
// DIR/<dataset>/<model>_openai_temp_0.0.eval_results.json.
func evalplusAPICommand(benchmark string, p APIParams) (string, error) {
	ds, ok := evalplusDatasets[benchmark]
	if !ok {
		return "", fmt.Errorf("evalplus: unknown benchmark %q (known: humaneval, mbpp)", benchmark)
	}
	args := []string{"evalplus.evaluate", "--model", p.Model, "--dataset", ds.name,
		"--backend", "openai", "--base_url", strings.TrimRight(p.BaseURL, "/"), "--greedy", "--root", p.OutputDir}
	if p.Limit > 0 {
		args = append(args, "--id_range", fmt.Sprintf("[0, %d]", p.Limit))
	}
	return "OPENAI_API_KEY=" + p.keyFrom() + " " + shellJoin(args), nil
}

// apiPrelude checks the judge's key (exported as OPENAI_API_KEY for the
// judge) and the API's key.
func apiPrelude(b *strings.Builder, p APIParams) error {
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
	fmt.Fprintf(b, ": %s\n", p.keyFrom())
	return nil
}

// alpacaEvalAPICommand answers the AlpacaEval instructions (the first N
// with a limit) through the API with the paper's decoding (temperature 0,
// top_p 0.95, 1024 new tokens, repetition penalty 1.03), then has
// alpaca_eval judge them, as alpacaEvalCommand does for a served model.
func alpacaEvalAPICommand(benchmark string, p APIParams) (string, error) {
	if err := CheckJudge(AlpacaEval, p.JudgeModel); err != nil {
		return "", err
	}
	name := ServedName(p.Model)
	var b strings.Builder
	b.WriteString("(\n")
	if err := apiPrelude(&b, p); err != nil {
		return "", fmt.Errorf("alpaca_eval: %w", err)
	}
	fmt.Fprintf(&b, "mkdir -p %s\n", shellQuote(p.OutputDir))
	outputs := filepath.Join(p.OutputDir, "model_outputs.json")
	ref := filepath.Join(p.OutputDir, AlpacaEvalReference)
	fmt.Fprintf(&b, "python - %s %s %s %s %s %s %d %d <<'PY'\n", shellQuote(p.BaseURL), shellQuote(p.KeyEnv), shellQuote(p.Model),
		shellQuote(name), shellQuote(outputs), shellQuote(ref), p.Limit, p.concurrency())
	fmt.Fprintf(&b, alpacaEvalAPIGenerate, num(Temperature(benchmark)), num(TopP), MaxNewTokens, num(RepetitionPenalty))
	b.WriteString("PY\n")
	b.WriteString(shellJoin([]string{"alpaca_eval", "--model_outputs", outputs, "--reference_outputs", ref,
		"--annotators_config", AlpacaEvalAnnotators, "--name", name,
		"--output_path", p.OutputDir, "--precomputed_leaderboard", "None",
		"--caching_path", filepath.Join(p.OutputDir, AlpacaEvalCache),
		"--metric_kwargs", alpacaEvalMetricKwargs(p.OutputDir)}) + "\n")
	b.WriteString(")")
	return b.String(), nil
}

// alpacaEvalAPIGenerate answers the AlpacaEval set through the API and
// writes the reference outputs (alpacaEvalHub); argv: base URL, key
// variable, model, name in the outputs, output file, reference file, limit
// (0: all), concurrency. Format verbs: temperature, top_p, max_tokens,
// repetition_penalty.
const alpacaEvalAPIGenerate = `import json, os, sys
from concurrent.futures import ThreadPoolExecutor
import openai
` + alpacaEvalHub + `base, key_env, model, name, path, ref_path, limit, workers = sys.argv[1:9]
client = openai.OpenAI(base_url=base, api_key=os.environ[key_env])
eval_set = hub("alpaca_eval.json")
if int(limit) > 0:
    eval_set = eval_set[:int(limit)]
def answer(ex):
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": ex["instruction"]}],
        temperature=%s, top_p=%s, max_tokens=%d,
        extra_body={"repetition_penalty": %s})
    return {"instruction": ex["instruction"], "output": r.choices[0].message.content,
            "generator": name, "dataset": ex["dataset"]}
with ThreadPoolExecutor(int(workers)) as pool:
    outputs = list(pool.map(answer, eval_set))
with open(path, "w") as f:
    json.dump(outputs, f, indent=2)
reference_for(eval_set, ref_path)
`

// arenaHardAPICommand runs arena-hard-auto v0.1 as arenaHardCommand does,
// with the model's answers coming from the API: api_config.yaml names the
// API's base and key (written from the key variable when the job runs;
// agora's proxy key is valid for that run only), and with a limit the
// private data directory holds the first N questions instead of a link to
// all of them.
func arenaHardAPICommand(benchmark string, p APIParams) (string, error) {
	judge := p.JudgeModel
	if judge == "" {
		judge = DefaultJudge
	}
	if err := CheckJudge(ArenaHard, judge); err != nil {
		return "", err
	}
	name := ServedName(p.Model)
	work := filepath.Join(p.OutputDir, "arena-hard")
	bench := "data/" + ArenaHardBench
	var b strings.Builder
	b.WriteString("(\n")
	fmt.Fprintf(&b, ": \"${%s:?set %s to a checkout of arena-hard-auto with the %s data}\"\n", ArenaHardDirEnv, ArenaHardDirEnv, ArenaHardBench)
	if err := apiPrelude(&b, p); err != nil {
		return "", fmt.Errorf("arena-hard-auto: %w", err)
	}
	fmt.Fprintf(&b, "mkdir -p %s\n", shellQuote(filepath.Join(work, bench, "model_answer")))
	b.WriteString("(\n")
	fmt.Fprintf(&b, "cd %s\n", shellQuote(work))
	if p.Limit > 0 {
		fmt.Fprintf(&b, "head -n %d \"$%s/%s/question.jsonl\" > %s/question.jsonl\n", p.Limit, ArenaHardDirEnv, bench, bench)
	} else {
		fmt.Fprintf(&b, "ln -sfn \"$%s/%s/question.jsonl\" %s/question.jsonl\n", ArenaHardDirEnv, bench, bench)
	}
	fmt.Fprintf(&b, "ln -sfn \"$%s/%s/model_answer/%s.jsonl\" %s/model_answer/%s.jsonl\n",
		ArenaHardDirEnv, bench, ArenaHardBaseline, bench, ArenaHardBaseline)
	b.WriteString("cat > gen_answer_config.yaml <<'YAML'\n")
	fmt.Fprintf(&b, "name: config of answer generation for %s\nbench_name: %s\ntemperature: %s\nmax_tokens: %d\nnum_choices: 1\nmodel_list:\n  - %s\n",
		ArenaHardBench, ArenaHardBench, num(Temperature(benchmark)), MaxNewTokens, yamlQuote(name))
	b.WriteString("YAML\n")
	// The key is written when the job runs, by a program that reads it
	// from the environment: it is not in this script.
	fmt.Fprintf(&b, "python - api_config.yaml %s %s %s %s %s %d <<'PY'\n", shellQuote(p.KeyEnv), shellQuote(name), shellQuote(p.Model),
		shellQuote(p.BaseURL), shellQuote(judge), p.concurrency())
	b.WriteString(arenaHardAPIConfig)
	b.WriteString("PY\n")
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

// arenaHardAPIConfig writes arena-hard-auto's endpoint file: the model
// (listed under its name, sent as model) at the API with the key from the
// environment, and the judge at OpenAI (no endpoint: the client reads
// OPENAI_API_KEY); argv: file, key variable, name, model, base URL, judge,
// parallel requests. The file is the job's own (mode 0600).
const arenaHardAPIConfig = `import json, os, sys
path, key_env, name, model, base, judge, parallel = sys.argv[1:8]
cfg = {name: {"model_name": model, "endpoints": [{"api_base": base, "api_key": os.environ[key_env]}],
              "api_type": "openai", "parallel": int(parallel)},
       judge: {"model_name": judge, "endpoints": None, "api_type": "openai", "parallel": 8}}
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump(cfg, f, indent=2)
`
