package preflight

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/seeddata"
	"github.com/agorabench/agora/spec"
)

// fakeSlurm is a cluster of one partition; it records the jobs tested.
type fakeSlurm struct {
	parts  []slurm.Partition
	tested []slurm.Job
	refuse error
}

func (f *fakeSlurm) Partitions(context.Context) ([]slurm.Partition, error) { return f.parts, nil }
func (f *fakeSlurm) TestOnly(_ context.Context, j slurm.Job) error {
	f.tested = append(f.tested, j)
	return f.refuse
}

func load(t *testing.T, fs *fakeSlurm, student string) *Report {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(`{"instruction": "1 + 2?", "response": "3"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `generators: g: {provider: openai: {base_url: "http://127.0.0.1:9/v1", api_key_env: "PREFLIGHT_TEST_KEY"}, model: "m", price: {input: 1, output: 2}}
settings: s: {domain: "math", method: "response_generation", seed_data: path: "seed.jsonl", instances: 2, benchmarks: ["gsm8k"]}
student: {
	executor: "slurm"
` + student + `
}
`
	exp, err := spec.LoadBytes(filepath.Join(dir, "agora.cue"), []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return Run(context.Background(), exp, p, Options{
		Slurm:  fs,
		Getenv: func(string) string { return "" },
		Seeds:  seeddata.Options{Dir: dir},
	})
}

// TestSlurmLimits: GPUs, memory and time over what the partition has are
// three problems, reported together at their lines; sbatch is not asked.
func TestSlurmLimits(t *testing.T) {
	fs := &fakeSlurm{parts: []slurm.Partition{{Name: "gpu", Default: true, Up: true, MaxTime: time.Hour, GPUs: 2, GRES: []string{"gpu:2"}, MemoryMB: 1000}}}
	rep := load(t, fs, `	hardware: {gpus_per_node: 4, mem: "2G", time_limit: "02:00:00"}`)
	var got []string
	for _, p := range rep.Problems {
		got = append(got, p.String())
	}
	want := []string{
		"student.hardware.gpus_per_node: asks for 4 GPUs per node, but the nodes of partition gpu have at most 2 (GRES gpu:2)",
		"student.hardware.mem: asks for 2G, but the nodes of partition gpu have at most 1000 MB",
		"student.hardware.time_limit: time limit 02:00:00 is over partition gpu's limit of 1h0m0s",
		"generators.g.provider.openai.api_key_env: the key variable PREFLIGHT_TEST_KEY is not set",
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.HasSuffix(g, w) && strings.Contains(g, "agora.cue:")
		}
		if !found {
			t.Errorf("no problem %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	if len(fs.tested) != 0 {
		t.Errorf("sbatch --test-only asked about %d jobs already known to be refused", len(fs.tested))
	}
}

// TestSlurmTestOnly: a job within the partition's limits is put to
// sbatch --test-only, whose refusal is a problem.
func TestSlurmTestOnly(t *testing.T) {
	fs := &fakeSlurm{parts: []slurm.Partition{{Name: "cpu", Default: true, Up: true, GRES: []string{"(null)"}, MemoryMB: 1000}},
		refuse: errors.New("sbatch --test-only: exit status 1: sbatch: error: Invalid account or account/partition combination specified")}
	rep := load(t, fs, `	hardware: {gpus_per_node: 0, time_limit: "00:10:00"}
	slurm: account: "nobody"`)
	if len(fs.tested) != 1 || fs.tested[0].Slurm.Account != "nobody" || fs.tested[0].Hardware.GPUsPerNode != 0 {
		t.Fatalf("tested %+v", fs.tested)
	}
	found := false
	for _, p := range rep.Problems {
		found = found || p.Path == "student.slurm" && strings.Contains(p.Msg, "sbatch --test-only refuses the job: ") && strings.Contains(p.Msg, "Invalid account")
	}
	if !found {
		t.Errorf("problems %+v", rep.Problems)
	}
}

func TestMegabytes(t *testing.T) {
	for in, want := range map[string]int{"100": 100, "100M": 100, "2G": 2048, "1T": 1 << 20, "2048K": 2, "64GB": 65536} {
		if got, err := megabytes(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	if _, err := megabytes("lots"); err == nil {
		t.Error("no error for lots")
	}
}

// TestSeedHubOffline: a Hub dataset that cannot be checked because the
// Hub cannot be reached is a note ("cannot check"), not a problem.
func TestSeedHubOffline(t *testing.T) {
	dir := t.TempDir()
	src := `generators: g: {provider: openai: {base_url: "http://127.0.0.1:9/v1", api_key_env: "PREFLIGHT_TEST_KEY"}, model: "m", price: {input: 1, output: 2}}
settings: s: {domain: "math", method: "response_generation", seed_data: {hf: "org/seeds", size: 10}, instances: 2, benchmarks: ["gsm8k"]}
`
	exp, err := spec.LoadBytes(filepath.Join(dir, "agora.cue"), []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := Run(ctx, exp, p, Options{Getenv: func(string) string { return "set" },
		Seeds: seeddata.Options{Dir: dir, CacheDir: t.TempDir(), Endpoint: "http://127.0.0.1:9"}})
	for _, pr := range rep.Problems {
		if strings.HasPrefix(pr.Path, "settings.") {
			t.Errorf("problem %s", pr)
		}
	}
	found := false
	for _, n := range rep.Notes {
		found = found || n.Path == "settings.s.seed_data.hf" && strings.HasPrefix(n.Msg, "cannot check org/seeds: the Hub is not reachable (offline?)")
	}
	if !found {
		t.Errorf("notes %+v", rep.Notes)
	}
}

// TestVLLMServersOnSlurm: a vLLM generator's server jobs are checked
// against the cluster like the steps' jobs: no GPUs on the partition is a
// problem at the generator's vllm block.
func TestVLLMServersOnSlurm(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(`{"instruction": "1 + 2?", "response": "3"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `generators: v: {provider: vllm: {executor: "slurm", gpus: 2, time_limit: "01:00:00"}, model: "org/model"}
settings: s: {domain: "math", method: "response_generation", seed_data: path: "seed.jsonl", instances: 2, benchmarks: ["gsm8k"]}
`
	exp, err := spec.LoadBytes(filepath.Join(dir, "agora.cue"), []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeSlurm{parts: []slurm.Partition{{Name: "cpu", Default: true, Up: true, GRES: []string{"(null)"}, MemoryMB: 1000}}}
	rep := Run(context.Background(), exp, p, Options{Slurm: fs, Seeds: seeddata.Options{Dir: dir}})
	found := false
	for _, pr := range rep.Problems {
		found = found || pr.Path == "generators.v.provider.vllm.gpus" &&
			pr.Msg == "asks for 2 GPUs per node, but the nodes of partition cpu have none (GRES (null)): choose a partition with GPUs (slurm.partition)"
	}
	if !found || len(fs.tested) != 0 {
		t.Errorf("problems %+v, tested %d", rep.Problems, len(fs.tested))
	}
}
