package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/kanadehq/kanade/agent/wire"
)

// Status is an execution's life cycle (see Outcome for what became of
// it); its values are the API's and the executions table's.
type Status string

// Execution statuses.
const (
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusKilled    Status = "killed"
	// StatusHalted and StatusAwaitingApproval belong to rollouts with waves.
	StatusHalted           Status = "halted"
	StatusAwaitingApproval Status = "awaiting_approval"
)

// openStatuses are the statuses of executions that may still have pending
// targets.
var openStatuses = []Status{StatusRunning, StatusHalted, StatusAwaitingApproval}

// IsOpen reports whether an execution with this status is not over (it
// can still be killed).
func IsOpen(status Status) bool { return slices.Contains(openStatuses, status) }

// ReasonKilledBeforeStart is the reason of a target killed while pending.
const ReasonKilledBeforeStart = "killed before it started"

// ReasonExpired is the reason of a target that never answered.
const ReasonExpired = "no answer before the deadline"

// ReasonLostAtKill is the reason of a running target that became lost
// because its agent was offline when the execution was killed.
const ReasonLostAtKill = "the agent was offline when the execution was killed: the kill could not reach it and the outcome is unknown"

// Target is what an execution was aimed at. It is stored as JSON text.
type Target struct {
	All    bool     `json:"all"`
	Groups []string `json:"groups,omitempty"`
	PCs    []string `json:"pcs,omitempty"`
}

// Counts are the number of targets of an execution in each state.
type Counts struct {
	Pending, Running, Succeeded, Failed, TimedOut, Killed, Skipped, Expired, Lost int
}

// Total is the number of targets (an execution's target count).
func (c Counts) Total() int {
	n := 0
	for _, st := range wire.States {
		n += c.Of(st)
	}
	return n
}

// CountResults counts targets by state.
func CountResults(rs []Result) Counts {
	var c Counts
	for _, r := range rs {
		if p := c.field(r.State); p != nil {
			*p++
		}
	}
	return c
}

// Plus returns the sum of c and d, state by state.
func (c Counts) Plus(d Counts) Counts {
	for _, st := range wire.States {
		*c.field(st) += d.Of(st)
	}
	return c
}

// Of returns the number of targets in state st.
func (c Counts) Of(st wire.State) int {
	if p := c.field(st); p != nil {
		return *p
	}
	return 0
}

func (c *Counts) field(st wire.State) *int {
	switch st {
	case wire.StatePending:
		return &c.Pending
	case wire.StateRunning:
		return &c.Running
	case wire.StateSucceeded:
		return &c.Succeeded
	case wire.StateFailed:
		return &c.Failed
	case wire.StateTimedOut:
		return &c.TimedOut
	case wire.StateKilled:
		return &c.Killed
	case wire.StateSkipped:
		return &c.Skipped
	case wire.StateExpired:
		return &c.Expired
	case wire.StateLost:
		return &c.Lost
	}
	return nil
}

// Execution is one run of one job against a target.
type Execution struct {
	ExecID, JobID, Version, Shell, Script string
	// Title is what a person calls it ("INC-4242 printer queue"); optional.
	Title           string
	Timeout, Jitter time.Duration
	Target          Target
	InitiatedBy     string
	// InitiatorSubject is the initiator's stable identity (auth.Principal's
	// Subject: the OIDC subject or the API token's id), which a name
	// changed at the identity provider does not change. Four eyes
	// compares it.
	InitiatorSubject string
	// Status is one of the Status* constants.
	Status                                             Status
	CreatedAt, DeadlineAt, FinishedAt, KillRequestedAt time.Time
	KillRequestedBy                                    string
	// Rollouts: FourEyes forbids the initiator to approve waves,
	// HaltReason says why it halted, WaveDeadline is how long each wave's
	// targets may stay offline.
	FourEyes     bool
	HaltReason   string
	WaveDeadline time.Duration
	// Counts is filled by the read methods from the targets' states.
	Counts Counts
}

type executionRow struct {
	bun.BaseModel `bun:"table:executions,alias:e"`

	ExecID           string `bun:"exec_id,pk"`
	JobID            string `bun:"job_id"`
	Version          string `bun:"version"`
	Shell            string `bun:"shell"`
	Script           string `bun:"script"`
	Title            string `bun:"title"`
	TimeoutMS        int64  `bun:"timeout_ms"`
	JitterMS         int64  `bun:"jitter_ms"`
	Target           string `bun:"target"`
	InitiatedBy      string `bun:"initiated_by"`
	InitiatorSubject string `bun:"initiator_subject"`
	Status           Status `bun:"status"`
	CreatedAt        int64  `bun:"created_at"`
	DeadlineAt       *int64 `bun:"deadline_at"`
	FinishedAt       *int64 `bun:"finished_at"`
	KillRequestedAt  *int64 `bun:"kill_requested_at"`
	KillRequestedBy  string `bun:"kill_requested_by"`
	FourEyes         bool   `bun:"four_eyes"`
	HaltReason       string `bun:"halt_reason"`
	WaveDeadlineMS   int64  `bun:"wave_deadline_ms"`
}

func (r *executionRow) execution() (Execution, error) {
	e := Execution{
		ExecID:           r.ExecID,
		JobID:            r.JobID,
		Version:          r.Version,
		Shell:            r.Shell,
		Script:           r.Script,
		Title:            r.Title,
		Timeout:          time.Duration(r.TimeoutMS) * time.Millisecond,
		Jitter:           time.Duration(r.JitterMS) * time.Millisecond,
		InitiatedBy:      r.InitiatedBy,
		InitiatorSubject: r.InitiatorSubject,
		Status:           r.Status,
		CreatedAt:        time.UnixMilli(r.CreatedAt).UTC(),
		DeadlineAt:       fromMillis(r.DeadlineAt),
		FinishedAt:       fromMillis(r.FinishedAt),
		KillRequestedAt:  fromMillis(r.KillRequestedAt),
		KillRequestedBy:  r.KillRequestedBy,
		FourEyes:         r.FourEyes,
		HaltReason:       r.HaltReason,
		WaveDeadline:     time.Duration(r.WaveDeadlineMS) * time.Millisecond,
	}
	if err := json.Unmarshal([]byte(r.Target), &e.Target); err != nil {
		return Execution{}, fmt.Errorf("store: execution %s: target: %w", r.ExecID, err)
	}
	return e, nil
}

// CreateExecution stores an execution and one pending target per PC in
// pcIDs (duplicates are ignored) in one transaction. ExecID, JobID and
// CreatedAt are required; an empty Status means "running". An execution
// whose targets are all final already (for example none) is completed at
// once. A taken ExecID fails with ErrExists. Targets that already have a
// result (reported before the execution was stored) keep it.
func (s *Store) CreateExecution(ctx context.Context, e Execution, pcIDs []string) error {
	switch {
	case e.ExecID == "":
		return errors.New("store: create execution: exec_id is required")
	case e.JobID == "":
		return fmt.Errorf("store: create execution %s: job_id is required", e.ExecID)
	case e.CreatedAt.IsZero():
		return fmt.Errorf("store: create execution %s: created_at is required", e.ExecID)
	}
	if e.Status == "" {
		e.Status = StatusRunning
	}
	target, err := json.Marshal(e.Target)
	if err != nil {
		return fmt.Errorf("store: create execution %s: target: %w", e.ExecID, err)
	}
	created := e.CreatedAt.UnixMilli()
	row := executionRow{
		ExecID:           e.ExecID,
		JobID:            e.JobID,
		Version:          e.Version,
		Shell:            e.Shell,
		Script:           e.Script,
		Title:            e.Title,
		TimeoutMS:        e.Timeout.Milliseconds(),
		JitterMS:         e.Jitter.Milliseconds(),
		Target:           string(target),
		InitiatedBy:      e.InitiatedBy,
		InitiatorSubject: e.InitiatorSubject,
		Status:           e.Status,
		CreatedAt:        created,
		DeadlineAt:       millis(e.DeadlineAt),
		FinishedAt:       millis(e.FinishedAt),
		KillRequestedAt:  millis(e.KillRequestedAt),
		KillRequestedBy:  e.KillRequestedBy,
		FourEyes:         e.FourEyes,
		HaltReason:       e.HaltReason,
		WaveDeadlineMS:   e.WaveDeadline.Milliseconds(),
	}
	pcs := uniq(pcIDs)
	if len(pcs) > 0 && pcs[0] == "" {
		pcs = pcs[1:]
	}
	return s.inTx(ctx, func(tx *Store) error {
		res, err := tx.db.NewInsert().Model(&row).On("CONFLICT (exec_id) DO NOTHING").Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: create execution %s: %w", e.ExecID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: create execution %s: %w", e.ExecID, err)
		} else if n == 0 {
			return fmt.Errorf("store: create execution %s: %w", e.ExecID, ErrExists)
		}
		const insertPending = "INSERT INTO results (exec_id, pc_id, state, updated_at) VALUES %s ON CONFLICT (exec_id, pc_id) DO NOTHING"
		if tx.driver == DriverSQLite {
			if _, err := tx.execInShapes(ctx, insertPending, 4, len(pcs), func(args []any, i int) []any {
				return append(args, e.ExecID, pcs[i], string(wire.StatePending), created)
			}); err != nil {
				return fmt.Errorf("store: create targets of %s: %w", e.ExecID, err)
			}
		} else {
			for _, batch := range chunks(pcs) { // one round trip per batch
				args := make([]any, 0, len(batch)*4)
				for _, pc := range batch {
					args = append(args, e.ExecID, pc, string(wire.StatePending), created)
				}
				if _, err := tx.db.ExecContext(ctx, fmt.Sprintf(insertPending, valuesList(len(batch), 4)), args...); err != nil {
					return fmt.Errorf("store: create targets of %s: %w", e.ExecID, err)
				}
			}
		}
		return tx.refreshStatus(ctx, []string{e.ExecID}, e.CreatedAt)
	})
}

// DeleteExecution deletes an execution and its results.
func (s *Store) DeleteExecution(ctx context.Context, execID string) error {
	return s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.db.NewDelete().TableExpr("results").Where("exec_id = ?", execID).Exec(ctx); err != nil {
			return fmt.Errorf("store: delete results of %s: %w", execID, err)
		}
		res, err := tx.db.NewDelete().Model((*executionRow)(nil)).Where("exec_id = ?", execID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: delete execution %s: %w", execID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: delete execution %s: %w", execID, err)
		} else if n == 0 {
			return fmt.Errorf("store: execution %s: %w", execID, ErrNotFound)
		}
		return nil
	})
}

// Execution returns one execution with its counts.
func (s *Store) Execution(ctx context.Context, execID string) (Execution, error) {
	var r executionRow
	err := s.db.NewSelect().Model(&r).Where("e.exec_id = ?", execID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Execution{}, fmt.Errorf("store: execution %s: %w", execID, ErrNotFound)
	}
	if err != nil {
		return Execution{}, fmt.Errorf("store: execution %s: %w", execID, err)
	}
	e, err := r.execution()
	if err != nil {
		return Execution{}, err
	}
	counts, err := s.counts(ctx, []string{execID})
	if err != nil {
		return Execution{}, err
	}
	e.Counts = counts[execID]
	return e, nil
}

// ExecutionStatus returns the status of one execution, without its
// counts: a cheap check for whoever waits for it to end.
func (s *Store) ExecutionStatus(ctx context.Context, execID string) (Status, error) {
	// Prepared once: it runs after every batch of results for each waiter.
	status, err := s.queryStringsPrepared(ctx, "SELECT status FROM executions WHERE exec_id = ?", execID)
	if err != nil {
		return "", fmt.Errorf("store: execution %s: %w", execID, err)
	}
	if len(status) == 0 {
		return "", fmt.Errorf("store: execution %s: %w", execID, ErrNotFound)
	}
	return Status(status[0]), nil
}

// ExecFilter selects executions. Empty fields match everything.
type ExecFilter struct {
	JobID   string
	Status  Status
	Outcome Outcome
	// PCID selects the executions that have this PC as a target.
	PCID string
	// Title and InitiatedBy select the executions whose title or
	// initiator contains them, ignoring case.
	Title, InitiatedBy string
	// Limit defaults to DefaultLimit and is clamped to MaxLimit.
	Limit, Offset int
}

// Executions returns one page of the executions f selects, newest first,
// with their counts, and the number of executions it selects in all.
func (s *Store) Executions(ctx context.Context, f ExecFilter) ([]Execution, int, error) {
	limit, offset := page(f.Limit, f.Offset)
	var rows []executionRow
	q := s.db.NewSelect().Model(&rows)
	if f.JobID != "" {
		q = q.Where("e.job_id = ?", f.JobID)
	}
	if f.Status != "" {
		q = q.Where("e.status = ?", f.Status)
	}
	if f.Outcome != "" {
		q = q.Where("e.outcome = ?", string(f.Outcome))
	}
	if f.PCID != "" {
		q = q.Where("e.exec_id IN (SELECT r.exec_id FROM results AS r WHERE r.pc_id = ?)", f.PCID)
	}
	if f.Title != "" {
		q = q.Where("LOWER(e.title) LIKE ? ESCAPE '!'", likePattern(f.Title))
	}
	if f.InitiatedBy != "" {
		q = q.Where("LOWER(e.initiated_by) LIKE ? ESCAPE '!'", likePattern(f.InitiatedBy))
	}
	total, err := q.Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("store: count executions: %w", err)
	}
	if err := q.OrderExpr("e.created_at DESC").OrderExpr(s.orderText("e.exec_id") + " DESC").
		Limit(int64(limit)).Offset(int64(offset)).Scan(ctx); err != nil {
		return nil, 0, fmt.Errorf("store: list executions: %w", err)
	}
	es := make([]Execution, len(rows))
	ids := make([]string, len(rows))
	for i := range rows {
		if es[i], err = rows[i].execution(); err != nil {
			return nil, 0, err
		}
		ids[i] = rows[i].ExecID
	}
	counts, err := s.counts(ctx, ids)
	if err != nil {
		return nil, 0, err
	}
	for i := range es {
		es[i].Counts = counts[es[i].ExecID]
	}
	return es, int(total), nil
}

// counts returns the target counts of the executions ids in one grouped
// query per batch.
func (s *Store) counts(ctx context.Context, ids []string) (map[string]Counts, error) {
	out := make(map[string]Counts, len(ids))
	for _, batch := range chunks(ids) {
		var rows []struct {
			ExecID string `bun:"exec_id"`
			State  string `bun:"state"`
			N      int    `bun:"n"`
		}
		if err := s.db.NewSelect().TableExpr("results").
			ColumnExpr("exec_id, state, COUNT(*) AS n").
			Where("exec_id IN (?)", bun.List(batch)).
			GroupExpr("exec_id, state").
			Scan(ctx, &rows); err != nil {
			return nil, fmt.Errorf("store: count targets: %w", err)
		}
		for _, r := range rows {
			c := out[r.ExecID]
			if p := c.field(wire.State(r.State)); p != nil {
				*p += r.N
			}
			out[r.ExecID] = c
		}
	}
	return out, nil
}

// RequestKill records a kill request: the execution's status becomes
// killed (a completed execution stays completed), the first request's time
// and requester are kept, every pending target becomes killed with
// ReasonKilledBeforeStart, and every running target whose agent is known
// and offline at at becomes lost with ReasonLostAtKill: the kill cannot
// reach it, and what became of the script is unknown (a target whose
// agent the server has not heard of is left to the sweeper). Both are marked as
// written by the server, so a late report of the agent replaces them. An
// unknown execID fails with ErrNotFound.
func (s *Store) RequestKill(ctx context.Context, execID, by string, at time.Time) error {
	return s.RequestKillBecause(ctx, execID, by, "", at)
}

// RequestKillBecause is RequestKill with why the execution is killed
// ("emergency stop: …"), which the reason of its pending targets adds to
// ReasonKilledBeforeStart ("" adds nothing).
func (s *Store) RequestKillBecause(ctx context.Context, execID, by, why string, at time.Time) error {
	ms := at.UnixMilli()
	pendingReason := ReasonKilledBeforeStart
	if why != "" {
		pendingReason += ": " + why
	}
	return s.inTx(ctx, func(tx *Store) error {
		res, err := tx.db.ExecContext(ctx, `UPDATE executions SET
	status = CASE WHEN status = ? THEN status ELSE ? END,
	kill_requested_by = CASE WHEN kill_requested_at IS NULL THEN ? ELSE kill_requested_by END,
	kill_requested_at = COALESCE(kill_requested_at, ?)
WHERE exec_id = ?`, StatusCompleted, StatusKilled, by, ms, execID)
		if err != nil {
			return fmt.Errorf("store: kill %s: %w", execID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: kill %s: %w", execID, err)
		} else if n == 0 {
			return fmt.Errorf("store: execution %s: %w", execID, ErrNotFound)
		}
		if _, err := tx.db.ExecContext(ctx, `UPDATE results
SET state = ?, reason = ?, by_server = TRUE, updated_at = ?
WHERE exec_id = ? AND state = ?`,
			string(wire.StateKilled), pendingReason, ms, execID, string(wire.StatePending)); err != nil {
			return fmt.Errorf("store: kill pending targets of %s: %w", execID, err)
		}
		if _, err := tx.db.ExecContext(ctx, `UPDATE results
SET state = ?, reason = ?, by_server = TRUE, updated_at = ?, finished_at = ?
WHERE exec_id = ? AND state = ?
AND EXISTS (SELECT 1 FROM agents AS a WHERE a.pc_id = results.pc_id AND a.offline_after <= ?)`,
			string(wire.StateLost), ReasonLostAtKill, ms, ms, execID, string(wire.StateRunning), ms); err != nil {
			return fmt.Errorf("store: end running targets of offline agents of %s: %w", execID, err)
		}
		return tx.refreshStatus(ctx, []string{execID}, at)
	})
}

// ExpireOverdue turns the pending targets of executions whose deadline is
// before now into expired (ReasonExpired, written by the server), updates
// the executions' statuses, and returns the exec_ids it changed, sorted.
func (s *Store) ExpireOverdue(ctx context.Context, now time.Time) ([]string, error) {
	ms := now.UnixMilli()
	var ids []string
	err := s.inTx(ctx, func(tx *Store) error {
		ids = ids[:0]
		if err := tx.db.NewSelect().TableExpr("executions AS e").Column("e.exec_id").
			Where("e.status IN (?)", bun.List(openStatuses)).
			Where("e.deadline_at < ?", ms).
			Where("EXISTS (SELECT 1 FROM results AS r WHERE r.exec_id = e.exec_id AND r.state = ?)", string(wire.StatePending)).
			Scan(ctx, &ids); err != nil {
			return fmt.Errorf("store: find overdue executions: %w", err)
		}
		slices.Sort(ids)
		for _, batch := range chunks(ids) {
			if _, err := tx.db.ExecContext(ctx, `UPDATE results
SET state = ?, reason = ?, by_server = TRUE, updated_at = ?
WHERE exec_id IN (?) AND state = ?`,
				string(wire.StateExpired), ReasonExpired, ms, bun.List(batch), string(wire.StatePending)); err != nil {
				return fmt.Errorf("store: expire targets: %w", err)
			}
		}
		// Rollouts have no execution deadline: each started wave has its own.
		var waveIDs []string
		if err := tx.db.NewSelect().TableExpr("waves AS w").ColumnExpr("DISTINCT w.exec_id").
			Where("w.deadline_at < ?", ms).
			Where("EXISTS (SELECT 1 FROM results AS r WHERE r.exec_id = w.exec_id AND r.wave = w.idx AND r.state = ?)", string(wire.StatePending)).
			Scan(ctx, &waveIDs); err != nil {
			return fmt.Errorf("store: find overdue waves: %w", err)
		}
		if len(waveIDs) > 0 {
			if _, err := tx.db.ExecContext(ctx, `UPDATE results
SET state = ?, reason = ?, by_server = TRUE, updated_at = ?
WHERE state = ? AND exec_id IN (?) AND wave IN (SELECT w.idx FROM waves AS w WHERE w.exec_id = results.exec_id AND w.deadline_at < ?)`,
				string(wire.StateExpired), ReasonExpired, ms, string(wire.StatePending), bun.List(waveIDs), ms); err != nil {
				return fmt.Errorf("store: expire wave targets: %w", err)
			}
			ids = append(ids, waveIDs...)
			slices.Sort(ids)
			ids = slices.Compact(ids)
		}
		return tx.refreshStatus(ctx, ids, now)
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// activeTargets is the condition "the execution has a pending or running
// target", inside a statement on executions.
const activeTargets = "EXISTS (SELECT 1 FROM results WHERE results.exec_id = executions.exec_id AND results.state IN ('pending', 'running'))"

// refreshStatus brings the status of the executions ids up to date with
// their targets: running becomes completed when no target is pending or
// running any more (and completed becomes running again when one is, which
// happens when an agent reports on a target the server had expired); a
// killed execution gets its finished_at when its last target ends. Then
// it brings their stored outcomes up to date (refreshOutcomes): every
// change of a status or of a target's state ends here.
func (s *Store) refreshStatus(ctx context.Context, ids []string, now time.Time) error {
	ms := now.UnixMilli()
	for _, st := range []struct {
		q    string
		args []any // then the exec_id
	}{
		{"UPDATE executions SET status = ?, finished_at = ? WHERE status = ? AND NOT " + activeTargets + " AND exec_id = ?",
			[]any{StatusCompleted, ms, StatusRunning}},
		{"UPDATE executions SET status = ?, finished_at = NULL WHERE status = ? AND " + activeTargets + " AND exec_id = ?",
			[]any{StatusRunning, StatusCompleted}},
		{"UPDATE executions SET finished_at = ? WHERE status = ? AND finished_at IS NULL AND NOT " + activeTargets + " AND exec_id = ?",
			[]any{ms, StatusKilled}},
	} {
		err := s.prepared(ctx, st.q, func(exec func(...any) (sql.Result, error)) error {
			for _, id := range ids {
				if _, err := exec(append(st.args, id)...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: update execution status: %w", err)
		}
	}
	return s.refreshOutcomes(ctx, ids)
}
