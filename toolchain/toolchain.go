package toolchain

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// Tool is one Python distribution a job uses.
type Tool struct {
	// Dist is the distribution's name as importlib.metadata knows it.
	Dist string
	// Import is the module imported to check that it loads; "" for none.
	Import string
	// Command is an executable the job runs, which must be in PATH; ""
	// for none.
	Command string
	// Min is the lowest accepted version and Below the first version not
	// accepted ("" for no bound): the release series agora was checked
	// against, up to the next major version.
	Min, Below string
	// Pinned is the version in toolchain/*.txt, what the tests run.
	Pinned string
	// Why says what agora relies on, shown with a mismatch.
	Why string
}

// The tools, by distribution. Versions: docs/toolchain.md.
var (
	torch        = Tool{Dist: "torch", Import: "torch", Min: "2.4", Below: "3", Pinned: "2.15.0", Why: "the trainers' and models' tensor library"}
	transformers = Tool{Dist: "transformers", Import: "transformers", Min: "5.0", Below: "6", Pinned: "5.25.0", Why: "Trainer, which agora_train.py extends with resume and checkpoint-on-USR1; chat templates saved as chat_template.jinja"}
	trl          = Tool{Dist: "trl", Import: "trl.scripts.sft", Min: "1.0", Below: "2", Pinned: "1.16.0", Why: "trl.scripts.sft with the SFTConfig keys agora writes (max_length, completion_only_loss, datasets)"}
	accelerate   = Tool{Dist: "accelerate", Import: "accelerate", Command: "accelerate", Min: "1.0", Below: "2", Pinned: "1.16.0", Why: "accelerate launch --config_file"}
	datasets     = Tool{Dist: "datasets", Import: "datasets", Min: "3.0", Below: "6", Pinned: "5.2.0", Why: "reads the JSON training set"}
	deepspeed    = Tool{Dist: "deepspeed", Import: "", Min: "0.15", Below: "1", Why: "ZeRO-3 on GPUs (zero3.yaml)"}
	axolotl      = Tool{Dist: "axolotl", Import: "axolotl.cli.train", Command: "accelerate", Min: "0.8", Below: "1", Why: "axolotl.cli.train with the config keys agora writes"}
	lmEval       = Tool{Dist: "lm_eval", Import: "lm_eval", Command: "lm_eval", Min: "0.4.8", Below: "0.5", Pinned: "0.4.13", Why: "minerva_math's math_verify metric and the results_<time>.json layout agora parses"}
	mathVerify   = Tool{Dist: "math-verify", Import: "math_verify", Min: "0.7", Below: "1", Pinned: "0.9.0", Why: "MATH's answer equivalence"}
	evalplus     = Tool{Dist: "evalplus", Import: "evalplus", Command: "evalplus.evaluate", Min: "0.3", Below: "0.4", Pinned: "0.3.1", Why: "evalplus.evaluate and its eval_results.json"}
	alpacaEval   = Tool{Dist: "alpaca_eval", Import: "alpaca_eval", Command: "alpaca_eval", Min: "0.6", Below: "0.7", Pinned: "0.6.6", Why: "alpaca_eval evaluate and leaderboard.csv (it imports pkg_resources: setuptools below 81)"}
	vllm         = Tool{Dist: "vllm", Import: "", Command: "vllm", Min: "0.6", Below: "", Why: "serves the model under evaluation (vllm serve, lm-eval's and evalplus's vllm backends)"}
)

// Site is where a group of jobs runs.
type Site struct {
	// Executor is spec.ExecutorLocal or spec.ExecutorSlurm.
	Executor string
	// Slurm holds the partition, account, modules or container of Slurm
	// jobs.
	Slurm spec.Slurm
	// GPUs per node the jobs ask for (the probe job asks for the same, so
	// that it lands on the same kind of node).
	GPUs int
}

// String names the site for messages: "local" or "slurm (partition gpu)".
func (s Site) String() string {
	if s.Executor != spec.ExecutorSlurm {
		return "local"
	}
	var parts []string
	if s.Slurm.Partition != "" {
		parts = append(parts, "partition "+s.Slurm.Partition)
	}
	if s.Slurm.Container != "" {
		parts = append(parts, "container "+s.Slurm.Container)
	}
	if len(s.Slurm.Modules) > 0 {
		parts = append(parts, "modules "+strings.Join(s.Slurm.Modules, " "))
	}
	if len(parts) == 0 {
		return "slurm (default partition)"
	}
	return "slurm (" + strings.Join(parts, ", ") + ")"
}

func (s Site) key() string {
	if s.Executor != spec.ExecutorSlurm {
		return "local" // one machine, whatever the jobs' GPUs
	}
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%d", s.Executor, s.Slurm.Partition, s.Slurm.Account, s.Slurm.QOS,
		s.Slurm.Container, strings.Join(s.Slurm.Modules, ","), s.GPUs)
}

// Need is a tool and the steps that need it.
type Need struct {
	Tool
	// For says what needs it: "train with trl", "evaluate gsm8k with lm-eval".
	For []string
}

// Group is what the jobs of one site need.
type Group struct {
	Site  Site
	Needs []Need
	// Steps counts the plan's steps to run there.
	Steps int
}

// Needs returns the tools that the plan's steps still to run need, per
// site, in a stable order. Steps already done (action noop) need nothing.
func Needs(exp *spec.Experiment, p *plan.Plan) []Group {
	groups := map[string]*Group{}
	var order []string
	add := func(site Site, what string, tools ...Tool) {
		k := site.key()
		g := groups[k]
		if g == nil {
			g = &Group{Site: site}
			groups[k] = g
			order = append(order, k)
		}
		g.Steps++
		for _, t := range tools {
			i := sort.Search(len(g.Needs), func(i int) bool { return g.Needs[i].Dist >= t.Dist })
			if i == len(g.Needs) || g.Needs[i].Dist != t.Dist {
				g.Needs = append(g.Needs, Need{})
				copy(g.Needs[i+1:], g.Needs[i:])
				g.Needs[i] = Need{Tool: t}
			}
			if n := &g.Needs[i]; len(n.For) == 0 || n.For[len(n.For)-1] != what {
				if !contains(n.For, what) {
					n.For = append(n.For, what)
				}
			}
		}
	}
	st := exp.Student
	ev := exp.Evaluation
	for _, s := range p.Steps {
		if s.Action == plan.ActionNoop {
			continue
		}
		switch s.Kind {
		case plan.KindTrain:
			site := Site{Executor: st.Executor, GPUs: st.Hardware.GPUsPerNode}
			if st.Slurm != nil && st.Executor == spec.ExecutorSlurm {
				site.Slurm = *st.Slurm
			}
			switch st.Trainer {
			case "", spec.TrainerTRL:
				tools := []Tool{torch, transformers, trl, accelerate, datasets}
				if st.Hardware.GPUsPerNode > 0 {
					tools = append(tools, deepspeed)
				}
				add(site, "train with trl", tools...)
			case spec.TrainerAxolotl:
				tools := []Tool{torch, transformers, axolotl, accelerate}
				if st.Hardware.GPUsPerNode > 0 {
					tools = append(tools, deepspeed)
				}
				add(site, "train with axolotl", tools...)
			default:
				add(site, "train with your command") // the command's tools are the user's
			}
		case plan.KindEvaluate:
			site := Site{Executor: ev.Executor, GPUs: ev.GPUs}
			if ev.Slurm != nil && ev.Executor == spec.ExecutorSlurm {
				site.Slurm = *ev.Slurm
			}
			h := harnessOf(exp, s.Benchmark)
			add(site, "evaluate "+s.Benchmark+" with "+h, harnessTools(h, true)...)
		case plan.KindReward:
			// agora's built-in reward job (metrics/reward_job.py); a
			// command's tools are the user's.
			if m := exp.Metrics; m != nil && m.Reward != nil && m.Reward.Command == "" {
				r := m.Reward
				site := Site{Executor: r.Executor, GPUs: r.GPUs}
				if r.Slurm != nil && r.Executor == spec.ExecutorSlurm {
					site.Slurm = *r.Slurm
				}
				tools := []Tool{torch, transformers}
				if r.GPUs > 0 {
					tools = append(tools, accelerate) // device_map="auto"
				}
				add(site, "score with the built-in reward job", tools...)
			}
		case plan.KindSolve:
			// Solve steps run the harness locally as an API client.
			h := harnessOf(exp, s.Benchmark)
			add(Site{Executor: spec.ExecutorLocal}, "solve "+s.Benchmark+" with "+h, harnessTools(h, false)...)
		}
	}
	out := make([]Group, 0, len(order))
	for _, k := range order {
		out = append(out, *groups[k])
	}
	return out
}

func harnessOf(exp *spec.Experiment, benchmark string) string {
	if b := exp.Evaluation.Benchmarks[benchmark]; b != nil && b.Harness != "" {
		return b.Harness
	}
	return "command"
}

// harnessTools are the tools a harness's command runs; served: it
// evaluates a checkpoint (vLLM), rather than querying an API.
func harnessTools(h string, served bool) []Tool {
	var tools []Tool
	switch h {
	case spec.HarnessLMEval:
		tools = []Tool{lmEval, mathVerify}
	case spec.HarnessEvalPlus:
		tools = []Tool{evalplus}
	case spec.HarnessAlpacaEval:
		tools = []Tool{alpacaEval}
	}
	if served && h != "command" && h != "" {
		tools = append(tools, vllm)
	}
	return tools
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// compareVersions compares dotted release versions numerically, field by
// field ("0.4.10" > "0.4.9"); a field's non-numeric tail ("0rc1",
// "2+cu121") is ignored after its leading digits.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		x, y := field(as, i), field(bs, i)
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func field(parts []string, i int) int {
	if i >= len(parts) {
		return 0
	}
	s := parts[i]
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	v, _ := strconv.Atoi(s[:n])
	return v
}

// Accepts reports whether version v is within t's range.
func (t Tool) Accepts(v string) bool {
	if t.Min != "" && compareVersions(v, t.Min) < 0 {
		return false
	}
	if t.Below != "" && compareVersions(v, t.Below) >= 0 {
		return false
	}
	return true
}

// Range is the accepted range as pip writes it: ">=1.0,<2".
func (t Tool) Range() string {
	var parts []string
	if t.Min != "" {
		parts = append(parts, ">="+t.Min)
	}
	if t.Below != "" {
		parts = append(parts, "<"+t.Below)
	}
	return strings.Join(parts, ",")
}
