package state

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func BenchmarkLinger(b *testing.B) {
	for _, l := range []time.Duration{0, 200 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond} {
		b.Run(l.String(), func(b *testing.B) {
			s, _ := openTest(b)
			s.linger = l
			if v := os.Getenv("C"); v != "" {
				if _, err := s.wdb.Exec("PRAGMA wal_autocheckpoint=" + v); err != nil {
					b.Fatal(err)
				}
			}
			if v := os.Getenv("P"); v != "" {
				if _, err := s.wdb.Exec("PRAGMA synchronous=" + v); err != nil {
					b.Fatal(err)
				}
			}
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
			b.ReportMetric(float64(b.N)/float64(s.txns.Load()-t0), "records/txn")
		})
	}
}
