//go:build unix

package cli_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agorabench/agora/plugins/anthropic/anthropictest"
	"github.com/agorabench/agora/plugins/plugintest"
	"github.com/agorabench/agora/state"
)

// TestPluginBatchSurvivesKill9 is TestBatchSurvivesKill9 through the
// plugin protocol: the real agora binary runs a generator in batch mode
// through the real agora-provider-anthropic plugin against the stand-in
// Message Batches API, and is killed with SIGKILL during the batch's
// submission (the server made the batch; agora has not seen its id: the
// next apply cannot tell whose it is until it ends, and waits), while the
// batch is in progress, and while its results are read. The final apply
// also loses the answer of its first submission (the connection dropped
// after the server made the batch): the plugin cannot tell whose batch
// it is until it ends, and agora waits rather than submit it again.
// Every instance is recorded exactly once, every batch the server made
// is in the state with its id, every request the server billed is in the
// state once, and the recorded spend equals the server's tally at the
// batch price.
func TestPluginBatchSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agora and the plugin and runs them as subprocesses")
	}
	bin := buildAgora(t)
	const n = 30
	r := newPluginBatchRig(t, bin, n, anthropictest.Options{
		// A batch runs three seconds: long enough to be found in
		// progress after a lost answer (agora first waits up to two
		// seconds to see whether the plugin died).
		BatchDuration: 3 * time.Second,
		// A creation's answer comes a while after the batch is made:
		// the kill during the submission lands after the server made
		// the batch, before agora knows its id.
		BatchCreateDelay: 2 * time.Second,
	})
	srv, dir, command, readState, hook := r.srv, r.dir, r.command, r.readState, &r.hook
	mu, answered := &r.mu, r.answered

	for _, phase := range []anthropictest.BatchOp{anthropictest.OpCreate, anthropictest.OpRetrieve, anthropictest.OpResults} {
		hit := make(chan struct{})
		var once sync.Once
		h := func(ctx context.Context, op anthropictest.BatchOp, id string) {
			if op != phase {
				return
			}
			if op == anthropictest.OpCreate {
				// Killed once the server has made the batch, during
				// the delay of its answer.
				go func() {
					for len(srv.Batches()) == 0 {
						time.Sleep(5 * time.Millisecond)
					}
					once.Do(func() { close(hit) })
				}()
				return
			}
			if op == anthropictest.OpRetrieve && !inProgress(srv, id) {
				return // killed while a batch runs, not after
			}
			fired := false
			once.Do(func() { fired = true; close(hit) })
			if fired {
				// The kill comes meanwhile; the server then goes on
				// with the request as a server would.
				select {
				case <-ctx.Done():
				case <-time.After(time.Minute):
				}
			}
		}
		hook.Store(&h)
		applyUntil(t, command, hit, fmt.Sprintf("kill at op %d", phase)).kill9()
		hook.Store(nil)
		// The plugin dies with agora (it watches its parent).
		deadline := time.Now().Add(10 * time.Second)
		for exec.Command("pgrep", "-f", filepath.Join(dir, ".agora", "plugins")).Run() == nil {
			if time.Now().After(deadline) {
				t.Fatalf("kill at op %d: the plugin outlived agora by 10s", phase)
			}
			time.Sleep(50 * time.Millisecond)
		}
		bs, _ := readState()
		var seen []string
		for _, b := range bs {
			seen = append(seen, fmt.Sprintf("%s file=%q batch=%q %s", b.Key, b.FileID, b.BatchID, b.Status))
		}
		t.Logf("killed at op %d: state %v; server %+v", phase, seen, srv.Batches())
		if phase == anthropictest.OpRetrieve && (len(bs) != 2 || bs[1].BatchID == "" || bs[1].Done) {
			t.Fatalf("killed while a batch ran: want its id in the state and its results not recorded, have %v", seen)
		}
		if phase == anthropictest.OpCreate && (len(bs) != 1 || bs[0].Status != state.BatchSubmitting || len(srv.Batches()) != 1) {
			t.Fatalf("killed during the submission: want one batch the server made and the state records as submitting, have %v", seen)
		}
		code, stdout, stderr := runIn(t, command, "status", "agora.cue")
		if code != 0 || !strings.Contains(stdout, "Batches") {
			t.Fatalf("status after kill at op %d: exit %d\n%s\n%s", phase, code, stdout, stderr)
		}
	}
	// The final apply: its first submission's answer is lost after the
	// server made the batch.
	srv.EnqueueBatch(anthropictest.OpCreate, anthropictest.FaultLoseAnswer)
	code, stdout, stderr := runIn(t, command, "apply", "-auto-approve", "agora.cue")
	if code != 4 || !strings.Contains(stdout, "Apply finished: 1 step done in this run.") {
		t.Fatalf("final apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	bs, spent := readState()
	ids := map[string]bool{}
	for _, b := range bs {
		if b.BatchID != "" {
			ids[b.BatchID] = true
		}
		if !b.Done {
			t.Errorf("batch %+v not recorded", b)
		}
	}
	made := srv.Batches()
	for _, b := range made {
		if !ids[b.ID] {
			t.Errorf("the server made batch %s (%d requests), which the state does not know: paid for and not recorded", b.ID, b.Requests)
		}
	}
	if len(made) != len(ids) || len(made) < 3 {
		t.Errorf("the server made %d batches, the state knows %d (want one each, and two more batches for the rejected)", len(made), len(ids))
	}
	if n := strings.Count(stderr, "cannot tell yet whether the batch was made"); n > 1 {
		t.Errorf("the wait for the lost batch was shown %d times, want once while its reason stays the same:\n%s", n, stderr)
	}
	if !strings.Contains(stderr, "cannot tell yet whether the batch was made") {
		t.Errorf("the final apply never waited for a batch whose submission's answer was lost:\n%s\n%s", stdout, stderr)
	}
	st, err := state.Open(context.Background(), filepath.Join(dir, ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
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
	tally := srv.BatchTally()
	want := (float64(tally.InputTokens)*3 + float64(tally.OutputTokens)*15) * 0.5 / 1e6
	if math.Abs(spent-want) > 1e-9 || want == 0 {
		t.Errorf("recorded $%.9f, the server's tally at the batch price $%.9f (%+v)", spent, want, tally)
	}
	// Each prompt ran once, and once more when its first answer was
	// rejected: no request was bought twice.
	mu.Lock()
	defer mu.Unlock()
	if len(answered) != n {
		t.Errorf("%d prompts answered, want %d", len(answered), n)
	}
	runs := int64(0)
	for q, k := range answered {
		want := 1 + rejections(q)
		if k != want {
			t.Errorf("prompt %q answered %d times, want %d", q, k, want)
		}
		runs += int64(k)
	}
	if tally.Succeeded != runs {
		t.Errorf("the server billed %d requests, its model answered %d", tally.Succeeded, runs)
	}
}

// rejections is how many first answers to prompt q the stand-in's model
// gets wrong: one for every fifth instance, two for every tenth (a third
// batch, which the final apply submits).
func rejections(q string) int {
	m := whatIsRE.FindStringSubmatch(q)
	if m == nil {
		return 0
	}
	i, _ := strconv.Atoi(m[1])
	switch {
	case i%10 == 0:
		return 2
	case i%5 == 0:
		return 1
	}
	return 0
}

var whatIsRE = regexp.MustCompile(`What is (\d+) \+`)

// inProgress says whether the stand-in's batch id is still running.
func inProgress(srv *anthropictest.Server, id string) bool {
	for _, b := range srv.Batches() {
		if b.ID == id {
			return b.ProcessingStatus == "in_progress"
		}
	}
	return false
}

// pluginBatchRig is a spec of n instances whose generator is in batch mode
// through the real agora-provider-anthropic plugin, against the stand-in
// Message Batches API (opts, with the rig's model and hook); its model
// gets some first answers wrong (rejections). command runs the real agora
// in its directory.
type pluginBatchRig struct {
	t        *testing.T
	dir      string
	srv      *anthropictest.Server
	mu       sync.Mutex
	answered map[string]int
	hook     atomic.Pointer[func(context.Context, anthropictest.BatchOp, string)]
	bin      string
}

func newPluginBatchRig(t *testing.T, bin string, n int, opts anthropictest.Options) *pluginBatchRig {
	t.Helper()
	r := &pluginBatchRig{t: t, dir: t.TempDir(), answered: map[string]int{}, bin: bin}
	plugintest.Build(t, filepath.Join(r.dir, ".agora", "plugins"), "anthropic")
	var seeds strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&seeds, `{"instruction": "What is %d + %d?", "response": "%d"}`+"\n", i, i+7, 2*i+7)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "seed.jsonl"), []byte(seeds.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	opts.Responder = func(system string, texts []string) string {
		q := texts[len(texts)-1]
		r.mu.Lock()
		k := r.answered[q]
		r.answered[q]++
		r.mu.Unlock()
		if k < rejections(q) {
			return "This needs more thought than I can give it." // no [RESULT]: rejected, asked again
		}
		return "Adding the two numbers step by step gives the sum.\n[RESULT] 7 [/RESULT]"
	}
	opts.BatchHook = func(ctx context.Context, op anthropictest.BatchOp, id string) {
		if h := r.hook.Load(); h != nil {
			(*h)(ctx, op, id)
		}
	}
	r.srv = anthropictest.New(opts)
	t.Cleanup(r.srv.Close)
	src := fmt.Sprintf(`
generators: g: {
	provider: {plugin: "anthropic", batch: {poll: "20ms"}}
	model: %q
	price: {input: 3, output: 15, batch_discount: 0.5}
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
`, anthropictest.DefaultModel, n)
	if err := os.WriteFile(filepath.Join(r.dir, "agora.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *pluginBatchRig) command(args ...string) (*exec.Cmd, *crashOutput) {
	cmd := exec.Command(r.bin, args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "ANTHROPIC_BASE_URL="+r.srv.URL(), "ANTHROPIC_API_KEY="+r.srv.APIKey())
	out := &crashOutput{}
	cmd.Stdout, cmd.Stderr = &out.stdout, &out.stderr
	return cmd, out
}

// readState returns the state's batches and recorded spend.
func (r *pluginBatchRig) readState() ([]state.Batch, float64) {
	st, err := state.Open(context.Background(), filepath.Join(r.dir, ".agora"))
	if err != nil {
		r.t.Fatal(err)
	}
	defer st.Close()
	bs, err := st.Batches(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	spent, _, _ := st.Spend(context.Background())
	return bs, spent
}

// cost is what the stand-in billed, at the batch price.
func (r *pluginBatchRig) cost() float64 {
	tally := r.srv.BatchTally()
	return (float64(tally.InputTokens)*3 + float64(tally.OutputTokens)*15) * 0.5 / 1e6
}

// TestPluginBatchInterruptTwice is TestBatchInterruptTwice through the
// Anthropic plugin: the first interrupt sends no new batch and waits for
// the one at the provider; the second cancels it there (the stand-in
// completes ten of its requests anyway) and records what it completed
// before agora exits 130. The next apply completes without paying for
// anything twice, and the spend is the stand-in's tally at the batch
// price.
func TestPluginBatchInterruptTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agora and the plugin and runs them as subprocesses")
	}
	bin := buildAgora(t)
	const n = 30
	r := newPluginBatchRig(t, bin, n, anthropictest.Options{BatchDuration: time.Hour, CancelCompletes: 10})
	polled := make(chan struct{})
	var once sync.Once
	h := func(ctx context.Context, op anthropictest.BatchOp, id string) {
		if op == anthropictest.OpRetrieve {
			once.Do(func() { close(polled) })
		}
	}
	r.hook.Store(&h)
	applyUntil(t, r.command, polled, "interrupt while the batch runs").interruptTwice()
	tally := r.srv.BatchTally()
	if tally.Batches != 1 || tally.Succeeded != 10 || tally.Canceled != n-10 {
		t.Fatalf("the stand-in: %+v, want one batch cancelled with 10 completed", tally)
	}
	bs, spent := r.readState()
	if len(bs) != 1 || !bs[0].Done || bs[0].Status != "ended" || math.Abs(spent-r.cost()) > 1e-9 || spent == 0 {
		t.Fatalf("state: %+v, spent %.9f, tally at the batch price %.9f", bs, spent, r.cost())
	}

	// The next apply: the batches it sends end at once.
	r.hook.Store(nil)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				r.srv.EndBatches()
			}
		}
	}()
	code, stdout, stderr := runIn(t, r.command, "apply", "-auto-approve", "agora.cue")
	close(stop)
	if code != 4 || !strings.Contains(stdout, "1 step done") {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for q, k := range r.answered {
		if want := 1 + rejections(q); k != want {
			t.Errorf("prompt %q answered %d times, want %d", q, k, want)
		}
	}
	if _, spent = r.readState(); math.Abs(spent-r.cost()) > 1e-9 {
		t.Errorf("recorded %.9f, tally at the batch price %.9f", spent, r.cost())
	}
}
