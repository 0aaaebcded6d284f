package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/metrics"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// rewardInputs mirror the compiler's inputs of a reward step.
type rewardInputs struct {
	Model   string `json:"model"`
	Command string `json:"command"`
	Builtin string `json:"builtin"`
	Sample  int    `json:"sample"`
	Seed    int    `json:"seed"`
}

// RewardData and RewardOutput are the files of a reward step's run
// directory: the items to score and the job's scores (docs/metrics.md).
const (
	RewardData   = "reward-input.jsonl"
	RewardOutput = "rewards.jsonl"
)

type rewardRunner struct{ metricRunner }

func (r rewardRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in rewardInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("reward inputs: %w", err)
	}
	var rm *spec.RewardMetric
	if m := e.exp.Metrics; m != nil {
		rm = m.Reward
	}
	if rm == nil {
		return "", fmt.Errorf("the spec has no reward metric: the plan is stale")
	}
	if in.Command == "" {
		if err := needTools(s.Executor, "run the built-in reward job", "python3"); err != nil {
			return "", err
		}
	}
	ms, err := r.store()
	if err != nil {
		return "", err
	}
	items, err := r.items(ctx, s, in.Sample, in.Seed)
	if err != nil {
		return "", err
	}
	if err := r.begin(ctx, s, len(items)); err != nil {
		return "", err
	}
	dir, err := e.runDir(s.ID)
	if err != nil {
		return "", err
	}
	data, out := filepath.Join(dir, RewardData), filepath.Join(dir, RewardOutput)
	if err := writeRewardInput(data, items); err != nil {
		return "", err
	}
	done, err := e.completedJob(ctx, s.ID)
	if err != nil {
		return "", err
	}
	scores, perr := metrics.ReadRewards(out, len(items))
	if !done || perr != nil {
		script, err := r.script(in, rm, dir, data, out, len(items))
		if err != nil {
			return "", err
		}
		os.Remove(out) // a stale file must not pass for this job's
		j := slurm.Job{
			Name:     "agora-reward-" + shortID(s.ID),
			Dir:      dir,
			Script:   script,
			Hardware: spec.Hardware{Nodes: 1, GPUsPerNode: rm.GPUs, TimeLimit: rm.TimeLimit},
			Requeue:  true,
			Env:      e.jobEnv("HF_TOKEN", "HF_HOME"),
		}
		if rm.Slurm != nil {
			j.Slurm = *rm.Slurm
		}
		if err := e.runJob(ctx, s, j, rm.GPUs); err != nil {
			return "", wrapJobErr("reward", err)
		}
		if scores, err = metrics.ReadRewards(out, len(items)); err != nil {
			return "", fmt.Errorf("reward: the job exited 0 but its output cannot be read: %w", err)
		}
	}
	vals := make([]state.ItemValue, len(items))
	for i, it := range items {
		vals[i] = state.ItemValue{Slot: it.slot, Name: valueReward, Value: scores[i]}
	}
	if err := ms.RecordItemValues(ctx, s.ID, vals, 0, 0, 0); err != nil {
		return "", err
	}
	sum, err := metrics.Summarize(scores)
	if err != nil {
		return "", fmt.Errorf("reward: %w", err)
	}
	detail, _ := json.Marshal(map[string]any{"model": in.Model, "sd": sum.SD})
	return r.finish(ctx, ms, s, out, []state.Metric{{Name: FeatureReward, Value: sum.Mean, N: sum.N, Low: &sum.Low, High: &sum.High, Detail: string(detail)}})
}

// script is the reward job's body: the spec's command template, or
// agora's built-in scorer (metrics.RewardJobScript) written into dir.
func (r rewardRunner) script(in rewardInputs, rm *spec.RewardMetric, dir, data, out string, items int) (string, error) {
	if in.Command == "" {
		job := filepath.Join(dir, metrics.RewardJobFile)
		if err := os.WriteFile(job, metrics.RewardJobScript, 0o644); err != nil {
			return "", fmt.Errorf("reward: %w", err)
		}
		return fmt.Sprintf("python3 %s --model %s --data %s --output %s\n", shQuote(job), shQuote(in.Model), shQuote(data), shQuote(out)), nil
	}
	t, err := spec.CommandTemplate("reward command", in.Command)
	if err != nil {
		return "", fmt.Errorf("metrics.reward.command: %w", err)
	}
	specDir, err := filepath.Abs(r.e.exp.Source.Dir)
	if err != nil {
		return "", err
	}
	var script bytes.Buffer
	if err := t.Execute(&script, spec.RewardCommandData{Model: in.Model, Data: data, Output: out, Dir: dir, SpecDir: specDir, GPUs: rm.GPUs, Items: items}); err != nil {
		return "", fmt.Errorf("metrics.reward.command: %w", err)
	}
	return script.String(), nil
}

// writeRewardInput writes the items a reward job scores, one
// metrics.RewardInput a line, index i being the item's line number from 0.
func writeRewardInput(path string, items []metricItem) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("reward input: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, it := range items {
		if err := enc.Encode(metrics.RewardInput{Index: i, Instruction: it.instruction, Response: it.response}); err != nil {
			f.Close()
			return fmt.Errorf("reward input: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("reward input: %w", err)
	}
	return f.Close()
}
