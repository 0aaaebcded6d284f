package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Job statuses agora records besides the scheduler's own state names
// (executors/slurm.State: PENDING, RUNNING, COMPLETED, FAILED, …).
const (
	// JobSubmitted is the status of a job recorded right after its
	// submission, before the first poll.
	JobSubmitted = "SUBMITTED"
)

// activeJobStatuses are the statuses of a job that may still run: a
// restarted agora reattaches to such jobs instead of submitting again.
var activeJobStatuses = []string{JobSubmitted, "PENDING", "RUNNING", "REQUEUED"}

// IsActiveJob reports whether status is one of a job that may still run.
func IsActiveJob(status string) bool {
	for _, s := range activeJobStatuses {
		if s == status {
			return true
		}
	}
	return false
}

// Job is one submission of a train or evaluate step to an executor.
type Job struct {
	StepID   string
	Executor string // "local" or "slurm"
	JobID    string // the scheduler's id (Slurm) or agora's (local)
	Attempt  int    // 1 for the first submission of the step
	Status   string // JobSubmitted, then the scheduler's state name
	// GPUHours is elapsed time × GPUs of the job over all its runs (a
	// requeued job runs again under the same id), as last recorded.
	GPUHours float64
	// Elapsed is the job's run time over all its runs, when its executor
	// reports it (zero otherwise).
	Elapsed time.Duration
	// Runs counts the job's runs: 1, plus one per requeue seen.
	Runs                   int
	SubmittedAt, UpdatedAt time.Time
}

// Score is a benchmark score of one model, recorded by an evaluate step
// (Model "base", "reference" or "student"), or a PGR recorded by a score
// step (Model ModelPGR; Benchmark BenchmarkMean for the step's mean).
type Score struct {
	StepID, Benchmark, Model string
	Value                    float64
}

// The names under which RecordPGR stores a score step's results in the
// scores table.
const (
	ModelPGR      = "pgr"
	BenchmarkMean = "*"
)

// RecordJob records a job just submitted for a step, with status
// JobSubmitted. Call it before anything else once the executor returned
// the job's id: a job whose id is in the state is reattached to, never
// submitted again.
func (s *Store) RecordJob(ctx context.Context, stepID, executor, jobID string, attempt int) error {
	now := time.Now().UnixNano()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO jobs (job_id, step_id, executor, attempt, status, submitted_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, jobID, stepID, executor, attempt, JobSubmitted, now, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("record job %s of step %s: %w", jobID, stepID, s.closedErr(err))
	}
	return nil
}

// UpdateJob records a job's latest status and the GPU-hours its current
// run has used (see UpdateJobRun).
func (s *Store) UpdateJob(ctx context.Context, jobID, status string, gpuHours float64) error {
	return s.UpdateJobRun(ctx, jobID, status, 0, gpuHours)
}

// UpdateJobRun records a job's latest status and its current run's
// elapsed time and GPU-hours, as the executor reports them (both zero:
// not known, the last figures stand). A requeued Slurm job runs again
// under the same id and its clock starts again: when it is seen PENDING or
// REQUEUED after running, or its run's figures go back, a new run has
// begun, and the last one's are added to the job's earlier runs; so a
// job's totals never go down and every run counts against the budget.
func (s *Store) UpdateJobRun(ctx context.Context, jobID, status string, elapsed time.Duration, gpuHours float64) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var runs int
		var earlierGPU, runGPU float64
		var earlierNs, runNs int64
		err := tx.QueryRowContext(ctx, "SELECT runs, earlier_gpu_hours, run_gpu_hours, earlier_elapsed_ns, run_elapsed_ns FROM jobs WHERE job_id = ?",
			jobID).Scan(&runs, &earlierGPU, &runGPU, &earlierNs, &runNs)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("no such job (it was never recorded)")
		}
		if err != nil {
			return err
		}
		fold := func() {
			runs++
			earlierGPU += runGPU
			earlierNs += runNs
		}
		switch {
		case status == "PENDING" || status == "REQUEUED":
			// Requeued: the figures reported are the last run's; the
			// next run starts from zero.
			if runGPU > 0 || runNs > 0 {
				fold()
			}
			gpuHours, elapsed = 0, 0
		case gpuHours == 0 && elapsed == 0:
			// Not known (a job gone from the queue): the last figures stand.
			gpuHours, elapsed = runGPU, time.Duration(runNs)
		case gpuHours < runGPU || int64(elapsed) < runNs:
			// The clock went back: a run the polls did not see requeued.
			fold()
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = ?, runs = ?, earlier_gpu_hours = ?, run_gpu_hours = ?,
			earlier_elapsed_ns = ?, run_elapsed_ns = ?, gpu_hours = ?, updated_at = ? WHERE job_id = ?`,
			status, runs, earlierGPU, gpuHours, earlierNs, int64(elapsed), earlierGPU+gpuHours, time.Now().UnixNano(), jobID)
		return err
	})
	if err != nil {
		return fmt.Errorf("update job %s: %w", jobID, s.closedErr(err))
	}
	return nil
}

// SetJobStatus records a job's status, keeping the time it used.
func (s *Store) SetJobStatus(ctx context.Context, jobID, status string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE jobs SET status = ?, updated_at = ? WHERE job_id = ?", status, time.Now().UnixNano(), jobID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("no such job (it was never recorded)")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update job %s: %w", jobID, s.closedErr(err))
	}
	return nil
}

const jobColumns = "step_id, executor, job_id, attempt, status, gpu_hours, earlier_elapsed_ns + run_elapsed_ns, runs, submitted_at, updated_at"

func (s *Store) queryJobs(ctx context.Context, where string, args ...any) ([]Job, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+jobColumns+" FROM jobs "+where+" ORDER BY step_id, attempt, submitted_at", args...)
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", s.closedErr(err))
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		var j Job
		var sub, upd, elapsed int64
		if err := rows.Scan(&j.StepID, &j.Executor, &j.JobID, &j.Attempt, &j.Status, &j.GPUHours, &elapsed, &j.Runs, &sub, &upd); err != nil {
			return nil, fmt.Errorf("read jobs: %w", err)
		}
		j.SubmittedAt, j.UpdatedAt = fromNanos(sub), fromNanos(upd)
		j.Elapsed = time.Duration(elapsed)
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	return out, nil
}

// Jobs returns the jobs of a step, oldest attempt first.
func (s *Store) Jobs(ctx context.Context, stepID string) ([]Job, error) {
	return s.queryJobs(ctx, "WHERE step_id = ?", stepID)
}

// AllJobs returns every job, by step and attempt.
func (s *Store) AllJobs(ctx context.Context) ([]Job, error) {
	return s.queryJobs(ctx, "")
}

// ActiveJobs returns every job whose status says it may still run.
func (s *Store) ActiveJobs(ctx context.Context) ([]Job, error) {
	return s.queryJobs(ctx, "WHERE status IN (?, ?, ?, ?)",
		activeJobStatuses[0], activeJobStatuses[1], activeJobStatuses[2], activeJobStatuses[3])
}

// GPUHours sums the GPU-hours recorded against every job.
func (s *Store) GPUHours(ctx context.Context) (float64, error) {
	var h float64
	if err := s.rdb.QueryRowContext(ctx, "SELECT COALESCE(SUM(gpu_hours), 0) FROM jobs").Scan(&h); err != nil {
		return 0, fmt.Errorf("read gpu hours: %w", s.closedErr(err))
	}
	return h, nil
}

// RecordScore records (or replaces) the score of model on benchmark
// measured by an evaluate step.
func (s *Store) RecordScore(ctx context.Context, stepID, benchmark, model string, value float64) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		return recordScore(ctx, tx, stepID, benchmark, model, value)
	})
	if err != nil {
		return fmt.Errorf("record score of step %s: %w", stepID, s.closedErr(err))
	}
	return nil
}

func recordScore(ctx context.Context, tx *sql.Tx, stepID, benchmark, model string, value float64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO scores (step_id, benchmark, model, value, recorded_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (step_id, benchmark, model) DO UPDATE SET value = excluded.value, recorded_at = excluded.recorded_at`,
		stepID, benchmark, model, value, time.Now().UnixNano())
	return err
}

// RecordPGR records a score step's PGR per benchmark and their mean, in
// the scores table under Model ModelPGR (the mean under Benchmark
// BenchmarkMean), in one transaction.
func (s *Store) RecordPGR(ctx context.Context, stepID string, perBenchmark map[string]float64, pgr float64) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for b, v := range perBenchmark {
			if err := recordScore(ctx, tx, stepID, b, ModelPGR, v); err != nil {
				return err
			}
		}
		return recordScore(ctx, tx, stepID, BenchmarkMean, ModelPGR, pgr)
	})
	if err != nil {
		return fmt.Errorf("record pgr of step %s: %w", stepID, s.closedErr(err))
	}
	return nil
}

// Scores returns every recorded score, ordered by step, benchmark and
// model.
func (s *Store) Scores(ctx context.Context) ([]Score, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT step_id, benchmark, model, value FROM scores ORDER BY step_id, benchmark, model")
	if err != nil {
		return nil, fmt.Errorf("read scores: %w", s.closedErr(err))
	}
	defer rows.Close()
	var out []Score
	for rows.Next() {
		var sc Score
		if err := rows.Scan(&sc.StepID, &sc.Benchmark, &sc.Model, &sc.Value); err != nil {
			return nil, fmt.Errorf("read scores: %w", err)
		}
		out = append(out, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read scores: %w", err)
	}
	return out, nil
}
