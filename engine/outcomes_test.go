package engine_test

import (
	"context"

	"strings"
	"testing"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/state"
)

// outcomes reads the state's status and reason of every plan step.
func outcomes(t *testing.T, f *fixture, store *state.Store) map[string]state.StepState {
	t.Helper()
	out := map[string]state.StepState{}
	for _, s := range f.plan.Steps {
		st, ok, err := store.Step(context.Background(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("step %s is not in the state", s.Address)
			continue
		}
		if st.Status == state.StatusRunning || st.Status == state.StatusPending {
			t.Errorf("step %s left %s", s.Address, st.Status)
		}
		out[s.Address] = st
	}
	return out
}

// TestOutcomeFailedCommandTrainer: the reproduction. A training
// command that exits 1 on the local executor fails its step with the
// job's log named and its tail; the steps needing it are blocked, naming
// it; the rest runs; no step is left running, and the state and the
// result say the same.
func TestOutcomeFailedCommandTrainer(t *testing.T) {
	standIns(t)
	f := pipelineFixture(t, `student: {trainer: "command", command: "echo the trainer gave up >&2; exit 1"}`)
	res, store := f.applyWith(context.Background(), func(o *engine.Options) { o.Resubmits = -1 })
	train := f.stepOf(plan.KindTrain, "")
	got := outcomes(t, f, store)
	st := got[train.Address]
	if st.Status != state.StatusFailed || !strings.Contains(st.Error, "exited with status 1") ||
		!strings.Contains(st.Error, "the trainer gave up") || !strings.Contains(st.Error, "; log /") {
		t.Errorf("train step %s %q", st.Status, st.Error)
	}
	if res.Failed[train.Address] != st.Error {
		t.Errorf("the result's failure %q differs from the state's %q", res.Failed[train.Address], st.Error)
	}
	blocked := 0
	for _, s := range f.plan.Steps {
		st := got[s.Address]
		switch {
		case s.ID == train.ID || s.Kind == plan.KindGenerate:
		case s.Model == "student" || s.Kind == plan.KindScore:
			blocked++
			want := "needs " + train.Address + ", which failed"
			if s.Kind == plan.KindScore { // through the student's evaluations
				want = ", blocked by " + train.Address + ", which failed"
			}
			if st.Status != state.StatusBlocked || !strings.HasSuffix(st.Error, want) {
				t.Errorf("%s: %s %q, want blocked %q", s.Address, st.Status, st.Error, want)
			}
			if res.Blocked[s.Address] != st.Error || res.Skipped[s.Address] != st.Error {
				t.Errorf("%s: the result says %q", s.Address, res.Skipped[s.Address])
			}
		default: // base and reference evaluations
			if st.Status != state.StatusDone {
				t.Errorf("%s: %s %q, want done", s.Address, st.Status, st.Error)
			}
		}
	}
	if blocked != 4 {
		t.Errorf("%d blocked steps, want 3 student evaluations and the score", blocked)
	}
	// Every step that did not finish is named, with why.
	msg := res.Err().Error()
	for a := range res.Skipped {
		if !strings.Contains(msg, a) {
			t.Errorf("the summary does not name %s:\n%s", a, msg)
		}
	}
}

// TestOutcomeHarnessResultsMissing: an evaluation whose job exits 0 but
// writes no results fails its step, saying so.
func TestOutcomeHarnessResultsMissing(t *testing.T) {
	standIns(t)
	f := pipelineFixture(t, `evaluation: benchmarks: gsm8k: {harness: "command", command: "echo evaluated {{.ModelPath}} but wrote nothing"}`)
	res, store := f.applyWith(context.Background(), nil)
	got := outcomes(t, f, store)
	n := 0
	for _, s := range f.plan.Steps {
		if s.Kind != plan.KindEvaluate || !strings.HasSuffix(s.Address, ".gsm8k") || s.Model == "student" {
			continue
		}
		n++
		st := got[s.Address]
		if st.Status != state.StatusFailed || !strings.Contains(st.Error, "the job exited 0 but its results cannot be read") {
			t.Errorf("%s: %s %q", s.Address, st.Status, st.Error)
		}
		if res.Failed[s.Address] == "" {
			t.Errorf("%s not failed in the result", s.Address)
		}
	}
	if n != 2 {
		t.Errorf("%d gsm8k evaluations of base and reference, want 2", n)
	}
}

// TestOutcomeToolsMissing: without the tools in PATH, the train and
// evaluate steps cannot run here: each is recorded not run (or blocked by
// one that is), with the reason, and the result lists them as
// unavailable; nothing failed.
func TestOutcomeToolsMissing(t *testing.T) {
	t.Setenv("PATH", "/nonexistent")
	f := pipelineFixture(t, "")
	res, store := f.applyWith(context.Background(), nil)
	if len(res.Failed) != 0 || res.Err() != nil {
		t.Fatalf("failed %v (%v)", res.Failed, res.Err())
	}
	got := outcomes(t, f, store)
	for _, s := range f.plan.Steps {
		st := got[s.Address]
		switch {
		case s.Kind == plan.KindGenerate:
			if st.Status != state.StatusDone {
				t.Errorf("%s: %s %q", s.Address, st.Status, st.Error)
			}
		case st.Status == state.StatusNotRun && strings.Contains(st.Error, "is not in PATH"),
			st.Status == state.StatusBlocked && strings.Contains(st.Error, "which cannot run here"):
			if res.Unavailable[s.Address] != st.Error {
				t.Errorf("%s: unavailable %q in the result, %q in the state", s.Address, res.Unavailable[s.Address], st.Error)
			}
		default:
			t.Errorf("%s: %s %q", s.Address, st.Status, st.Error)
		}
	}
	if len(res.Unavailable) != len(f.plan.Steps)-1 {
		t.Errorf("%d unavailable, want %d: %v", len(res.Unavailable), len(f.plan.Steps)-1, res.Unavailable)
	}
}

// TestOutcomeLeftRunning: a step the state shows running when an apply
// starts was left so by a killed apply: it is recorded interrupted, then
// run.
func TestOutcomeLeftRunning(t *testing.T) {
	t.Setenv("PATH", "/nonexistent")
	f := pipelineFixture(t, "")
	train := f.stepOf(plan.KindTrain, "")
	store, err := state.Open(context.Background(), f.dir+"/.agora")
	if err != nil {
		t.Fatal(err)
	}
	other := state.StepInfo{ID: "not-in-this-plan", Kind: "train", Address: "train.elsewhere"}
	for _, info := range []state.StepInfo{{ID: train.ID, Kind: train.Kind, Address: train.Address}, other} {
		if err := store.BeginStep(context.Background(), info); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	res, store := f.applyWith(context.Background(), nil)
	if res.Unavailable[train.Address] == "" {
		t.Errorf("train step: %v", res.Skipped)
	}
	st, _, _ := store.Step(context.Background(), other.ID)
	if st.Status != state.StatusInterrupted || !strings.Contains(st.Error, "killed") {
		t.Errorf("a step left running: %s %q", st.Status, st.Error)
	}
}
