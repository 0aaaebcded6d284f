package state

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkAppendParallel measures durable appends from many concurrent
// callers (32 goroutines per GOMAXPROCS), the shape of apply at a high
// request concurrency.
func BenchmarkAppendParallel(b *testing.B) {
	s, _ := openTest(b)
	begin(b, s, StepInfo{ID: "s", Kind: "generate", Address: "a", Generator: "g", Target: b.N})
	raw := strings.Repeat("x", 1000)
	var slot atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	t0 := s.txns.Load()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g := gen("s", int(slot.Add(1)), 1, true, 0.001)
			g.Raw = raw
			if err := s.Append(context.Background(), g); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if n := s.txns.Load() - t0; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "records/txn")
	}
}

// BenchmarkAppendSerial is one caller appending in a loop: one fsync'd
// transaction per record.
func BenchmarkAppendSerial(b *testing.B) {
	s, _ := openTest(b)
	begin(b, s, StepInfo{ID: "s", Kind: "generate", Address: "a", Generator: "g", Target: b.N})
	raw := strings.Repeat("x", 1000)
	b.ResetTimer()
	for i := range b.N {
		g := gen("s", i, 1, true, 0.001)
		g.Raw = raw
		if err := s.Append(context.Background(), g); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
