package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// PCsOS returns the operating system of each of pcs that some agent has
// had: the one its heartbeats report, or, before its first heartbeat, the
// one it enrolled with ("" when neither said). A pc_id no agent has ever
// had (no heartbeat, no enrollment) is missing from the map.
func (s *Store) PCsOS(ctx context.Context, pcs []string) (map[string]string, error) {
	out := make(map[string]string, len(pcs))
	var rows []struct {
		PCID string `bun:"pc_id"`
		OS   string `bun:"os"`
	}
	for _, batch := range chunks(uniq(pcs)) {
		for _, table := range []string{"agent_keys", "agents"} { // agents last: heartbeats win
			rows = rows[:0]
			if err := s.db.NewSelect().TableExpr(table).Column("pc_id", "os").
				Where("pc_id IN (?)", bun.List(batch)).Scan(ctx, &rows); err != nil {
				return nil, fmt.Errorf("store: os of pcs: %w", err)
			}
			for _, r := range rows {
				if r.OS != "" || out[r.PCID] == "" {
					out[r.PCID] = r.OS
				}
			}
		}
	}
	return out, nil
}

// TargetOS counts the agents that all or groups select by the operating
// system their heartbeats report.
func (s *Store) TargetOS(ctx context.Context, all bool, groups []string) (map[string]int, error) {
	out := map[string]int{}
	var rows []struct {
		OS string `bun:"os"`
		N  int    `bun:"n"`
	}
	q := s.db.NewSelect().TableExpr("agents AS a").ColumnExpr("a.os AS os, COUNT(*) AS n").GroupExpr("a.os")
	switch {
	case all:
	case len(groups) > 0:
		q = q.Where("EXISTS (SELECT 1 FROM agent_groups AS g WHERE g.pc_id = a.pc_id AND g.group_name IN (?))", bun.List(uniq(groups)))
	default:
		return out, nil
	}
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("store: os of a target: %w", err)
	}
	for _, r := range rows {
		out[r.OS] += r.N
	}
	return out, nil
}
