package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agorabench/agora/generation"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// A generate step of a generator in batch mode (docs/batch.md) sends its
// requests as provider-side batches at the batch price instead of one by
// one. Money and durability work as for synchronous requests:
//
//   - every request of a batch is reserved at its worst case (at the batch
//     price) before the batch is uploaded; a batch takes the requests the
//     budgets can cover and the rest wait for a later one;
//   - the batch is recorded in the state before its upload, its file id
//     as soon as the upload returns and its batch id as soon as the
//     creation returns, so an apply killed at any point finds every batch
//     it may have paid for: by id, or, when the creation's answer was
//     lost, by the key agora put in its metadata; a batch is never
//     created twice;
//   - each result line is judged, recorded and settled like a synchronous
//     response, once: a rerun skips the lines the state has;
//   - rejected completions are asked again in a new batch (a new attempt),
//     failed and expired lines too (the same attempt: nothing was paid),
//     or synchronously once the step has waited sync_after;
//   - the first interrupt submits no new batch and waits for those at the
//     provider; the second, a crossed budget or a failing step cancels
//     them at the provider and records what they completed.

// BatchProvider is a Provider that also takes a step's requests as
// batches at the provider's batch price. It makes batches one of two
// ways: from an uploaded input file (FileBatcher: OpenAI's Batch API) or
// with the requests in the creation itself (InlineBatcher: a plugin).
type BatchProvider interface {
	Provider
	BatchConfig() BatchConfig
	// BatchLine encodes one request as a line of a batch's input, with
	// the sampling s (nil: the generator's).
	BatchLine(id string, msgs []Message, s *spec.Sampling) ([]byte, error)
	// FindBatch finds batch key, of count requests, among those created
	// since: one whose creation's answer was lost; known are the ids of
	// the batches the state knows (not this one). An *UndeterminedError
	// says the provider cannot tell yet.
	FindBatch(ctx context.Context, key string, count int, since time.Time, known ...string) (BatchInfo, bool, error)
	GetBatch(ctx context.Context, id string) (BatchInfo, error)
	CancelBatch(ctx context.Context, id string) (BatchInfo, error)
	// BatchResults downloads an ended batch's output and error files into
	// dir and calls fn with each line.
	BatchResults(ctx context.Context, b BatchInfo, dir string, fn func(BatchResult) error) error
}

// FileBatcher makes a batch from an input file it uploads first.
type FileBatcher interface {
	// UploadBatch uploads the input file of batch key.
	UploadBatch(ctx context.Context, key string, jsonl []byte) (fileID string, err error)
	// FindUpload finds the input file of batch key, of size bytes,
	// uploaded since: an upload whose answer a killed apply never read.
	FindUpload(ctx context.Context, key string, size int64, since time.Time) (fileID string, found bool, err error)
	// CreateBatch creates batch key from its uploaded file, once: an
	// error may still have created it (the answer was lost).
	CreateBatch(ctx context.Context, key, fileID string) (BatchInfo, error)
}

// InlineBatcher makes a batch with its requests (the BatchLines of
// jsonl) in one call, once: an error may still have made it.
type InlineBatcher interface {
	SubmitBatch(ctx context.Context, key string, jsonl []byte) (BatchInfo, error)
}

// BatchCleaner deletes what a batch left at the provider (its input,
// output and error files) once its lines are all recorded.
type BatchCleaner interface {
	CleanBatch(ctx context.Context, b BatchInfo, fileID string) error
}

// UndeterminedError is FindBatch's answer when the provider cannot tell
// yet whether the batch exists (a plugin that can only recognise its
// batch by its results, say): agora asks again every poll and submits
// nothing meanwhile.
type UndeterminedError struct{ Why string }

func (e *UndeterminedError) Error() string {
	return "cannot tell yet whether the batch was made: " + e.Why
}

// inlineSubmitted is the file id an inline batch is recorded with just
// before its submission: from then on a rerun looks for it before
// submitting it again.
const inlineSubmitted = state.InlineFile

// BatchConfig is a generator's batch mode.
type BatchConfig struct {
	Window            string
	MaxRequests       int
	MaxBytes          int64
	MaxEnqueuedTokens int64
	Poll              time.Duration
	// SyncAfter, when > 0, sends failed and expired requests synchronously
	// once the step has waited this long.
	SyncAfter time.Duration
	// CancelWait bounds the wait for a cancelled batch to end (2 minutes
	// when zero); one that takes longer is collected by the next apply.
	CancelWait time.Duration
	// EnqueuedPool names what MaxEnqueuedTokens limits: the provider
	// counts enqueued tokens per account and model, so generators of the
	// same endpoint and model share one count. Empty: the generator's
	// own.
	EnqueuedPool string
}

// BatchInfo is a provider-side batch as last seen.
type BatchInfo struct {
	ID, Status                string
	Total, Completed, Failed  int
	Message                   string
	OutputFileID, ErrorFileID string
	// Ended: the batch will not change any more.
	Ended bool
}

// BatchResult is one line of a batch's results.
type BatchResult struct {
	ID         string // the line's custom id
	Completion Completion
	// Err is why the line has no completion; Retryable says it cost
	// nothing and may be sent again.
	Err       error
	Retryable bool
}

// BatchStore is what the engine needs of the state for batches.
type BatchStore interface {
	RecordBatch(ctx context.Context, b state.Batch) error
	SetBatchFile(ctx context.Context, key, fileID string) error
	SetBatchID(ctx context.Context, key, batchID, status string) error
	UpdateBatch(ctx context.Context, key, status string, total, completed, failed int, message string) error
	EndBatch(ctx context.Context, key string) error
	OpenBatches(ctx context.Context, stepID string) ([]state.Batch, error)
	// BatchIDs are the provider's ids of the batches the state knows,
	// recorded since.
	BatchIDs(ctx context.Context, since time.Time) ([]string, error)
	// Batches are every batch the state knows.
	Batches(ctx context.Context) ([]state.Batch, error)
}

// OrphanBatches are the batches of steps not in steps that may be at the
// provider (submitted, or perhaps submitted) with lines not recorded:
// paid for, and collected only by an apply of a plan with their step.
func OrphanBatches(ctx context.Context, st BatchStore, steps map[string]bool) ([]state.Batch, error) {
	all, err := st.Batches(ctx)
	if err != nil {
		return nil, err
	}
	var out []state.Batch
	for _, b := range all {
		if !b.Done && !steps[b.StepID] && (b.BatchID != "" || b.FileID != "") {
			out = append(out, b)
		}
	}
	return out, nil
}

// holdOrphans holds, for this run, the worst case of the batches of
// steps not in the plan: their requests are paid for (or may be) and no
// step of this plan settles them, so the budgets count them. (plan and
// apply list them before approval: cli's warnOrphanBatches.)
func (e *Engine) holdOrphans(ctx context.Context, steps map[string]bool) error {
	if e.batchStore == nil {
		return nil
	}
	orphans, err := OrphanBatches(ctx, e.batchStore, steps)
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	for _, b := range orphans {
		e.ledger.HoldFixed(b.Generator, b.ReservedUSD)
	}
	return nil
}

// maxLineFailures bounds the times one slot's request may fail in
// batches (errors, expiry) in one run before it is given up.
const maxLineFailures = 3

// defaultCancelWait bounds the wait for a cancelled batch to end.
const defaultCancelWait = 2 * time.Minute

// batchPriced is g at the batch price: its prices less the batch discount.
func batchPriced(g *spec.Generator) *spec.Generator {
	if g.Price == nil || g.Price.BatchDiscount == 0 {
		return g
	}
	c := *g
	p := *g.Price
	m := 1 - p.BatchDiscount
	p.Input, p.Output, p.BatchDiscount = p.Input*m, p.Output*m, 0
	c.Price = &p
	return &c
}

// customID names a line: its slot and attempt.
func customID(l state.BatchLine) string { return fmt.Sprintf("s%d-a%d", l.Slot, l.Attempt) }

func parseCustomID(id string) (state.BatchLine, bool) {
	s, a, ok := strings.Cut(strings.TrimPrefix(id, "s"), "-a")
	if !ok {
		return state.BatchLine{}, false
	}
	slot, err1 := strconv.Atoi(s)
	att, err2 := strconv.Atoi(a)
	return state.BatchLine{Slot: slot, Attempt: att}, err1 == nil && err2 == nil
}

func newBatchKey(stepID string) string {
	var b [6]byte
	rand.Read(b[:])
	return "agora-" + stepID[:min(12, len(stepID))] + "-" + hex.EncodeToString(b[:])
}

// batchRun is one generate step's batches in one apply.
type batchRun struct {
	r      *generateRunner
	e      *Engine
	s      plan.Step
	g      *spec.Generator // at the batch price
	full   *spec.Generator // at the full price (synchronous retries)
	task   *generation.Task
	bp     BatchProvider
	cfg    BatchConfig
	sp     *stepProgress
	digest string
	// sampling is the setting's decoding when it differs from the
	// generator's (its prompt.stop); nil: the generator's.
	sampling *spec.Sampling
	dir      string
	last     map[int]int // the state's last attempt per slot when the run began
	abort    chan struct{}
	events   chan batchEvent

	abortOnce sync.Once
}

// batchEvent is what one batch came to.
type batchEvent struct {
	key      string
	rejected []state.BatchLine // completions recorded as rejected
	failed   []state.BatchLine // no completion, nothing paid
	why      string            // the last rejection or failure
	err      error             // the step cannot go on
	left     bool              // the batch is still at the provider (to be collected later)
}

func (b *batchRun) cancelAll() { b.abortOnce.Do(func() { close(b.abort) }) }

// runBatches applies generate step s through batches.
func (r *generateRunner) runBatches(ctx context.Context, s plan.Step, g *spec.Generator, task *generation.Task, bp BatchProvider) (string, error) {
	e := r.e
	if e.batchStore == nil {
		return "", errors.New("this state keeps no batches")
	}
	accepted, err := e.gens.AcceptedSlots(ctx, s.ID)
	if err != nil {
		return "", fmt.Errorf("read state: %w", err)
	}
	last, err := e.gens.LastAttempts(ctx, s.ID)
	if err != nil {
		return "", fmt.Errorf("read state: %w", err)
	}
	open, err := e.batchStore.OpenBatches(ctx, s.ID)
	if err != nil {
		return "", fmt.Errorf("read state: %w", err)
	}
	dir := filepath.Join(e.opts.Dir, "batches")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("batch files: %w", err)
	}
	_, isFile := bp.(FileBatcher)
	if _, isInline := bp.(InlineBatcher); !isFile && !isInline {
		return "", fmt.Errorf("generator %s: its provider makes no batches", g.Name)
	}
	cfg := bp.BatchConfig()
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = spec.BatchMaxRequests
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = spec.BatchMaxBytes
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 30 * time.Second
	}
	if cfg.CancelWait <= 0 {
		cfg.CancelWait = defaultCancelWait
	}
	sp := e.prog.add(s.Address, s.Instances, len(accepted), s.Generator)
	defer e.prog.remove(sp)
	sampling, err := settingSampling(g, e.exp.Settings[s.Setting], bp)
	if err != nil {
		return "", err
	}
	b := &batchRun{r: r, e: e, s: s, g: batchPriced(g), full: g, task: task, bp: bp, cfg: cfg, sp: sp,
		digest: task.Template.Digest(), sampling: sampling, dir: dir, last: last, abort: make(chan struct{}), events: make(chan batchEvent)}
	started := time.Now()

	// Batches an earlier apply left: their requests are paid for
	// whatever the budget says now; they hold it until recorded.
	inflight := 0
	busy := map[int]bool{}
	for _, ob := range open {
		if !ob.CreatedAt.IsZero() && ob.CreatedAt.Before(started) {
			started = ob.CreatedAt
		}
		res := map[string]*Reservation{}
		for _, l := range ob.Lines {
			busy[l.Slot] = true
			if last[l.Slot] >= l.Attempt {
				continue // recorded before the kill
			}
			msgs, err := b.messages(l)
			if err != nil {
				return "", err
			}
			res[customID(l)] = e.ledger.Hold(g.Name, worstCase(msgs, b.g))
		}
		inflight++
		go b.follow(ctx, ob, res, ob.BatchID == "" && ob.FileID != "")
	}
	var pending []state.BatchLine
	for slot := 0; slot < s.Instances; slot++ {
		if !accepted[slot] && !busy[slot] {
			pending = append(pending, state.BatchLine{Slot: slot, Attempt: last[slot] + 1})
		}
	}
	tries := map[int]int{}    // attempts with a completion, per slot, in this run
	failures := map[int]int{} // failed lines per slot in this run
	var (
		firstErr  error
		exhausted int
		lastWhy   string
		syncTodo  []state.BatchLine
		stopping  bool
	)
	fail := func(err error) {
		if firstErr == nil || (overshot(err) && !overshot(firstErr)) {
			firstErr = err
		}
		b.cancelAll()
	}
	noSend, done, crossed := e.noMoreSending(), ctx.Done(), e.ledger.Crossed()
	givenUp := map[int]bool{}
	swept := false
	for {
		select {
		case <-noSend:
			stopping, noSend = true, nil
		default:
		}
		var budgetWait, enqueuedWait <-chan struct{}
		for len(pending) > 0 && !stopping && firstErr == nil {
			// Taken before the submission looks: a change meanwhile
			// is not missed.
			changed, freed := e.ledger.Changed(), e.enqueuedChanged()
			n, err := b.submit(ctx, pending)
			if err != nil {
				fail(err)
				break
			}
			if n == 0 {
				// Nothing fits the budget (or the enqueued tokens) now:
				// wait for a settlement, or for a batch of the same
				// pool to end.
				budgetWait, enqueuedWait = changed, freed
				break
			}
			pending = pending[n:]
			inflight++
		}
		if inflight == 0 && len(pending) == 0 && !stopping && firstErr == nil && !swept {
			// Lines a killed apply recorded before their batch was
			// done may have been rejected: whatever slot is still
			// missing is asked again.
			swept = true
			acc, err := e.gens.AcceptedSlots(ctx, s.ID)
			if err != nil {
				return "", fmt.Errorf("read state: %w", err)
			}
			lastNow, err := e.gens.LastAttempts(ctx, s.ID)
			if err != nil {
				return "", fmt.Errorf("read state: %w", err)
			}
			inSync := map[int]bool{}
			for _, l := range syncTodo {
				inSync[l.Slot] = true
			}
			for slot := 0; slot < s.Instances; slot++ {
				if !acc[slot] && !givenUp[slot] && !inSync[slot] {
					pending = append(pending, state.BatchLine{Slot: slot, Attempt: lastNow[slot] + 1})
				}
			}
			if len(pending) > 0 {
				continue
			}
		}
		if inflight == 0 && (len(pending) == 0 || stopping || firstErr != nil) {
			break
		}
		if inflight > 0 && stopping && firstErr == nil {
			e.prog.note(fmt.Sprintf("%s: waiting for %d batch%s at the provider; interrupt again to cancel them (what they completed is recorded)", s.Address, inflight, pluralES(inflight)))
		}
		select {
		case ev := <-b.events:
			inflight--
			b.sp.batchDone(ev.key)
			e.releaseEnqueued(b.pool(), ev.key)
			if ev.err != nil {
				fail(ev.err)
			}
			if ev.why != "" {
				lastWhy = ev.why
			}
			for _, l := range ev.rejected {
				tries[l.Slot]++
				if tries[l.Slot] >= e.opts.MaxAttempts {
					exhausted++
					givenUp[l.Slot] = true
					continue
				}
				pending = append(pending, state.BatchLine{Slot: l.Slot, Attempt: l.Attempt + 1})
			}
			for _, l := range ev.failed {
				failures[l.Slot]++
				switch {
				case cfg.SyncAfter > 0 && time.Since(started) >= cfg.SyncAfter:
					syncTodo = append(syncTodo, l)
				case failures[l.Slot] > maxLineFailures:
					exhausted++
					givenUp[l.Slot] = true
				default:
					pending = append(pending, l)
				}
			}
			if ev.left {
				stopping = true
			}
		case <-budgetWait:
		case <-enqueuedWait:
		case <-crossed:
			// A budget crossed (by this step or another): cancel the
			// batches at the provider and record what they completed.
			crossed = nil
			stopping = true
			b.cancelAll()
		case <-noSend:
			stopping, noSend = true, nil
		case <-done:
			// The second interrupt: the batches cancel themselves at
			// the provider and report what they completed.
			stopping, done = true, nil
			b.cancelAll()
		}
	}
	if len(syncTodo) > 0 && firstErr == nil && !stopping && ctx.Err() == nil {
		ex, why, err := b.syncRetry(ctx, syncTodo)
		exhausted += ex
		if why != "" {
			lastWhy = why
		}
		if err != nil {
			fail(err)
		}
	}
	return e.endGenerate(ctx, s, firstErr, ctx.Err() != nil || stopping, exhausted, lastWhy)
}

func pluralES(n int) string {
	if n == 1 {
		return ""
	}
	return "es"
}

// messages are the request of line l.
func (b *batchRun) messages(l state.BatchLine) ([]Message, error) {
	req, err := b.task.Request(l.Slot, l.Attempt)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	msgs := make([]Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = Message{Role: m.Role, Content: m.Content}
	}
	return msgs, nil
}

// submit makes one batch of the first of pending, as many as the limits
// and the budgets allow, records it and starts following it. It returns
// how many lines it took (0: none fits now).
func (b *batchRun) submit(ctx context.Context, pending []state.BatchLine) (int, error) {
	e := b.e
	var (
		lines   []state.BatchLine
		amounts []float64
		jsonl   []byte
		tokens  int64
	)
	if b.cfg.MaxEnqueuedTokens > 0 {
		// One submission of the pool at a time, from its look at the
		// room to its hold: two steps sharing the pool must not both
		// take the same room.
		mu := e.poolLock(b.pool())
		mu.Lock()
		defer mu.Unlock()
	}
	room := e.enqueuedRoom(b.pool(), b.cfg.MaxEnqueuedTokens)
	for _, l := range pending {
		if len(lines) == b.cfg.MaxRequests {
			break
		}
		msgs, err := b.messages(l)
		if err != nil {
			return 0, err
		}
		line, err := b.bp.BatchLine(customID(l), msgs, b.sampling)
		if err != nil {
			return 0, err
		}
		if len(lines) > 0 && int64(len(jsonl)+len(line)) > b.cfg.MaxBytes {
			break
		}
		bound := int64(promptBound(b.g, msgs))
		if room >= 0 && tokens+bound > room && (len(lines) > 0 || room < b.cfg.MaxEnqueuedTokens) {
			break
		}
		lines = append(lines, l)
		amounts = append(amounts, worstCase(msgs, b.g))
		jsonl = append(jsonl, line...)
		tokens += bound
	}
	if len(lines) == 0 {
		return 0, nil
	}
	res, err := e.ledger.ReservePrefix(b.g.Name, amounts)
	if err != nil {
		return 0, err
	}
	if len(res) == 0 {
		return 0, nil
	}
	if len(res) < len(lines) {
		// Split: the budget covers these; the rest wait for their
		// settlements. Cut the file after the last line taken.
		n := 0
		for i := 0; i < len(res); i++ {
			n += lineLen(jsonl[n:])
		}
		lines, jsonl, tokens = lines[:len(res)], jsonl[:n], 0
		for _, l := range lines {
			msgs, _ := b.messages(l)
			tokens += int64(promptBound(b.g, msgs))
		}
	}
	total := 0.0
	byID := map[string]*Reservation{}
	for i, l := range lines {
		total += amounts[i]
		byID[customID(l)] = res[i]
	}
	rec := state.Batch{Key: newBatchKey(b.s.ID), StepID: b.s.ID, Generator: b.g.Name, Lines: lines, ReservedUSD: total, CreatedAt: time.Now()}
	if err := e.batchStore.RecordBatch(context.WithoutCancel(ctx), rec); err != nil {
		for _, r := range res {
			r.Settle(0)
		}
		return 0, fmt.Errorf("record batch: %w", err)
	}
	e.holdEnqueued(b.pool(), rec.Key, tokens)
	go b.follow(ctx, rec, byID, false, jsonl)
	return len(lines), nil
}

func lineLen(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i + 1
		}
	}
	return len(b)
}

// follow takes batch rec from wherever it stands to its recorded results:
// upload (when it has no file), create (when it has no id; after looking
// for it by key when an earlier creation may have made it), poll until it
// ends, and record its lines. It reports on b.events.
func (b *batchRun) follow(ctx context.Context, rec state.Batch, res map[string]*Reservation, lookFirst bool, jsonl ...[]byte) {
	b.e.batchFlight.Add(1)
	defer b.e.batchFlight.Add(-1)
	ev := b.followBatch(ctx, rec, res, lookFirst, jsonl...)
	ev.key = rec.Key
	for _, r := range res {
		r.Settle(0) // lines with no result: nothing paid
	}
	b.events <- ev
}

func (b *batchRun) followBatch(ctx context.Context, rec state.Batch, res map[string]*Reservation, lookFirst bool, jsonl ...[]byte) batchEvent {
	e, bp := b.e, b.bp
	st := e.batchStore
	bg := context.WithoutCancel(ctx) // state writes: a record must not be lost to a cancel
	b.sp.batchState(rec.Key, rec.BatchID, "preparing", len(rec.Lines), 0, 0)
	unsent := func(err error) batchEvent {
		// Nothing was created: the batch ends without a cost.
		if eerr := st.EndBatch(bg, rec.Key); eerr != nil {
			return batchEvent{err: eerr}
		}
		return batchEvent{err: err}
	}
	aborted := func() bool {
		select {
		case <-b.abort:
			return true
		default:
			return ctx.Err() != nil
		}
	}
	input := func() ([]byte, error) {
		if len(jsonl) > 0 {
			return jsonl[0], nil
		}
		var data []byte
		for _, l := range rec.Lines {
			msgs, err := b.messages(l)
			if err != nil {
				return nil, err
			}
			line, err := bp.BatchLine(customID(l), msgs, b.sampling)
			if err != nil {
				return nil, err
			}
			data = append(data, line...)
		}
		return data, nil
	}
	fb, isFile := bp.(FileBatcher)
	if rec.BatchID == "" && rec.FileID == "" {
		if aborted() {
			return unsent(nil)
		}
		if isFile {
			data, err := input()
			if err != nil {
				return unsent(err)
			}
			id, found := "", false
			if len(jsonl) == 0 {
				// Resumed: an earlier apply may have uploaded the file.
				if id, found, err = fb.FindUpload(ctx, rec.Key, int64(len(data)), rec.CreatedAt.Add(-time.Hour)); err != nil {
					return batchEvent{err: err, left: true}
				}
			}
			if !found {
				id, err = fb.UploadBatch(ctx, rec.Key, data)
			}
			if err != nil {
				if ctx.Err() != nil {
					return batchEvent{left: true}
				}
				return unsent(err)
			}
			if err := st.SetBatchFile(bg, rec.Key, id); err != nil {
				return batchEvent{err: err, left: true}
			}
			rec.FileID = id
		} else {
			// From here on the submission may happen: a rerun looks for
			// the batch before submitting it again.
			if err := st.SetBatchFile(bg, rec.Key, inlineSubmitted); err != nil {
				return batchEvent{err: err, left: true}
			}
			rec.FileID = inlineSubmitted
		}
	}
	var info BatchInfo
	if rec.BatchID == "" {
		found := false
		if lookFirst {
			var err error
			info, found, err = b.lookup(ctx, rec)
			if err != nil {
				return batchEvent{err: err, left: true}
			}
		}
		if !found {
			if aborted() {
				return unsent(nil)
			}
			data, err := input()
			if err != nil {
				return unsent(err)
			}
			info, found, err = b.create(ctx, rec, data)
			switch {
			case err != nil && found:
				return unsent(err) // refused: nothing was created
			case err != nil || !found:
				// Perhaps created: the next apply looks for it.
				return batchEvent{err: err, left: true}
			}
		}
		if err := st.SetBatchID(bg, rec.Key, info.ID, info.Status); err != nil {
			return batchEvent{err: err, left: true}
		}
		rec.BatchID = info.ID
	} else {
		var err error
		if info, err = bp.GetBatch(ctx, rec.BatchID); err != nil {
			return batchEvent{err: err, left: true}
		}
	}
	// Poll until the batch ends; cancel it at the provider on abort.
	cancelled := false
	var deadline time.Time
	pctx := ctx
	for !info.Ended {
		b.sp.batchState(rec.Key, info.ID, info.Status, info.Total, info.Completed, info.Failed)
		if !cancelled && aborted() {
			cancelled = true
			deadline = time.Now().Add(b.cfg.CancelWait)
			pctx = bg
			if ci, err := bp.CancelBatch(bg, info.ID); err == nil {
				info = ci
			}
			st.UpdateBatch(bg, rec.Key, info.Status, info.Total, info.Completed, info.Failed, info.Message)
			continue
		}
		if cancelled && time.Now().After(deadline) {
			e.prog.note(fmt.Sprintf("%s: batch %s still %s at the provider; agora apply collects what it completed", b.s.Address, info.ID, info.Status))
			return batchEvent{left: true}
		}
		wait := b.cfg.Poll
		if cancelled {
			wait = min(wait, time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-b.abort:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
		}
		ni, err := bp.GetBatch(pctx, info.ID)
		if err != nil {
			if aborted() && !cancelled {
				continue // cancel it next
			}
			return batchEvent{err: err, left: true}
		}
		if ni.Status != info.Status || ni.Completed != info.Completed || ni.Failed != info.Failed {
			if err := st.UpdateBatch(bg, rec.Key, ni.Status, ni.Total, ni.Completed, ni.Failed, ni.Message); err != nil {
				return batchEvent{err: err, left: true}
			}
		}
		info = ni
	}
	b.sp.batchState(rec.Key, info.ID, info.Status, info.Total, info.Completed, info.Failed)
	if err := st.UpdateBatch(bg, rec.Key, info.Status, info.Total, info.Completed, info.Failed, info.Message); err != nil {
		return batchEvent{err: err, left: true}
	}
	ev := b.record(bg, rec, info, res)
	if ev.err != nil && ev.left {
		return ev
	}
	if err := st.EndBatch(bg, rec.Key); err != nil {
		return batchEvent{err: err, left: true}
	}
	// Every line is in the state: the downloaded files are not needed,
	// here or at the provider (a failed deletion is only noted: the
	// files cost nothing but the provider's storage).
	os.RemoveAll(filepath.Join(b.dir, rec.Key))
	if c, ok := bp.(BatchCleaner); ok {
		if err := c.CleanBatch(bg, info, rec.FileID); err != nil {
			e.prog.note(fmt.Sprintf("%s: batch %s: its files stay at the provider: %v", b.s.Address, info.ID, err))
		}
	}
	if info.Status == "failed" && info.Message != "" && ev.err == nil && len(ev.rejected) == 0 {
		ev.why = "batch failed: " + info.Message
	}
	return ev
}

// createAttempts bounds the creations of one batch in one run.
const createAttempts = 3

// create creates batch rec. A creation whose answer did not come may have
// happened: before each new attempt, and before giving up, the batch is
// looked for by its key. It returns the batch and ok; or the error and
// refused (ok set) when the provider refused the creation for good, so
// that no batch exists; or the error without ok when it cannot tell.
func (b *batchRun) create(ctx context.Context, rec state.Batch, data []byte) (BatchInfo, bool, error) {
	var last error
	for n := 0; n < createAttempts; n++ {
		if n > 0 {
			t := time.NewTimer(min(b.cfg.Poll, 10*time.Second) << (n - 1))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			case <-b.abort:
				t.Stop()
			}
			info, found, err := b.lookup(ctx, rec)
			switch {
			case err != nil:
				return BatchInfo{}, false, last
			case found:
				return info, true, nil
			case ctx.Err() != nil:
				return BatchInfo{}, false, ctx.Err()
			}
		}
		var info BatchInfo
		var err error
		if fb, ok := b.bp.(FileBatcher); ok {
			info, err = fb.CreateBatch(ctx, rec.Key, rec.FileID)
		} else {
			info, err = b.bp.(InlineBatcher).SubmitBatch(ctx, rec.Key, data)
		}
		if err == nil {
			return info, true, nil
		}
		last = err
		var p interface{ IsPermanent() bool }
		if errors.As(err, &p) && p.IsPermanent() && ctx.Err() == nil {
			// Refused with an answer (a 4xx): no batch was made.
			return BatchInfo{}, true, err
		}
	}
	info, found, err := b.lookup(ctx, rec)
	if err == nil && found {
		return info, true, nil
	}
	return BatchInfo{}, false, last
}

// lookup asks the provider for batch rec, made by a creation whose answer
// was lost. While the provider cannot tell, it asks again every poll and
// shows why; an abort or a cancel leaves the batch to the next apply.
func (b *batchRun) lookup(ctx context.Context, rec state.Batch) (BatchInfo, bool, error) {
	bg := context.WithoutCancel(ctx)
	said := "" // the last reason shown: a wait of hours says it once
	for {
		// The batches made since a while before this one (the provider
		// looks back that far, with some slack for its clock).
		known, err := b.e.batchStore.BatchIDs(bg, rec.CreatedAt.Add(-2*time.Hour))
		if err != nil {
			return BatchInfo{}, false, fmt.Errorf("read state: %w", err)
		}
		info, found, err := b.bp.FindBatch(bg, rec.Key, len(rec.Lines), rec.CreatedAt.Add(-time.Hour), known...)
		var u *UndeterminedError
		if !errors.As(err, &u) {
			return info, found, err
		}
		b.sp.batchState(rec.Key, "", "looking", len(rec.Lines), 0, 0)
		if u.Why != said {
			said = u.Why
			b.e.prog.note(fmt.Sprintf("%s: batch %s: %v; looking again every %s, submitting nothing meanwhile", b.s.Address, rec.Key, u, b.cfg.Poll))
		}
		t := time.NewTimer(b.cfg.Poll)
		select {
		case <-t.C:
		case <-b.abort:
			t.Stop()
			return BatchInfo{}, false, fmt.Errorf("batch %s: %w", rec.Key, err)
		case <-ctx.Done():
			t.Stop()
			return BatchInfo{}, false, fmt.Errorf("batch %s: %w", rec.Key, err)
		}
	}
}

// record downloads an ended batch's results and records each line once:
// judged, recorded and settled like a synchronous response.
func (b *batchRun) record(ctx context.Context, rec state.Batch, info BatchInfo, res map[string]*Reservation) batchEvent {
	e := b.e
	var ev batchEvent
	want := map[string]state.BatchLine{}
	for _, l := range rec.Lines {
		want[customID(l)] = l
	}
	seen := map[string]bool{}
	created := rec.CreatedAt
	// The batch's result files, until its lines are recorded
	// (followBatch removes them then).
	bdir := filepath.Join(b.dir, rec.Key)
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return batchEvent{err: fmt.Errorf("batch files: %w", err), left: true}
	}
	err := b.bp.BatchResults(ctx, info, bdir, func(r BatchResult) error {
		l, ok := want[r.ID]
		if !ok || seen[r.ID] {
			return nil // not one of this batch's lines, or again
		}
		seen[r.ID] = true
		rs := res[r.ID]
		delete(res, r.ID)
		if rs == nil {
			return nil // recorded before a kill; its cost is in the state
		}
		if r.Err != nil {
			rs.Settle(0)
			if r.Retryable {
				ev.failed = append(ev.failed, l)
				ev.why = r.Err.Error()
				return nil
			}
			if ev.err == nil {
				ev.err = r.Err
			}
			return nil
		}
		msgs, err := b.messages(l)
		if err != nil {
			rs.Settle(0)
			return err
		}
		req, _ := b.task.Request(l.Slot, l.Attempt)
		c := r.Completion
		reserved := worstCase(msgs, b.g)
		v := judgeUsage(b.g, c, promptBound(b.g, msgs), b.g.Sampling.MaxTokens, reserved)
		g, verr := answerRecord(b.task, req, c, v, v.cost, state.Generation{StepID: b.s.ID, Slot: l.Slot, Attempt: l.Attempt, PromptDigest: b.digest, StartedAt: created})
		if verr != nil {
			ev.why = g.RejectReason
		}
		if err := e.gens.Append(ctx, g); err != nil {
			rs.Settle(v.cost)
			return fmt.Errorf("record response: %w", err)
		}
		serr := settle(rs, v)
		b.sp.record(v.in, v.out, v.cost, verr == nil)
		if serr != nil && (ev.err == nil || (overshot(serr) && !overshot(ev.err))) {
			ev.err = serr
			b.cancelAll() // a crossed budget or an anomaly: cancel the others
		}
		if verr != nil && v.err == nil {
			ev.rejected = append(ev.rejected, l)
		}
		return nil
	})
	if err != nil {
		return batchEvent{err: err, left: true}
	}
	// Lines with no result (a batch cancelled or failed before they ran)
	// cost nothing and are sent again.
	for _, l := range rec.Lines {
		id := customID(l)
		if seen[id] || res[id] == nil {
			continue
		}
		ev.failed = append(ev.failed, l)
		if ev.why == "" {
			ev.why = fmt.Sprintf("no result in batch %s (%s)", info.ID, info.Status)
		}
	}
	return ev
}

// syncRetry sends the requests of lines synchronously at the full price,
// as a generator without batch mode would.
func (b *batchRun) syncRetry(ctx context.Context, lines []state.BatchLine) (exhausted int, why string, err error) {
	e := b.e
	var mu sync.Mutex
	conc := min(max(b.full.Limits.Concurrency, 1), len(lines))
	if b.full.Limits.Concurrency <= 0 {
		conc = min(defaultConcurrency, len(lines))
	}
	stop := e.noMoreSending()
	ch := make(chan state.BatchLine)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range ch {
				serr := b.r.slot(ctx, stop, b.s, b.full, b.task, b.digest, b.bp, b.sampling, b.sp, l.Slot, l.Attempt)
				var x *exhaustedError
				mu.Lock()
				switch {
				case serr == nil:
				case errors.As(serr, &x):
					exhausted++
					why = x.reason
				case err == nil:
					err = serr
				}
				mu.Unlock()
			}
		}()
	}
	for _, l := range lines {
		ch <- l
	}
	close(ch)
	wg.Wait()
	return exhausted, why, err
}

// BatchesInFlight is the number of batches this apply follows at a
// provider: cancelling Apply's context cancels them there and records
// what they completed before Apply returns.
func (e *Engine) BatchesInFlight() int { return int(e.batchFlight.Load()) }

// pool is what the step's enqueued tokens count against.
func (b *batchRun) pool() string {
	if b.cfg.EnqueuedPool != "" {
		return b.cfg.EnqueuedPool
	}
	return "generator:" + b.g.Name
}

// enqueuedRoom is how many prompt tokens pool gen may still enqueue
// under limit (-1: no limit).
func (e *Engine) enqueuedRoom(gen string, limit int64) int64 {
	if limit <= 0 {
		return -1
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var used int64
	for _, n := range e.enqueued[gen] {
		used += n
	}
	return max(limit-used, 0)
}

func (e *Engine) holdEnqueued(gen, key string, tokens int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.enqueued == nil {
		e.enqueued = map[string]map[string]int64{}
	}
	if e.enqueued[gen] == nil {
		e.enqueued[gen] = map[string]int64{}
	}
	e.enqueued[gen][key] = tokens
}

func (e *Engine) releaseEnqueued(gen, key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.enqueued[gen], key)
	if e.enqueuedFreed != nil {
		close(e.enqueuedFreed)
		e.enqueuedFreed = nil
	}
}

// poolLock is the lock of enqueued-token pool pool's submissions.
func (e *Engine) poolLock(pool string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.poolLocks == nil {
		e.poolLocks = map[string]*sync.Mutex{}
	}
	if e.poolLocks[pool] == nil {
		e.poolLocks[pool] = &sync.Mutex{}
	}
	return e.poolLocks[pool]
}

// enqueuedChanged is closed when a batch next releases its enqueued
// tokens.
func (e *Engine) enqueuedChanged() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.enqueuedFreed == nil {
		e.enqueuedFreed = make(chan struct{})
	}
	return e.enqueuedFreed
}
