package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Generation is one completion a generate step received: accepted (it
// parsed and validated, and fills its slot) or rejected, with what it cost.
type Generation struct {
	StepID       string
	Slot         int // the instance it is for, 0-based
	Attempt      int // 1 for the first request for the slot
	Accepted     bool
	RejectReason string

	Raw         string // the completion text as received
	Instruction string // parsed, when accepted
	Response    string // parsed, when accepted

	Model             string // as the API reported it
	SystemFingerprint string
	RequestID         string
	FinishReason      string
	PromptDigest      string
	SeedItemID        string

	InputTokens, OutputTokens int
	CostUSD                   float64

	StartedAt time.Time
	Duration  time.Duration
}

type appendReq struct {
	g    Generation
	done chan error // buffered: the writer never waits for the caller
}

// Append makes g durable: it returns nil only after the transaction
// holding g committed (WAL, synchronous=FULL). g's step must have been
// begun (BeginStep).
//
// Concurrent callers are group-committed: one writer goroutine gathers
// what is pending into one transaction and wakes every caller with its
// result. If ctx ends while Append waits for the commit, Append returns
// ctx's error but the record, already handed to the writer, is still
// committed (at the latest by Close); only a record not yet handed over
// is dropped.
func (s *Store) Append(ctx context.Context, g Generation) error {
	if g.StepID == "" {
		return fmt.Errorf("append generation: empty step id")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append generation: %w", err)
	}
	req := &appendReq{g: g, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("append generation: %w", ErrClosed)
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		s.mu.RUnlock()
		return fmt.Errorf("append generation: %w", ctx.Err())
	}
	s.mu.RUnlock()
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("append generation: %w (the record is still being committed)", ctx.Err())
	}
}

// writeLoop is the single writer of generations. It takes the first
// pending record and everything queued behind it, up to s.maxBatch, and
// commits them in one transaction; while that commits (an fsync), new
// records queue up and form the next batch, so the batch size follows the
// load and a lone caller never waits for company.
//
// With s.linger > 0, a batch that shows concurrent callers (more than one
// record) also waits up to linger after its first record for more. It is
// 0 by default: callers that append and then wait (apply's workers) are
// a closed loop, where the next batch is already forming during the
// commit, and a 2 ms linger measured the same batch size (~32 records at
// 64 callers) at a third to a half of the throughput.
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	batch := make([]*appendReq, 0, s.maxBatch)
	var timer *time.Timer
	for {
		first, ok := <-s.reqs
		if !ok {
			return
		}
		start := time.Now()
		batch = append(batch[:0], first)
		open := true
	drain:
		for open && len(batch) < s.maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		if open && len(batch) > 1 && len(batch) < s.maxBatch && s.linger > 0 {
			wait := s.linger - time.Since(start)
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
		linger:
			for len(batch) < s.maxBatch {
				select {
				case r, ok := <-s.reqs:
					if !ok {
						open = false
						break linger
					}
					batch = append(batch, r)
				case <-timer.C:
					break linger
				}
			}
			timer.Stop()
		}
		s.commit(batch)
		clear(batch) // let the records be collected
		if !open {
			return // Close closed the channel and nothing is left in it
		}
	}
}

// stepDelta accumulates one batch's changes to a step's counters.
type stepDelta struct {
	accepted, rejected        int
	inputTokens, outputTokens int64
	costUSD, rejectedCostUSD  float64
}

// commit writes a batch in one transaction and answers every caller. A
// record that violates a constraint (its step was never begun) fails alone;
// any other error fails the whole batch.
func (s *Store) commit(batch []*appendReq) {
	if s.commitHook != nil {
		s.commitHook(len(batch))
	}
	s.txns.Add(1)
	errs := make([]error, len(batch))
	err := s.commitBatch(batch, errs)
	ok := 0
	for i, r := range batch {
		e := err
		if e == nil {
			e = errs[i]
		}
		if e == nil {
			ok++
		} else {
			e = fmt.Errorf("append generation %s/%d/%d: %w", r.g.StepID, r.g.Slot, r.g.Attempt, e)
		}
		r.done <- e
	}
	if err == nil {
		s.appended.Add(int64(ok))
	}
}

func (s *Store) commitBatch(batch []*appendReq, errs []error) error {
	ctx := context.Background() // a caller's cancellation must not drop the batch
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	exists := tx.StmtContext(ctx, s.existsStmt)
	insert := tx.StmtContext(ctx, s.insertStmt)
	update := tx.StmtContext(ctx, s.updateStmt)
	now := time.Now().UnixNano()
	deltas := map[string]*stepDelta{}
	for i, r := range batch {
		g := &r.g
		newSlot := false
		if g.Accepted {
			var had bool
			if err := exists.QueryRowContext(ctx, g.StepID, g.Slot).Scan(&had); err != nil {
				return err
			}
			newSlot = !had
		}
		_, err := insert.ExecContext(ctx, g.StepID, g.Slot, g.Attempt, g.Accepted, g.RejectReason,
			g.Raw, g.Instruction, g.Response, g.Model, g.SystemFingerprint, g.RequestID,
			g.FinishReason, g.PromptDigest, g.SeedItemID, g.InputTokens, g.OutputTokens,
			g.CostUSD, toNanos(g.StartedAt), int64(g.Duration), now)
		if err != nil {
			if isConstraint(err) {
				errs[i] = fmt.Errorf("step %s was never begun: %w", g.StepID, err)
				continue
			}
			return err
		}
		d := deltas[g.StepID]
		if d == nil {
			d = &stepDelta{}
			deltas[g.StepID] = d
		}
		if newSlot {
			d.accepted++
		}
		if !g.Accepted {
			d.rejected++
			d.rejectedCostUSD += g.CostUSD
		}
		d.inputTokens += int64(g.InputTokens)
		d.outputTokens += int64(g.OutputTokens)
		d.costUSD += g.CostUSD
	}
	for id, d := range deltas {
		_, err := update.ExecContext(ctx, d.accepted, d.rejected, d.inputTokens, d.outputTokens, d.costUSD, d.rejectedCostUSD, now, id)
		if err != nil {
			return err
		}
	}
	if s.testHookBeforeCommit != nil {
		s.testHookBeforeCommit(len(batch))
	}
	return tx.Commit()
}

// The writer's statements, prepared once on its connection.
const (
	existsSQL = "SELECT EXISTS (SELECT 1 FROM generations WHERE step_id = ? AND slot = ? AND accepted = 1)"
	insertSQL = `INSERT INTO generations (
		step_id, slot, attempt, accepted, reject_reason, raw, instruction, response,
		model, system_fingerprint, request_id, finish_reason, prompt_digest, seed_item_id,
		input_tokens, output_tokens, cost_usd, started_at, duration_ns, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	updateSQL = `UPDATE steps SET
		accepted = accepted + ?, rejected = rejected + ?,
		input_tokens = input_tokens + ?, output_tokens = output_tokens + ?,
		cost_usd = cost_usd + ?, rejected_cost_usd = rejected_cost_usd + ?,
		updated_at = ? WHERE id = ?`
)

func (s *Store) prepare(ctx context.Context) error {
	var err error
	if s.existsStmt, err = s.wdb.PrepareContext(ctx, existsSQL); err != nil {
		return err
	}
	if s.insertStmt, err = s.wdb.PrepareContext(ctx, insertSQL); err != nil {
		return err
	}
	s.updateStmt, err = s.wdb.PrepareContext(ctx, updateSQL)
	return err
}

func isConstraint(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// AcceptedSlots returns the slots of a step that have an accepted
// generation.
func (s *Store) AcceptedSlots(ctx context.Context, stepID string) (map[int]bool, error) {
	rows, err := s.rdb.QueryContext(ctx,
		"SELECT DISTINCT slot FROM generations WHERE step_id = ? AND accepted = 1", stepID)
	if err != nil {
		return nil, fmt.Errorf("read accepted slots of %s: %w", stepID, s.closedErr(err))
	}
	defer rows.Close()
	slots := map[int]bool{}
	for rows.Next() {
		var slot int
		if err := rows.Scan(&slot); err != nil {
			return nil, fmt.Errorf("read accepted slots of %s: %w", stepID, err)
		}
		slots[slot] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read accepted slots of %s: %w", stepID, err)
	}
	return slots, nil
}

// NextAttempt returns 1 + the highest attempt recorded for a slot (1 when
// none is). Records still waiting in Append are not counted.
func (s *Store) NextAttempt(ctx context.Context, stepID string, slot int) (int, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx,
		"SELECT COALESCE(MAX(attempt), 0) + 1 FROM generations WHERE step_id = ? AND slot = ?",
		stepID, slot).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read attempts of %s/%d: %w", stepID, slot, s.closedErr(err))
	}
	return n, nil
}

// Accepted calls fn with each accepted generation of a step, ordered by
// slot, one per slot: the first accepted (in commit order) when a slot
// has more than one. It stops at, and returns, fn's first error.
func (s *Store) Accepted(ctx context.Context, stepID string, fn func(Generation) error) error {
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT step_id, slot, attempt, accepted, reject_reason, raw, instruction, response,
			model, system_fingerprint, request_id, finish_reason, prompt_digest, seed_item_id,
			input_tokens, output_tokens, cost_usd, started_at, duration_ns
		FROM generations
		WHERE id IN (SELECT MIN(id) FROM generations WHERE step_id = ? AND accepted = 1 GROUP BY slot)
		ORDER BY slot`, stepID)
	if err != nil {
		return fmt.Errorf("read generations of %s: %w", stepID, s.closedErr(err))
	}
	defer rows.Close()
	for rows.Next() {
		g, err := scanGeneration(rows)
		if err != nil {
			return fmt.Errorf("read generations of %s: %w", stepID, err)
		}
		if err := fn(g); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read generations of %s: %w", stepID, err)
	}
	return nil
}

func scanGeneration(rows *sql.Rows) (Generation, error) {
	var g Generation
	var started, dur int64
	err := rows.Scan(&g.StepID, &g.Slot, &g.Attempt, &g.Accepted, &g.RejectReason, &g.Raw,
		&g.Instruction, &g.Response, &g.Model, &g.SystemFingerprint, &g.RequestID,
		&g.FinishReason, &g.PromptDigest, &g.SeedItemID, &g.InputTokens, &g.OutputTokens,
		&g.CostUSD, &started, &dur)
	g.StartedAt, g.Duration = fromNanos(started), time.Duration(dur)
	return g, err
}
