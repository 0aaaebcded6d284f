// Command makespan is the makespan benchmark (bench/makespan.sh,
// docs/benchmarks.md, "Makespan"): an AgoraBench-shaped plan in
// miniature, applied by the real agora binary once per policy, its
// wall-clock set against the resource bound.
//
// The plan: six generators whose concurrency keeps agora.cue's
// proportions (64, 64, 32, 32, 32, 32, divided by -scale), three math
// instance-generation settings each, on the stand-in server
// (bench/apply/server -lean, -latency per request); one student per data
// set trained by a stand-in command that sleeps -train and writes a model
// directory, each student and the base and reference models evaluated by
// a stand-in harness command that sleeps -eval, both local jobs of one GPU
// on a machine of -gpus stand-in GPUs (CUDA_VISIBLE_DEVICES).
//
// The resource bound is what no schedule can beat: every generator at its
// concurrency from the start, each of its requests taking the server's
// latency (ceil(instances / concurrency) rounds; every instance needs at
// least one request), then a training and an evaluation; and the GPUs'
// total work over their number. The requests-per-minute and
// tokens-per-minute limits keep agora.cue's proportions but are set so
// that they do not bind: the benchmark is latency-dominated, so that its
// measure holds on a loaded machine (a sleeping request costs no CPU).
//
//	go run ./bench/makespan -agora ./agora -server ./server
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// keyEnv carries the stand-in server's key to agora.
const keyEnv = "AGORA_BENCH_KEY"

// generator is one of agora.cue's six, with its limits there.
type generator struct {
	name           string
	rpm, tpm, conc int
	temperature    float64 // tells the generators' steps apart (same model)
}

var generators = []generator{
	{name: "gpt-4o", rpm: 5000, tpm: 800000, conc: 64, temperature: 1.0},
	{name: "gpt-4o-mini", rpm: 5000, tpm: 2000000, conc: 64, temperature: 0.95},
	{name: "claude-3.5-sonnet", rpm: 1000, tpm: 400000, conc: 32, temperature: 0.9},
	{name: "llama-3.1-405b", rpm: 600, conc: 32, temperature: 0.85},
	{name: "llama-3.1-70b", rpm: 600, conc: 32, temperature: 0.8},
	{name: "llama-3.1-8b", rpm: 600, conc: 32, temperature: 0.75},
}

const settings = 3

func main() { os.Exit(run()) }

// run runs the benchmark and returns the exit status: 1 when the new
// policy misses the target.
func run() int {
	var (
		agora     = flag.String("agora", "", "the agora binary")
		server    = flag.String("server", "", "the stand-in server binary (bench/apply/server)")
		latency   = flag.Duration("latency", 500*time.Millisecond, "the server's latency per request")
		n         = flag.Int("n", 40, "instances per setting")
		scale     = flag.Int("scale", 8, "agora.cue's concurrency divided by this")
		train     = flag.Duration("train", 4*time.Second, "a training job's stand-in duration")
		eval      = flag.Duration("eval", 2*time.Second, "an evaluation job's stand-in duration")
		gpus      = flag.Int("gpus", 16, "stand-in GPUs of the machine")
		policies  = flag.String("policies", "new,old", "what to run: new (resource-aware), old (-parallelism 8), and before (the -before binary as it is)")
		before    = flag.String("before", "", "an agora binary from before the scheduler, for the policy before")
		keep      = flag.String("keep", "", "keep the runs' directories under this one")
		minRatio  = flag.Float64("target", 0.95, "the new policy's target: bound / makespan at least this")
		verbosity = flag.Bool("v", false, "show agora's output")
	)
	flag.Parse()
	if *agora == "" || *server == "" {
		return failed(errors.New("-agora and -server are required"))
	}
	url, key, stop, err := startServer(*server, *latency)
	if err != nil {
		return failed(err)
	}
	defer stop()

	bound, parts := resourceBound(*n, *scale, *latency, *train, *eval, *gpus)
	root := *keep
	if root == "" {
		root, err = os.MkdirTemp("", "agora-makespan-")
		if err != nil {
			return failed(err)
		}
		defer os.RemoveAll(root)
	}
	devices := make([]string, *gpus)
	for i := range devices {
		devices[i] = fmt.Sprint(i)
	}
	load0 := loadavg()
	type row struct {
		policy   string
		makespan time.Duration
	}
	var rows []row
	for _, policy := range strings.Split(*policies, ",") {
		var extra []string
		bin := *agora
		switch policy {
		case "new":
		case "old":
			extra = []string{"-parallelism", "8"}
		case "before":
			if *before == "" {
				return failed(errors.New("the policy before needs -before"))
			}
			bin = *before
		default:
			return failed(fmt.Errorf("unknown policy %q (new, old, before)", policy))
		}
		dir := filepath.Join(root, policy)
		if err := writeSpec(dir, url, *n, *scale, *train, *eval); err != nil {
			return failed(err)
		}
		args := append([]string{"apply", "-auto-approve", "-skip-tools-check"}, extra...)
		args = append(args, filepath.Join(dir, "agora.cue"))
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), keyEnv+"="+key, "CUDA_VISIBLE_DEVICES="+strings.Join(devices, ","))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		fmt.Fprintf(os.Stderr, "makespan: %s policy (agora %s)…\n", policy, strings.Join(args, " "))
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if *verbosity || err != nil {
			fmt.Fprint(os.Stderr, out.String())
		}
		if err != nil {
			return failed(fmt.Errorf("%s policy: agora apply: %w", policy, err))
		}
		rows = append(rows, row{policy, took})
	}

	fmt.Printf("makespan benchmark — 6 generators × %d settings × %d instances, %s a request, concurrency %s; train %s, eval %s on %d stand-in GPUs; %d cores\n",
		settings, *n, *latency, concurrencies(*scale), *train, *eval, *gpus, numCPU())
	fmt.Printf("load average before: %s, after: %s\n", load0, loadavg())
	fmt.Printf("resource bound %.1f s (%s)\n", bound.Seconds(), parts)
	fmt.Printf("%-34s %10s %8s %14s\n", "policy", "makespan", "bound", "bound/makespan")
	status := 0
	for _, r := range rows {
		ratio := bound.Seconds() / r.makespan.Seconds()
		name, mark := "new: resource-aware, critical path", ""
		switch {
		case r.policy == "old":
			name = "old: -parallelism 8"
		case r.policy == "before":
			name = "before the scheduler (its default)"
		case ratio < *minRatio:
			mark, status = fmt.Sprintf("  MISSED (target >= %.2f)", *minRatio), 1
		default:
			mark = fmt.Sprintf("  ok (target >= %.2f)", *minRatio)
		}
		fmt.Printf("%-34s %9.1fs %7.1fs %14.3f%s\n", name, r.makespan.Seconds(), bound.Seconds(), ratio, mark)
	}
	return status
}

// resourceBound is the makespan no schedule can beat, and how it is made.
func resourceBound(n, scale int, latency, train, eval time.Duration, gpus int) (time.Duration, string) {
	var slowest time.Duration
	for _, g := range generators {
		c := max(g.conc/scale, 1)
		rounds := int(math.Ceil(float64(settings*n) / float64(c)))
		slowest = max(slowest, time.Duration(rounds)*latency)
	}
	chain := slowest + train + eval
	students := len(generators) * settings
	work := time.Duration(students)*(train+eval) + 2*eval // base and reference evaluated once
	capacity := work / time.Duration(gpus)
	if capacity > chain {
		return capacity, fmt.Sprintf("the GPUs' work %.1f s over %d GPUs", work.Seconds(), gpus)
	}
	return chain, fmt.Sprintf("slowest generator %.1f s + train %.1f s + eval %.1f s", slowest.Seconds(), train.Seconds(), eval.Seconds())
}

func concurrencies(scale int) string {
	var cs []string
	for _, g := range generators {
		cs = append(cs, fmt.Sprint(max(g.conc/scale, 1)))
	}
	return strings.Join(cs, "/")
}

// writeSpec writes the miniature AgoraBench spec and its seed data in dir.
func writeSpec(dir, url string, n, scale int, train, eval time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("// Written by bench/makespan: AgoraBench in miniature on stand-ins.\ngenerators: {\n")
	for _, g := range generators {
		// Limits in agora.cue's proportions; rpm and tpm well above
		// what the latency allows, so that they do not bind.
		limits := fmt.Sprintf("concurrency: %d, rpm: %d", max(g.conc/scale, 1), g.rpm*10)
		if g.tpm > 0 {
			limits += fmt.Sprintf(", tpm: %d", g.tpm*100)
		}
		fmt.Fprintf(&b, "\t%q: {\n\t\tprovider: openai: {base_url: %q, api_key_env: %q}\n\t\tmodel: %q\n\t\tprice: {input: 1, output: 1}\n\t\tlimits: {%s}\n\t\tsampling: {temperature: %g, max_tokens: 512}\n\t}\n",
			g.name, url, keyEnv, "test-model", limits, g.temperature)
	}
	b.WriteString("}\nsettings: {\n")
	for i := 1; i <= settings; i++ {
		fmt.Fprintf(&b, "\t\"math-ig-%d\": {domain: \"math\", method: \"instance_generation\", seed_data: path: \"seed%d.jsonl\", instances: %d, benchmarks: [\"stand-in\"]}\n", i, i, n)
		if err := writeSeeds(filepath.Join(dir, fmt.Sprintf("seed%d.jsonl", i)), i); err != nil {
			return err
		}
	}
	fmt.Fprintf(&b, `}
student: {
	base:      "stand-in/base"
	reference: "stand-in/reference"
	trainer:   "command"
	command:   "sleep %g && mkdir -p {{.OutputDir}} && cd {{.OutputDir}} && echo {} >config.json && touch model.safetensors tokenizer_config.json tokenizer.json"
	hardware: {gpu: "H100-80GB", gpus_per_node: 1, nodes: 1, time_limit: "01:00:00"}
	executor: "local"
}
evaluation: {
	executor: "local"
	gpus:     1
	benchmarks: "stand-in": {harness: "command", items: 100, command: "sleep %g && mkdir -p {{.OutputDir}} && case {{.ModelPath}} in stand-in/base) v=40;; stand-in/reference) v=60;; *) v=50;; esac && echo \"{\\\"value\\\": $v}\" >{{.OutputDir}}/score.json"}
}
budgets: usd: 100000
`, train.Seconds(), eval.Seconds())
	return os.WriteFile(filepath.Join(dir, "agora.cue"), []byte(b.String()), 0o644)
}

func writeSeeds(path string, k int) error {
	var b strings.Builder
	for i := 0; i < 50; i++ {
		x, y := 3+i*k, 11+(i*7+k)%89
		fmt.Fprintf(&b, `{"instruction": "A shelf holds %d books and another holds %d. How many books are on both shelves?", "response": "The two shelves hold %d + %d = %d books.\n[RESULT] %d [/RESULT]"}`+"\n", x, y, x, y, x+y, x+y)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// startServer runs the stand-in server and returns its URL and key.
func startServer(bin string, latency time.Duration) (url, key string, stop func(), err error) {
	cmd := exec.Command(bin, "-lean", "-latency", latency.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", "", nil, err
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "URL="); ok {
			url = v
		}
		if v, ok := strings.CutPrefix(line, "KEY="); ok {
			key = v
		}
		if strings.HasPrefix(line, "STATS=") {
			break
		}
	}
	if url == "" || key == "" {
		stop()
		return "", "", nil, errors.New("the stand-in server did not start")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return url, key, stop, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}

func failed(err error) int {
	fmt.Fprintln(os.Stderr, "makespan:", err)
	return 1
}
