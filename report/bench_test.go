package report

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/agorabench/agora/analysis"
)

// writeResults writes a results file of n rows: 1,000 generators × the
// nine built-in settings × instance counts and seeds, with a PGR, a cost,
// a problem-solving score and two features each.
func writeResults(tb testing.TB, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "generator,setting,domain,method,instances,seed,pgr,cost_usd,problem_solving,response_quality,instruction_diversity")
	settings := []struct{ name, domain, method string }{
		{"math-ig", "math", "instance_generation"}, {"math-rg", "math", "response_generation"}, {"math-qe", "math", "quality_enhancement"},
		{"code-ig", "code", "instance_generation"}, {"code-rg", "code", "response_generation"}, {"code-qe", "code", "quality_enhancement"},
		{"if-ig", "instruction_following", "instance_generation"}, {"if-rg", "instruction_following", "response_generation"}, {"if-qe", "instruction_following", "quality_enhancement"},
	}
	for i := 0; i < n; i++ {
		g, s, k := i%1000, (i/1000)%9, i/9000
		st := settings[s]
		fmt.Fprintf(w, "g%04d,%s,%s,%s,%d,%d,%.3f,%.4f,%.1f,%d,%.4f\n", g, st.name, st.domain, st.method,
			1000*(k%10+1), k/10, float64((i*7919)%1000)/10-20, float64((i*104729)%10000)/100, float64((g*31+s/3)%100), 100+(i*13)%900, float64((i*31)%1000)/1000)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
}

// analyseFile is what `agora report -results FILE` does with a file and
// no state: read it, analyse it, render markdown and CSV.
func analyseFile(tb testing.TB, path string) {
	r, err := analysis.ReadResults(path)
	if err != nil {
		tb.Fatal(err)
	}
	ds := analysis.Dataset{Cells: r.Cells, Generators: r.Generators}
	for name, s := range r.Settings {
		ds.Settings = append(ds.Settings, analysis.Setting{Name: name, Domain: s.Domain, Method: s.Method, Benchmarks: []string{"b"}})
	}
	rep, err := analysis.Analyse(ds, analysis.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := WriteMarkdown(io.Discard, rep); err != nil {
		tb.Fatal(err)
	}
	if err := WriteCSV(io.Discard, rep); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkResultsMillion reads and analyses a results file of 1,000,000
// rows (docs/benchmarks.md); AGORA_BENCH_ROWS changes the count.
func BenchmarkResultsMillion(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("AGORA_BENCH_ROWS"); v != "" {
		fmt.Sscan(v, &n)
	}
	path := filepath.Join(b.TempDir(), "results.csv")
	writeResults(b, path, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		analyseFile(b, path)
	}
}

// TestWriteBenchResults writes the benchmark's results file to
// $AGORA_BENCH_RESULTS_FILE (AGORA_BENCH_ROWS rows, 1,000,000 by default),
// for timing the command itself (docs/benchmarks.md); it does nothing
// without the variable.
func TestWriteBenchResults(t *testing.T) {
	path := os.Getenv("AGORA_BENCH_RESULTS_FILE")
	if path == "" {
		t.Skip("AGORA_BENCH_RESULTS_FILE not set")
	}
	n := 1_000_000
	if v := os.Getenv("AGORA_BENCH_ROWS"); v != "" {
		fmt.Sscan(v, &n)
	}
	writeResults(t, path, n)
}
