package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/kanadehq/kanade/agent/wire"
)

// Wave states.
const (
	WaveWaiting          = "waiting"
	WaveAwaitingApproval = "awaiting_approval"
	WaveRunning          = "running"
	WaveSucceeded        = "succeeded"
	WaveFailed           = "failed"
	WaveHalted           = "halted" // never started: the rollout was killed
)

// Wave is one step of a rollout.
type Wave struct {
	ExecID   string
	Index    int
	Name     string
	State    string
	Approval bool
	Delay    time.Duration
	// MaxFailures and MinSuccess are "3" or "10%" ("" = none).
	MaxFailures, MinSuccess string
	TargetCount             int
	// ReadyAt is when the wave's delay ends (zero until the previous wave finished).
	ReadyAt                           time.Time
	ApprovedBy                        string
	ApprovedAt, StartedAt, FinishedAt time.Time
	DeadlineAt                        time.Time
	Reason                            string
	// Counts is filled by Waves from the wave's targets.
	Counts Counts
}

type waveRow struct {
	bun.BaseModel `bun:"table:waves,alias:w"`
	ExecID        string `bun:"exec_id,pk"`
	Idx           int    `bun:"idx,pk"`
	Name          string `bun:"name"`
	State         string `bun:"state"`
	Approval      bool   `bun:"approval"`
	DelayMS       int64  `bun:"delay_ms"`
	MaxFailures   string `bun:"max_failures"`
	MinSuccess    string `bun:"min_success"`
	TargetCount   int    `bun:"target_count"`
	ReadyAt       *int64 `bun:"ready_at"`
	ApprovedBy    string `bun:"approved_by"`
	ApprovedAt    *int64 `bun:"approved_at"`
	StartedAt     *int64 `bun:"started_at"`
	FinishedAt    *int64 `bun:"finished_at"`
	DeadlineAt    *int64 `bun:"deadline_at"`
	Reason        string `bun:"reason"`
}

func toWaveRow(w Wave) waveRow {
	return waveRow{ExecID: w.ExecID, Idx: w.Index, Name: w.Name, State: w.State, Approval: w.Approval, DelayMS: w.Delay.Milliseconds(),
		MaxFailures: w.MaxFailures, MinSuccess: w.MinSuccess, TargetCount: w.TargetCount, ReadyAt: millis(w.ReadyAt),
		ApprovedBy: w.ApprovedBy, ApprovedAt: millis(w.ApprovedAt), StartedAt: millis(w.StartedAt), FinishedAt: millis(w.FinishedAt),
		DeadlineAt: millis(w.DeadlineAt), Reason: w.Reason}
}

func (r waveRow) wave() Wave {
	return Wave{ExecID: r.ExecID, Index: r.Idx, Name: r.Name, State: r.State, Approval: r.Approval, Delay: time.Duration(r.DelayMS) * time.Millisecond,
		MaxFailures: r.MaxFailures, MinSuccess: r.MinSuccess, TargetCount: r.TargetCount, ReadyAt: fromMillis(r.ReadyAt),
		ApprovedBy: r.ApprovedBy, ApprovedAt: fromMillis(r.ApprovedAt), StartedAt: fromMillis(r.StartedAt), FinishedAt: fromMillis(r.FinishedAt),
		DeadlineAt: fromMillis(r.DeadlineAt), Reason: r.Reason}
}

// CreateRollout stores an execution with waves: pcs[i] are the PCs of
// waves[i] (disjoint), each a pending target marked with its wave. The
// execution has no deadline of its own (each wave gets one when it starts).
func (s *Store) CreateRollout(ctx context.Context, e Execution, waves []Wave, pcs [][]string) error {
	if len(waves) != len(pcs) {
		return fmt.Errorf("store: create rollout %s: %d waves but %d target lists", e.ExecID, len(waves), len(pcs))
	}
	var all []string
	for _, p := range pcs {
		all = append(all, p...)
	}
	e.DeadlineAt = time.Time{}
	return s.inTx(ctx, func(tx *Store) error {
		if err := tx.CreateExecution(ctx, e, all); err != nil {
			return err
		}
		for i, w := range waves {
			w.ExecID, w.Index, w.TargetCount = e.ExecID, i, len(pcs[i])
			if w.State == "" {
				w.State = WaveWaiting
			}
			r := toWaveRow(w)
			if _, err := tx.db.NewInsert().Model(&r).Exec(ctx); err != nil {
				return fmt.Errorf("store: create wave %d of %s: %w", i, e.ExecID, err)
			}
			for _, batch := range chunks(pcs[i]) {
				if _, err := tx.db.ExecContext(ctx, "UPDATE results SET wave = ? WHERE exec_id = ? AND pc_id IN (?)", i, e.ExecID, bun.List(batch)); err != nil {
					return fmt.Errorf("store: create wave %d of %s: %w", i, e.ExecID, err)
				}
			}
		}
		return nil
	})
}

// Waves returns an execution's waves in order with their counts (none
// for an execution without waves).
func (s *Store) Waves(ctx context.Context, execID string) ([]Wave, error) {
	out, err := s.WaveStates(ctx, execID)
	if err != nil || len(out) == 0 {
		return nil, err
	}
	var counts []struct {
		Wave  int    `bun:"wave"`
		State string `bun:"state"`
		N     int    `bun:"n"`
	}
	if err := s.db.NewSelect().TableExpr("results").ColumnExpr("wave, state, COUNT(*) AS n").
		Where("exec_id = ? AND wave IS NOT NULL", execID).GroupExpr("wave, state").Scan(ctx, &counts); err != nil {
		return nil, fmt.Errorf("store: wave counts of %s: %w", execID, err)
	}
	for _, c := range counts {
		if c.Wave >= 0 && c.Wave < len(out) {
			if p := out[c.Wave].Counts.field(wire.State(c.State)); p != nil {
				*p += c.N
			}
		}
	}
	return out, nil
}

// WaveStates returns an execution's waves in order without their counts
// (none for an execution without waves): what the targets table needs.
func (s *Store) WaveStates(ctx context.Context, execID string) ([]Wave, error) {
	var rows []waveRow
	if err := s.db.NewSelect().Model(&rows).Where("w.exec_id = ?", execID).OrderExpr("w.idx").Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: waves of %s: %w", execID, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]Wave, len(rows))
	for i, r := range rows {
		out[i] = r.wave()
	}
	return out, nil
}

// WavePCs lists the PCs of one wave.
func (s *Store) WavePCs(ctx context.Context, execID string, idx int) ([]string, error) {
	var pcs []string
	if err := s.db.NewSelect().TableExpr("results").Column("pc_id").Where("exec_id = ? AND wave = ?", execID, idx).
		OrderExpr("pc_id").Scan(ctx, &pcs); err != nil {
		return nil, fmt.Errorf("store: targets of wave %d of %s: %w", idx, execID, err)
	}
	return pcs, nil
}

// OpenRollouts lists the rollouts that are not over: a wave still waits,
// awaits approval or runs, and the rollout was not killed.
func (s *Store) OpenRollouts(ctx context.Context) ([]string, error) {
	// From the open waves (waves_state_idx) to their executions, not the
	// other way round: the engine polls this every second and after
	// results, and the executions table keeps all history. Prepared once:
	// parsing the query cost more than running it.
	ids, err := s.queryStringsPrepared(ctx, `SELECT e.exec_id FROM executions AS e
WHERE e.status <> ? AND e.exec_id IN (SELECT w.exec_id FROM waves AS w WHERE w.state IN (?, ?, ?))
ORDER BY e.created_at`, StatusKilled, WaveWaiting, WaveAwaitingApproval, WaveRunning)
	if err != nil {
		return nil, fmt.Errorf("store: open rollouts: %w", err)
	}
	return ids, nil
}

// ExecutionsAwaitingApproval lists the rollouts a wave of which waits for
// an approver, oldest first, without their counts: the top bar counts
// those the caller may approve (app/rollout's four-eyes rule).
func (s *Store) ExecutionsAwaitingApproval(ctx context.Context) ([]Execution, error) {
	var rows []executionRow
	if err := s.db.NewSelect().Model(&rows).
		Where("e.status = ? AND e.exec_id IN (SELECT w.exec_id FROM waves AS w WHERE w.state = ?)", StatusAwaitingApproval, WaveAwaitingApproval).
		OrderExpr("e.created_at").Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: executions awaiting approval: %w", err)
	}
	out := make([]Execution, 0, len(rows))
	for i := range rows {
		e, err := rows[i].execution()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// CountWavesAwaitingApproval counts the waves that wait for an approver.
func (s *Store) CountWavesAwaitingApproval(ctx context.Context) (int, error) {
	n, err := s.db.NewSelect().TableExpr("waves AS w").
		Join("JOIN executions AS e ON e.exec_id = w.exec_id").
		Where("w.state = ? AND e.status = ?", WaveAwaitingApproval, StatusAwaitingApproval).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: waves awaiting approval: %w", err)
	}
	return int(n), nil
}

// SaveRollout writes a rollout's status, halt reason and waves in one
// transaction. Only an open execution changes status (a killed or
// completed one keeps its own); the waves are written either way.
func (s *Store) SaveRollout(ctx context.Context, execID string, status Status, haltReason string, waves []Wave, now time.Time) error {
	return s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.db.ExecContext(ctx, "UPDATE executions SET status = ?, halt_reason = ? WHERE exec_id = ? AND status IN (?)",
			status, haltReason, execID, bun.List(openStatuses)); err != nil {
			return fmt.Errorf("store: save rollout %s: %w", execID, err)
		}
		for _, w := range waves {
			r := toWaveRow(w)
			r.ExecID = execID
			if _, err := tx.db.NewUpdate().Model(&r).
				Column("state", "ready_at", "approved_by", "approved_at", "started_at", "finished_at", "deadline_at", "reason").
				WherePK().Exec(ctx); err != nil {
				return fmt.Errorf("store: save wave %d of %s: %w", w.Index, execID, err)
			}
		}
		return tx.refreshStatus(ctx, []string{execID}, now)
	})
}
