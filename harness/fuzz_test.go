package harness

import (
	"os"
	"testing"
)

// The parsers must return a score or an error for any input, never panic,
// and never return a score that is not a finite percentage.

func checkScore(t *testing.T, s Score, err error) {
	t.Helper()
	if err != nil {
		return
	}
	if isNaNOrInf(s.Value) || s.Value < 0 || s.Value > 100 {
		t.Fatalf("score %v out of range", s.Value)
	}
	if s.Detail == nil {
		t.Fatal("nil Detail")
	}
}

func seed(f *testing.F, paths ...string) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzLMEval(f *testing.F) {
	seed(f, "testdata/lmeval/gsm8k/__ckpt__student-math-ig/results_2024-11-02T10-11-12.345678.json",
		"testdata/lmeval/math/__models__Llama-3.1-8B/results_2024-11-03T08-30-05.910112.json")
	f.Add([]byte(`{"results": {"gsm8k": {"exact_match,flexible-extract": NaN}}, "groups": {"gsm8k": {}}}`))
	f.Add([]byte(`{"groups": {"minerva_math": {"exact_match,none": "N/A"}}}`))
	o := DefaultOptions()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range []string{"gsm8k", "math"} {
			s, err := parseLMEval(data, o.LMEval[b])
			checkScore(t, s, err)
		}
	})
}

func FuzzEvalPlus(f *testing.F) {
	seed(f, "testdata/evalplus/humaneval/__ckpt__student-code-rg_vllm_temp_0.0.eval_results.json")
	f.Add([]byte(`{"eval": {"HumanEval/0": [{"base_status": "pass", "plus_status": null}]}}`))
	f.Add([]byte(`{"eval": {"Mbpp/2": {"nfiles": 1, "base": [["success", []]]}}, "pass_at_k": {"base": {"pass@1": Infinity}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ds := range evalplusDatasets {
			for _, tests := range []string{EvalPlusBase, EvalPlusPlus} {
				s, err := parseEvalPlus(data, ds, tests)
				checkScore(t, s, err)
			}
		}
	})
}

func FuzzAlpacaEval(f *testing.F) {
	seed(f, "testdata/alpacaeval/weighted_alpaca_eval_gpt4_turbo/leaderboard.csv",
		"testdata/alpacaeval_leaderboard/weighted_alpaca_eval_gpt4_turbo/leaderboard.csv")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []string{"", "student-if-rg"} {
			s, err := parseAlpacaEval(data, m)
			checkScore(t, s, err)
		}
	})
}

func FuzzArenaHard(f *testing.F) {
	seed(f, "testdata/arenahard/show_result.txt", "testdata/arenahard_full/show_result.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []string{"", "student-if-ig"} {
			s, err := parseArenaHard(data, m, "gpt-4-0314")
			checkScore(t, s, err)
		}
	})
}

func FuzzSanitizePythonJSON(f *testing.F) {
	f.Add([]byte(`{"a": NaN, "b": "NaN", "c": [-Infinity]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := sanitizePythonJSON(data)
		if len(out) > 2*len(data)+8 {
			t.Fatalf("output grew from %d to %d bytes", len(data), len(out))
		}
	})
}
