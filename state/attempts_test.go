package state

import (
	"context"
	"testing"
)

func TestLastAttempts(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.BeginStep(ctx, StepInfo{ID: "st", Kind: "generate", Address: "generate.x", Target: 3}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []Generation{{Slot: 0, Attempt: 1}, {Slot: 0, Attempt: 2, Accepted: true}, {Slot: 2, Attempt: 1}, {Slot: 2, Attempt: 5}} {
		g.StepID = "st"
		if err := s.Append(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LastAttempts(ctx, "st")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 2 || got[2] != 5 {
		t.Errorf("LastAttempts = %v, want map[0:2 2:5]", got)
	}
	for slot, want := range map[int]int{0: 3, 1: 1, 2: 6} {
		n, err := s.NextAttempt(ctx, "st", slot)
		if err != nil || n != want || n != got[slot]+1 {
			t.Errorf("NextAttempt(%d) = %d, %v; want %d", slot, n, err, want)
		}
	}
}
