package state

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// migrationMetrics (schema version 3) adds the intrinsic metrics: every
// judgement with its raw text and cost, the embeddings paid for, per-item
// values (perplexity, reward), and each metric step's results.
const migrationMetrics = `
	CREATE TABLE judgements (
		step_id       TEXT NOT NULL,
		slot          INTEGER NOT NULL,
		aspect        TEXT NOT NULL,
		attempt       INTEGER NOT NULL,
		score         INTEGER NOT NULL,
		error         TEXT NOT NULL,
		raw           TEXT NOT NULL,
		model         TEXT NOT NULL,
		input_tokens  INTEGER NOT NULL,
		output_tokens INTEGER NOT NULL,
		cost_usd      REAL NOT NULL,
		recorded_at   INTEGER NOT NULL,
		PRIMARY KEY (step_id, slot, aspect, attempt)
	) STRICT;

	CREATE TABLE embeddings (
		step_id TEXT NOT NULL,
		slot    INTEGER NOT NULL,
		field   TEXT NOT NULL,
		vector  BLOB NOT NULL,
		PRIMARY KEY (step_id, slot, field)
	) STRICT;

	CREATE TABLE item_values (
		step_id TEXT NOT NULL,
		slot    INTEGER NOT NULL,
		name    TEXT NOT NULL,
		value   REAL NOT NULL,
		tokens  INTEGER NOT NULL,
		PRIMARY KEY (step_id, slot, name)
	) STRICT;

	CREATE TABLE metrics (
		step_id     TEXT NOT NULL,
		name        TEXT NOT NULL,
		value       REAL NOT NULL,
		n           INTEGER NOT NULL,
		ci_low      REAL,
		ci_high     REAL,
		detail      TEXT NOT NULL,
		recorded_at INTEGER NOT NULL,
		PRIMARY KEY (step_id, name)
	) STRICT;`

// Judgement is one answer of an LLM judge about one item (a slot of a
// generate step's data) and aspect: its score, or why it could not be
// read (Score 0, Error set), and what it cost.
type Judgement struct {
	StepID, Aspect string
	Slot, Attempt  int
	Score          int
	Error          string
	Raw, Model     string

	InputTokens, OutputTokens int
	CostUSD                   float64
}

// RecordJudgement makes a judgement durable and adds its tokens and cost
// to its step's counters (a readable judgement counts as accepted, an
// unreadable one as rejected), in one transaction, so the state's spend
// includes it before the caller books it.
func (s *Store) RecordJudgement(ctx context.Context, j Judgement) error {
	now := time.Now().UnixNano()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO judgements (step_id, slot, aspect, attempt, score, error, raw, model, input_tokens, output_tokens, cost_usd, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			j.StepID, j.Slot, j.Aspect, j.Attempt, j.Score, j.Error, j.Raw, j.Model, j.InputTokens, j.OutputTokens, j.CostUSD, now); err != nil {
			return err
		}
		ok, bad, badCost := 1, 0, 0.0
		if j.Error != "" {
			ok, bad, badCost = 0, 1, j.CostUSD
		}
		return addSpend(ctx, tx, j.StepID, ok, bad, j.InputTokens, j.OutputTokens, j.CostUSD, badCost, now)
	})
	if err != nil {
		return fmt.Errorf("record judgement of step %s: %w", j.StepID, s.closedErr(err))
	}
	return nil
}

// addSpend adds to a step's counters; the step must have been begun.
func addSpend(ctx context.Context, tx *sql.Tx, stepID string, accepted, rejected, in, out int, cost, rejectedCost float64, now int64) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE steps SET accepted = accepted + ?, rejected = rejected + ?,
			input_tokens = input_tokens + ?, output_tokens = output_tokens + ?,
			cost_usd = cost_usd + ?, rejected_cost_usd = rejected_cost_usd + ?, updated_at = ?
		WHERE id = ?`, accepted, rejected, in, out, cost, rejectedCost, now, stepID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("no such step (it was never begun)")
	}
	return nil
}

// JudgedItems returns, for each of steps ids that has any, the number of
// its judgements (an item under an aspect) with a readable score.
func (s *Store) JudgedItems(ctx context.Context, ids []string) (map[string]int, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT step_id, COUNT(*) FROM (SELECT DISTINCT step_id, slot, aspect FROM judgements WHERE error = '')
		GROUP BY step_id`)
	if err != nil {
		return nil, fmt.Errorf("judged items: %w", s.closedErr(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("judged items: %w", err)
		}
		if want[id] {
			out[id] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("judged items: %w", err)
	}
	return out, nil
}

// Judgements returns a step's judgements ordered by slot, aspect and
// attempt.
func (s *Store) Judgements(ctx context.Context, stepID string) ([]Judgement, error) {
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT step_id, slot, aspect, attempt, score, error, raw, model, input_tokens, output_tokens, cost_usd
		FROM judgements WHERE step_id = ? ORDER BY slot, aspect, attempt`, stepID)
	if err != nil {
		return nil, fmt.Errorf("read judgements: %w", s.closedErr(err))
	}
	defer rows.Close()
	var out []Judgement
	for rows.Next() {
		var j Judgement
		if err := rows.Scan(&j.StepID, &j.Slot, &j.Aspect, &j.Attempt, &j.Score, &j.Error, &j.Raw, &j.Model,
			&j.InputTokens, &j.OutputTokens, &j.CostUSD); err != nil {
			return nil, fmt.Errorf("read judgements: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read judgements: %w", err)
	}
	return out, nil
}

// RecordEmbeddings makes one embeddings response durable: the vectors of
// the slots' field ("instruction" or "response") and the request's tokens
// and cost, added to the step's counters, in one transaction.
func (s *Store) RecordEmbeddings(ctx context.Context, stepID, field string, slots []int, vecs [][]float32, inputTokens int, cost float64) error {
	if len(slots) != len(vecs) {
		return fmt.Errorf("record embeddings of step %s: %d slots, %d vectors", stepID, len(slots), len(vecs))
	}
	now := time.Now().UnixNano()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for i, slot := range slots {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO embeddings (step_id, slot, field, vector) VALUES (?, ?, ?, ?)
				ON CONFLICT (step_id, slot, field) DO UPDATE SET vector = excluded.vector`,
				stepID, slot, field, encodeVector(vecs[i])); err != nil {
				return err
			}
		}
		return addSpend(ctx, tx, stepID, len(slots), 0, inputTokens, 0, cost, 0, now)
	})
	if err != nil {
		return fmt.Errorf("record embeddings of step %s: %w", stepID, s.closedErr(err))
	}
	return nil
}

// Embeddings returns a step's embeddings of field by slot.
func (s *Store) Embeddings(ctx context.Context, stepID, field string) (map[int][]float32, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT slot, vector FROM embeddings WHERE step_id = ? AND field = ?", stepID, field)
	if err != nil {
		return nil, fmt.Errorf("read embeddings: %w", s.closedErr(err))
	}
	defer rows.Close()
	out := map[int][]float32{}
	for rows.Next() {
		var slot int
		var b []byte
		if err := rows.Scan(&slot, &b); err != nil {
			return nil, fmt.Errorf("read embeddings: %w", err)
		}
		if len(b)%4 != 0 {
			return nil, fmt.Errorf("read embeddings: slot %d: %d bytes is not a float32 vector", slot, len(b))
		}
		out[slot] = decodeVector(b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read embeddings: %w", err)
	}
	return out, nil
}

func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeVector(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// ItemValue is a per-item measurement of a metric step: a response's
// negative log-likelihood and its token count, or a reward.
type ItemValue struct {
	Slot   int
	Name   string
	Value  float64
	Tokens int
}

// RecordItemValues records (or replaces) per-item values of a step and
// adds what they cost (the tokens and dollars of the requests that
// measured them; zero for a job's) to the step's counters, in one
// transaction. The step must have been begun.
func (s *Store) RecordItemValues(ctx context.Context, stepID string, vs []ItemValue, inputTokens, outputTokens int, cost float64) error {
	now := time.Now().UnixNano()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, v := range vs {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO item_values (step_id, slot, name, value, tokens) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (step_id, slot, name) DO UPDATE SET value = excluded.value, tokens = excluded.tokens`,
				stepID, v.Slot, v.Name, v.Value, v.Tokens); err != nil {
				return err
			}
		}
		return addSpend(ctx, tx, stepID, len(vs), 0, inputTokens, outputTokens, cost, 0, now)
	})
	if err != nil {
		return fmt.Errorf("record item values of step %s: %w", stepID, s.closedErr(err))
	}
	return nil
}

// ItemValues returns a step's per-item values named name, ordered by slot.
func (s *Store) ItemValues(ctx context.Context, stepID, name string) ([]ItemValue, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT slot, name, value, tokens FROM item_values WHERE step_id = ? AND name = ? ORDER BY slot", stepID, name)
	if err != nil {
		return nil, fmt.Errorf("read item values: %w", s.closedErr(err))
	}
	defer rows.Close()
	var out []ItemValue
	for rows.Next() {
		var v ItemValue
		if err := rows.Scan(&v.Slot, &v.Name, &v.Value, &v.Tokens); err != nil {
			return nil, fmt.Errorf("read item values: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read item values: %w", err)
	}
	return out, nil
}

// Metric is one result of a metric step, stored under the feature name the
// report uses (docs/metrics.md), e.g. instruction_difficulty.
type Metric struct {
	StepID, Name string
	Value        float64
	// N is the number of items the value is computed from.
	N int
	// Low and High bound its 95% confidence interval; nil when the
	// metric has none.
	Low, High *float64
	// Detail is a JSON document with the rest (a score distribution, the
	// unreadable judgements, the other diversity measure, …).
	Detail string
}

// RecordMetrics records a step's results, replacing earlier ones of the
// same names, in one transaction.
func (s *Store) RecordMetrics(ctx context.Context, ms []Metric) error {
	now := time.Now().UnixNano()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, m := range ms {
			detail := m.Detail
			if detail == "" {
				detail = "{}"
			}
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO metrics (step_id, name, value, n, ci_low, ci_high, detail, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (step_id, name) DO UPDATE SET value = excluded.value, n = excluded.n, ci_low = excluded.ci_low,
					ci_high = excluded.ci_high, detail = excluded.detail, recorded_at = excluded.recorded_at`,
				m.StepID, m.Name, m.Value, m.N, m.Low, m.High, detail, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record metrics: %w", s.closedErr(err))
	}
	return nil
}

// Metrics returns every recorded metric, ordered by step and name.
func (s *Store) Metrics(ctx context.Context) ([]Metric, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT step_id, name, value, n, ci_low, ci_high, detail FROM metrics ORDER BY step_id, name")
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", s.closedErr(err))
	}
	defer rows.Close()
	var out []Metric
	for rows.Next() {
		var m Metric
		var lo, hi sql.NullFloat64
		if err := rows.Scan(&m.StepID, &m.Name, &m.Value, &m.N, &lo, &hi, &m.Detail); err != nil {
			return nil, fmt.Errorf("read metrics: %w", err)
		}
		if lo.Valid {
			m.Low = &lo.Float64
		}
		if hi.Valid {
			m.High = &hi.Float64
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}
