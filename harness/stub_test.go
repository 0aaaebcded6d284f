package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stubs stand in for the harnesses' executables: each writes its result
// files where the real one does (the layouts in the package
// documentation), taking them from testdata.
var stubs = map[string]string{
	"vllm": "#!/bin/sh\nexec sleep 60\n",
	"curl": "#!/bin/sh\nexit 0\n",
	"lm_eval": `#!/bin/bash
while [ $# -gt 0 ]; do case "$1" in --output_path) out=$2; shift;; --tasks) task=$2; shift;; esac; shift; done
mkdir -p "$out/__ckpt__student"
cp "$FIXTURES/lmeval/$task.json" "$out/__ckpt__student/results_2024-11-02T10-11-12.345678.json"
`,
	"evalplus.evaluate": `#!/bin/bash
while [ $# -gt 0 ]; do case "$1" in --root) root=$2; shift;; --dataset) ds=$2; shift;; esac; shift; done
mkdir -p "$root/$ds"
cp "$FIXTURES/evalplus/$ds/"*.eval_results.json "$root/$ds/__ckpt__student_vllm_temp_0.0.eval_results.json"
`,
	"alpaca_eval": `#!/bin/bash
while [ $# -gt 0 ]; do case "$1" in --output_path) out=$2; shift;; --name) name=$2; shift;; --annotators_config) ann=$2; shift;; --model_outputs) mo=$2; shift;; esac; shift; done
test -f "$mo"
mkdir -p "$out/$ann"
{ echo ',win_rate,standard_error,n_wins,n_wins_base,n_draws,n_total,discrete_win_rate,mode,avg_length,length_controlled_winrate,lc_standard_error'
  echo "$name,9.87,0.93,73,729,3,805,9.25,community,1287,13.41,0.58"; } > "$out/$ann/leaderboard.csv"
`,
	"python": `#!/bin/bash
if [ "$1" = - ]; then
  cat >/dev/null
  case "$2" in
    */judge_config.yaml) printf 'judge_model: %s\nmodel_list: [%s]\n' "$4" "$5" > "$3" ;;
    *) printf '[]' > "$4" ;;
  esac
  exit 0
fi
case "$1" in
  */gen_answer.py) test -f gen_answer_config.yaml && test -f api_config.yaml && test -L data/arena-hard-v0.1/question.jsonl ;;
  */gen_judgment.py) test -f judge_config.yaml ;;
  */show_result.py)
    model=$(sed -n 's/^  - .\(.*\).$/\1/p' gen_answer_config.yaml)
    echo "Namespace(bench_name='arena-hard-v0.1')"
    printf '%-30s | score: 50.0  | 95%% CI:  (0.0, 0.0)  | average #tokens: 423\n' gpt-4-0314
    printf '%-30s | score: 23.4  | 95%% CI: (-1.2, 1.5)  | average #tokens: 512\n' "$model" ;;
esac
`,
}

// TestCommandsWriteWhatParseReads runs every rendered command against the
// stubs and parses what they leave in the output directory.
func TestCommandsWriteWhatParseReads(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to run the commands")
	}
	bin := t.TempDir()
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fixtures := t.TempDir()
	for dst, src := range map[string]string{
		"lmeval/gsm8k.json":                      "testdata/lmeval/gsm8k/__ckpt__student-math-ig/results_2024-11-02T10-11-12.345678.json",
		"lmeval/agora_math.json":                 "testdata/lmeval/agora_math/student-math-ig/results_2026-12-07T15-15-49.236319.json",
		"evalplus/humaneval/x.eval_results.json": "testdata/evalplus/humaneval/__ckpt__student-code-rg_vllm_temp_0.0.eval_results.json",
		"evalplus/mbpp/x.eval_results.json":      "testdata/evalplus/mbpp/__ckpt__student-code-rg_vllm_temp_0.0.eval_results.json",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(fixtures, dst), string(b))
	}
	want := map[string]float64{
		"gsm8k": 58.76, "math": 700.0 / 12, "humaneval": 100 * 87.0 / 164, "mbpp": 100 * 210.0 / 378,
		"alpacaeval2": 13.41, "arenahard": 23.4,
	}
	for b, h := range builtinHarness {
		t.Run(b, func(t *testing.T) {
			// A relative output directory, as a job script run from its
			// working directory would name it.
			wd := t.TempDir()
			out := filepath.Join(wd, "out dir")
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			p := CommandParams{ModelPath: "/ckpt/student", OutputDir: "out dir", Port: 8000, TaskDir: "tasks"}
			cmd, err := Command(h, b, p)
			if err != nil {
				t.Fatal(err)
			}
			c := exec.Command(bash, "-c", cmd)
			c.Env = append(os.Environ(),
				"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
				"FIXTURES="+fixtures, "OPENAI_API_KEY=stub", "ARENA_HARD_DIR="+t.TempDir())
			c.Dir = wd
			if outb, err := c.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s\n--- command:\n%s", err, outb, cmd)
			}
			s, err := Parse(h, b, out)
			if err != nil {
				t.Fatal(err)
			}
			if !near(s.Value, want[b]) {
				t.Errorf("%s = %v, want %v", b, s.Value, want[b])
			}
		})
	}
}

// TestServedCommandNeedsTheKey: without the judge's key in the
// environment the command stops before serving anything.
func TestServedCommandNeedsTheKey(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to run the commands")
	}
	cmd, err := Command(AlpacaEval, "alpacaeval2", CommandParams{ModelPath: "/m", OutputDir: t.TempDir(), Port: 8000})
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(bash, "-c", cmd)
	c.Env = []string{"PATH=/nonexistent"}
	out, err := c.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "OPENAI_API_KEY must hold the API key of the judge") {
		t.Errorf("err %v, output %s", err, out)
	}
}
