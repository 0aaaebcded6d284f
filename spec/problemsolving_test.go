package spec

import (
	"reflect"
	"strings"
	"testing"
)

const twoGens = `
generators: {
	a: {provider: openai: {}, model: "a", price: {input: 1, output: 2}}
	b: {provider: openai: {}, model: "b", price: {input: 1, output: 2}}
	c: {provider: openai: {}, model: "c", price: {input: 1, output: 2}}
}
settings: {"math-ig": {}, "code-rg": {}, "if-qe": {}}
grid: exclude: [{generator: "b", setting: "if-qe"}, {generator: "c"}]
`

func TestSolveTasks(t *testing.T) {
	for _, tc := range []struct {
		name, block string
		want        []SolveTask
	}{
		{"absent", "", nil},
		{"defaults: each generator's gridded domains and every item", "problem_solving: {}", []SolveTask{
			{"a", "gsm8k", 1319}, {"a", "math", 5000}, {"a", "mbpp", 378}, {"a", "humaneval", 164},
			{"a", "alpacaeval2", 805}, {"a", "arenahard", 500},
			{"b", "gsm8k", 1319}, {"b", "math", 5000}, {"b", "mbpp", 378}, {"b", "humaneval", 164},
		}},
		{"generators benchmarks and items capped", `problem_solving: {generators: ["c", "b"], benchmarks: ["humaneval", "math"], items: 200}`, []SolveTask{
			{"c", "humaneval", 164}, {"c", "math", 200}, {"b", "humaneval", 164}, {"b", "math", 200},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := load(t, twoGens+tc.block)
			got, skipped := exp.SolveTasks()
			if !reflect.DeepEqual(got, tc.want) || skipped != nil {
				t.Errorf("SolveTasks = %v, skipped %v\nwant %v", got, skipped, tc.want)
			}
		})
	}
}

func TestSolveTasksSkipCommand(t *testing.T) {
	exp := load(t, `
generators: a: {provider: openai: {}, model: "a", price: {input: 1, output: 2}}
settings: "math-ig": {benchmarks: ["gsm8k", "mine"]}
evaluation: benchmarks: mine: {harness: "command", command: "run {{.ModelPath}}", items: 10}
problem_solving: {}
`)
	got, skipped := exp.SolveTasks()
	if want := []SolveTask{{"a", "gsm8k", 1319}}; !reflect.DeepEqual(got, want) || !reflect.DeepEqual(skipped, []string{"mine"}) {
		t.Errorf("SolveTasks = %v, skipped %v; want %v, skipped [mine]", got, skipped, want)
	}
}

func TestProblemSolvingDiagnostics(t *testing.T) {
	for _, tc := range []struct {
		name, block string
		want        []string
	}{
		{"unknown and repeated generators", "problem_solving: generators: [\"a\", \"d\", \"a\"]\n", []string{
			`agora.cue:9:36: problem_solving.generators[1]: unknown generator "d"; did you mean "a"?`,
			`agora.cue:9:41: problem_solving.generators[2]: generator "a" is listed twice`,
		}},
		{"a generator outside the grid needs benchmarks", "problem_solving: generators: [\"c\"]\n", []string{
			`agora.cue:9:31: problem_solving.generators[0]: generator "c" is in no grid cell, so it has no settings to take benchmarks from: list them under problem_solving.benchmarks`,
		}},
		{"benchmarks", "problem_solving: benchmarks: [\"gsm9k\", \"math\", \"math\", \"mine\"]\nevaluation: benchmarks: mine: {harness: \"command\", command: \"x\", items: 3}\n", []string{
			`agora.cue:9:31: problem_solving.benchmarks[0]: unknown benchmark "gsm9k"; did you mean "gsm8k"? (built in: alpacaeval2, arenahard, gsm8k, humaneval, math, mbpp; declare others under evaluation.benchmarks)`,
			`agora.cue:9:48: problem_solving.benchmarks[2]: benchmark "math" is listed twice`,
			`agora.cue:9:56: problem_solving.benchmarks[3]: benchmark "mine" runs a command template on a checkpoint, which a generator behind an API cannot answer: use a benchmark of lm-eval, evalplus, alpaca_eval or arena-hard-auto`,
		}},
		{"items", "problem_solving: items: 0\n", []string{
			`agora.cue:9:25: problem_solving.items: invalid value 0 (out of bound >0)`,
		}},
		{"typo", "problem_solving: item: 3\n", []string{
			`agora.cue:9:18: problem_solving.item: unknown field "item"; did you mean "items"?`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range diagnose(t, twoGens+tc.block) {
				got = append(got, d.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
