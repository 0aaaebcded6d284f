package spec

import (
	"path/filepath"
	"slices"
	"strings"

	"cuelang.org/go/cue"

	"github.com/agorabench/agora/harness"
)

// checkRunnable refuses, at their position, the values the plan would
// price but apply would refuse when it comes to run them: what the
// engine's runners and the harness commands cannot carry. Each check is
// the one the runner or the command itself makes (harness.CheckJudge,
// harness.CheckModelArg), so the two cannot disagree.
func (l *loader) checkRunnable(exp *Experiment) {
	st := exp.Student
	if st.Hardware.Nodes > 1 && st.Trainer != TrainerCommand {
		l.at(sel("student", "hardware", "nodes"), "trainer %s: training on %d nodes is not supported by this version of agora (use one node, or trainer \"command\" with your own launcher)",
			st.Trainer, st.Hardware.Nodes)
	}
	l.checkJobValues(exp)
	l.checkCommands(exp)
	for _, name := range sortedKeys(exp.Evaluation.Benchmarks) {
		b := exp.Evaluation.Benchmarks[name]
		if err := harness.CheckBenchmark(b.Harness, name); err != nil {
			l.at(sel("evaluation", "benchmarks", name, "harness"), "%v; use harness \"command\" for another benchmark", err)
		}
		if b.Judge == nil {
			continue
		}
		if err := harness.CheckJudge(b.Harness, b.Judge.Model); err != nil {
			l.at(sel("evaluation", "benchmarks", name, "judge", "model"), "%v", err)
		}
	}
	// lm-eval receives the base and reference models, and the students'
	// checkpoints under the spec's directory, in --model_args.
	for _, sn := range sortedKeys(exp.Settings) {
		s := exp.Settings[sn]
		for i, bn := range s.Benchmarks {
			b, ok := exp.Evaluation.Benchmarks[bn]
			if !ok || b.Harness != HarnessLMEval {
				continue
			}
			if err := harness.CheckModelArg(st.Base); err != nil {
				l.at(sel("student", "base"), "%v (benchmark %s)", err, bn)
			}
			if err := harness.CheckModelArg(st.Reference); err != nil {
				l.at(sel("student", "reference"), "%v (benchmark %s)", err, bn)
			}
			if dir, err := filepath.Abs(l.dir); err == nil && strings.Contains(dir, ",") {
				l.at(append(sel("settings", sn, "benchmarks"), cue.Index(i)),
					"the spec's directory %s contains a comma: lm-eval's --model_args cannot carry the students' checkpoints under it (.agora/runs/STEP/model); move the spec to a directory without one", dir)
			}
			return // each problem once
		}
	}
}

// checkJobValues refuses the values a job script cannot carry (sbatch's
// options, the job's directory), as executors/slurm's Render would when
// the job runs: the Slurm blocks of the student, the evaluation, vLLM
// servers and the reward job, student.hardware.mem, and the directory
// under which every job runs (.agora/runs in the spec's directory).
func (l *loader) checkJobValues(exp *Experiment) {
	slurmAt := func(s *Slurm, at []cue.Selector) {
		if s == nil {
			return
		}
		for _, p := range s.Problems() {
			fat := append(slices.Clone(at), cue.Str(p.Field))
			if p.Index >= 0 {
				fat = append(fat, cue.Index(p.Index))
			}
			l.at(fat, "%s", p.Message)
		}
	}
	providerAt := func(p *Provider, at []cue.Selector) {
		if p != nil && p.VLLM != nil {
			slurmAt(p.VLLM.Slurm, append(slices.Clone(at), cue.Str("provider"), cue.Str("vllm"), cue.Str("slurm")))
		}
	}
	for _, name := range sortedKeys(exp.Generators) {
		providerAt(&exp.Generators[name].Provider, sel("generators", name))
	}
	slurmAt(exp.Student.Slurm, sel("student", "slurm"))
	slurmAt(exp.Evaluation.Slurm, sel("evaluation", "slurm"))
	if m := exp.Metrics; m != nil {
		if m.Judge != nil {
			providerAt(m.Judge.Provider, sel("metrics", "judge"))
		}
		if m.Diversity != nil {
			providerAt(m.Diversity.Provider, sel("metrics", "diversity"))
		}
		if m.Perplexity != nil {
			providerAt(m.Perplexity.Provider, sel("metrics", "perplexity"))
		}
		if m.Reward != nil {
			slurmAt(m.Reward.Slurm, sel("metrics", "reward", "slurm"))
		}
	}
	if p := MemProblem(exp.Student.Hardware.Mem); p != "" {
		l.at(sel("student", "hardware", "mem"), "%s", p)
	}
	if dir, err := filepath.Abs(l.dir); err == nil {
		for _, p := range JobDirProblems(filepath.Join(dir, ".agora", "runs")) {
			l.add(l.posOf(nil), "", "the spec's directory cannot hold agora's jobs: %s; move the spec to a directory without them", p)
		}
	}
}
