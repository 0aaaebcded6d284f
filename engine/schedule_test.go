package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// moreGenerators is CUE for generators h and i beside the fixture's g, on
// the same server and model, with g's limits (concurrency 2 each).
const moreGenerators = `
generators: h: {provider: generators.g.provider, model: generators.g.model, price: generators.g.price,
	limits: concurrency: 2, sampling: {max_tokens: 600, temperature: 0.5}}
generators: i: {provider: generators.g.provider, model: generators.g.model, price: generators.g.price,
	limits: concurrency: 2, sampling: {max_tokens: 600, temperature: 0.25}}
`

// TestGeneratorsAtOnce: without -parallelism every generator runs at
// once, each at its own limit (the stand-in server sees the sum of their
// concurrencies, never more); with -parallelism 1 one step at a time
// (one generator's concurrency).
func TestGeneratorsAtOnce(t *testing.T) {
	for _, c := range []struct {
		parallelism int
		want        int64
	}{{0, 6}, {1, 2}} {
		t.Run(fmt.Sprintf("parallelism%d", c.parallelism), func(t *testing.T) {
			f := newFixture(t, fixtureOpts{instances: 24, concurrency: 2, latency: 60 * time.Millisecond, extra: moreGenerators})
			res, store := f.applyWith(context.Background(), func(o *engine.Options) { o.Parallelism = c.parallelism })
			defer store.Close()
			if err := res.Err(); err != nil || len(res.Done) != 3 {
				t.Fatalf("done %v, %v", res.Done, err)
			}
			if got := f.srv.Stats().MaxInFlight; got != c.want {
				t.Errorf("at most %d requests in flight at once, want %d (the generators' limits, 2 each, at once: %v)", got, c.want, c.parallelism == 0)
			}
		})
	}
}

// TestLocalJobSlots: local jobs wait for the machine's GPUs, each given
// its own (CUDA_VISIBLE_DEVICES), or, on a machine without GPUs, for a
// CPU; never more at once than the machine has.
func TestLocalJobSlots(t *testing.T) {
	for _, c := range []struct {
		name    string
		machine engine.Machine
		most    int
		devices bool
	}{
		{"gpus", engine.Machine{GPUs: []string{"3", "5"}, CPUs: 8}, 2, true},
		{"cpu", engine.Machine{CPUs: 1}, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "jobs.log")
			// Each job appends "start end devices" once it ends.
			job := func(what string) string {
				return fmt.Sprintf(`s=$(date +%%s.%%N); sleep 0.4; %s; echo \"$s $(date +%%s.%%N) ${CUDA_VISIBLE_DEVICES:--}\" >>%s`, what, log)
			}
			score := `mkdir -p {{.OutputDir}} && case {{.ModelPath}} in *Instruct*) v=60;; */*) v=40;; *) v=50;; esac && echo \"{\\\"value\\\": $v}\" >{{.OutputDir}}/score.json`
			extra := fmt.Sprintf(`
student: {trainer: "command", command: "%s", hardware: gpus_per_node: 1}
evaluation: benchmarks: {
	a: {harness: "command", items: 10, command: "%s"}
	b: {harness: "command", items: 10, command: "%s"}
	c: {harness: "command", items: 10, command: "%s"}
}`, job(`mkdir -p {{.OutputDir}} && cd {{.OutputDir}} && echo {} >config.json && touch m.safetensors tokenizer_config.json tokenizer.json`),
				job(score), job(score), job(score))
			f := newFixture(t, fixtureOpts{instances: 4, concurrency: 4, method: spec.MethodInstance, benchmarks: []string{"a", "b", "c"}, extra: extra})
			m := c.machine
			res, store := f.applyWith(context.Background(), func(o *engine.Options) { o.Machine = &m })
			defer store.Close()
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			type span struct {
				start, end float64
				dev        string
			}
			var spans []span
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				f := strings.Fields(line)
				if len(f) != 3 {
					t.Fatalf("log line %q", line)
				}
				s, _ := strconv.ParseFloat(f[0], 64)
				e, _ := strconv.ParseFloat(f[1], 64)
				spans = append(spans, span{s, e, f[2]})
			}
			// 1 training, base and reference on 3 benchmarks, the
			// student on 3.
			if len(spans) != 10 {
				t.Fatalf("%d jobs ran, want 10:\n%s", len(spans), b)
			}
			sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
			most := 0
			for i, s := range spans {
				at := 0
				held := map[string]bool{}
				for _, o := range spans[:i+1] {
					if o.end > s.start {
						at++
						if c.devices && held[o.dev] {
							t.Errorf("device %s given to two jobs at once", o.dev)
						}
						held[o.dev] = true
					}
				}
				most = max(most, at)
				if c.devices != (s.dev != "-") || c.devices && s.dev != "3" && s.dev != "5" {
					t.Errorf("a job ran with CUDA_VISIBLE_DEVICES %q", s.dev)
				}
			}
			if most != c.most {
				t.Errorf("at most %d jobs at once, want %d:\n%s", most, c.most, b)
			}
		})
	}
}

// TestCriticalPathFirst: under -parallelism 1 the step the rest of the
// plan waits on longest starts first: generator h, at concurrency 1, has
// four times g's work at its rate, so its step runs before g's, which
// comes first in the plan.
func TestCriticalPathFirst(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 8, concurrency: 4, extra: `
generators: h: {provider: generators.g.provider, model: generators.g.model, price: generators.g.price,
	limits: concurrency: 1, sampling: {max_tokens: 600, temperature: 0.5}}`})
	if f.plan.Steps[0].Generator != "g" {
		t.Fatalf("the plan starts with %s, want g's step", f.plan.Steps[0].Address)
	}
	res, store := f.applyWith(context.Background(), func(o *engine.Options) { o.Parallelism = 1 })
	defer store.Close()
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	steps, err := store.Steps(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	started := map[string]time.Time{}
	for _, s := range steps {
		if s.Kind == plan.KindGenerate {
			started[s.Generator] = s.StartedAt
		}
	}
	if !started["h"].Before(started["g"]) {
		t.Errorf("g's step started at %s, h's at %s: want h's first (the longer critical path)", started["g"].Format(time.StampMilli), started["h"].Format(time.StampMilli))
	}
}

// TestServedEvaluationDevices: a model agora serves for its evaluation
// (alpaca_eval) on the local executor runs on the GPU of the step's slot.
func TestServedEvaluationDevices(t *testing.T) {
	standIns(t)
	stub, err := exec.LookPath("vllm")
	if err != nil {
		t.Fatal(err)
	}
	dir, log := t.TempDir(), filepath.Join(t.TempDir(), "devices.log")
	wrapper := fmt.Sprintf("#!/bin/bash\necho \"${CUDA_VISIBLE_DEVICES:--}\" >>%s\nexec %s \"$@\"\n", log, stub)
	if err := os.WriteFile(filepath.Join(dir, "vllm"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	f := pipelineFixture(t, `student: hardware: gpus_per_node: 1`)
	m := engine.Machine{GPUs: []string{"6", "9"}, CPUs: 4}
	res, store := f.applyWith(context.Background(), func(o *engine.Options) { o.Machine = &m })
	defer store.Close()
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(b))
	if len(got) != 3 { // base, reference, the student
		t.Fatalf("%d vLLM servers started, want 3: %q", len(got), got)
	}
	for _, d := range got {
		if d != "6" && d != "9" {
			t.Errorf("a vLLM server ran with CUDA_VISIBLE_DEVICES %q, want 6 or 9 (its step's slot)", d)
		}
	}
}
