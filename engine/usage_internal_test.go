package engine

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/agorabench/agora/spec"
)

func TestJudgeUsage(t *testing.T) {
	g := &spec.Generator{Name: "g", Price: &spec.Price{Input: 2, Output: 8}}
	for _, tc := range []struct {
		name       string
		c          Completion
		cost       float64
		reject     string
		in, out    int
		wantErrors bool
	}{
		{"honest", Completion{Text: "x", PromptTokens: 100, CompletionTokens: 50}, (200 + 400) / 1e6, "", 100, 50, false},
		{"negative", Completion{Text: "x", PromptTokens: -100000000, CompletionTokens: 5}, 0, "invalid usage", 0, 0, true},
		{"prompt over", Completion{Text: "x", PromptTokens: 20000, CompletionTokens: 5}, (40000 + 40) / 1e6, "usage anomaly: 20000 prompt tokens", 20000, 5, true},
		{"within tolerance", Completion{Text: "x", PromptTokens: 1000 + usageTolerance, CompletionTokens: 5}, (2*(1000+usageTolerance) + 40) / 1e6, "", 1000 + usageTolerance, 5, false},
		{"completion over", Completion{Text: "x", PromptTokens: 1, CompletionTokens: 1e12}, (2 + 8e12) / 1e6, "usage anomaly: 1000000000000 completion tokens", 1, 1e12, true},
		{"zero for text", Completion{Text: "hello", PromptTokens: 0, CompletionTokens: 0}, 0.5, "usage anomaly: no completion tokens", 0, 0, true},
		{"zero for nothing", Completion{}, 0, "", 0, 0, false},
	} {
		v := judgeUsage(g, tc.c, 1000, 600, 0.5)
		if math.Abs(v.cost-tc.cost) > 1e-12 || !strings.HasPrefix(v.reject, tc.reject) || (tc.reject == "") != (v.reject == "") ||
			(v.err != nil) != tc.wantErrors || v.in != tc.in || v.out != tc.out {
			t.Errorf("%s: %+v", tc.name, v)
		}
	}
}

func TestSettleCrossing(t *testing.T) {
	l := NewLedger(1, map[string]float64{"g": 0.5}, 0, nil)
	r, err := l.Reserve(context.Background(), "g", 0.1)
	if err != nil {
		t.Fatal(err)
	}
	// Booked within the reservation: no error.
	if err := r.Settle(0.05); err != nil {
		t.Fatal(err)
	}
	r, _ = l.Reserve(context.Background(), "g", 0.1)
	err = r.Settle(0.75)
	var be *BudgetError
	if !errors.As(err, &be) || be.Budget != "usd:g" || math.Abs(be.Overshoot-0.3) > 1e-9 {
		t.Fatalf("err %v: want usd:g exceeded by $0.30", err)
	}
	select {
	case <-l.Crossed():
	default:
		t.Fatal("Crossed not closed")
	}
	if _, err := l.Reserve(context.Background(), "g", 0); err == nil {
		t.Fatal("a reservation fits after the crossing")
	}
	// Negative is never a credit; absurd amounts saturate.
	r2 := &Reservation{l: l, gen: "h"}
	r2.Settle(-1000)
	if total, _ := l.Spent("h"); math.Abs(total-0.8) > 1e-9 {
		t.Fatalf("spent %v after a negative settlement", total)
	}
	(&Reservation{l: l, gen: "h"}).Settle(math.Inf(1))
	(&Reservation{l: l, gen: "h"}).Settle(1e300)
	if total, _ := l.Spent("h"); total <= 0 || math.IsInf(total, 0) {
		t.Fatalf("spent %v after absurd settlements", total)
	}
	if got := l.Final(nil); got != be || math.Abs(got.Spent-0.8) > 1e-9 {
		t.Fatalf("Final %+v", got)
	}
	if !strings.Contains(be.Error(), "budget usd:g exceeded by $") {
		t.Fatal(be.Error())
	}
}
