package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openTest(t testing.TB) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".agora")
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func begin(t testing.TB, s *Store, info StepInfo) {
	t.Helper()
	if err := s.BeginStep(context.Background(), info); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreatesSchema(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a", ".agora")
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o755 != 0o755 {
		t.Errorf("dir mode %v", fi.Mode())
	}
	if s.Path() != filepath.Join(dir, DBFile) {
		t.Errorf("path %s", s.Path())
	}
	for pragma, want := range map[string]string{
		"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "user_version": "5",
	} {
		var got string
		if err := s.wdb.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	var bt int
	if err := s.rdb.QueryRow("PRAGMA busy_timeout").Scan(&bt); err != nil || bt == 0 {
		t.Errorf("reader busy_timeout %d, %v", bt, err)
	}
	begin(t, s, StepInfo{ID: "a", Kind: "generate", Address: "generate.x"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	// Reopen: no migration, data kept.
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok, err := s.Step(ctx, "a"); !ok || err != nil {
		t.Errorf("step after reopen: %v %v", ok, err)
	}
}

func TestOpenPathWithOddCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my exp?#%", ".agora")
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, DBFile)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	s, dir := openTest(t)
	if _, err := s.wdb.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer than this agora knows (5): upgrade agora") {
		t.Fatalf("got %v", err)
	}
}

func TestStepLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	serial := func() int64 {
		t.Helper()
		n, err := s.Serial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := serial(); n != 0 {
		t.Fatalf("initial serial %d", n)
	}
	a := StepInfo{ID: "id-a", Kind: "generate", Address: "generate.b", Generator: "gpt", Setting: "math", Target: 10}
	b := StepInfo{ID: "id-b", Kind: "train", Address: "generate.a", Generator: "gpt", Setting: "math", Target: 1}
	before := time.Now()
	begin(t, s, a)
	begin(t, s, b)
	if n := serial(); n != 2 {
		t.Errorf("serial after two begins %d", n)
	}
	st, ok, err := s.Step(ctx, "id-a")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if st.StepInfo != a || st.Status != StatusRunning || st.StartedAt.Before(before.Add(-time.Second)) || st.UpdatedAt.IsZero() {
		t.Errorf("step %+v", st)
	}
	if _, ok, err := s.Step(ctx, "nope"); ok || err != nil {
		t.Errorf("missing step: %v %v", ok, err)
	}
	steps, err := s.Steps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || steps[0].ID != "id-b" || steps[1].ID != "id-a" {
		t.Errorf("steps not ordered by address: %+v", steps)
	}

	if err := s.FinishStep(ctx, "id-b", "/data/b.jsonl"); err != nil {
		t.Fatal(err)
	}
	if err := s.FailStep(ctx, "id-a", "budget exhausted"); err != nil {
		t.Fatal(err)
	}
	if n := serial(); n != 4 {
		t.Errorf("serial %d, want 4", n)
	}
	st, _, _ = s.Step(ctx, "id-b")
	if st.Status != StatusDone || st.Output != "/data/b.jsonl" {
		t.Errorf("finished step %+v", st)
	}
	st, _, _ = s.Step(ctx, "id-a")
	if st.Status != StatusFailed || st.Error != "budget exhausted" {
		t.Errorf("failed step %+v", st)
	}
	done, err := s.Completed(ctx, []string{"id-a", "id-b", "id-c"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(done, map[string]bool{"id-b": true}) {
		t.Errorf("completed %v", done)
	}

	// Unknown steps are errors and do not move the serial.
	if err := s.FinishStep(ctx, "nope", ""); err == nil || !strings.Contains(err.Error(), "finish step nope: no such step") {
		t.Errorf("finish unknown: %v", err)
	}
	if err := s.FailStep(ctx, "nope", "x"); err == nil {
		t.Error("fail unknown: no error")
	}
	if n := serial(); n != 4 {
		t.Errorf("serial moved on failed updates: %d", n)
	}
	if err := s.BeginStep(ctx, StepInfo{}); err == nil {
		t.Error("empty id accepted")
	}

	// A second attempt of a failed step keeps its counters and clears the error.
	if err := s.Append(ctx, Generation{StepID: "id-a", Slot: 0, Attempt: 1, Accepted: true, CostUSD: 0.5, InputTokens: 3, OutputTokens: 4}); err != nil {
		t.Fatal(err)
	}
	if n := serial(); n != 4 {
		t.Errorf("append moved the serial: %d", n)
	}
	a.Target = 12
	begin(t, s, a)
	st, _, _ = s.Step(ctx, "id-a")
	if st.Status != StatusRunning || st.Error != "" || st.Target != 12 || st.Accepted != 1 || st.CostUSD != 0.5 || st.InputTokens != 3 || st.OutputTokens != 4 {
		t.Errorf("re-begun step %+v", st)
	}
	if n := serial(); n != 5 {
		t.Errorf("serial %d, want 5", n)
	}
}

func gen(step string, slot, attempt int, accepted bool, usd float64) Generation {
	g := Generation{
		StepID: step, Slot: slot, Attempt: attempt, Accepted: accepted,
		Raw: "raw text", Model: "gpt-4o-2024-08-06", SystemFingerprint: "fp_1", RequestID: "req",
		FinishReason: "stop", PromptDigest: "sha256:p", SeedItemID: "seed-1",
		InputTokens: 100, OutputTokens: 50, CostUSD: usd,
		StartedAt: time.Unix(1_700_000_000, 123456789).UTC(), Duration: 1500 * time.Millisecond,
	}
	if accepted {
		g.Instruction, g.Response = "Q", "A"
	} else {
		g.RejectReason, g.FinishReason = "truncated", "length"
	}
	return g
}

func TestAppendRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	begin(t, s, StepInfo{ID: "s", Kind: "generate", Address: "generate.s", Generator: "g", Target: 3})
	begin(t, s, StepInfo{ID: "other", Kind: "generate", Address: "generate.o", Generator: "h", Target: 3})
	full := Generation{
		StepID: "s", Slot: 2, Attempt: 1, Accepted: true,
		Raw: "Instruction: Q?\nResponse: A!\u00e9\x00 tail", Instruction: "Q?", Response: "A!",
		Model: "m", SystemFingerprint: "fp", RequestID: "rid", FinishReason: "stop",
		PromptDigest: "pd", SeedItemID: "si", InputTokens: 11, OutputTokens: 22, CostUSD: 0.125,
		StartedAt: time.Unix(1_800_000_000, 5).UTC(), Duration: 42 * time.Millisecond,
	}
	recs := []Generation{
		gen("s", 0, 1, false, 0.01), // rejected
		gen("s", 0, 2, true, 0.02),  // slot 0 accepted at attempt 2
		gen("s", 0, 3, true, 0.04),  // a later duplicate acceptance of slot 0
		full,
		gen("s", 1, 1, false, 0.08),
		gen("other", 0, 1, true, 1),
	}
	for _, g := range recs {
		if err := s.Append(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	var got []Generation
	if err := s.Accepted(ctx, "s", func(g Generation) error { got = append(got, g); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []Generation{recs[1], full}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("accepted:\n got %+v\nwant %+v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Accepted(ctx, "s", func(Generation) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Accepted did not stop at fn's error: %v, %d calls", err, n)
	}

	slots, err := s.AcceptedSlots(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(slots, map[int]bool{0: true, 2: true}) {
		t.Errorf("accepted slots %v", slots)
	}
	for _, c := range []struct{ slot, want int }{{0, 4}, {1, 2}, {2, 2}, {3, 1}} {
		got, err := s.NextAttempt(ctx, "s", c.slot)
		if err != nil || got != c.want {
			t.Errorf("NextAttempt(slot %d) = %d, %v; want %d", c.slot, got, err, c.want)
		}
	}

	st, _, err := s.Step(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	wantCost := 0.01 + 0.02 + 0.04 + 0.125 + 0.08
	if st.Accepted != 2 || st.Rejected != 2 || st.InputTokens != 411 || st.OutputTokens != 222 ||
		!near(st.CostUSD, wantCost) || !near(st.RejectedCostUSD, 0.09) {
		t.Errorf("counters %+v", st)
	}
	checkCounters(t, s)

	total, by, err := s.Spend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !near(total, wantCost+1) || len(by) != 2 || !near(by["g"], wantCost) || !near(by["h"], 1) {
		t.Errorf("spend %v %v", total, by)
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

// checkCounters recomputes every step's counters from its generations and
// compares them with the incrementally maintained ones.
func checkCounters(t testing.TB, s *Store) {
	t.Helper()
	rows, err := s.rdb.Query(`
		SELECT s.id, s.accepted, s.rejected, s.input_tokens, s.output_tokens, s.cost_usd, s.rejected_cost_usd,
			(SELECT COUNT(DISTINCT slot) FROM generations g WHERE g.step_id = s.id AND accepted = 1),
			(SELECT COUNT(*) FROM generations g WHERE g.step_id = s.id AND accepted = 0),
			(SELECT COALESCE(SUM(input_tokens), 0) FROM generations g WHERE g.step_id = s.id),
			(SELECT COALESCE(SUM(output_tokens), 0) FROM generations g WHERE g.step_id = s.id),
			(SELECT COALESCE(SUM(cost_usd), 0) FROM generations g WHERE g.step_id = s.id),
			(SELECT COALESCE(SUM(cost_usd), 0) FROM generations g WHERE g.step_id = s.id AND accepted = 0)
		FROM steps s`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a, r, in, out, a2, r2, in2, out2 int64
		var c, rc, c2, rc2 float64
		if err := rows.Scan(&id, &a, &r, &in, &out, &c, &rc, &a2, &r2, &in2, &out2, &c2, &rc2); err != nil {
			t.Fatal(err)
		}
		if a != a2 || r != r2 || in != in2 || out != out2 || !near(c, c2) || !near(rc, rc2) {
			t.Errorf("step %s counters (%d %d %d %d %g %g) != recomputed (%d %d %d %d %g %g)",
				id, a, r, in, out, c, rc, a2, r2, in2, out2, c2, rc2)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestAppendUnbegunStep(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	begin(t, s, StepInfo{ID: "s", Address: "a"})
	// Hold the writer so that good and bad records share one batch.
	gate := make(chan struct{})
	var once sync.Once
	s.testHookBeforeCommit = func(int) { once.Do(func() { <-gate }) }
	errs := make(chan error, 21)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs <- s.Append(ctx, gen("s", 100, 1, true, 0)) }()
	for s.txns.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			step := "s"
			if i == 7 {
				step = "ghost"
			}
			errs <- s.Append(ctx, gen(step, i, 1, true, 0.1))
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them queue
	close(gate)
	wg.Wait()
	close(errs)
	var failed []error
	for err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) != 1 || !strings.Contains(failed[0].Error(), "append generation ghost/7/1: step ghost was never begun") {
		t.Fatalf("errors %v", failed)
	}
	if txns := s.txns.Load(); txns != 2 {
		t.Logf("%d transactions (expected 2)", txns)
	}
	slots, _ := s.AcceptedSlots(ctx, "s")
	if len(slots) != 20 { // 19 + slot 100
		t.Errorf("accepted slots %v", slots)
	}
	checkCounters(t, s)
}

func TestGroupCommitBatches(t *testing.T) {
	for _, linger := range []time.Duration{0, 2 * time.Millisecond} {
		t.Run("linger="+linger.String(), func(t *testing.T) { testGroupCommit(t, linger) })
	}
}

func testGroupCommit(t *testing.T, linger time.Duration) {
	ctx := context.Background()
	s, _ := openTest(t)
	s.linger = linger
	begin(t, s, StepInfo{ID: "s", Address: "a"})
	const n = 200
	// The first transaction (of however many records the writer found
	// queued) waits until all the other records are queued behind it, so
	// that what is measured is the grouping, not how fast the machine
	// starts goroutines (a loaded CI machine once gave 60 transactions
	// when the test raced them).
	release := make(chan struct{})
	var once sync.Once
	var held atomic.Int64
	s.commitHook = func(records int) {
		once.Do(func() {
			held.Store(int64(records))
			<-release
		})
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.Append(ctx, gen("s", i, 1, true, 0.001))
		}()
	}
	close(start)
	for deadline := time.Now().Add(time.Minute); held.Load() == 0 || int(held.Load())+len(s.reqs) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("after a minute, %d appends in the first transaction and %d queued, of %d", held.Load(), len(s.reqs), n)
		}
	}
	close(release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	txns := s.txns.Load()
	t.Logf("%d appends in %d transactions", n, txns)
	if txns > n/4 {
		t.Errorf("%d concurrent appends took %d transactions", n, txns)
	}
	if got := s.appended.Load(); got != n {
		t.Errorf("appended %d", got)
	}
	st, _, _ := s.Step(ctx, "s")
	if st.Accepted != n {
		t.Errorf("accepted %d", st.Accepted)
	}
}

func TestAppendSerialCallersDoNotLinger(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	s.linger = time.Second // would make each of these take a second if a lone caller waited
	begin(t, s, StepInfo{ID: "s", Address: "a"})
	t0 := time.Now()
	for i := range 5 {
		if err := s.Append(ctx, gen("s", i, 1, true, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(t0); d > 900*time.Millisecond {
		t.Errorf("5 serial appends took %v", d)
	}
}

func TestAppendCancelledWhileWaitingStillCommits(t *testing.T) {
	s, dir := openTest(t)
	begin(t, s, StepInfo{ID: "s", Address: "a"})
	gate := make(chan struct{})
	s.testHookBeforeCommit = func(int) { <-gate }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Append(ctx, gen("s", 3, 1, true, 0.5)) }()
	for s.txns.Load() == 0 { // handed to the writer, which now waits at the gate
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append returned %v, want context.Canceled", err)
	}
	close(gate)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	slots, err := s2.AcceptedSlots(context.Background(), "s")
	if err != nil || !slots[3] {
		t.Errorf("cancelled record lost: %v %v", slots, err)
	}
}

func TestAppendCancelledBeforeIsNotRecorded(t *testing.T) {
	s, _ := openTest(t)
	begin(t, s, StepInfo{ID: "s", Address: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Append(ctx, gen("s", 0, 1, true, 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if n, _ := s.NextAttempt(context.Background(), "s", 0); n != 1 {
		t.Errorf("record written despite a cancelled context")
	}
}

func TestCloseCommitsQueuedAppends(t *testing.T) {
	s, dir := openTest(t)
	begin(t, s, StepInfo{ID: "s", Address: "a"})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.Append(context.Background(), gen("s", i, 1, true, 0)) }()
	}
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrClosed):
		default:
			t.Errorf("append: %v", err)
		}
	}
	s2, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	slots, _ := s2.AcceptedSlots(context.Background(), "s")
	if len(slots) != ok {
		t.Errorf("%d appends succeeded, %d recorded", ok, len(slots))
	}
	if err := s.Append(context.Background(), gen("s", 0, 1, true, 0)); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}
	if _, err := s.Steps(context.Background()); err == nil {
		t.Error("Steps after close: no error")
	}
}

func TestSpendByGenerator(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	total, by, err := s.Spend(ctx)
	if err != nil || total != 0 || len(by) != 0 {
		t.Fatalf("empty spend %v %v %v", total, by, err)
	}
	begin(t, s, StepInfo{ID: "a1", Address: "1", Generator: "gpt"})
	begin(t, s, StepInfo{ID: "a2", Address: "2", Generator: "gpt"})
	begin(t, s, StepInfo{ID: "b", Address: "3", Generator: "llama"})
	begin(t, s, StepInfo{ID: "t", Kind: "train", Address: "4"})
	for i, c := range []struct {
		step string
		usd  float64
		ok   bool
	}{{"a1", 0.25, true}, {"a1", 0.5, false}, {"a2", 1, true}, {"b", 0.125, true}, {"b", 0.0625, false}} {
		if err := s.Append(ctx, gen(c.step, i, 1, c.ok, c.usd)); err != nil {
			t.Fatal(err)
		}
	}
	total, by, err = s.Spend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if total != 1.9375 || !reflect.DeepEqual(by, map[string]float64{"gpt": 1.75, "llama": 0.1875}) {
		t.Errorf("spend %v %v", total, by)
	}
}

func TestSeeds(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	ref := "hf:openai/gsm8k@e53f048#train"
	if _, ok, err := s.SeedDigest(ctx, ref); ok || err != nil {
		t.Fatalf("unrecorded seed: %v %v", ok, err)
	}
	if err := s.RecordSeed(ctx, ref, "sha256:aaa"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSeed(ctx, ref, "sha256:bbb"); err != nil {
		t.Fatal(err)
	}
	d, ok, err := s.SeedDigest(ctx, ref)
	if err != nil || !ok || d != "sha256:bbb" {
		t.Errorf("seed digest %q %v %v", d, ok, err)
	}
	if n, _ := s.Serial(ctx); n != 0 {
		t.Errorf("RecordSeed moved the serial")
	}
}
