package engine

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

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

func TestCapRaw(t *testing.T) {
	long := strings.Repeat("é", maxRejectedRaw) // 2 bytes a rune
	got := capRaw(long, false)
	if len(got) > maxRejectedRaw+64 || !strings.HasSuffix(got, "[agora: truncated, 131072 bytes in all]") || !utf8.ValidString(got) {
		t.Fatalf("capRaw: %d bytes, ends %q", len(got), got[len(got)-50:])
	}
	if capRaw(long, true) != long || capRaw("short", false) != "short" {
		t.Fatal("capRaw changed what it should keep")
	}
}

// Where agora has the model's tokenizer, the reservation counts tokens,
// not bytes, and usage beyond it is judged against that tighter bound.
func TestPromptBoundTokenizer(t *testing.T) {
	msgs := []Message{{Role: "user", Content: strings.Repeat("The quick brown fox jumps over the lazy dog. ", 100)}}
	bytes := byteBound(msgs)
	gpt := &spec.Generator{Name: "g", Model: "gpt-4o-mini", Price: &spec.Price{Input: 1, Output: 1}}
	other := &spec.Generator{Name: "h", Model: "llama", Price: &spec.Price{Input: 1, Output: 1}}
	tok := promptBound(gpt, msgs)
	if tok >= bytes/3 || tok < 1000 {
		t.Fatalf("tokenizer bound %d, byte bound %d: want about 1,000 tokens", tok, bytes)
	}
	if promptBound(other, msgs) != bytes || promptBound(&spec.Generator{Model: "gpt-4o"}, msgs) != bytes {
		t.Fatal("without a tokenizer (or a price) the bound is the bytes")
	}
	// A provider claiming the byte bound's worth of prompt tokens for a
	// gpt-4o prompt is caught.
	v := judgeUsage(gpt, Completion{Text: "x", PromptTokens: bytes, CompletionTokens: 1}, tok, 10, 0)
	if v.err == nil || !strings.Contains(v.reject, "usage anomaly") {
		t.Fatalf("%+v", v)
	}
}

func TestJudgeUsageUnpriced(t *testing.T) {
	g := &spec.Generator{Name: "local"}
	if v := judgeUsage(g, Completion{Text: "x", PromptTokens: 1e6, CompletionTokens: 0}, 10, 10, 0); v.err != nil || v.cost != 0 {
		t.Fatalf("unpriced: %+v", v)
	}
	if v := judgeUsage(g, Completion{Text: "x", PromptTokens: -1}, 10, 10, 0); v.err == nil {
		t.Fatal("negative usage passed for an unpriced generator")
	}
}
