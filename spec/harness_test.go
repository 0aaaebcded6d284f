package spec

import (
	"testing"

	"github.com/agorabench/agora/harness"
)

func TestHarnessNamesMatch(t *testing.T) {
	for got, want := range map[string]string{
		HarnessLMEval: harness.LMEval, HarnessEvalPlus: harness.EvalPlus,
		HarnessAlpacaEval: harness.AlpacaEval, HarnessArenaHard: harness.ArenaHard,
	} {
		if got != want {
			t.Errorf("spec says harness %q, harness %q", got, want)
		}
	}
}

// Every built-in benchmark is one its harness knows, with its default
// judge, so that the spec's check (checkRunnable) passes the defaults and
// the harness renders a command for each.
func TestBuiltinBenchmarksHaveCommands(t *testing.T) {
	for _, name := range BuiltinBenchmarks() {
		b := builtinBenchmarks[name]
		if err := harness.CheckBenchmark(b.Harness, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		judge := ""
		if j := builtinJudges[name]; j != nil {
			judge = j().Model
		}
		if err := harness.CheckJudge(b.Harness, judge); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := harness.Command(b.Harness, name, harness.CommandParams{ModelPath: "/ckpt/m", OutputDir: "/out", Port: 8000, TaskDir: "/tasks", JudgeModel: judge}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
