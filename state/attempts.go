package state

import (
	"context"
	"fmt"
)

// LastAttempts returns, for every slot of a step with a recorded
// generation, the highest attempt number recorded: one query for a whole
// step, where NextAttempt is one per slot.
func (s *Store) LastAttempts(ctx context.Context, stepID string) (map[int]int, error) {
	rows, err := s.rdb.QueryContext(ctx,
		"SELECT slot, MAX(attempt) FROM generations WHERE step_id = ? GROUP BY slot", stepID)
	if err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", stepID, s.closedErr(err))
	}
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var slot, attempt int
		if err := rows.Scan(&slot, &attempt); err != nil {
			return nil, fmt.Errorf("read attempts of %s: %w", stepID, err)
		}
		out[slot] = attempt
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", stepID, err)
	}
	return out, nil
}
