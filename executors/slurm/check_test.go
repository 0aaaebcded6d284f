package slurm

import (
	"testing"
	"time"
)

func TestParseSinfo(t *testing.T) {
	out := "gpu*|2-00:00:00|gpu:a100:8(S:0-1)|512000|up\n" +
		"gpu*|2-00:00:00|gpu:4,shard:2|256000+|up\n" +
		"cpu|infinite|(null)|24105|up\n" +
		"old|30:00|gpu:2|1000|down\n"
	got, err := parseSinfo(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{
		{Name: "gpu", Default: true, Up: true, MaxTime: 48 * time.Hour, GPUs: 8, GRES: []string{"gpu:a100:8(S:0-1)", "gpu:4,shard:2"}, MemoryMB: 512000},
		{Name: "cpu", Up: true, GRES: []string{"(null)"}, MemoryMB: 24105},
		{Name: "old", MaxTime: 30 * time.Minute, GPUs: 2, GRES: []string{"gpu:2"}, MemoryMB: 1000},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Default != w.Default || g.Up != w.Up || g.MaxTime != w.MaxTime || g.GPUs != w.GPUs || g.MemoryMB != w.MemoryMB || len(g.GRES) != len(w.GRES) {
			t.Errorf("partition %d: got %+v, want %+v", i, g, w)
		}
	}
	if _, err := parseSinfo("gpu|bogus|x|1|up\n"); err == nil {
		t.Error("a bad time limit is not an error")
	}
	if _, err := parseSinfo("one field\n"); err == nil {
		t.Error("a short line is not an error")
	}
}

func TestGresGPUs(t *testing.T) {
	for gres, want := range map[string]int{"(null)": 0, "gpu:4": 4, "gpu:a100:8(S:0-1)": 8, "gpu:a100:2,gpu:v100:2": 4, "shard:8": 0} {
		if got := gresGPUs(gres); got != want {
			t.Errorf("%s: %d GPUs, want %d", gres, got, want)
		}
	}
}
