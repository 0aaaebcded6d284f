//go:build unix

package cli_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/state"
)

// TestBatchSurvivesKill9 runs the real agora binary on a generator in
// batch mode against the stand-in Batch API and kills it with SIGKILL at
// each phase of a batch: its file uploaded (the answer not yet read), its
// creation sent (not yet handled), its batch created (the answer not yet
// read: only the metadata finds it), the batch in progress, and its
// results downloading. Each apply resumes the same batch; the last one
// completes. Every instance is recorded exactly once, no request is run
// twice at the provider, one file and one batch exist per batch in the
// state (the upload and the creation whose answers were lost are found
// again), and the
// recorded spend equals the server's tally at the batch price.
func TestBatchSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agora and runs it as a subprocess")
	}
	bin := buildAgora(t)
	const n = 40
	srv, dir, command := batchHarness(t, bin, n)

	for _, phase := range []apitest.BatchPhase{apitest.PhaseUploaded, apitest.PhaseCreate, apitest.PhaseCreated, apitest.PhasePoll, apitest.PhaseDownload} {
		hit := make(chan struct{})
		var once sync.Once
		srv.SetBatch(apitest.BatchOptions{LineDelay: 5 * time.Millisecond, Hook: func(ctx context.Context, p apitest.BatchPhase, id string) {
			if p != phase {
				return
			}
			fired := false
			once.Do(func() { fired = true; close(hit) })
			if fired {
				// The kill comes meanwhile: the server never answers,
				// and handles nothing of the request once the client
				// is gone.
				select {
				case <-ctx.Done():
				case <-time.After(time.Minute):
				}
			}
		}})
		applyUntil(t, command, hit, fmt.Sprintf("kill at %s", phase)).kill9()
		st, err := state.Open(context.Background(), filepath.Join(dir, ".agora"))
		if err != nil {
			t.Fatal(err)
		}
		bs, err := st.Batches(context.Background())
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, b := range bs {
			seen = append(seen, fmt.Sprintf("%s file=%q batch=%q %s", b.Key, b.FileID, b.BatchID, b.Status))
		}
		t.Logf("killed at %s: state %v; server %v", phase, seen, srv.BatchStatus())
		if phase == apitest.PhaseCreated && (len(bs) != 1 || bs[0].BatchID != "" || srv.BatchStats().Batches != 1) {
			t.Fatalf("killed at %s: want a batch the server made and the state does not know the id of", phase)
		}
		code, stdout, stderr := runIn(t, command, "status", "agora.cue")
		if code != 0 || !strings.Contains(stdout, "Batches") {
			t.Fatalf("status after kill at %s: exit %d\n%s\n%s", phase, code, stdout, stderr)
		}
	}
	srv.SetBatch(apitest.BatchOptions{})
	code, stdout, stderr := runIn(t, command, "apply", "-auto-approve", "agora.cue")
	if code != 4 || !strings.Contains(stdout, "Apply finished: 1 step done in this run.") {
		t.Fatalf("final apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	srv.WaitBatches()

	st, err := state.Open(context.Background(), filepath.Join(dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bs, err := st.Batches(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	created := 0
	for _, b := range bs {
		if b.BatchID != "" {
			created++
		}
		if !b.Done {
			t.Errorf("batch %+v not recorded", b)
		}
	}
	bst := srv.BatchStats()
	if bst.Files != len(bs) {
		t.Errorf("%d files uploaded for %d batches: the upload whose answer the kill lost was not found again", bst.Files, len(bs))
	}
	if bst.Batches != created || created < 2 {
		t.Errorf("the server made %d batches, the state knows %d (want one each, and a second batch for the rejected)", bst.Batches, created)
	}
	for id, k := range bst.PerCustomID {
		if k != 1 {
			t.Errorf("request %s run %d times", id, k)
		}
	}
	stepID := ""
	steps, _ := st.Steps(context.Background())
	for _, s := range steps {
		if s.Kind == "generate" {
			stepID = s.ID
		}
	}
	slots := map[int]int{}
	st.Accepted(context.Background(), stepID, func(g state.Generation) error { slots[g.Slot]++; return nil })
	for i := 0; i < n; i++ {
		if slots[i] != 1 {
			t.Errorf("slot %d accepted %d times", i, slots[i])
		}
	}
	spent, _, _ := st.Spend(context.Background())
	tally := (float64(bst.PromptTokens)*2 + float64(bst.CompletionTokens)*8) / 2 / 1e6
	if math.Abs(spent-tally) > 1e-9 || tally == 0 {
		t.Errorf("recorded %.9f, the server's tally at the batch price %.9f", spent, tally)
	}
	if srv.Stats().Served != int64(bst.Served) {
		t.Errorf("%d served, %d in batches", srv.Stats().Served, bst.Served)
	}
}

// runIn runs agora through command to its end.
func runIn(t *testing.T, command func(...string) (*exec.Cmd, *crashOutput), args ...string) (int, string, string) {
	t.Helper()
	cmd, out := command(args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("agora %s did not finish in 60s\nstderr:\n%s", strings.Join(args, " "), out.stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.stdout.String(), out.stderr.String()
}

// batchHarness writes a spec of n instances whose generator is in batch
// mode against a stand-in server that rejects the first answer to one
// prompt in five; command runs agora in its directory.
func batchHarness(t *testing.T, bin string, n int) (*apitest.Server, string, func(...string) (*exec.Cmd, *crashOutput)) {
	dir := t.TempDir()
	var seeds strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&seeds, `{"instruction": "What is %d + %d?", "response": "%d"}`+"\n", i, i+7, 2*i+7)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed.jsonl"), []byte(seeds.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	answered := map[string]int{}
	srv := apitest.New(apitest.Options{Responder: func(r apitest.ChatRequest) string {
		q := r.Messages[len(r.Messages)-1].Content
		mu.Lock()
		k := answered[q]
		answered[q]++
		mu.Unlock()
		if k == 0 && len(q)%5 == 0 {
			return "This needs more thought than I can give it.\n[END]" // no [RESULT]: rejected, asked again
		}
		return "Adding the two numbers step by step gives the sum.\n[RESULT] 7 [/RESULT]\n[END]"
	}})
	t.Cleanup(srv.Close)
	src := fmt.Sprintf(`
generators: g: {
	provider: openai: {base_url: %q, api_key_env: %q, batch: {poll: "20ms"}}
	model: %q
	price: {input: 2, output: 8, batch_discount: 0.5}
	sampling: max_tokens: 300
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: %d
	benchmarks: ["gsm8k"]
}
budgets: usd: 100
`, srv.URL(), crashKeyEnv, apitest.DefaultModel, n)
	if err := os.WriteFile(filepath.Join(dir, "agora.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	command := func(args ...string) (*exec.Cmd, *crashOutput) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), crashKeyEnv+"="+srv.APIKey())
		out := &crashOutput{}
		cmd.Stdout, cmd.Stderr = &out.stdout, &out.stderr
		return cmd, out
	}

	return srv, dir, command
}

// TestBatchInterruptTwice: the first interrupt sends no new batch and
// waits for the one at the provider; the second cancels it there and
// records what it completed before agora exits 130. The next apply
// completes without paying for anything twice.
func TestBatchInterruptTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agora and runs it as a subprocess")
	}
	bin := buildAgora(t)
	const n = 40
	srv, dir, command := batchHarness(t, bin, n)
	polled := make(chan struct{})
	var once sync.Once
	srv.SetBatch(apitest.BatchOptions{LineDelay: 100 * time.Millisecond, Hook: func(_ context.Context, p apitest.BatchPhase, id string) {
		if p == apitest.PhasePoll && srv.BatchStats().Served >= 5 {
			once.Do(func() { close(polled) })
		}
	}})
	applyUntil(t, command, polled, "interrupt while the batch runs").interruptTwice()
	bst := srv.BatchStats()
	if bst.Cancels != 1 || bst.Served >= n {
		t.Fatalf("server: %+v", bst)
	}
	st, err := state.Open(context.Background(), filepath.Join(dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	bs, _ := st.Batches(context.Background())
	spent, _, _ := st.Spend(context.Background())
	st.Close()
	tally := (float64(bst.PromptTokens)*2 + float64(bst.CompletionTokens)*8) / 2 / 1e6
	if len(bs) != 1 || !bs[0].Done || bs[0].Status != "cancelled" || math.Abs(spent-tally) > 1e-9 {
		t.Fatalf("state: %+v, spent %.9f, tally %.9f", bs, spent, tally)
	}
	srv.SetBatch(apitest.BatchOptions{})
	code, stdout, stderr := runIn(t, command, "apply", "-auto-approve", "agora.cue")
	if code != 4 || !strings.Contains(stdout, "1 step done") {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	bst = srv.BatchStats()
	for id, k := range bst.PerCustomID {
		if k != 1 {
			t.Errorf("request %s run %d times", id, k)
		}
	}
	st, err = state.Open(context.Background(), filepath.Join(dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spent, _, _ = st.Spend(context.Background())
	tally = (float64(bst.PromptTokens)*2 + float64(bst.CompletionTokens)*8) / 2 / 1e6
	if math.Abs(spent-tally) > 1e-9 {
		t.Errorf("recorded %.9f, tally %.9f", spent, tally)
	}
}

// TestBatchOrphanedBySpecChange: a batch at the provider whose step a
// spec change removed from the plan is not forgotten. status marks it
// "to collect: step not in this spec's plan"; plan warns; apply warns
// before approval and holds its worst case against the budgets (here all
// of it, so the new step cannot spend); applying the spec it was made
// with records it, with nothing bought twice.
func TestBatchOrphanedBySpecChange(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agora and runs it as a subprocess")
	}
	bin := buildAgora(t)
	const n = 20
	srv, dir, command := batchHarness(t, bin, n)
	hit := make(chan struct{})
	var once sync.Once
	srv.SetBatch(apitest.BatchOptions{LineDelay: 5 * time.Millisecond, Hook: func(ctx context.Context, p apitest.BatchPhase, id string) {
		if p != apitest.PhasePoll {
			return
		}
		fired := false
		once.Do(func() { fired = true; close(hit) })
		if fired {
			<-ctx.Done()
		}
	}})
	applyUntil(t, command, hit, "kill while the batch runs").kill9()
	srv.SetBatch(apitest.BatchOptions{})

	// The spec changes: 21 instances is another step; the budget is
	// what the first step's batch may still cost.
	orig, err := os.ReadFile(filepath.Join(dir, "agora.cue"))
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(orig), fmt.Sprintf("instances: %d", n), fmt.Sprintf("instances: %d", n+1), 1)
	st, err := state.Open(context.Background(), filepath.Join(dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	bs, _ := st.Batches(context.Background())
	st.Close()
	if len(bs) != 1 || bs[0].BatchID == "" || bs[0].Done {
		t.Fatalf("state after the kill: %+v", bs)
	}
	changed = strings.Replace(changed, "budgets: usd: 100", fmt.Sprintf("budgets: usd: %.6f", bs[0].ReservedUSD+1e-6), 1)
	if err := os.WriteFile(filepath.Join(dir, "changed.cue"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runIn(t, command, "status", "changed.cue")
	if code != 0 || !regexp.MustCompile(`batch_apitest_\d+\s+\w+\s+20\s+\d+\s+\d+\s+\$0\.\d+\s+to collect: step not in this spec's plan`).MatchString(stdout) {
		t.Fatalf("status with the changed spec: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = runIn(t, command, "plan", "changed.cue")
	if code != 0 || !strings.Contains(stderr, "Warning: 1 batch of steps not in this plan may hold paid requests that are not recorded") {
		t.Errorf("plan of the changed spec: exit %d, no warning:\n%s", code, stderr)
	}
	code, stdout, stderr = runIn(t, command, "apply", "-auto-approve", "changed.cue")
	if !strings.Contains(stderr, "Warning: 1 batch of steps not in this plan may hold paid requests that are not recorded") ||
		!strings.Contains(stderr, bs[0].BatchID+"  generator g  20 requests") {
		t.Errorf("no warning before approval:\n%s", stderr)
	}
	t.Logf("apply of the changed spec:\n%s", stderr)
	if code != 5 {
		t.Errorf("apply with the batch's worst case holding the budget: exit %d, want 5 (budget)\n%s\n%s", code, stdout, stderr)
	}
	if served := srv.Stats().Served; int(served) != srv.BatchStats().Served {
		t.Errorf("the new step spent beyond the budget the orphan holds: %d served, %d in batches", served, srv.BatchStats().Served)
	}

	// The spec it was made with collects it.
	code, stdout, stderr = runIn(t, command, "apply", "-auto-approve", "agora.cue")
	if code != 4 || !strings.Contains(stdout, "Apply finished: 1 step done in this run.") {
		t.Fatalf("apply of the original spec: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for id, k := range srv.BatchStats().PerCustomID {
		if k != 1 {
			t.Errorf("request %s run %d times", id, k)
		}
	}
}

// runningApply is an agora apply started by applyUntil.
type runningApply struct {
	t      *testing.T
	what   string
	cmd    *exec.Cmd
	out    *crashOutput
	exited chan error
}

// applyUntil starts agora apply -auto-approve agora.cue through command
// and returns once hit is closed; the test fails if agora exits first or
// hit does not close in 60 s. what names the point, for messages.
func applyUntil(t *testing.T, command func(...string) (*exec.Cmd, *crashOutput), hit <-chan struct{}, what string) *runningApply {
	t.Helper()
	cmd, out := command("apply", "-auto-approve", "agora.cue")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &runningApply{t: t, what: what, cmd: cmd, out: out, exited: make(chan error, 1)}
	go func() { r.exited <- cmd.Wait() }()
	select {
	case <-hit:
	case err := <-r.exited:
		t.Fatalf("%s: agora exited first (%v)\nstdout:\n%s\nstderr:\n%s", what, err, out.stdout.String(), out.stderr.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s: not reached in 60s\nstderr:\n%s", what, out.stderr.String())
	}
	return r
}

// kill9 kills agora with SIGKILL and checks it died of it.
func (r *runningApply) kill9() {
	r.t.Helper()
	r.cmd.Process.Signal(syscall.SIGKILL)
	err := <-r.exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		r.t.Fatalf("%s: agora did not die of SIGKILL: %v", r.what, err)
	}
}

// interruptTwice sends the first interrupt, waits for the stop message,
// sends the second and checks that agora exits 130 after cancelling one
// batch at the provider.
func (r *runningApply) interruptTwice() {
	r.t.Helper()
	r.cmd.Process.Signal(os.Interrupt)
	if !r.out.stderr.WaitFor("Stopping: no new requests", 10*time.Second) {
		r.t.Fatalf("%s: no stop message:\n%s", r.what, r.out.stderr.String())
	}
	r.cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case err = <-r.exited:
	case <-time.After(60 * time.Second):
		r.cmd.Process.Kill()
		r.t.Fatalf("%s: agora did not exit after the second interrupt\n%s", r.what, r.out.stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		r.t.Fatalf("%s: exit %v, want 130\nstderr:\n%s", r.what, err, r.out.stderr.String())
	}
	if !strings.Contains(r.out.stderr.String(), "Cancelling 1 batch at the provider") {
		r.t.Errorf("%s: stderr:\n%s", r.what, r.out.stderr.String())
	}
}
