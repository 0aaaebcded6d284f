// Package state is the embedded local state of agora apply: one SQLite
// database, dir/state.db (dir is the .agora directory beside the spec),
// opened through the pure-Go driver modernc.org/sqlite in WAL mode with
// synchronous=FULL.
//
// It records every step's status and every generation (accepted or
// rejected) with its raw text, usage, cost, attempt number and timing.
// Append returns only after the record's transaction committed, so a
// response is durable before the caller counts it; concurrent Appends are
// group-committed by a single writer goroutine so that durability does not
// cap throughput. Step counters (accepted slots, rejects, tokens, dollars)
// are maintained from the generations in the same transactions that record
// them.
//
// One writer at a time is enforced outside the database by a lock file
// beside it (AcquireLock, ForceUnlock); the Store itself assumes its
// process holds that lock.
package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Step statuses. Every step an apply meets ends in one of the last five,
// recorded by the engine's walker with its reason (StepState.Error).
const (
	StatusPending = "pending"
	StatusRunning = "running"
	StatusDone    = "done"
	// StatusFailed: the step ran and failed.
	StatusFailed = "failed"
	// StatusInterrupted: the step started and was stopped (an interrupt,
	// a budget, or an apply that ended without recording its outcome).
	StatusInterrupted = "interrupted"
	// StatusBlocked: the step needs a step that failed or could not run.
	StatusBlocked = "blocked"
	// StatusNotRun: the step was not started (it cannot run here, a
	// budget or an interrupt came first).
	StatusNotRun = "not_run"
)

// DBFile is the name of the database inside the state directory.
const DBFile = "state.db"

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("state is closed")

// schemaVersion is the PRAGMA user_version this binary writes and reads.
const schemaVersion = 5

// migrations[i] brings the schema from version i to i+1.
var migrations = []string{
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	) STRICT;
	INSERT INTO meta (key, value) VALUES ('serial', 0);

	CREATE TABLE steps (
		id                TEXT PRIMARY KEY,
		kind              TEXT NOT NULL,
		address           TEXT NOT NULL,
		generator         TEXT NOT NULL,
		setting           TEXT NOT NULL,
		target            INTEGER NOT NULL,
		status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
		error             TEXT NOT NULL DEFAULT '',
		output            TEXT NOT NULL DEFAULT '',
		accepted          INTEGER NOT NULL DEFAULT 0,
		rejected          INTEGER NOT NULL DEFAULT 0,
		input_tokens      INTEGER NOT NULL DEFAULT 0,
		output_tokens     INTEGER NOT NULL DEFAULT 0,
		cost_usd          REAL NOT NULL DEFAULT 0,
		rejected_cost_usd REAL NOT NULL DEFAULT 0,
		started_at        INTEGER NOT NULL,
		updated_at        INTEGER NOT NULL
	) STRICT;

	CREATE TABLE generations (
		id                 INTEGER PRIMARY KEY,
		step_id            TEXT NOT NULL REFERENCES steps (id),
		slot               INTEGER NOT NULL,
		attempt            INTEGER NOT NULL,
		accepted           INTEGER NOT NULL,
		reject_reason      TEXT NOT NULL,
		raw                TEXT NOT NULL,
		instruction        TEXT NOT NULL,
		response           TEXT NOT NULL,
		model              TEXT NOT NULL,
		system_fingerprint TEXT NOT NULL,
		request_id         TEXT NOT NULL,
		finish_reason      TEXT NOT NULL,
		prompt_digest      TEXT NOT NULL,
		seed_item_id       TEXT NOT NULL,
		input_tokens       INTEGER NOT NULL,
		output_tokens      INTEGER NOT NULL,
		cost_usd           REAL NOT NULL,
		started_at         INTEGER NOT NULL,
		duration_ns        INTEGER NOT NULL,
		recorded_at        INTEGER NOT NULL
	) STRICT;
	CREATE INDEX generations_by_slot ON generations (step_id, slot, accepted, attempt);

	CREATE TABLE seeds (
		ref         TEXT PRIMARY KEY,
		digest      TEXT NOT NULL,
		recorded_at INTEGER NOT NULL
	) STRICT;`,
	// 2: training and evaluation jobs, benchmark scores (see jobs.go).
	`CREATE TABLE jobs (
		job_id       TEXT PRIMARY KEY,
		step_id      TEXT NOT NULL,
		executor     TEXT NOT NULL,
		attempt      INTEGER NOT NULL,
		status       TEXT NOT NULL,
		gpu_hours    REAL NOT NULL DEFAULT 0,
		submitted_at INTEGER NOT NULL,
		updated_at   INTEGER NOT NULL
	) STRICT;
	CREATE INDEX jobs_by_step ON jobs (step_id, attempt);

	CREATE TABLE scores (
		step_id     TEXT NOT NULL,
		benchmark   TEXT NOT NULL,
		model       TEXT NOT NULL,
		value       REAL NOT NULL,
		recorded_at INTEGER NOT NULL,
		PRIMARY KEY (step_id, benchmark, model)
	) STRICT;`,
	// 3: intrinsic metrics (see metrics.go).
	migrationMetrics,
	// 4: every outcome of a step (the statuses interrupted, blocked and
	// not_run: the table is rebuilt for its CHECK), and the runs of a job
	// (a requeued Slurm job restarts its clock: earlier runs' GPU-hours
	// and elapsed time are kept apart from the current run's).
	migrationOutcomes,
	// 5: the batches of generate steps sent through a batch API
	// (batches.go).
	migrationBatches,
}

const migrationOutcomes = `CREATE TABLE steps_v4 (
		id                TEXT PRIMARY KEY,
		kind              TEXT NOT NULL,
		address           TEXT NOT NULL,
		generator         TEXT NOT NULL,
		setting           TEXT NOT NULL,
		target            INTEGER NOT NULL,
		status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'interrupted', 'blocked', 'not_run')),
		error             TEXT NOT NULL DEFAULT '',
		output            TEXT NOT NULL DEFAULT '',
		accepted          INTEGER NOT NULL DEFAULT 0,
		rejected          INTEGER NOT NULL DEFAULT 0,
		input_tokens      INTEGER NOT NULL DEFAULT 0,
		output_tokens     INTEGER NOT NULL DEFAULT 0,
		cost_usd          REAL NOT NULL DEFAULT 0,
		rejected_cost_usd REAL NOT NULL DEFAULT 0,
		started_at        INTEGER NOT NULL,
		updated_at        INTEGER NOT NULL
	) STRICT;
	INSERT INTO steps_v4 SELECT id, kind, address, generator, setting, target, status, error, output,
		accepted, rejected, input_tokens, output_tokens, cost_usd, rejected_cost_usd, started_at, updated_at FROM steps;
	DROP TABLE steps;
	ALTER TABLE steps_v4 RENAME TO steps;

	ALTER TABLE jobs ADD COLUMN runs INTEGER NOT NULL DEFAULT 1;
	ALTER TABLE jobs ADD COLUMN earlier_gpu_hours REAL NOT NULL DEFAULT 0;
	ALTER TABLE jobs ADD COLUMN run_gpu_hours REAL NOT NULL DEFAULT 0;
	ALTER TABLE jobs ADD COLUMN earlier_elapsed_ns INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE jobs ADD COLUMN run_elapsed_ns INTEGER NOT NULL DEFAULT 0;
	UPDATE jobs SET run_gpu_hours = gpu_hours;`

// Store is the state database. Its methods are safe for concurrent use.
type Store struct {
	path string
	wdb  *sql.DB // one connection: every write, in order
	rdb  *sql.DB // readers (WAL lets them run beside the writer)

	// Group commit.
	mu         sync.RWMutex // guards closed and sends on reqs against close(reqs)
	closed     bool
	reqs       chan *appendReq
	writerDone chan struct{}
	maxBatch   int               // records per transaction at most
	linger     time.Duration     // how long a batch may wait for company
	commitHook func(records int) // called before each transaction with its size (tests only; nil otherwise)

	existsStmt, insertStmt, updateStmt *sql.Stmt // on wdb

	txns     atomic.Int64 // append transactions attempted (for tests)
	appended atomic.Int64 // records committed by Append

	// testHookBeforeCommit, when set, runs in the writer before each
	// append transaction commits.
	testHookBeforeCommit func(n int)
}

// Open opens or creates dir/state.db, creating dir (0o755) if needed, and
// creates or migrates its schema. A database written by a newer agora
// (a schema version this binary does not know) is an error.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, DBFile))
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	if err := checkPresent(abs); err != nil {
		return nil, err
	}
	s := &Store{
		path:       abs,
		reqs:       make(chan *appendReq, 1024),
		writerDone: make(chan struct{}),
		maxBatch:   512,
		linger:     0, // see writeLoop
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	base := u.String()
	s.wdb, err = sql.Open("sqlite", base+"?_txlock=immediate&_busy_timeout=10000&_foreign_keys=1&_journal_mode=WAL&_synchronous=FULL")
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if err = s.init(ctx); err == nil {
		err = s.prepare(ctx)
	}
	if err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("open state %s: %w", abs, err)
	}
	s.rdb, err = sql.Open("sqlite", base+"?_busy_timeout=10000&_query_only=1")
	if err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("open state: %w", err)
	}
	s.rdb.SetMaxOpenConns(4)
	s.rdb.SetMaxIdleConns(4)
	if err := s.rdb.PingContext(ctx); err != nil {
		s.wdb.Close()
		s.rdb.Close()
		return nil, fmt.Errorf("open state %s: %w", abs, err)
	}
	go s.writeLoop()
	return s, nil
}

// init checks the journal mode and creates or migrates the schema.
func (s *Store) init(ctx context.Context) error {
	var mode string
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, not wal (is the file system local?)", mode)
	}
	var v int
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v == schemaVersion {
		return nil
	}
	if v == 0 {
		// A database without a schema: new, unless the directory shows
		// earlier work (integrity.go).
		if ev := earlierWork(filepath.Dir(s.path)); ev != "" {
			return &LostError{Path: s.path, Problem: "has no tables", Evidence: ev}
		}
	}
	// Rebuilding the steps table (migration 4) drops the table that
	// generations reference: foreign keys are off meanwhile (the pragma
	// is a no-op inside a transaction), checked before the commit. The
	// writer has a single connection, so the pragma applies to it.
	if _, err := s.wdb.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return err
	}
	defer s.wdb.ExecContext(context.WithoutCancel(ctx), "PRAGMA foreign_keys = ON")
	tx, err := s.wdb.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one migrator at a time
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this agora knows (%d): upgrade agora", v, schemaVersion)
	}
	for ; v < schemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return err
	}
	var bad int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM pragma_foreign_key_check").Scan(&bad); err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("migrate schema: %d rows break a foreign key", bad)
	}
	return tx.Commit()
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close stops accepting Appends, commits those already handed to the
// writer, and closes the database. Closing twice is a no-op.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.writerDone
	s.writeSerial(context.Background())
	err := errors.Join(s.existsStmt.Close(), s.insertStmt.Close(), s.updateStmt.Close(), s.rdb.Close(), s.wdb.Close())
	if err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	return nil
}

// StepInfo describes a step as the plan has it.
type StepInfo struct {
	ID        string
	Kind      string
	Address   string
	Generator string
	Setting   string
	Target    int // instances wanted
}

// StepState is a step as the state records it.
type StepState struct {
	StepInfo
	Status                    string // one of the Status constants
	Accepted, Rejected        int    // slots with an accepted generation; rejected generations
	InputTokens, OutputTokens int64
	// CostUSD is the total spend of the step, RejectedCostUSD the part of
	// it spent on rejected attempts.
	CostUSD, RejectedCostUSD float64
	Error                    string // why it failed, was interrupted, blocked or not run
	Output                   string // dataset path when done
	StartedAt, UpdatedAt     time.Time
}

// Completed reports which of ids are done; it implements
// compiler.Recorded.
func (s *Store) Completed(ctx context.Context, ids []string) (map[string]bool, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT id FROM steps WHERE status = 'done'")
	if err != nil {
		return nil, fmt.Errorf("completed steps: %w", err)
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("completed steps: %w", err)
		}
		done[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("completed steps: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		if done[id] {
			out[id] = true
		}
	}
	return out, nil
}

// BeginStep records that a step is running, inserting it or updating the
// row of an earlier attempt; the counters of an earlier attempt are kept,
// its error and output cleared.
func (s *Store) BeginStep(ctx context.Context, info StepInfo) error {
	if info.ID == "" {
		return fmt.Errorf("begin step: empty step id")
	}
	now := time.Now().UnixNano()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO steps (id, kind, address, generator, setting, target, status, started_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				kind = excluded.kind, address = excluded.address,
				generator = excluded.generator, setting = excluded.setting,
				target = excluded.target, status = 'running', error = '', output = '',
				started_at = excluded.started_at, updated_at = excluded.updated_at`,
			info.ID, info.Kind, info.Address, info.Generator, info.Setting, info.Target, now, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("begin step %s: %w", info.ID, err)
	}
	return nil
}

// FinishStep marks a step done with its output (a dataset path).
func (s *Store) FinishStep(ctx context.Context, id, output string) error {
	if err := s.setStatus(ctx, id, StatusDone, "", output); err != nil {
		return fmt.Errorf("finish step %s: %w", id, err)
	}
	return nil
}

// FailStep marks a step failed with a message.
func (s *Store) FailStep(ctx context.Context, id, msg string) error {
	if err := s.setStatus(ctx, id, StatusFailed, msg, ""); err != nil {
		return fmt.Errorf("fail step %s: %w", id, err)
	}
	return nil
}

// EndStep records how a step ended (one of StatusDone, StatusFailed,
// StatusInterrupted, StatusBlocked, StatusNotRun) with its reason and
// output, inserting the step when it was never begun (a step that could
// not start is recorded too, with why).
func (s *Store) EndStep(ctx context.Context, info StepInfo, status, reason, output string) error {
	switch status {
	case StatusDone, StatusFailed, StatusInterrupted, StatusBlocked, StatusNotRun:
	default:
		return fmt.Errorf("end step %s: %q is not an outcome", info.ID, status)
	}
	now := time.Now().UnixNano()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO steps (id, kind, address, generator, setting, target, status, error, output, started_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				status = excluded.status, error = excluded.error, output = excluded.output,
				updated_at = excluded.updated_at`,
			info.ID, info.Kind, info.Address, info.Generator, info.Setting, info.Target, status, reason, output, now, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("end step %s: %w", info.ID, s.closedErr(err))
	}
	return nil
}

// InterruptRunning records every step still running as interrupted, with
// reason: called by an apply holding the lock, such steps were left by an
// apply that ended without recording their outcome (killed). It returns
// the addresses of the steps it changed.
func (s *Store) InterruptRunning(ctx context.Context, reason string) ([]string, error) {
	var addrs []string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT address FROM steps WHERE status = 'running' ORDER BY address")
		if err != nil {
			return err
		}
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return err
			}
			addrs = append(addrs, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE steps SET status = 'interrupted', error = ?, updated_at = ? WHERE status = 'running'",
			reason, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("interrupt running steps: %w", s.closedErr(err))
	}
	return addrs, nil
}

func (s *Store) setStatus(ctx context.Context, id, status, msg, output string) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			"UPDATE steps SET status = ?, error = ?, output = ?, updated_at = ? WHERE id = ?",
			status, msg, output, time.Now().UnixNano(), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("no such step (it was never begun)")
		}
		return nil
	})
}

// writeTx runs fn in a write transaction that also increments the serial.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.closedErr(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE meta SET value = value + 1 WHERE key = 'serial'"); err != nil {
		return err
	}
	return tx.Commit()
}

// closedErr turns database/sql's error for a closed DB into ErrClosed.
func (s *Store) closedErr(err error) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return err
}

const stepColumns = `id, kind, address, generator, setting, target, status, accepted, rejected,
	input_tokens, output_tokens, cost_usd, rejected_cost_usd, error, output, started_at, updated_at`

func scanStep(sc interface{ Scan(...any) error }) (StepState, error) {
	var st StepState
	var started, updated int64
	err := sc.Scan(&st.ID, &st.Kind, &st.Address, &st.Generator, &st.Setting, &st.Target, &st.Status,
		&st.Accepted, &st.Rejected, &st.InputTokens, &st.OutputTokens, &st.CostUSD, &st.RejectedCostUSD,
		&st.Error, &st.Output, &started, &updated)
	st.StartedAt, st.UpdatedAt = fromNanos(started), fromNanos(updated)
	return st, err
}

// Steps returns every recorded step, ordered by address.
func (s *Store) Steps(ctx context.Context) ([]StepState, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+stepColumns+" FROM steps ORDER BY address, id")
	if err != nil {
		return nil, fmt.Errorf("read steps: %w", s.closedErr(err))
	}
	defer rows.Close()
	var out []StepState
	for rows.Next() {
		st, err := scanStep(rows)
		if err != nil {
			return nil, fmt.Errorf("read steps: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read steps: %w", err)
	}
	return out, nil
}

// Step returns one step; ok is false when the state has no such step.
func (s *Store) Step(ctx context.Context, id string) (st StepState, ok bool, err error) {
	st, err = scanStep(s.rdb.QueryRowContext(ctx, "SELECT "+stepColumns+" FROM steps WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return StepState{}, false, nil
	}
	if err != nil {
		return StepState{}, false, fmt.Errorf("read step %s: %w", id, s.closedErr(err))
	}
	return st, true, nil
}

// Serial is a counter that every BeginStep, FinishStep and FailStep
// increments (Append does not). A plan records it, so that apply can
// refuse a plan made against different state.
func (s *Store) Serial(ctx context.Context) (int64, error) {
	var n int64
	if err := s.rdb.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'serial'").Scan(&n); err != nil {
		return 0, fmt.Errorf("read serial: %w", s.closedErr(err))
	}
	return n, nil
}

// Spend sums the cost of every recorded generation, in total and by the
// generator of its step (the empty name collects steps without one).
func (s *Store) Spend(ctx context.Context) (total float64, byGenerator map[string]float64, err error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT generator, SUM(cost_usd) FROM steps GROUP BY generator")
	if err != nil {
		return 0, nil, fmt.Errorf("read spend: %w", s.closedErr(err))
	}
	defer rows.Close()
	byGenerator = map[string]float64{}
	for rows.Next() {
		var g string
		var usd float64
		if err := rows.Scan(&g, &usd); err != nil {
			return 0, nil, fmt.Errorf("read spend: %w", err)
		}
		if usd != 0 {
			byGenerator[g] = usd
		}
		total += usd
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("read spend: %w", err)
	}
	return total, byGenerator, nil
}

// RecordSeed records the digest of a seed data set (replacing an earlier
// one for the same reference).
func (s *Store) RecordSeed(ctx context.Context, ref, digest string) error {
	_, err := s.wdb.ExecContext(ctx, `
		INSERT INTO seeds (ref, digest, recorded_at) VALUES (?, ?, ?)
		ON CONFLICT (ref) DO UPDATE SET digest = excluded.digest, recorded_at = excluded.recorded_at`,
		ref, digest, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("record seed %s: %w", ref, s.closedErr(err))
	}
	return nil
}

// SeedDigest returns the digest recorded for a seed data set.
func (s *Store) SeedDigest(ctx context.Context, ref string) (digest string, ok bool, err error) {
	err = s.rdb.QueryRowContext(ctx, "SELECT digest FROM seeds WHERE ref = ?", ref).Scan(&digest)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read seed %s: %w", ref, s.closedErr(err))
	}
	return digest, true, nil
}

func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
