package state

import (
	"context"
	"testing"
)

func TestJobsAndScores(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordJob(ctx, "train1", "slurm", "101", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordJob(ctx, "train1", "slurm", "101", 1); err == nil {
		t.Error("the same job id recorded twice")
	}
	if err := s.RecordJob(ctx, "eval1", "local", "local-1", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateJob(ctx, "101", "FAILED", 0.5); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateJob(ctx, "nope", "FAILED", 0); err == nil {
		t.Error("updating an unknown job is not an error")
	}
	if err := s.RecordJob(ctx, "train1", "slurm", "102", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateJob(ctx, "102", "RUNNING", 0.25); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Jobs(ctx, "train1")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].JobID != "101" || jobs[0].Status != "FAILED" || jobs[1].Attempt != 2 || jobs[1].GPUHours != 0.25 {
		t.Errorf("jobs %+v", jobs)
	}
	active, err := s.ActiveJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 2 || active[0].JobID != "local-1" || active[0].Status != JobSubmitted || active[1].JobID != "102" {
		t.Errorf("active %+v", active)
	}
	if h, err := s.GPUHours(ctx); err != nil || h != 0.75 {
		t.Errorf("gpu hours %v %v", h, err)
	}

	if err := s.RecordScore(ctx, "e1", "gsm8k", "base", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordScore(ctx, "e1", "gsm8k", "base", 12); err != nil { // replaced
		t.Fatal(err)
	}
	if err := s.RecordPGR(ctx, "sc", map[string]float64{"gsm8k": 0.5, "math": 0.25}, 0.375); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Everything survives a reopen.
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	scores, err := s.Scores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Score{{"e1", "gsm8k", "base", 12}, {"sc", BenchmarkMean, ModelPGR, 0.375}, {"sc", "gsm8k", ModelPGR, 0.5}, {"sc", "math", ModelPGR, 0.25}}
	if len(scores) != len(want) {
		t.Fatalf("scores %+v", scores)
	}
	for i := range want {
		if scores[i] != want[i] {
			t.Errorf("score %d = %+v, want %+v", i, scores[i], want[i])
		}
	}
	if active, _ := s.ActiveJobs(ctx); len(active) != 2 {
		t.Errorf("after reopen: active %+v", active)
	}
}

// TestMigrateFromVersion1: a version-1 database (no jobs, no scores) gains
// the tables when opened, keeping its steps.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	s, dir := openTest(t)
	if err := s.BeginStep(ctx, StepInfo{ID: "g", Kind: "generate", Address: "generate.x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec("DROP TABLE jobs; DROP TABLE scores; DROP TABLE judgements; DROP TABLE embeddings; DROP TABLE item_values; DROP TABLE metrics; DROP TABLE batches; PRAGMA user_version = 1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RecordJob(ctx, "g", "local", "j", 1); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Step(ctx, "g"); !ok || err != nil {
		t.Errorf("step lost: %v %v", ok, err)
	}
}
