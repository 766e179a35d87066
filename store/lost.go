package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/kanadehq/kanade/agent/wire"
)

// RunningTarget is a target reported running, with what it takes to judge
// whether it is lost (see the dispatcher's sweeper).
type RunningTarget struct {
	ExecID, PCID string
	// Since is when the server stored the running report, by the
	// server's clock (agent clocks drift); a repeated report moves it.
	Since time.Time
	// Timeout is the execution's timeout, which the agent counts from
	// the script's real start, just before it reports running.
	Timeout time.Duration
	// Agent is the target's agent as its last heartbeat described it
	// (without groups); KnownAgent is false when the server has none.
	Agent      Agent
	KnownAgent bool
}

// RunningTargetsPage is the most targets one RunningPastTimeout call
// returns.
const RunningTargetsPage = 5000

// RunningPastTimeout returns up to RunningTargetsPage running targets whose
// timeout had passed at before (Since + Timeout <= before) in executions
// that are not over, with their agents, ordered by exec_id and pc_id and
// starting after the target (afterExec, afterPC) ("", "": from the first).
func (s *Store) RunningPastTimeout(ctx context.Context, before time.Time, afterExec, afterPC string) ([]RunningTarget, error) {
	var rows []struct {
		ExecID       string  `bun:"exec_id"`
		PCID         string  `bun:"pc_id"`
		UpdatedAt    int64   `bun:"updated_at"`
		TimeoutMS    int64   `bun:"timeout_ms"`
		LastSeen     *int64  `bun:"last_seen"`
		OfflineAfter *int64  `bun:"offline_after"`
		IntervalMS   *int64  `bun:"interval_ms"`
		Running      *int    `bun:"running"`
		RunningExecs *string `bun:"running_execs"`
	}
	// Open executions, and killed ones whose last targets have not ended
	// (their finished_at is set once they have): through the status index
	// and results (exec_id, state), never a scan of every result.
	q := s.db.NewSelect().TableExpr("executions AS e").
		Join("JOIN results AS r ON r.exec_id = e.exec_id AND r.state = ?", string(wire.StateRunning)).
		Join("LEFT JOIN agents AS a ON a.pc_id = r.pc_id").
		ColumnExpr("r.exec_id, r.pc_id, r.updated_at, e.timeout_ms").
		ColumnExpr("a.last_seen, a.offline_after, a.interval_ms, a.running, a.running_execs").
		Where("(e.status IN (?) OR (e.status = ? AND e.finished_at IS NULL))", bun.List(openStatuses), StatusKilled).
		Where("r.updated_at + e.timeout_ms <= ?", before.UnixMilli())
	if afterExec != "" {
		exec, pc := s.orderText("r.exec_id"), s.orderText("r.pc_id")
		q = q.Where("("+exec+" > ? OR (r.exec_id = ? AND "+pc+" > ?))", afterExec, afterExec, afterPC)
	}
	err := q.OrderExpr(s.orderText("r.exec_id")).OrderExpr(s.orderText("r.pc_id")).
		Limit(RunningTargetsPage).
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("store: running targets past their timeout: %w", err)
	}
	out := make([]RunningTarget, len(rows))
	for i, r := range rows {
		t := RunningTarget{ExecID: r.ExecID, PCID: r.PCID, Since: time.UnixMilli(r.UpdatedAt).UTC(),
			Timeout: time.Duration(r.TimeoutMS) * time.Millisecond}
		if r.LastSeen != nil {
			t.KnownAgent = true
			t.Agent = Agent{PCID: r.PCID, LastSeen: time.UnixMilli(*r.LastSeen).UTC(),
				OfflineAfter: time.UnixMilli(deref(r.OfflineAfter)).UTC(),
				Interval:     time.Duration(deref(r.IntervalMS)) * time.Millisecond,
				Running:      deref(r.Running), RunningExecs: splitExecs(deref(r.RunningExecs))}
		}
		out[i] = t
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// LostTarget is a running target to end as lost: Since is the
// RunningTarget's, so that a target reported on meanwhile is left alone.
type LostTarget struct {
	ExecID, PCID string
	Since        time.Time
	Reason       string
}

// EndLost turns the targets ts into lost (finished at now, written by the
// server, so a late report of the agent replaces them), each only if it is
// still running with the same Since, updates the executions' statuses and
// returns the exec_ids it changed, sorted.
func (s *Store) EndLost(ctx context.Context, ts []LostTarget, now time.Time) ([]string, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b LostTarget) int { // one lock order on PostgreSQL
		if c := strings.Compare(a.ExecID, b.ExecID); c != 0 {
			return c
		}
		return strings.Compare(a.PCID, b.PCID)
	})
	ms := now.UnixMilli()
	var changed []string
	err := s.inTx(ctx, func(tx *Store) error {
		changed = changed[:0]
		err := tx.prepared(ctx, `UPDATE results SET state = ?, reason = ?, by_server = TRUE, updated_at = ?, finished_at = ?
WHERE exec_id = ? AND pc_id = ? AND state = ? AND updated_at = ?`, func(exec func(...any) (sql.Result, error)) error {
			for _, t := range ts {
				res, err := exec(string(wire.StateLost), clean(t.Reason), ms, ms, t.ExecID, t.PCID, string(wire.StateRunning), t.Since.UnixMilli())
				if err != nil {
					return err
				}
				if n, err := res.RowsAffected(); err != nil {
					return err
				} else if n > 0 && (len(changed) == 0 || changed[len(changed)-1] != t.ExecID) {
					changed = append(changed, t.ExecID)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: end lost targets: %w", err)
		}
		return tx.refreshStatus(ctx, changed, now)
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}
