package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// The batches of generate steps sent through a provider's batch API
// (schema 5). A batch is recorded before its file is uploaded, its file id
// as soon as the upload returns, and its batch id as soon as the creation
// returns: a killed agora finds every batch it may have paid for here,
// by id, or by its key in the provider's metadata when the creation's
// answer was lost.
const migrationBatches = `CREATE TABLE batches (
		key          TEXT PRIMARY KEY,
		step_id      TEXT NOT NULL,
		generator    TEXT NOT NULL,
		lines        TEXT NOT NULL,
		reserved_usd REAL NOT NULL,
		file_id      TEXT NOT NULL DEFAULT '',
		batch_id     TEXT NOT NULL DEFAULT '',
		status       TEXT NOT NULL,
		total        INTEGER NOT NULL DEFAULT 0,
		completed    INTEGER NOT NULL DEFAULT 0,
		failed       INTEGER NOT NULL DEFAULT 0,
		message      TEXT NOT NULL DEFAULT '',
		done         INTEGER NOT NULL DEFAULT 0,
		created_at   INTEGER NOT NULL,
		updated_at   INTEGER NOT NULL
	) STRICT;
	CREATE INDEX batches_by_step ON batches (step_id, done, created_at);`

// Statuses of a batch before the provider has one.
const (
	// BatchPrepared: recorded, its file not yet uploaded.
	BatchPrepared = "prepared"
	// BatchUploaded: its file uploaded, the batch not yet created.
	BatchUploaded = "uploaded"
	// BatchSubmitting: a batch with no file (a plugin's, which takes
	// the requests with the batch) about to be submitted: from here on
	// it may exist at the provider without its id recorded.
	BatchSubmitting = "submitting"
	// InlineFile is the file id of a batch with no file, once
	// BatchSubmitting.
	InlineFile = "inline"
)

// BatchLine is one request of a batch: a slot of its step and the attempt
// it makes.
type BatchLine struct {
	Slot    int `json:"slot"`
	Attempt int `json:"attempt"`
}

// Batch is one batch of a step's requests.
type Batch struct {
	Key       string // agora's id of the batch, in the provider's metadata
	StepID    string
	Generator string
	Lines     []BatchLine
	// ReservedUSD is the worst case of all its requests, at the batch
	// price.
	ReservedUSD float64
	FileID      string
	BatchID     string
	// Status is BatchPrepared, BatchUploaded, then the provider's.
	Status                   string
	Total, Completed, Failed int
	Message                  string
	// Done is set once every line's result is recorded.
	Done                 bool
	CreatedAt, UpdatedAt time.Time
}

// RecordBatch records a batch about to be uploaded (status
// BatchPrepared).
func (s *Store) RecordBatch(ctx context.Context, b Batch) error {
	lines, err := json.Marshal(b.Lines)
	if err != nil {
		return fmt.Errorf("record batch %s: %w", b.Key, err)
	}
	now := time.Now().UnixNano()
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO batches (key, step_id, generator, lines, reserved_usd, status, total, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, b.Key, b.StepID, b.Generator, string(lines), b.ReservedUSD, BatchPrepared, len(b.Lines), now, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("record batch %s: %w", b.Key, s.closedErr(err))
	}
	return nil
}

func (s *Store) updateBatch(ctx context.Context, key, set string, args ...any) error {
	args = append(args, time.Now().UnixNano(), key)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE batches SET "+set+", updated_at = ? WHERE key = ?", args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("no such batch (it was never recorded)")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update batch %s: %w", key, s.closedErr(err))
	}
	return nil
}

// SetBatchFile records the id of a batch's uploaded file.
func (s *Store) SetBatchFile(ctx context.Context, key, fileID string) error {
	status := BatchUploaded
	if fileID == InlineFile {
		status = BatchSubmitting
	}
	return s.updateBatch(ctx, key, "file_id = ?, status = ?", fileID, status)
}

// SetBatchID records the provider's id of a batch just created.
func (s *Store) SetBatchID(ctx context.Context, key, batchID, status string) error {
	return s.updateBatch(ctx, key, "batch_id = ?, status = ?", batchID, status)
}

// UpdateBatch records a batch's status and counts as the provider reports
// them.
func (s *Store) UpdateBatch(ctx context.Context, key, status string, total, completed, failed int, message string) error {
	return s.updateBatch(ctx, key, "status = ?, total = ?, completed = ?, failed = ?, message = ?", status, total, completed, failed, message)
}

// EndBatch records that every line of a batch has its result recorded.
func (s *Store) EndBatch(ctx context.Context, key string) error {
	return s.updateBatch(ctx, key, "done = 1")
}

const batchColumns = "key, step_id, generator, lines, reserved_usd, file_id, batch_id, status, total, completed, failed, message, done, created_at, updated_at"

func (s *Store) queryBatches(ctx context.Context, where string, args ...any) ([]Batch, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+batchColumns+" FROM batches "+where+" ORDER BY created_at, key", args...)
	if err != nil {
		return nil, fmt.Errorf("read batches: %w", s.closedErr(err))
	}
	defer rows.Close()
	var out []Batch
	for rows.Next() {
		var b Batch
		var lines string
		var done int
		var created, updated int64
		if err := rows.Scan(&b.Key, &b.StepID, &b.Generator, &lines, &b.ReservedUSD, &b.FileID, &b.BatchID, &b.Status,
			&b.Total, &b.Completed, &b.Failed, &b.Message, &done, &created, &updated); err != nil {
			return nil, fmt.Errorf("read batches: %w", err)
		}
		if err := json.Unmarshal([]byte(lines), &b.Lines); err != nil {
			return nil, fmt.Errorf("read batch %s: lines: %w", b.Key, err)
		}
		b.Done = done != 0
		b.CreatedAt, b.UpdatedAt = fromNanos(created), fromNanos(updated)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read batches: %w", err)
	}
	return out, nil
}

// OpenBatches returns a step's batches whose results are not all
// recorded, oldest first.
func (s *Store) OpenBatches(ctx context.Context, stepID string) ([]Batch, error) {
	return s.queryBatches(ctx, "WHERE step_id = ? AND done = 0", stepID)
}

// Batches returns every batch, oldest first.
func (s *Store) Batches(ctx context.Context) ([]Batch, error) {
	return s.queryBatches(ctx, "")
}

// BatchIDs returns the provider's id of every batch recorded since that
// has one.
func (s *Store) BatchIDs(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT batch_id FROM batches WHERE batch_id != '' AND created_at >= ? ORDER BY created_at", since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("read batches: %w", s.closedErr(err))
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read batches: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read batches: %w", err)
	}
	return ids, nil
}
