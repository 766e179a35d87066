package store

import (
	"context"
	"fmt"
)

// ExecutionCountsByStatus returns how many executions have each status, in
// one grouped count. Statuses no execution has are absent.
func (s *Store) ExecutionCountsByStatus(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	if err := s.db.NewSelect().TableExpr("executions").ColumnExpr("status, COUNT(*) AS n").
		GroupExpr("status").Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("store: count executions by status: %w", err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, nil
}
