package store

import (
	"context"
	"fmt"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// TargetFilter selects the targets of one execution. Empty fields match
// every target.
type TargetFilter struct {
	ExecID string
	State  wire.State
	// Wave is the index of a rollout's wave (nil: every wave).
	Wave *int
	// Limit defaults to DefaultLimit and is clamped to MaxLimit.
	Limit, Offset int
}

// ExecTarget is one target of an execution and what the server knows of
// its PC, which says why a pending target has not run.
type ExecTarget struct {
	Result
	// AgentKnown: some agent has had this PC id (it sent a heartbeat or
	// enrolled). AgentSeen: it sent a heartbeat; AgentOfflineAfter is then
	// when it counts as offline.
	AgentKnown, AgentSeen bool
	AgentOfflineAfter     time.Time
}

// AgentOnline reports whether the target's agent is online at now.
func (t ExecTarget) AgentOnline(now time.Time) bool {
	return t.AgentSeen && now.Before(t.AgentOfflineAfter)
}

type execTargetRow struct {
	resultRow         `bun:",extend"`
	AgentOfflineAfter *int64 `bun:"agent_offline_after,scanonly"`
	AgentEnrolled     bool   `bun:"agent_enrolled,scanonly"`
}

// ExecTargets returns one page of the targets of f.ExecID that f selects,
// ordered by pc_id, with their agents' presence, and how many it selects
// in all.
func (s *Store) ExecTargets(ctx context.Context, f TargetFilter) ([]ExecTarget, int, error) {
	limit, offset := page(f.Limit, f.Offset)
	var rows []execTargetRow
	q := s.db.NewSelect().Model(&rows).Where("r.exec_id = ?", f.ExecID)
	if f.State != "" {
		q = q.Where("r.state = ?", string(f.State))
	}
	if f.Wave != nil {
		q = q.Where("r.wave = ?", *f.Wave)
	}
	total, err := q.Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("store: count targets of %s: %w", f.ExecID, err)
	}
	err = q.ColumnExpr("r.*").
		ColumnExpr("(SELECT a.offline_after FROM agents AS a WHERE a.pc_id = r.pc_id) AS agent_offline_after").
		ColumnExpr("EXISTS (SELECT 1 FROM agent_keys AS k WHERE k.pc_id = r.pc_id) AS agent_enrolled").
		OrderExpr(s.orderText("r.pc_id")).Limit(int64(limit)).Offset(int64(offset)).Scan(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("store: targets of %s: %w", f.ExecID, err)
	}
	out := make([]ExecTarget, len(rows))
	for i, r := range rows {
		out[i] = ExecTarget{Result: r.result(), AgentSeen: r.AgentOfflineAfter != nil, AgentOfflineAfter: fromMillis(r.AgentOfflineAfter)}
		out[i].AgentKnown = out[i].AgentSeen || r.AgentEnrolled
	}
	return out, int(total), nil
}
