package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/kanadehq/kanade/agent/wire"
)

// Result is the state of one target (PC) of an execution.
type Result struct {
	ExecID, PCID string
	State        wire.State
	Reason       string
	ExitCode     *int
	Stdout       string
	Stderr       string
	Truncated    bool
	// ByServer is set when the server wrote the state (expired, killed
	// before it started) rather than the agent.
	ByServer                         bool
	StartedAt, FinishedAt, UpdatedAt time.Time
	// Wave is the index of the target's wave in a rollout (nil otherwise).
	Wave *int
}

type resultRow struct {
	bun.BaseModel `bun:"table:results,alias:r"`

	ExecID     string `bun:"exec_id,pk"`
	PCID       string `bun:"pc_id,pk"`
	State      string `bun:"state"`
	Reason     string `bun:"reason"`
	ExitCode   *int64 `bun:"exit_code"`
	Stdout     string `bun:"stdout"`
	Stderr     string `bun:"stderr"`
	Truncated  bool   `bun:"truncated"`
	StartedAt  *int64 `bun:"started_at"`
	FinishedAt *int64 `bun:"finished_at"`
	UpdatedAt  int64  `bun:"updated_at"`
	ByServer   bool   `bun:"by_server"`
	Wave       *int   `bun:"wave"`
}

func (r *resultRow) result() Result {
	res := Result{
		ExecID:     r.ExecID,
		PCID:       r.PCID,
		State:      wire.State(r.State),
		Reason:     r.Reason,
		Stdout:     r.Stdout,
		Stderr:     r.Stderr,
		Truncated:  r.Truncated,
		ByServer:   r.ByServer,
		StartedAt:  fromMillis(r.StartedAt),
		FinishedAt: fromMillis(r.FinishedAt),
		UpdatedAt:  time.UnixMilli(r.UpdatedAt).UTC(),
		Wave:       r.Wave,
	}
	if r.ExitCode != nil {
		c := int(*r.ExitCode)
		res.ExitCode = &c
	}
	return res
}

// upsertResults is the statement ApplyResults runs, without its VALUES
// rows. A report replaces a row only while the row is pending or
// running or was written by the server; it never replaces a final state an
// agent reported, and a lost target only takes a final report (a late
// "running" would reopen a target the server has given up on).
const upsertResults = `INSERT INTO results
	(exec_id, pc_id, state, reason, exit_code, stdout, stderr, truncated, started_at, finished_at, updated_at, by_server)
VALUES %s
ON CONFLICT (exec_id, pc_id) DO UPDATE SET
	state = excluded.state, reason = excluded.reason, exit_code = excluded.exit_code,
	stdout = excluded.stdout, stderr = excluded.stderr, truncated = excluded.truncated,
	started_at = COALESCE(excluded.started_at, results.started_at),
	finished_at = excluded.finished_at, updated_at = excluded.updated_at, by_server = FALSE
WHERE results.state IN ('pending', 'running')
	OR (results.by_server = TRUE AND NOT (results.state = 'lost' AND excluded.state = 'running'))`

// ApplyResults stores agent reports in one transaction, upserting each by
// (exec_id, pc_id) with multi-row statements, and then updates the status
// of every execution it changed (see RequestKill and ExpireOverdue for the
// other ways a status moves). A report replaces the stored row only if the
// row is pending or running or its state was written by the server
// (expired, killed before it started, lost); it never replaces a final
// state an agent reported, so repeats and late "running" reports change
// nothing. A lost target takes the agent's final report, not a "running". A
// report for a PC that is not a target of a recorded execution is dropped
// (onlyTargets); one for an execution not recorded yet is kept. A report
// that omits started_at
// keeps the stored one. Within rs, reports for one target count in order
// under the same rule. Text is made valid UTF-8 without NUL bytes.
//
// It returns the distinct exec_ids whose targets changed, sorted. An
// invalid report (see wire.Result.Validate) fails the whole call.
func (s *Store) ApplyResults(ctx context.Context, rs []wire.Result, now time.Time) ([]string, error) {
	type key struct{ exec, pc string }
	folded := make(map[key]int, len(rs))
	var rows []resultRow
	for i := range rs {
		r := &rs[i]
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("store: result %d (%s/%s): %w", i, r.ExecID, r.PCID, err)
		}
		row := resultRow{
			ExecID:     r.ExecID,
			PCID:       r.PCID,
			State:      string(r.State),
			Reason:     clean(r.Reason),
			Stdout:     clean(r.Stdout),
			Stderr:     clean(r.Stderr),
			Truncated:  r.Truncated,
			StartedAt:  millis(r.StartedAt),
			FinishedAt: millis(r.FinishedAt),
			UpdatedAt:  now.UnixMilli(),
		}
		if r.ExitCode != nil {
			c := int64(*r.ExitCode)
			row.ExitCode = &c
		}
		k := key{r.ExecID, r.PCID}
		j, ok := folded[k]
		if !ok {
			folded[k] = len(rows)
			rows = append(rows, row)
			continue
		}
		if wire.State(rows[j].State).Final() {
			continue
		}
		if row.StartedAt == nil {
			row.StartedAt = rows[j].StartedAt
		}
		rows[j] = row
	}
	// A fixed order keeps concurrent calls from deadlocking on PostgreSQL.
	slices.SortFunc(rows, func(a, b resultRow) int {
		if c := strings.Compare(a.ExecID, b.ExecID); c != 0 {
			return c
		}
		return strings.Compare(a.PCID, b.PCID)
	})

	var touched []string
	err := s.inTx(ctx, func(tx *Store) error {
		rows, err := tx.onlyTargets(ctx, rows)
		if err != nil {
			return err
		}
		if tx.driver == DriverSQLite {
			touched, err = tx.upsertResultsSQLite(ctx, rows)
		} else {
			touched, err = tx.upsertResultsBatched(ctx, rows)
		}
		if err != nil {
			return err
		}
		slices.Sort(touched)
		touched = slices.Compact(touched)
		return tx.refreshStatus(ctx, touched, now)
	})
	if err != nil {
		return nil, err
	}
	return touched, nil
}

// onlyTargets keeps the rows (sorted by exec_id) of recorded targets.
// Every target of an execution has a row from the moment the execution
// (or its wave) starts, so a result for a recorded execution without one
// comes from a PC that was never asked: an agent cannot add itself to an
// execution, reopen a finished one or add failures to it. Results of an
// execution that is not recorded (yet: a replay after a restore) are kept.
func (s *Store) onlyTargets(ctx context.Context, rows []resultRow) ([]resultRow, error) {
	out := rows[:0]
	for len(rows) > 0 {
		n := 1
		for n < len(rows) && rows[n].ExecID == rows[0].ExecID {
			n++
		}
		pcs := make([]string, n)
		for i, r := range rows[:n] {
			pcs[i] = r.PCID
		}
		known := make(map[string]bool, n)
		for _, batch := range chunks(pcs) {
			var have []string
			if err := s.db.NewSelect().Table("results").Column("pc_id").Where("exec_id = ?", rows[0].ExecID).
				Where("pc_id IN (?)", bun.List(batch)).Scan(ctx, &have); err != nil {
				return nil, fmt.Errorf("store: apply results: %w", err)
			}
			for _, pc := range have {
				known[pc] = true
			}
		}
		if len(known) < n {
			recorded, err := s.db.NewSelect().Table("executions").Where("exec_id = ?", rows[0].ExecID).Exists(ctx)
			if err != nil {
				return nil, fmt.Errorf("store: apply results: %w", err)
			}
			if !recorded {
				out = append(out, rows[:n]...)
				rows = rows[n:]
				continue
			}
		}
		for _, r := range rows[:n] {
			if known[r.PCID] {
				out = append(out, r)
			}
		}
		rows = rows[n:]
	}
	return out, nil
}

// upsertResultsSQLite upserts the rows of one execution at a time, in
// statements of several rows prepared once (execInShapes): 10,000 results
// in batches of 500 took 82–87 ms with a prepared statement per row, 67–70
// ms this way (BenchmarkApplyResults10k when it applied them in order, with
// 36 bytes of output each). rows are sorted by exec_id; a statement
// holds rows of one execution only, so its row count tells whether that
// execution changed. It returns the exec_ids of the rows it wrote (with
// repeats).
func (s *Store) upsertResultsSQLite(ctx context.Context, rows []resultRow) ([]string, error) {
	var touched []string
	for len(rows) > 0 {
		n := 1
		for n < len(rows) && rows[n].ExecID == rows[0].ExecID {
			n++
		}
		changed, err := s.upsertOneExecution(ctx, rows[:n])
		if err != nil {
			return nil, err
		}
		if changed {
			touched = append(touched, rows[0].ExecID)
		}
		rows = rows[n:]
	}
	return touched, nil
}

// upsertOneExecution upserts rows of one execution and reports whether any
// changed.
func (s *Store) upsertOneExecution(ctx context.Context, rows []resultRow) (bool, error) {
	n, err := s.execInShapes(ctx, upsertResults, 12, len(rows), func(args []any, i int) []any {
		return append(args, resultArgs(rows[i])...)
	})
	if err != nil {
		return false, fmt.Errorf("store: apply results of %s: %w", rows[0].ExecID, err)
	}
	return n > 0, nil
}

// upsertResultsBatched runs multi-row upserts: on PostgreSQL one round
// trip per batch beats one per row. It returns the exec_ids of the rows it
// wrote (with repeats).
func (s *Store) upsertResultsBatched(ctx context.Context, rows []resultRow) ([]string, error) {
	var touched []string
	for rest := rows; len(rest) > 0; {
		n, size := 0, 0
		for n < len(rest) && n < batchRows && (n == 0 || size < batchBytes) {
			size += len(rest[n].Stdout) + len(rest[n].Stderr) + len(rest[n].Reason)
			n++
		}
		args := make([]any, 0, n*12)
		for _, r := range rest[:n] {
			args = append(args, resultArgs(r)...)
		}
		ids, err := queryStrings(ctx, s.db, fmt.Sprintf(upsertResults, valuesList(n, 12))+" RETURNING exec_id", args...)
		if err != nil {
			return nil, fmt.Errorf("store: apply results: %w", err)
		}
		touched = append(touched, ids...)
		rest = rest[n:]
	}
	return touched, nil
}

// resultArgs are the 12 values of one row of upsertResults.
func resultArgs(r resultRow) []any {
	var exit any
	if r.ExitCode != nil {
		exit = *r.ExitCode
	}
	return []any{r.ExecID, r.PCID, r.State, r.Reason, exit, r.Stdout, r.Stderr,
		r.Truncated, nullable(r.StartedAt), nullable(r.FinishedAt), r.UpdatedAt, false}
}

// nullable turns a nil *int64 into an untyped nil (NULL).
func nullable(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}

// ResultFilter selects results. Empty fields match everything.
type ResultFilter struct {
	ExecID, PCID string
	State        wire.State
	// Limit defaults to DefaultLimit and is clamped to MaxLimit.
	Limit, Offset int
}

// Results returns one page of the results f selects and the number of
// results it selects in all. With ExecID set they are ordered by pc_id;
// otherwise newest execution first (by its created_at; results of unknown
// executions last), then by pc_id.
func (s *Store) Results(ctx context.Context, f ResultFilter) ([]Result, int, error) {
	limit, offset := page(f.Limit, f.Offset)
	var rows []resultRow
	q := s.db.NewSelect().Model(&rows)
	if f.ExecID != "" {
		q = q.Where("r.exec_id = ?", f.ExecID)
	}
	if f.PCID != "" {
		q = q.Where("r.pc_id = ?", f.PCID)
	}
	if f.State != "" {
		q = q.Where("r.state = ?", string(f.State))
	}
	total, err := q.Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("store: count results: %w", err)
	}
	if f.ExecID == "" {
		q = q.Join("LEFT JOIN executions AS e ON e.exec_id = r.exec_id").
			OrderExpr("COALESCE(e.created_at, 0) DESC").
			OrderExpr(s.orderText("r.exec_id") + " DESC")
	}
	q = q.OrderExpr(s.orderText("r.pc_id")).Limit(int64(limit)).Offset(int64(offset))
	if err := q.Scan(ctx); err != nil {
		return nil, 0, fmt.Errorf("store: list results: %w", err)
	}
	out := make([]Result, len(rows))
	for i := range rows {
		out[i] = rows[i].result()
	}
	return out, int(total), nil
}

// Result returns the result of one target.
func (s *Store) Result(ctx context.Context, execID, pcID string) (Result, error) {
	var r resultRow
	err := s.db.NewSelect().Model(&r).Where("r.exec_id = ?", execID).Where("r.pc_id = ?", pcID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, fmt.Errorf("store: result %s/%s: %w", execID, pcID, ErrNotFound)
	}
	if err != nil {
		return Result{}, fmt.Errorf("store: result %s/%s: %w", execID, pcID, err)
	}
	return r.result(), nil
}

// failedStates is the predicate of the partial index results_failures_idx,
// written the same way so that both databases use the index for it.
const failedStates = "r.state IN ('failed', 'timed_out', 'lost')"

// failuresQuery selects the targets that failed, timed out or were lost
// since since.
func (s *Store) failuresQuery(rows *[]resultRow, since time.Time) *bun.SelectQuery {
	return s.db.NewSelect().Model(rows).Where(failedStates).Where("r.finished_at >= ?", since.UnixMilli())
}

// RecentFailures returns the newest targets that failed, timed out or
// were lost since since (at most limit) and how many there are in all.
func (s *Store) RecentFailures(ctx context.Context, since time.Time, limit int) ([]Result, int, error) {
	limit, _ = page(limit, 0)
	var rows []resultRow
	q := s.failuresQuery(&rows, since)
	total, err := q.Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("store: count failures: %w", err)
	}
	if err := q.OrderExpr("r.finished_at DESC").OrderExpr(s.orderText("r.pc_id")).Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, 0, fmt.Errorf("store: list failures: %w", err)
	}
	out := make([]Result, len(rows))
	for i := range rows {
		out[i] = rows[i].result()
	}
	return out, int(total), nil
}
