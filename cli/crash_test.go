//go:build unix

package cli_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/internal/syncbuf"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/prompts"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

const (
	crashKeyEnv      = "AGORA_CRASH_TEST_KEY"
	crashInstances   = 300
	crashConcurrency = 16
	// crashWorkers bounds what a kill can lose: the generate step runs
	// concurrency + concurrency/4 + 1 workers (engine/generate.go), each
	// holding at most one request, on the wire or served and waiting for
	// its group commit.
	crashWorkers = crashConcurrency + crashConcurrency/4 + 1
	// Prices of the spec's generator, in dollars per million tokens.
	crashPriceIn, crashPriceOut = 2.0, 8.0
)

// TestApplySurvivesKill9 runs the real agora binary against the stand-in
// OpenAI server and kills it with SIGKILL at several points of a run:
// while its first requests are in flight, and after 40, 150 and 260
// responses were served. After each kill it checks that
//
//   - the stale lock is reported (apply exits 1 naming the lock and
//     force-unlock, sending nothing) and force-unlock removes it;
//   - the state opens and is intact; every generation recorded matches a
//     response the server served (by request ID: same slot, text and
//     usage), no response and no (slot, attempt) is recorded twice, and a
//     run's records use attempt numbers above those recorded before it;
//   - every response served in the killed run is recorded or was in
//     flight: at most one per worker of the step is missing, and no slot
//     accepted before the run was requested in it;
//   - the recorded spend equals the server's tally less the responses that
//     were in flight (computed exactly from the server's log).
//
// A last apply then completes: exit 0, the step done with each of the N
// slots accepted exactly once, nothing lost in that run, the dataset
// written with N lines; applying again sends nothing.
func TestApplySurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agora and runs it as a subprocess")
	}
	bin := buildAgora(t)
	h := newCrashHarness(t)

	type killPoint struct {
		what string
		hit  func(apitest.Stats) bool
	}
	kills := []killPoint{
		{"first requests in flight", func(s apitest.Stats) bool { return s.Requests >= 8 }},
		{"40 served", func(s apitest.Stats) bool { return s.Served >= 40 }},
		{"150 served", func(s apitest.Stats) bool { return s.Served >= 150 }},
		{"260 served", func(s apitest.Stats) bool { return s.Served >= 260 }},
	}
	inFlightLost := 0 // requests sent by killed runs and never recorded
	for i, k := range kills {
		h.startRun()
		cmd, out := h.command(bin, "apply", "-auto-approve", "agora.cue")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.After(30 * time.Second)
		tick := time.NewTicker(500 * time.Microsecond)
	poll:
		for {
			select {
			case err := <-exited:
				tick.Stop()
				t.Fatalf("kill at %s: agora exited before the kill (%v)\nstdout:\n%s\nstderr:\n%s", k.what, err, out.stdout.String(), out.stderr.String())
			case <-deadline:
				cmd.Process.Kill()
				<-exited
				t.Fatalf("kill at %s: not reached in 30s (stats %+v)\nstderr:\n%s", k.what, h.srv.Stats(), out.stderr.String())
			case <-tick.C:
				if k.hit(h.srv.Stats()) {
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					tick.Stop()
					break poll
				}
			}
		}
		err := <-exited
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill at %s: agora did not die of SIGKILL: %v", k.what, err)
		}
		r := h.endRun(t)
		t.Logf("kill at %s: served %d in this run (%d in all), recorded %d; %d requests in flight lost, %d of them served",
			k.what, r.served, h.srv.Stats().Served, r.recorded, r.requests-r.recorded, r.served-r.recorded)
		inFlightLost += r.requests - r.recorded

		// The killed process left its lock and its step running: status
		// says no apply runs it; the next apply takes the lock over,
		// saying so, and records the step interrupted before resuming it.
		lock := filepath.Join(h.dir, ".agora", state.LockFile)
		if _, err := os.Stat(lock); err != nil {
			t.Fatalf("kill at %s: the killed apply's lock is gone: %v", k.what, err)
		}
		if took := strings.Contains(out.stderr.String(), "took over the lock of \"agora apply\""); took != (i > 0) {
			t.Errorf("kill at %s: took over the killed apply's lock: %v, want %v\n%s", k.what, took, i > 0, out.stderr.String())
		}
		code, stdout, stderr := h.runAgora(t, bin, "status", "agora.cue")
		if code != 0 || !regexp.MustCompile(`(?m)^generate\.\S+\s+running \(no live apply\)`).MatchString(stdout) || !strings.Contains(stdout, "No apply is running") {
			t.Fatalf("status after kill at %s: exit %d\nstdout:\n%s\nstderr:\n%s", k.what, code, stdout, stderr)
		}
	}
	if inFlightLost == 0 {
		t.Errorf("no kill caught a request in flight: the kills did not interrupt the run")
	}
	if inFlightLost == 0 {
		t.Errorf("no kill caught a request in flight: the kills did not interrupt the run")
	}

	// Resume to completion.
	h.startRun()
	code, stdout, stderr := h.runAgora(t, bin, "apply", "-auto-approve", "agora.cue")
	if !strings.Contains(stderr, "took over the lock") {
		t.Errorf("the final apply did not say it took the killed apply's lock over:\n%s", stderr)
	}
	// Exit 4: the generate step is done; the train and evaluate steps
	// cannot run here (no accelerate or lm_eval in PATH).
	if code != 4 || !strings.Contains(stdout, "Apply finished: 1 step done in this run.") {
		t.Fatalf("final apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	r := h.endRun(t)
	t.Logf("final apply: %d requests, %d served, %d recorded; %d served in all", r.requests, r.served, r.recorded, h.srv.Stats().Served)
	if r.served != r.recorded || r.requests != r.recorded {
		t.Errorf("final run: %d requests, %d served, %d recorded: a completed run loses nothing", r.requests, r.served, r.recorded)
	}
	if _, err := os.Stat(filepath.Join(h.dir, ".agora", state.LockFile)); !os.IsNotExist(err) {
		t.Errorf("the lock is still there after a completed apply: %v", err)
	}
	h.checkComplete(t)

	// Applying again has nothing to generate.
	before := h.srv.Stats().Requests
	// Exit 4: the generate step is done; the train and evaluate steps
	// cannot run here (no accelerate or lm_eval in PATH).
	if code, stdout, stderr := h.runAgora(t, bin, "apply", "-auto-approve", "agora.cue"); code != 4 {
		t.Fatalf("apply after completion: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if got := h.srv.Stats().Requests; got != before {
		t.Errorf("apply after completion sent %d requests", got-before)
	}
	if n := h.unknown.Load(); n > 0 {
		t.Errorf("the server got %d requests that are no slot's prompt", n)
	}
}

// buildAgora builds cmd/agora into a temporary directory.
func buildAgora(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not in a module")
	}
	bin := filepath.Join(t.TempDir(), "agora")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/agora")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/agora: %v\n%s", err, out)
	}
	return bin
}

// crashHarness is a spec pointed at a stand-in server whose model answers
// every prompt validly, except the first request for every fourth slot,
// which it answers without a result (rejected, so that slots also take
// second attempts). It logs every request it receives, by run, and
// remembers what each run of agora found in the state.
type crashHarness struct {
	dir    string
	srv    *apitest.Server
	stepID string
	// slotOf maps a prompt (the last message) to its slot; response
	// generation sends the same prompt for every attempt at a slot.
	slotOf map[string]int

	unknown atomic.Int64

	mu       sync.Mutex
	run      int         // the current run, from 1
	requests map[int]int // requests received per run
	asked    map[int]map[int]bool
	answered map[int]int // responses generated per slot
	rng      *rand.Rand

	// From the state, as of the end of the last run.
	servedBefore int                 // len(srv.Served()) at the start of the run
	recorded     map[string]crashRec // by request ID
	accepted     map[int]bool
	maxAttempt   map[int]int
	lostCost     float64 // of responses served but never recorded
}

type crashRec struct {
	slot, attempt     int
	accepted          bool
	raw               string
	inTok, outTok     int
	cost              float64
	requestID, reason string
}

func newCrashHarness(t *testing.T) *crashHarness {
	t.Helper()
	h := &crashHarness{
		dir:      t.TempDir(),
		requests: map[int]int{},
		asked:    map[int]map[int]bool{},
		answered: map[int]int{},
		rng:      rand.New(rand.NewSource(1)),
		recorded: map[string]crashRec{},
		accepted: map[int]bool{},
		slotOf:   map[string]int{},
	}
	// One distinct problem per slot, so that a prompt names its slot.
	var seeds strings.Builder
	for i := 0; i < crashInstances; i++ {
		fmt.Fprintf(&seeds, `{"instruction": "What is %d + %d?", "response": "%d"}`+"\n", i, i+7, 2*i+7)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "seed.jsonl"), []byte(seeds.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	h.srv = apitest.New(apitest.Options{Log: true, Responder: h.respond, LatencyFunc: h.latency})
	t.Cleanup(h.srv.Close)
	src := fmt.Sprintf(`
generators: g: {
	provider: openai: {base_url: %q, api_key_env: %q}
	model: %q
	price: {input: %g, output: %g}
	limits: concurrency: %d
	sampling: max_tokens: 300
}
settings: s: {
	domain: "math"
	method: "response_generation"
	seed_data: path: "seed.jsonl"
	instances: %d
	benchmarks: ["gsm8k"]
}
budgets: usd: 1000
`, h.srv.URL(), crashKeyEnv, apitest.DefaultModel, crashPriceIn, crashPriceOut, crashConcurrency, crashInstances)
	path := filepath.Join(h.dir, "agora.cue")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}

	// Precompute every prompt agora can send, as the engine builds them.
	exp, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := compiler.Compile(context.Background(), exp, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var gen *plan.Step
	for i := range p.Steps {
		if p.Steps[i].Kind == plan.KindGenerate {
			if gen != nil {
				t.Fatal("the spec has more than one generate step")
			}
			gen = &p.Steps[i]
		}
	}
	if gen == nil || gen.Instances != crashInstances {
		t.Fatalf("generate step: %+v", gen)
	}
	h.stepID = gen.ID
	set := exp.Settings[gen.Setting]
	items, _, err := (providers.Seeds{Dir: exp.Source.Dir}).Load(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := prompts.Builtin(set.Domain, set.Method, gen.Variant)
	if err != nil {
		t.Fatal(err)
	}
	seed := int64(0)
	if gen.Seed != nil {
		seed = int64(*gen.Seed)
	}
	task := &generation.Task{Domain: set.Domain, Method: set.Method, Variant: gen.Variant, Template: tpl,
		Seed: seed, Seeds: items, Instances: gen.Instances}
	for slot := 0; slot < gen.Instances; slot++ {
		for attempt := 1; attempt <= 10; attempt++ {
			req, err := task.Request(slot, attempt)
			if err != nil {
				t.Fatal(err)
			}
			key := req.Messages[len(req.Messages)-1].Content
			if other, dup := h.slotOf[key]; dup && other != slot {
				t.Fatalf("slots %d and %d share a prompt", other, slot)
			}
			h.slotOf[key] = slot
		}
	}
	return h
}

func (h *crashHarness) slot(msgs []apitest.Message) (int, bool) {
	if len(msgs) == 0 {
		return 0, false
	}
	slot, ok := h.slotOf[msgs[len(msgs)-1].Content]
	return slot, ok
}

// latency logs the request (it is called for every chat request, before
// the response is made) and draws a latency of 20 to 40 ms.
func (h *crashHarness) latency(r apitest.ChatRequest) time.Duration {
	slot, ok := h.slot(r.Messages)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests[h.run]++
	if ok {
		if h.asked[h.run] == nil {
			h.asked[h.run] = map[int]bool{}
		}
		h.asked[h.run][slot] = true
	}
	return 20*time.Millisecond + time.Duration(h.rng.Int63n(int64(20*time.Millisecond)))
}

func (h *crashHarness) respond(r apitest.ChatRequest) string {
	slot, ok := h.slot(r.Messages)
	if !ok {
		h.unknown.Add(1)
		return "I do not understand the request."
	}
	h.mu.Lock()
	n := h.answered[slot]
	h.answered[slot]++
	h.mu.Unlock()
	if slot%4 == 0 && n == 0 {
		return "This needs more thought than I can give it.\n[END]" // no [RESULT]: rejected
	}
	return fmt.Sprintf("Adding the two numbers step by step gives %d.\n[RESULT] %d [/RESULT]\n[END]", 2*slot+7, 2*slot+7)
}

func (h *crashHarness) startRun() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.run++
	h.servedBefore = len(h.srv.Served())
}

// crashOutput is agora's output, which the tests read while it runs (a
// failure's message) and after.
type crashOutput struct{ stdout, stderr syncbuf.Buffer }

func (h *crashHarness) command(bin string, args ...string) (*exec.Cmd, *crashOutput) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = h.dir
	cmd.Env = append(os.Environ(), crashKeyEnv+"="+h.srv.APIKey())
	out := &crashOutput{}
	cmd.Stdout, cmd.Stderr = &out.stdout, &out.stderr
	return cmd, out
}

// runAgora runs agora to its end and returns its exit code and output.
func (h *crashHarness) runAgora(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	return runIn(t, func(a ...string) (*exec.Cmd, *crashOutput) { return h.command(bin, a...) }, args...)
}

// runReport says what one run of agora did, as the server and the state
// see it.
type runReport struct {
	requests, served, recorded int
}

// endRun waits until the server has finished with every request of the
// run, then checks the state against what the server served, and returns
// the run's counts.
func (h *crashHarness) endRun(t *testing.T) runReport {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); h.srv.InFlight() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server still has %d requests in flight", h.srv.InFlight())
		}
	}
	// A copy: the server's handlers write h.asked under h.mu (a request
	// of the killed agora may still arrive).
	h.mu.Lock()
	run, requests := h.run, h.requests[h.run]
	asked := make(map[int]bool, len(h.asked[run]))
	for slot := range h.asked[run] {
		asked[slot] = true
	}
	h.mu.Unlock()

	all := h.srv.Served()
	byID := map[string]apitest.Served{}
	for _, s := range all {
		if _, dup := byID[s.ID]; dup {
			t.Fatalf("the server served ID %s twice", s.ID)
		}
		byID[s.ID] = s
	}
	inRun := map[string]bool{}
	for _, s := range all[h.servedBefore:] {
		inRun[s.ID] = true
	}

	// Nothing accepted before this run was asked for in it.
	for slot := range asked {
		if h.accepted[slot] {
			t.Errorf("run %d requested slot %d, accepted in an earlier run", run, slot)
		}
	}

	recs := h.readState(t)
	seenPair := map[[2]int]string{}
	newRecs := 0
	for _, g := range recs {
		s, ok := byID[g.requestID]
		if !ok {
			t.Errorf("run %d: slot %d attempt %d is recorded with request ID %q, which the server never served", run, g.slot, g.attempt, g.requestID)
			continue
		}
		if slot, _ := h.slot(s.Messages); slot != g.slot || s.Text != g.raw || s.PromptTokens != g.inTok || s.CompletionTokens != g.outTok {
			t.Errorf("run %d: record of slot %d attempt %d does not match served response %s (slot %d)", run, g.slot, g.attempt, s.ID, slot)
		}
		if want := crashPrice(s.PromptTokens, s.CompletionTokens); math.Abs(g.cost-want) > 1e-12 {
			t.Errorf("run %d: %s recorded at $%.9f, served at $%.9f", run, s.ID, g.cost, want)
		}
		pair := [2]int{g.slot, g.attempt}
		if other, dup := seenPair[pair]; dup && !(h.known(other) && h.known(g.requestID)) { // reported once
			t.Errorf("run %d: slot %d attempt %d recorded twice (%s and %s)", run, g.slot, g.attempt, other, g.requestID)
		}
		seenPair[pair] = g.requestID
		if old, ok := h.recorded[g.requestID]; ok {
			if old != g {
				t.Errorf("run %d: the record of %s changed: %+v, was %+v", run, g.requestID, g, old)
			}
			continue
		}
		// Recorded in this run.
		newRecs++
		if !inRun[g.requestID] {
			t.Errorf("run %d: recorded response %s, which an earlier run received", run, g.requestID)
		}
		if g.attempt <= h.maxAttempt[g.slot] {
			t.Errorf("run %d: slot %d attempt %d recorded, but attempts up to %d were recorded before the run", run, g.slot, g.attempt, h.maxAttempt[g.slot])
		}
	}
	for id := range h.recorded {
		if _, ok := recs[id]; !ok {
			t.Errorf("run %d: the record of %s disappeared", run, id)
		}
	}

	// What the run was served is recorded, or was in flight at the kill.
	served := len(all) - h.servedBefore
	lost := 0
	for _, s := range all[h.servedBefore:] {
		if _, ok := recs[s.ID]; !ok {
			lost++
			h.lostCost += crashPrice(s.PromptTokens, s.CompletionTokens)
		}
	}
	if lost > crashWorkers {
		t.Errorf("run %d: %d responses served and not recorded, more than the %d that can be in flight", run, lost, crashWorkers)
	}
	if unrec := requests - newRecs; unrec < 0 || unrec > crashWorkers {
		t.Errorf("run %d: %d requests, %d recorded: %d not recorded, want 0..%d (those in flight)", run, requests, newRecs, unrec, crashWorkers)
	}

	// The recorded spend is the server's tally less the responses lost in
	// flight, and the step's counters agree with its generations.
	serverCost := 0.0
	for _, s := range all {
		serverCost += crashPrice(s.PromptTokens, s.CompletionTokens)
	}
	recordedCost, steps := h.spend(t)
	if want := serverCost - h.lostCost; math.Abs(recordedCost-want) > 1e-9 {
		t.Errorf("run %d: recorded spend $%.9f, server tally $%.9f less $%.9f in flight = $%.9f", run, recordedCost, serverCost, h.lostCost, want)
	}
	accepted, rejected, rejectedCost, cost := map[int]bool{}, 0, 0.0, 0.0
	h.maxAttempt = map[int]int{}
	for id, g := range recs {
		h.recorded[id] = g
		cost += g.cost
		if g.accepted {
			accepted[g.slot] = true
		} else {
			rejected++
			rejectedCost += g.cost
		}
		h.maxAttempt[g.slot] = max(h.maxAttempt[g.slot], g.attempt)
	}
	h.accepted = accepted
	if len(recs) > 0 {
		st, ok := steps[h.stepID]
		switch {
		case !ok:
			t.Errorf("run %d: generations recorded for step %s, which the state does not have", run, h.stepID)
		case st.Accepted != len(accepted) || st.Rejected != rejected || math.Abs(st.CostUSD-cost) > 1e-9 || math.Abs(st.RejectedCostUSD-rejectedCost) > 1e-9:
			t.Errorf("run %d: step counters %d accepted, %d rejected, $%.9f ($%.9f rejected); generations say %d, %d, $%.9f ($%.9f)",
				run, st.Accepted, st.Rejected, st.CostUSD, st.RejectedCostUSD, len(accepted), rejected, cost, rejectedCost)
		}
	}
	return runReport{requests: requests, served: served, recorded: newRecs}
}

// known reports whether a response was recorded before the current run.
func (h *crashHarness) known(requestID string) bool {
	_, ok := h.recorded[requestID]
	return ok
}

func crashPrice(in, out int) float64 {
	return (float64(in)*crashPriceIn + float64(out)*crashPriceOut) / 1e6
}

// readState opens the state as agora does, checks the database, and
// returns every generation recorded, by request ID.
func (h *crashHarness) readState(t *testing.T) map[string]crashRec {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(h.dir, ".agora")
	if _, err := os.Stat(filepath.Join(dir, state.DBFile)); os.IsNotExist(err) {
		return map[string]crashRec{} // killed before the state was created
	}
	store, err := state.Open(ctx, dir)
	if err != nil {
		t.Fatalf("open the state after a kill: %v", err)
	}
	defer store.Close()
	db, err := sql.Open("sqlite", store.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity check: %q %v", ok, err)
	}
	rows, err := db.Query(`SELECT step_id, slot, attempt, accepted, reject_reason, raw, request_id,
		input_tokens, output_tokens, cost_usd FROM generations ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	recs := map[string]crashRec{}
	for rows.Next() {
		var g crashRec
		var step string
		if err := rows.Scan(&step, &g.slot, &g.attempt, &g.accepted, &g.reason, &g.raw, &g.requestID, &g.inTok, &g.outTok, &g.cost); err != nil {
			t.Fatal(err)
		}
		if step != h.stepID {
			t.Errorf("a generation of unknown step %s", step)
		}
		if _, dup := recs[g.requestID]; dup {
			t.Errorf("response %s is recorded twice", g.requestID)
		}
		recs[g.requestID] = g
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// spend returns the state's total spend and its steps.
func (h *crashHarness) spend(t *testing.T) (float64, map[string]state.StepState) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(h.dir, ".agora")
	if _, err := os.Stat(filepath.Join(dir, state.DBFile)); os.IsNotExist(err) {
		return 0, nil
	}
	store, err := state.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	total, _, err := store.Spend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, err := store.Steps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]state.StepState{}
	for _, s := range list {
		steps[s.ID] = s
	}
	return total, steps
}

// checkComplete checks the state and the dataset of a completed run.
func (h *crashHarness) checkComplete(t *testing.T) {
	t.Helper()
	_, steps := h.spend(t)
	st, ok := steps[h.stepID]
	if !ok || st.Status != state.StatusDone || st.Accepted != crashInstances {
		t.Fatalf("step after the final apply: %+v", st)
	}
	perSlot := map[int]int{}
	attempts := 0
	for _, g := range h.recorded {
		if g.accepted {
			perSlot[g.slot]++
		}
		attempts = max(attempts, g.attempt)
	}
	for slot := 0; slot < crashInstances; slot++ {
		if perSlot[slot] != 1 {
			t.Errorf("slot %d accepted %d times", slot, perSlot[slot])
		}
	}
	if st.Rejected == 0 || attempts < 2 {
		t.Errorf("no slot took a second attempt (%d rejected): the attempt numbering was not exercised", st.Rejected)
	}
	// The state records the dataset's path as apply named it, relative
	// to apply's working directory (the spec's here).
	path := filepath.Join(h.dir, ".agora", "datasets", h.stepID+".jsonl")
	out := st.Output
	if !filepath.IsAbs(out) {
		out = filepath.Join(h.dir, out)
	}
	if out != path {
		t.Errorf("the step's output is %q, want %q", st.Output, path)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	slots := map[int]int{}
	lines := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines++
		var rec struct{ Slot int }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("dataset line %d: %v", lines, err)
		}
		slots[rec.Slot]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != crashInstances || len(slots) != crashInstances {
		t.Errorf("the dataset has %d lines for %d slots, want %d", lines, len(slots), crashInstances)
	}
}
