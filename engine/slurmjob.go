package engine

import (
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// SlurmJob is what a step's Slurm job asks of the cluster, and where the
// spec says so.
type SlurmJob struct {
	Hardware spec.Hardware
	Slurm    spec.Slurm
	// At is the spec path of the block that configures the job
	// ("student", "evaluation", "metrics.reward").
	At []string
}

// StepSlurmJob returns what the Slurm job of a train, evaluate or reward
// step asks for; ok is false for a step that runs no Slurm job.
func StepSlurmJob(exp *spec.Experiment, s plan.Step) (j SlurmJob, ok bool) {
	if s.Executor != spec.ExecutorSlurm {
		return SlurmJob{}, false
	}
	switch s.Kind {
	case plan.KindTrain:
		j = SlurmJob{Hardware: exp.Student.Hardware, At: []string{"student"}}
		if exp.Student.Slurm != nil {
			j.Slurm = *exp.Student.Slurm
		}
	case plan.KindEvaluate:
		j = SlurmJob{Hardware: spec.Hardware{Nodes: 1, GPUsPerNode: exp.Evaluation.GPUs, TimeLimit: evalTimeLimit}, At: []string{"evaluation"}}
		if exp.Evaluation.Slurm != nil {
			j.Slurm = *exp.Evaluation.Slurm
		}
	case plan.KindReward:
		if exp.Metrics == nil || exp.Metrics.Reward == nil {
			return SlurmJob{}, false
		}
		rm := exp.Metrics.Reward
		j = SlurmJob{Hardware: spec.Hardware{Nodes: 1, GPUsPerNode: rm.GPUs, TimeLimit: rm.TimeLimit}, At: []string{"metrics", "reward"}}
		if rm.Slurm != nil {
			j.Slurm = *rm.Slurm
		}
	default:
		return SlurmJob{}, false
	}
	return j, true
}

// ServerSlurmJob returns what the Slurm job of one of a vLLM generator's
// servers asks for (as providers renders it); ok is false for a generator
// whose servers are not Slurm jobs.
func ServerSlurmJob(g *spec.Generator) (j SlurmJob, ok bool) {
	v := g.Provider.VLLM
	if v == nil || v.Executor != spec.ExecutorSlurm {
		return SlurmJob{}, false
	}
	j = SlurmJob{Hardware: spec.Hardware{Nodes: 1, GPUsPerNode: max(v.GPUs, 1), TimeLimit: v.TimeLimit},
		At: []string{"generators", g.Name, "provider", "vllm"}}
	if v.Slurm != nil {
		j.Slurm = *v.Slurm
	}
	return j, true
}
