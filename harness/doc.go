// Package harness knows the four evaluation harnesses AgoraBench uses: the
// shell command that runs each one with the paper's decoding settings
// (Command), and a parser for each harness's own result files (Parse).
//
// agora never re-implements a benchmark: a harness writes its results in
// its own format, and this package reads that format as the harness writes
// it. Every score is returned in percent (0–100), whatever scale the harness
// uses.
//
// # lm-evaluation-harness (harness "lm-eval"): GSM8K and MATH
//
// `lm_eval … --output_path DIR` writes DIR/<model_name_sanitized>/
// results_<timestamp>.json, where <timestamp> is the ISO time with ':'
// replaced by '-' (results_2024-11-02T10-11-12.345678.json). Parse looks in
// DIR and its subdirectories (two levels), and reads the newest results
// file — newest by the timestamp in its name, by modification time where
// the name carries none — among those whose "results" object has the task.
// The score is
//
//	results.<task>["<metric>,<filter>"] × 100
//
// falling back to groups.<task> (lm-eval ≤ 0.4.2 kept group aggregates
// there). Defaults (DefaultOptions, changeable through Options.LMEval):
//
//	benchmark  task          key                            few-shot (base model)
//	gsm8k      gsm8k         exact_match,flexible-extract   5
//	math       agora_math    math_verify,none               4
//
// GSM8K reports two filters. "strict-match" only accepts an answer written
// after "#### ", the format of the few-shot exemplars; "flexible-extract"
// takes the last number in the response. Students and the reference model
// are evaluated zero-shot and were never shown the "####" convention, so
// strict-match would score answer formatting rather than arithmetic; the
// default is therefore flexible-extract, used for every model so that base,
// student and reference are scored alike.
//
// MATH is agora's own lm-eval task group agora_math (lmeval_tasks/, written
// into the run directory by WriteLMEvalTasks and named with
// --include_path): minerva_math's seven subjects, prompt, stop sequence
// and four few-shot exemplars, scored by math-verify on the final answer
// in whatever form the model gives it — the last [RESULT] … [/RESULT]
// first, else math-verify's own reading of the response (\boxed{}, "final
// answer is", the last LaTeX expression or number) — compared with the
// solution's boxed answer by mathematical equivalence. lm-eval's
// minerva_math is not used: its exact_match accepts only the Minerva
// phrasing "Final Answer: The final answer is … I hope it is correct.",
// its math_verify misses [RESULT] answers that are not plain numbers, and
// it does not load beside math-verify 0.9's antlr4 4.13. The group row is
// the size-weighted mean of the seven subjects. Score.Detail holds every
// numeric metric of the task, in percent.
//
// The answer forms, each a test case (TestMathAnswerForms, and through the
// real lm-eval TestMathFormsThroughLMEval), with the verdicts of lm-eval's
// math_verify metric and of agora_math (docs/evaluation.md shows the
// responses too; TestAnswerFormsDocumented keeps both tables the tests'):
//
//	#   answer form                                           math_verify  agora_math
//	1   \boxed{} after the working                            right        right
//	2   \boxed{} inside $…$                                   right        right
//	3   \boxed{\dfrac12}                                      right        right
//	4   \boxed{1/2}                                           right        right
//	5   [RESULT] LaTeX [/RESULT]                              right        right
//	6   [RESULT] 1/2 [/RESULT]                                right        right
//	7   [RESULT] integer [/RESULT] after other numbers        right        right
//	8   [RESULT] $12$ [/RESULT]                               right        right
//	9   [RESULT] with a unit [/RESULT]                        right        right
//	10  [RESULT] equation [/RESULT]                           right        right
//	11  [RESULT] tuple [/RESULT]                              wrong        right
//	12  [RESULT] interval [/RESULT]                           wrong        right
//	13  [RESULT] LaTeX without $ [/RESULT]                    wrong        right
//	14  [RESULT] … [/RESULT] then a number                    wrong        right
//	15  [RESULT] unclosed at the end                          right        right
//	16  [RESULT] multiple choice [/RESULT]                    wrong        right
//	17  [RESULT] wrong [/RESULT]                              wrong        wrong
//	18  The answer is N.                                      right        right
//	19  The answer is $…$.                                    right        right
//	20  Minerva: Final Answer: The final answer is $…$. …     right        right
//	21  Final Answer: N                                       right        right
//	22  Markdown bold **Answer:** N                           right        right
//	23  last displayed $$x = …$$                              right        right
//	24  last displayed \[ … \]                                right        right
//	25  inline \( … \)                                        right        right
//	26  equivalent decimal                                    right        right
//	27  GSM8K's #### N                                        right        right
//	28  interval in $…$                                       right        right
//	29  two \boxed{} (read as a set)                          wrong        wrong
//	30  last number wrong                                     wrong        wrong
//	31  no answer                                             wrong        wrong
//
// The model runs on lm-eval's vLLM backend, or on its transformers backend
// (CommandParams.LMEvalBackend "hf") where vLLM is not installed.
//
// # evalplus (harness "evalplus"): HumanEval and MBPP
//
// `evalplus.evaluate --root DIR …` writes DIR/<dataset>/<id>.jsonl and
// beside it <id>_eval_results.json (evalplus 0.3.1, the pinned release;
// later versions name it <id>.eval_results.json; eval_results.json inside
// a samples directory when samples are not JSONL). Parse reads the newest such file
// under DIR whose task ids belong to the benchmark ("HumanEval/…" for
// humaneval, "Mbpp/…" for mbpp). The score is
//
//	pass_at_k.<tests>["pass@1"] × 100
//
// where <tests> is "base" (the benchmark's original tests) or "plus" (the
// original tests and EvalPlus's extra tests; HumanEval+ / MBPP+). The
// default is "base": AgoraBench reports HumanEval and MBPP, not their "+"
// variants; Options.EvalPlusTests selects "plus". A result file without
// pass_at_k (evalplus 0.3.1 writes none) has its pass@1 recomputed from the
// per-sample "base_status"/"plus_status" fields (the mean over tasks of
// passing samples / samples, evalplus's own estimator at k = 1).
// Score.Detail holds "base pass@k" and "plus pass@k" for every k, in percent.
//
// # alpaca_eval (harness "alpaca_eval"): AlpacaEval 2.0
//
// `alpaca_eval evaluate --output_path DIR --annotators_config NAME …`
// (agora adds --caching_path and --metric_kwargs so that the judge's
// annotations and the length-controlled GLM's weights stay in DIR, not in
// alpaca_eval's package) writes DIR/NAME/leaderboard.csv (DIR/leaderboard.csv when NAME is a
// path): pandas' to_csv of the leaderboard, whose first, unnamed column is
// the model name and whose other columns include win_rate,
// standard_error, n_wins, n_wins_base, n_draws, n_total,
// discrete_win_rate, mode, avg_length, length_controlled_winrate and
// lc_standard_error. Parse reads DIR/leaderboard.csv or
// DIR/*/leaderboard.csv (the most recently modified, if several). The
// score is the row's length_controlled_winrate, already in percent. The
// row is Options.Model's; with no model named, the only row (the command
// agora renders passes --precomputed_leaderboard None, so the file holds
// the evaluated model alone). Numeric columns go to Score.Detail under
// their own names.
//
// # arena-hard-auto (harness "arena-hard-auto"): Arena-Hard
//
// arena-hard-auto writes no result file: show_result.py prints the
// leaderboard, and the command agora renders saves that standard output as
// DIR/show_result.txt. Assumed format — arena-hard-auto v0.1's
// show_result.py, one line per model:
//
//	f"{model : <30} | score: {score : ^5} | 95% CI: {interval : ^12} | average #tokens: {tokens}"
//
// for example
//
//	agora-student                  | score: 23.4  | 95% CI: (-1.2, 1.5)  | average #tokens: 512
//
// where score is the win rate against the baseline model (gpt-4-0314,
// which prints as 50.0) in percent, and the interval is relative to it.
// Other lines (the argparse Namespace, progress messages) are ignored. The
// row is Options.Model's; with no model named, the only row that is not the
// baseline (Options.ArenaHardBaseline). Score.Detail holds "score",
// "ci_lower", "ci_upper" (absolute bounds, percent) and "average_tokens".
// The v2.0 show_result.py prints a pandas table instead and is not read.
//
// # Errors
//
// A missing file, a missing key, a value that is not a finite number or
// lies outside the metric's range each give an error naming the file and
// what was missing; no input, however malformed, makes Parse panic. Python
// writes NaN and Infinity into JSON as bare words; they are read as
// missing values and reported as such.
package harness
