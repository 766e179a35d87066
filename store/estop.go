package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"
)

// EmergencyStop is what one emergency stop did: Since identifies it (the
// stop's own "since"), Killed and Halted are the exec_ids of the
// executions it killed and the rollouts it halted.
type EmergencyStop struct {
	Since          time.Time
	By, Reason     string
	Killed, Halted []string
}

type emergencyStopRow struct {
	bun.BaseModel `bun:"table:emergency_stops,alias:es"`
	SinceAt       int64  `bun:"since_at,pk"`
	StoppedBy     string `bun:"stopped_by"`
	Reason        string `bun:"reason"`
	Killed        string `bun:"killed"`
	Halted        string `bun:"halted"`
}

// RecordEmergencyStop stores what a stop did; a stop recorded again (the
// same Since) is replaced.
func (s *Store) RecordEmergencyStop(ctx context.Context, es EmergencyStop) error {
	if es.Since.IsZero() {
		return errors.New("store: record emergency stop: since is required")
	}
	_, err := s.w().NewRaw(`INSERT INTO emergency_stops (since_at, stopped_by, reason, killed, halted) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (since_at) DO UPDATE SET stopped_by = excluded.stopped_by, reason = excluded.reason, killed = excluded.killed, halted = excluded.halted`,
		es.Since.UnixMilli(), es.By, es.Reason, joinExecs(es.Killed), joinExecs(es.Halted)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: record emergency stop: %w", err)
	}
	return nil
}

// EmergencyStopRecord returns what the stop of since did (ErrNotFound
// when it was not recorded).
func (s *Store) EmergencyStopRecord(ctx context.Context, since time.Time) (EmergencyStop, error) {
	var r emergencyStopRow
	err := s.db.NewSelect().Model(&r).Where("es.since_at = ?", since.UnixMilli()).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return EmergencyStop{}, fmt.Errorf("store: emergency stop of %s: %w", since.UTC().Format(time.RFC3339), ErrNotFound)
	}
	if err != nil {
		return EmergencyStop{}, fmt.Errorf("store: emergency stop: %w", err)
	}
	return EmergencyStop{Since: time.UnixMilli(r.SinceAt).UTC(), By: r.StoppedBy, Reason: r.Reason,
		Killed: splitExecs(r.Killed), Halted: splitExecs(r.Halted)}, nil
}

// AckEmergencyStops records that each agent of acks (pc_id → the since
// of the stop it applies) acknowledged that stop at at. An agent has one
// acknowledgement: of the stop it applies last.
func (s *Store) AckEmergencyStops(ctx context.Context, acks map[string]time.Time, at time.Time) error {
	pcs := make([]string, 0, len(acks))
	for pc := range acks {
		pcs = append(pcs, pc)
	}
	slices.Sort(pcs) // rows locked in the same order by concurrent writers
	return s.inTx(ctx, func(tx *Store) error {
		for _, batch := range chunks(pcs) {
			args := make([]any, 0, len(batch)*3)
			for _, pc := range batch {
				args = append(args, pc, acks[pc].UnixMilli(), at.UnixMilli())
			}
			if _, err := tx.db.ExecContext(ctx, `INSERT INTO emergency_stop_acks (pc_id, since_at, acked_at) VALUES `+valuesList(len(batch), 3)+`
ON CONFLICT (pc_id) DO UPDATE SET since_at = excluded.since_at, acked_at = excluded.acked_at
WHERE emergency_stop_acks.since_at <> excluded.since_at`, args...); err != nil {
				return fmt.Errorf("store: acknowledge the emergency stop: %w", err)
			}
		}
		return nil
	})
}

// StopAcks is how the fleet answered an emergency stop.
type StopAcks struct {
	// Acked agents acknowledged it; Online agents are online now, and
	// Silent are (at most SilentShown of) those that did not acknowledge.
	Acked, Online int
	Silent        []string
}

// SilentShown is the most online agents without an acknowledgement that
// EmergencyStopAcks names.
const SilentShown = 20

// EmergencyStopAcks counts the agents that acknowledged the stop of since
// and the online agents at now, and names online agents that did not.
func (s *Store) EmergencyStopAcks(ctx context.Context, since, now time.Time) (StopAcks, error) {
	var out StopAcks
	n, err := s.db.NewSelect().TableExpr("emergency_stop_acks").Where("since_at = ?", since.UnixMilli()).Count(ctx)
	if err != nil {
		return out, fmt.Errorf("store: emergency stop acknowledgements: %w", err)
	}
	online := s.db.NewSelect().TableExpr("agents AS a").Where("a.offline_after > ?", now.UnixMilli())
	m, err := online.Count(ctx)
	if err != nil {
		return out, fmt.Errorf("store: emergency stop acknowledgements: %w", err)
	}
	out.Acked, out.Online = int(n), int(m)
	if err := online.Column("a.pc_id").
		Where("NOT EXISTS (SELECT 1 FROM emergency_stop_acks AS k WHERE k.pc_id = a.pc_id AND k.since_at = ?)", since.UnixMilli()).
		OrderExpr(s.orderText("a.pc_id")).Limit(SilentShown).Scan(ctx, &out.Silent); err != nil {
		return out, fmt.Errorf("store: emergency stop acknowledgements: %w", err)
	}
	return out, nil
}
