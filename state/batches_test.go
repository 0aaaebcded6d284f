package state

import (
	"context"
	"reflect"
	"testing"
)

// TestBatches: a batch's phases are recorded in order and survive a
// reopen; a done batch is no longer open.
func TestBatches(t *testing.T) {
	ctx := context.Background()
	s, dir := openTest(t)
	lines := []BatchLine{{Slot: 0, Attempt: 1}, {Slot: 3, Attempt: 2}}
	if err := s.RecordBatch(ctx, Batch{Key: "k1", StepID: "g", Generator: "gen", Lines: lines, ReservedUSD: 0.25}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordBatch(ctx, Batch{Key: "k1", StepID: "g", Generator: "gen", Lines: lines}); err == nil {
		t.Error("a key recorded twice")
	}
	if err := s.SetBatchFile(ctx, "k1", "file-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBatchID(ctx, "k1", "batch_1", "validating"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateBatch(ctx, "k1", "in_progress", 2, 1, 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBatchFile(ctx, "nope", "f"); err == nil {
		t.Error("updated a batch never recorded")
	}
	s.Close()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	open, err := s.OpenBatches(ctx, "g")
	if err != nil || len(open) != 1 {
		t.Fatalf("open %+v %v", open, err)
	}
	b := open[0]
	if b.Key != "k1" || b.FileID != "file-1" || b.BatchID != "batch_1" || b.Status != "in_progress" || b.Completed != 1 ||
		b.Total != 2 || b.ReservedUSD != 0.25 || !reflect.DeepEqual(b.Lines, lines) || b.Done {
		t.Errorf("batch %+v", b)
	}
	if err := s.EndBatch(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if open, _ := s.OpenBatches(ctx, "g"); len(open) != 0 {
		t.Errorf("still open: %+v", open)
	}
	if all, _ := s.Batches(ctx); len(all) != 1 || !all[0].Done {
		t.Errorf("all %+v", all)
	}
}
