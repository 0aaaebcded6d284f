package harness

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// near compares scores computed through float arithmetic.
func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func mustParse(t *testing.T, harness, benchmark, dir string, o Options) Score {
	t.Helper()
	s, err := ParseWith(harness, benchmark, dir, o)
	if err != nil {
		t.Fatalf("ParseWith(%s, %s, %s): %v", harness, benchmark, dir, err)
	}
	if s.Benchmark != benchmark {
		t.Errorf("Benchmark = %q, want %q", s.Benchmark, benchmark)
	}
	if s.Detail == nil {
		t.Errorf("Detail is nil")
	}
	return s
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

// copyTree copies a testdata directory into a fresh temporary one.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, r), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, r), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLMEvalGSM8K(t *testing.T) {
	dir := "testdata/lmeval/gsm8k"
	// The newest file (2024-11-02) has flexible-extract 0.5876 → 58.76 %.
	s := mustParse(t, LMEval, "gsm8k", dir, DefaultOptions())
	if !near(s.Value, 58.76) {
		t.Errorf("gsm8k = %v, want 58.76 (flexible-extract of the newest file)", s.Value)
	}
	// Detail keeps the other filter: strict-match 0.1213 → 12.13 %.
	if !near(s.Detail["exact_match,strict-match"], 12.13) {
		t.Errorf("Detail = %v", s.Detail)
	}
	// strict-match, chosen through the options.
	o := DefaultOptions()
	m := o.LMEval["gsm8k"]
	m.Filter = "strict-match"
	o.LMEval["gsm8k"] = m
	if s := mustParse(t, LMEval, "gsm8k", dir, o); !near(s.Value, 12.13) {
		t.Errorf("gsm8k strict = %v, want 12.13", s.Value)
	}
}

func TestLMEvalNewestByTimestampInName(t *testing.T) {
	dir := copyTree(t, "testdata/lmeval/gsm8k")
	// Make the older run's file the most recently modified: the timestamp
	// in the name still decides.
	old := filepath.Join(dir, "__ckpt__student-math-ig", "results_2024-11-01T09-00-00.000001.json")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(old, later, later); err != nil {
		t.Fatal(err)
	}
	if s := mustParse(t, LMEval, "gsm8k", dir, DefaultOptions()); !near(s.Value, 58.76) {
		t.Errorf("gsm8k = %v, want 58.76 from results_2024-11-02…", s.Value)
	}
}

func TestLMEvalMath(t *testing.T) {
	// agora_math's group row, as the real lm-eval 0.4.13 wrote it for 12
	// problems over the seven subjects (7 right): 0.58333… → 58.33 %.
	s := mustParse(t, LMEval, "math", "testdata/lmeval/agora_math", DefaultOptions())
	if !near(s.Value, 700.0/12) {
		t.Errorf("math = %v, want %v", s.Value, 700.0/12)
	}
	// minerva_math's exact_match (Minerva's phrasing only) is still read
	// when asked for.
	o := DefaultOptions()
	o.LMEval["math"] = LMEvalMetric{Task: "minerva_math", Metric: "exact_match", Filter: "none"}
	s = mustParse(t, LMEval, "math", "testdata/lmeval/math", o)
	if !near(s.Value, 19.36) {
		t.Errorf("minerva_math exact_match = %v, want 19.36", s.Value)
	}
	if _, ok := s.Detail["math_verify,none"]; !ok {
		t.Errorf("Detail lacks math_verify,none: %v", s.Detail)
	}
}

func TestLMEvalMissingFilter(t *testing.T) {
	o := DefaultOptions()
	o.LMEval["math"] = LMEvalMetric{Task: "minerva_math", Metric: "exact_match", Filter: "strict-match"}
	_, err := ParseWith(LMEval, "math", "testdata/lmeval/math", o)
	wantErr(t, err, "lm-eval results in testdata/lmeval/math",
		"results_2024-11-03T08-30-05.910112.json",
		`no "exact_match,strict-match" for task minerva_math`,
		`"exact_match,none"`)
}

func TestLMEvalMissingTask(t *testing.T) {
	_, err := Parse(LMEval, "gsm8k", "testdata/lmeval/math")
	wantErr(t, err, "lm-eval results in testdata/lmeval/math", "no task gsm8k")
}

func TestLMEvalUnknownBenchmark(t *testing.T) {
	_, err := Parse(LMEval, "mmlu", "testdata/lmeval/math")
	wantErr(t, err, `no task configured for benchmark "mmlu"`, "gsm8k, math")
}

func TestLMEvalNoFiles(t *testing.T) {
	_, err := Parse(LMEval, "gsm8k", t.TempDir())
	wantErr(t, err, "no results_<timestamp>.json")
	_, err = Parse(LMEval, "gsm8k", filepath.Join(t.TempDir(), "absent"))
	wantErr(t, err, "result directory", "absent")
}

func TestLMEvalGroupsFallback(t *testing.T) {
	// lm-eval ≤ 0.4.2 kept group aggregates under "groups".
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "m", "results_2024-05-01T10-00-00.json"), `{
  "results": {"minerva_math_algebra": {"exact_match,none": 0.25, "alias": " - minerva_math_algebra"}},
  "groups": {"minerva_math": {"exact_match,none": 0.2, "exact_match_stderr,none": "N/A", "alias": "minerva_math"}}
}`)
	o := DefaultOptions()
	o.LMEval["math"] = LMEvalMetric{Task: "minerva_math", Metric: "exact_match", Filter: "none"}
	if s := mustParse(t, LMEval, "math", dir, o); !near(s.Value, 20) {
		t.Errorf("math = %v, want 20 from groups.minerva_math", s.Value)
	}
}

func TestLMEvalNotANumber(t *testing.T) {
	for name, value := range map[string]string{
		"NaN":      "NaN",
		"Infinity": "-Infinity",
		"N/A":      `"N/A"`,
		"fraction": "1.5",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "m", "results_2024-05-01T10-00-00.json"),
				`{"results": {"gsm8k": {"alias": "gsm8k", "exact_match,flexible-extract": `+value+`, "exact_match_stderr,flexible-extract": NaN}}}`)
			_, err := Parse(LMEval, "gsm8k", dir)
			wantErr(t, err, "results_2024-05-01T10-00-00.json", `"exact_match,flexible-extract" for task gsm8k`)
		})
	}
}

func TestLMEvalMalformedNewest(t *testing.T) {
	// A truncated newest file is an error, not a reason to fall back on an
	// older run.
	dir := copyTree(t, "testdata/lmeval/gsm8k")
	writeFile(t, filepath.Join(dir, "__ckpt__student-math-ig", "results_2024-11-03T00-00-00.json"), `{"results": {"gsm8k": {"exact_ma`)
	_, err := Parse(LMEval, "gsm8k", dir)
	wantErr(t, err, "results_2024-11-03T00-00-00.json", "not an lm-eval results file")
}

func TestEvalPlus(t *testing.T) {
	// HumanEval: 87 of 164 tasks pass the base tests, 79 also the extra
	// tests.
	s := mustParse(t, EvalPlus, "humaneval", "testdata/evalplus", DefaultOptions())
	if !near(s.Value, 100*87.0/164) {
		t.Errorf("humaneval = %v, want %v", s.Value, 100*87.0/164)
	}
	if !near(s.Detail["plus pass@1"], 100*79.0/164) {
		t.Errorf("Detail = %v", s.Detail)
	}
	o := DefaultOptions()
	o.EvalPlusTests = EvalPlusPlus
	if s := mustParse(t, EvalPlus, "humaneval", "testdata/evalplus", o); !near(s.Value, 100*79.0/164) {
		t.Errorf("humaneval+ = %v, want %v", s.Value, 100*79.0/164)
	}
	// MBPP: 210 of 378.
	if s := mustParse(t, EvalPlus, "mbpp", "testdata/evalplus", DefaultOptions()); !near(s.Value, 100*210.0/378) {
		t.Errorf("mbpp = %v, want %v", s.Value, 100*210.0/378)
	}
}

func TestEvalPlusPicksTheDataset(t *testing.T) {
	// With both datasets' results under one root, the newest file is for
	// MBPP; HumanEval's is still the one read for humaneval.
	dir := copyTree(t, "testdata/evalplus")
	later := time.Now().Add(time.Hour)
	mbpp := filepath.Join(dir, "mbpp", "__ckpt__student-code-rg_vllm_temp_0.0.eval_results.json")
	if err := os.Chtimes(mbpp, later, later); err != nil {
		t.Fatal(err)
	}
	if s := mustParse(t, EvalPlus, "humaneval", dir, DefaultOptions()); !near(s.Value, 100*87.0/164) {
		t.Errorf("humaneval = %v", s.Value)
	}
	_, err := Parse(EvalPlus, "humaneval", filepath.Join(dir, "mbpp"))
	wantErr(t, err, "none of the 1 result files is for humaneval", `"HumanEval/"`)
}

// rewriteEvalPlus edits a copy of the HumanEval fixture.
func rewriteEvalPlus(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	b, err := os.ReadFile("testdata/evalplus/humaneval/__ckpt__student-code-rg_vllm_temp_0.0.eval_results.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "humaneval", "samples.eval_results.json"), string(out))
	return dir
}

func TestEvalPlusRecomputesPass1(t *testing.T) {
	// Without pass_at_k, pass@1 is the mean over tasks of passing/samples:
	// one sample per task, so 87/164 (base) and 79/164 (plus) again.
	dir := rewriteEvalPlus(t, func(m map[string]any) { delete(m, "pass_at_k") })
	if s := mustParse(t, EvalPlus, "humaneval", dir, DefaultOptions()); !near(s.Value, 100*87.0/164) {
		t.Errorf("recomputed base = %v, want %v", s.Value, 100*87.0/164)
	}
	o := DefaultOptions()
	o.EvalPlusTests = EvalPlusPlus
	if s := mustParse(t, EvalPlus, "humaneval", dir, o); !near(s.Value, 100*79.0/164) {
		t.Errorf("recomputed plus = %v, want %v", s.Value, 100*79.0/164)
	}
}

func TestEvalPlusErrors(t *testing.T) {
	baseOnly := rewriteEvalPlus(t, func(m map[string]any) {
		delete(m["pass_at_k"].(map[string]any), "plus")
	})
	o := DefaultOptions()
	o.EvalPlusTests = EvalPlusPlus
	_, err := ParseWith(EvalPlus, "humaneval", baseOnly, o)
	wantErr(t, err, "samples.eval_results.json", "no pass_at_k.plus", "--base-only")

	tooBig := rewriteEvalPlus(t, func(m map[string]any) {
		m["pass_at_k"].(map[string]any)["base"] = map[string]any{"pass@1": 53.0}
	})
	_, err = Parse(EvalPlus, "humaneval", tooBig)
	wantErr(t, err, `pass_at_k.base["pass@1"] is 53, outside [0, 1]`)

	noPass1 := rewriteEvalPlus(t, func(m map[string]any) {
		m["pass_at_k"].(map[string]any)["base"] = map[string]any{"pass@10": 0.7}
	})
	_, err = Parse(EvalPlus, "humaneval", noPass1)
	wantErr(t, err, `no pass_at_k.base["pass@1"]`)

	_, err = Parse(EvalPlus, "humaneval", t.TempDir())
	wantErr(t, err, "no <samples>.eval_results.json or eval_results.json")

	_, err = Parse(EvalPlus, "apps", "testdata/evalplus")
	wantErr(t, err, `unknown benchmark "apps"`)

	o.EvalPlusTests = "extra"
	_, err = ParseWith(EvalPlus, "humaneval", "testdata/evalplus", o)
	wantErr(t, err, `tests "extra"`)
}

func TestAlpacaEval(t *testing.T) {
	// The command's leaderboard holds the evaluated model alone.
	s := mustParse(t, AlpacaEval, "alpacaeval2", "testdata/alpacaeval", DefaultOptions())
	if s.Value != 13.412964508826352 {
		t.Errorf("alpacaeval2 = %v, want 13.412964508826352", s.Value)
	}
	if s.Detail["n_total"] != 805 || s.Detail["win_rate"] != 9.874353416149069 {
		t.Errorf("Detail = %v", s.Detail)
	}
	if _, ok := s.Detail["mode"]; ok {
		t.Errorf("Detail has the text column mode: %v", s.Detail)
	}

	// A leaderboard with the precomputed models: the row must be named.
	_, err := Parse(AlpacaEval, "alpacaeval2", "testdata/alpacaeval_leaderboard")
	wantErr(t, err, "weighted_alpaca_eval_gpt4_turbo/leaderboard.csv", "4 rows and no model named", `"gpt4_1106_preview"`)
	o := DefaultOptions()
	o.Model = "student-if-qe, 50K" // quoted in the CSV: it has a comma
	if s := mustParse(t, AlpacaEval, "alpacaeval2", "testdata/alpacaeval_leaderboard", o); s.Value != 14.803214442317066 {
		t.Errorf("alpacaeval2 = %v, want 14.803214442317066", s.Value)
	}
	o.Model = "absent"
	_, err = ParseWith(AlpacaEval, "alpacaeval2", "testdata/alpacaeval_leaderboard", o)
	wantErr(t, err, `no row for model "absent"`)
}

func TestAlpacaEvalErrors(t *testing.T) {
	for name, tc := range map[string]struct{ csv, want string }{
		"no column": {",win_rate,n_total\nm,9.8,805\n", "no length_controlled_winrate column"},
		"NaN":       {",win_rate,length_controlled_winrate\nm,9.8,\n", `length_controlled_winrate of "m" is empty (NaN)`},
		"text":      {",win_rate,length_controlled_winrate\nm,9.8,high\n", `is "high", not a number`},
		"range":     {",win_rate,length_controlled_winrate\nm,9.8,0.134e3\n", "outside [0, 100]"},
		"ragged":    {",win_rate,length_controlled_winrate\nm,9.8\n", "line 2 has 2 fields, the header 3"},
		"no rows":   {",win_rate,length_controlled_winrate\n", "no rows"},
		"empty":     {"", "empty file"},
		"quote":     {",length_controlled_winrate\n\"m,1\n", "not a CSV leaderboard"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "leaderboard.csv"), tc.csv)
			_, err := Parse(AlpacaEval, "alpacaeval2", dir)
			wantErr(t, err, "leaderboard.csv", tc.want)
		})
	}
	_, err := Parse(AlpacaEval, "alpacaeval2", t.TempDir())
	wantErr(t, err, "no leaderboard.csv")
}

func TestArenaHard(t *testing.T) {
	// show_result.py lists the baseline (50.0) and the evaluated model.
	s := mustParse(t, ArenaHard, "arenahard", "testdata/arenahard", DefaultOptions())
	if s.Value != 23.4 {
		t.Errorf("arenahard = %v, want 23.4", s.Value)
	}
	// CI (-1.2, 1.5) around 23.4 → [22.2, 24.9].
	if !near(s.Detail["ci_lower"], 22.2) || !near(s.Detail["ci_upper"], 24.9) || s.Detail["average_tokens"] != 512 {
		t.Errorf("Detail = %v", s.Detail)
	}

	_, err := Parse(ArenaHard, "arenahard", "testdata/arenahard_full")
	wantErr(t, err, "show_result.txt", "3 models besides the baseline", `"claude-3-opus-20240229"`)
	o := DefaultOptions()
	o.Model = "student-if-ig-with-a-name-longer-than-thirty"
	if s := mustParse(t, ArenaHard, "arenahard", "testdata/arenahard_full", o); s.Value != 8.1 {
		t.Errorf("arenahard = %v, want 8.1", s.Value)
	}
	o.Model = "gpt-4-0314"
	if s := mustParse(t, ArenaHard, "arenahard", "testdata/arenahard_full", o); s.Value != 50 {
		t.Errorf("baseline = %v, want 50", s.Value)
	}
}

func TestArenaHardErrors(t *testing.T) {
	for name, tc := range map[string]struct{ out, want string }{
		"no lines":      {"Namespace(bench_name='arena-hard-v0.1')\nTraceback (most recent call last):\n", "no leaderboard line"},
		"baseline only": {"gpt-4-0314                     | score: 50.0  | 95% CI:  (0.0, 0.0)  | average #tokens: 423\n", `only the baseline "gpt-4-0314"`},
		"nan":           {"m                              | score:  nan  | 95% CI: (nan, nan)  | average #tokens: 512\n", `score of "m" is "nan", not a number`},
		"range":         {"m                              | score: 123.0 | 95% CI: (-1.0, 1.0)  | average #tokens: 512\n", "outside [0, 100]"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, ArenaHardResultFile), tc.out)
			_, err := Parse(ArenaHard, "arenahard", dir)
			wantErr(t, err, "show_result.txt", tc.want)
		})
	}
	_, err := Parse(ArenaHard, "arenahard", t.TempDir())
	wantErr(t, err, "no show_result.txt")
}

func TestArenaHardProgressBarOnTheLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ArenaHardResultFile),
		" 40%|████      | 40/100\r100%|██████████| 100/100\rm                              | score: 31.0  | 95% CI: (-2.0, 2.2)  | average #tokens: 600\r\n")
	s := mustParse(t, ArenaHard, "arenahard", dir, DefaultOptions())
	if s.Value != 31 {
		t.Errorf("arenahard = %v, want 31", s.Value)
	}
}

func TestUnknownHarness(t *testing.T) {
	_, err := Parse("helm", "gsm8k", "testdata")
	wantErr(t, err, `unknown harness "helm"`, "lm-eval, evalplus, alpaca_eval, arena-hard-auto")
}

func TestSanitizePythonJSON(t *testing.T) {
	in := `{"a": NaN, "b": [Infinity, -Infinity, 1], "c": "NaN \" Infinity", "d": -1.5}`
	want := `{"a": null, "b": [null, null, 1], "c": "NaN \" Infinity", "d": -1.5}`
	if got := string(sanitizePythonJSON([]byte(in))); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestEvalPlus031 reads the result file evalplus 0.3.1, the pinned
// release, wrote in TestEvalPlusLocalProblems: named
// <samples>_eval_results.json, without pass_at_k (pass@1 recomputed from
// the per-sample statuses).
func TestEvalPlus031(t *testing.T) {
	s := mustParse(t, EvalPlus, "humaneval", "testdata/evalplus_0.3.1", DefaultOptions())
	if !near(s.Value, 200.0/3) {
		t.Errorf("humaneval = %v, want %v", s.Value, 200.0/3)
	}
	o := DefaultOptions()
	o.EvalPlusTests = EvalPlusPlus
	if s = mustParse(t, EvalPlus, "humaneval", "testdata/evalplus_0.3.1", o); !near(s.Value, 100.0/3) {
		t.Errorf("humaneval+ = %v, want %v", s.Value, 100.0/3)
	}
}
