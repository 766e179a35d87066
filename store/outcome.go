package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Outcome is what became of an execution, in the words a person reads at
// a glance; Status stays the execution's life cycle, which scripts rely
// on. It is derived in one place, OutcomeOf, and kept in the executions
// table (column outcome) so that lists filter by it.
//
// A running execution is OutcomeRunning, and so is one whose late
// agent report reopened it. A rollout waiting for an approver is
// OutcomeAwaitingApproval and one stopped by a person or a failure gate
// is OutcomeHalted: neither is over, and neither has failed or succeeded
// yet. A killed execution is OutcomeKilled whatever its targets did.
// Once every target has ended, the execution succeeded only when every
// target succeeded; it failed when none did (also when it had no
// targets: nothing ran); anything in between (a target that failed, timed
// out, was skipped, expired, was killed or lost beside one that
// succeeded) completed with failures. Only OutcomeSucceeded is shown in
// green.
type Outcome string

// The outcomes; their values are the API's.
const (
	OutcomeRunning               Outcome = "running"
	OutcomeAwaitingApproval      Outcome = "awaiting_approval"
	OutcomeHalted                Outcome = "halted"
	OutcomeSucceeded             Outcome = "succeeded"
	OutcomeCompletedWithFailures Outcome = "completed_with_failures"
	OutcomeFailed                Outcome = "failed"
	OutcomeKilled                Outcome = "killed"
)

// Outcomes lists every outcome in display order.
var Outcomes = []Outcome{OutcomeRunning, OutcomeAwaitingApproval, OutcomeHalted, OutcomeSucceeded,
	OutcomeCompletedWithFailures, OutcomeFailed, OutcomeKilled}

// Valid reports whether o is one of Outcomes.
func (o Outcome) Valid() bool {
	for _, v := range Outcomes {
		if o == v {
			return true
		}
	}
	return false
}

// OutcomeOf derives an execution's outcome from its status and the
// states of its targets (see Outcome). An unknown status reads as running:
// it is not over as far as anyone can tell.
func OutcomeOf(status Status, c Counts) Outcome {
	switch status {
	case StatusKilled:
		return OutcomeKilled
	case StatusHalted:
		return OutcomeHalted
	case StatusAwaitingApproval:
		return OutcomeAwaitingApproval
	case StatusCompleted:
		switch {
		case c.Pending+c.Running > 0:
			return OutcomeRunning
		case c.Succeeded == 0:
			return OutcomeFailed
		case c.Succeeded == c.Total():
			return OutcomeSucceeded
		default:
			return OutcomeCompletedWithFailures
		}
	}
	return OutcomeRunning
}

// Outcome is the execution's outcome from its status and Counts.
func (e Execution) Outcome() Outcome { return OutcomeOf(e.Status, e.Counts) }

// refreshOutcomes stores the outcome of the executions ids where the
// stored one differs from OutcomeOf their status and targets. Only a
// completed execution's targets are counted: every other status decides
// the outcome alone, and a completed execution's targets change seldom
// (its last target ending, a late report replacing one the server wrote).
// It runs after every batch of results, so its reads are prepared once.
func (s *Store) refreshOutcomes(ctx context.Context, ids []string) error {
	type stored struct {
		id      string
		status  Status
		outcome string
	}
	rows := make([]stored, 0, len(ids))
	var done []string
	for _, id := range ids {
		rs, err := s.queryPrepared(ctx, "SELECT status, outcome FROM executions WHERE exec_id = ?", id)
		if err != nil {
			return fmt.Errorf("store: read outcome of %s: %w", id, err)
		}
		for rs.Next() {
			r := stored{id: id}
			if err := rs.Scan(&r.status, &r.outcome); err != nil {
				rs.Close()
				return fmt.Errorf("store: read outcome of %s: %w", id, err)
			}
			rows = append(rows, r)
			if r.status == StatusCompleted {
				done = append(done, id)
			}
		}
		if err := errors.Join(rs.Err(), rs.Close()); err != nil {
			return fmt.Errorf("store: read outcome of %s: %w", id, err)
		}
	}
	counts, err := s.counts(ctx, done)
	if err != nil {
		return err
	}
	var changed [][2]string
	for _, r := range rows {
		if o := OutcomeOf(r.status, counts[r.id]); string(o) != r.outcome {
			changed = append(changed, [2]string{string(o), r.id})
		}
	}
	if len(changed) == 0 {
		return nil
	}
	err = s.prepared(ctx, "UPDATE executions SET outcome = ? WHERE exec_id = ?", func(exec func(...any) (sql.Result, error)) error {
		for _, c := range changed {
			if _, err := exec(c[0], c[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: update outcomes: %w", err)
	}
	return nil
}

// fillOutcomes computes the outcome of every execution that has none
// (those recorded before outcomes were kept), in batches.
func (s *Store) fillOutcomes(ctx context.Context) error {
	for {
		var ids []string
		if err := s.db.NewSelect().TableExpr("executions").Column("exec_id").Where("outcome = ''").
			Limit(batchRows).Scan(ctx, &ids); err != nil {
			return fmt.Errorf("store: executions without an outcome: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		if err := s.inTx(ctx, func(tx *Store) error { return tx.refreshOutcomes(ctx, ids) }); err != nil {
			return err
		}
	}
}
