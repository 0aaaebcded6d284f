package state

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
	"time"
)

// TestEndStep: every outcome is recorded with its reason, for a step that
// was begun and for one that never was.
func TestEndStep(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	begun := StepInfo{ID: "a", Kind: "train", Address: "train.a"}
	if err := s.BeginStep(ctx, begun); err != nil {
		t.Fatal(err)
	}
	if err := s.EndStep(ctx, begun, StatusFailed, "job 1 exited with status 1", ""); err != nil {
		t.Fatal(err)
	}
	never := StepInfo{ID: "b", Kind: "evaluate", Address: "evaluate.b", Generator: "g", Target: 3}
	if err := s.EndStep(ctx, never, StatusBlocked, "needs train.a (failed)", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.EndStep(ctx, never, "running", "", ""); err == nil {
		t.Error("running accepted as an outcome")
	}
	for id, want := range map[string][2]string{"a": {StatusFailed, "job 1 exited with status 1"}, "b": {StatusBlocked, "needs train.a (failed)"}} {
		st, ok, err := s.Step(ctx, id)
		if err != nil || !ok {
			t.Fatalf("step %s: %v %v", id, ok, err)
		}
		if st.Status != want[0] || st.Error != want[1] {
			t.Errorf("step %s: %s %q, want %s %q", id, st.Status, st.Error, want[0], want[1])
		}
	}
	if st, _, _ := s.Step(ctx, "b"); st.Address != "evaluate.b" || st.Generator != "g" || st.Target != 3 {
		t.Errorf("never-begun step recorded as %+v", st)
	}
	for _, status := range []string{StatusInterrupted, StatusNotRun, StatusDone} {
		if err := s.EndStep(ctx, never, status, "why", "out"); err != nil {
			t.Errorf("%s: %v", status, err)
		}
	}
	if done, _ := s.Completed(ctx, []string{"a", "b"}); !done["b"] || done["a"] {
		t.Errorf("completed %v", done)
	}
}

// TestInterruptRunning: steps an apply left running (it was killed) are
// recorded as interrupted by the next, the others untouched.
func TestInterruptRunning(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	for _, id := range []string{"x", "y", "z"} {
		if err := s.BeginStep(ctx, StepInfo{ID: id, Kind: "train", Address: "train." + id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FinishStep(ctx, "z", "out"); err != nil {
		t.Fatal(err)
	}
	got, err := s.InterruptRunning(ctx, "killed")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "train.x" || got[1] != "train.y" {
		t.Errorf("interrupted %v", got)
	}
	for id, want := range map[string]string{"x": StatusInterrupted, "y": StatusInterrupted, "z": StatusDone} {
		if st, _, _ := s.Step(ctx, id); st.Status != want {
			t.Errorf("step %s %s, want %s", id, st.Status, want)
		}
	}
}

// TestJobRuns: a requeued job's clock starts again; its earlier runs'
// GPU-hours and elapsed time are kept and added up.
func TestJobRuns(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	if err := s.RecordJob(ctx, "t", "slurm", "7", 1); err != nil {
		t.Fatal(err)
	}
	// First run: 14.4 s on 2 GPUs, then requeued; the second runs 30 s.
	updates := []struct {
		status  string
		elapsed time.Duration
	}{
		{"RUNNING", 5 * time.Second},
		{"RUNNING", 14400 * time.Millisecond},
		{"REQUEUED", 14400 * time.Millisecond},
		{"PENDING", 0},
		{"RUNNING", 10 * time.Second},
		{"RUNNING", 30 * time.Second},
		{"COMPLETED", 0}, // gone from the queue: not known
	}
	for _, u := range updates {
		if err := s.UpdateJobRun(ctx, "7", u.status, u.elapsed, u.elapsed.Hours()*2); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetJobStatus(ctx, "7", "CANCELLED"); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Jobs(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	j := jobs[0]
	wantElapsed := 44400 * time.Millisecond
	if j.Runs != 2 || j.Elapsed != wantElapsed || !near(j.GPUHours, wantElapsed.Hours()*2) || j.Status != "CANCELLED" {
		t.Errorf("job %+v, want 2 runs, %v elapsed, %.6f GPU-hours", j, wantElapsed, wantElapsed.Hours()*2)
	}
	if h, _ := s.GPUHours(ctx); !near(h, wantElapsed.Hours()*2) {
		t.Errorf("GPU-hours %v", h)
	}
	if err := s.SetJobStatus(ctx, "nope", "FAILED"); err == nil {
		t.Error("no error for an unknown job")
	}
}

// TestMigrateFromVersion3: a version-3 database keeps its steps,
// generations and jobs, accepts the new outcomes and counts a job's
// recorded GPU-hours as its first run's.
func TestMigrateFromVersion3(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, DBFile))}
	db, err := sql.Open("sqlite", u.String()+"?_foreign_keys=1&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:3] {
		if _, err := db.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"PRAGMA user_version = 3",
		`INSERT INTO steps (id, kind, address, generator, setting, target, status, started_at, updated_at) VALUES ('g', 'generate', 'generate.g', 'x', 's', 2, 'running', 1, 1)`,
		`INSERT INTO generations (step_id, slot, attempt, accepted, reject_reason, raw, instruction, response, model, system_fingerprint, request_id,
			finish_reason, prompt_digest, seed_item_id, input_tokens, output_tokens, cost_usd, started_at, duration_ns, recorded_at)
			VALUES ('g', 0, 1, 1, '', 'raw', 'i', 'r', 'm', '', '', 'stop', 'd', '', 1, 1, 0.5, 1, 1, 1)`,
		`INSERT INTO jobs (job_id, step_id, executor, attempt, status, gpu_hours, submitted_at, updated_at) VALUES ('9', 'g', 'slurm', 1, 'RUNNING', 0.5, 1, 1)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, ok, err := s.Step(ctx, "g")
	if err != nil || !ok || st.Status != StatusRunning || st.Accepted != 0 {
		t.Fatalf("step %+v %v %v", st, ok, err)
	}
	n := 0
	if err := s.Accepted(ctx, "g", func(Generation) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("generations after the migration: %d, %v", n, err)
	}
	if err := s.EndStep(ctx, st.StepInfo, StatusBlocked, "needs x", ""); err != nil {
		t.Error(err)
	}
	if err := s.UpdateJobRun(ctx, "9", "RUNNING", 0, 0.1); err != nil { // requeued since
		t.Fatal(err)
	}
	if h, _ := s.GPUHours(ctx); !near(h, 0.6) {
		t.Errorf("GPU-hours %v, want 0.6", h)
	}
	var fk int
	if err := s.wdb.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys %d after the migration (%v)", fk, err)
	}
}

// dropJobRuns undoes the jobs columns of schema 4, for tests that rewind
// a database to an older version.
const dropJobRuns = `ALTER TABLE jobs DROP COLUMN runs; ALTER TABLE jobs DROP COLUMN earlier_gpu_hours;
	ALTER TABLE jobs DROP COLUMN run_gpu_hours; ALTER TABLE jobs DROP COLUMN earlier_elapsed_ns;
	ALTER TABLE jobs DROP COLUMN run_elapsed_ns;`
