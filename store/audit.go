package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// AuditEvent is one state-changing action and who did it.
type AuditEvent struct {
	Seq    uint64          // AUDIT stream sequence
	At     time.Time       //
	Actor  string          // user, token name, "scheduler" or "dev"
	Action string          // e.g. "run", "kill", "agent.revoke"
	Target string          // what it acted on (an exec_id, a pc_id, …)
	Detail json.RawMessage // action-specific facts
}

type auditRow struct {
	bun.BaseModel `bun:"table:audit_log,alias:l"`
	Seq           int64  `bun:"seq,pk"`
	At            int64  `bun:"at"`
	Actor         string `bun:"actor"`
	Action        string `bun:"action"`
	Target        string `bun:"target"`
	Detail        string `bun:"detail"`
}

// AddAuditEvents stores events; an event whose sequence is already
// stored is skipped, so a replay of the stream changes nothing.
func (s *Store) AddAuditEvents(ctx context.Context, evs []AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	rows := make([]auditRow, 0, len(evs))
	for _, e := range evs {
		d := string(e.Detail)
		if d == "" || !json.Valid(e.Detail) {
			d = "{}"
		}
		rows = append(rows, auditRow{Seq: int64(e.Seq), At: e.At.UnixMilli(), Actor: clean(e.Actor), Action: clean(e.Action), Target: clean(e.Target), Detail: clean(d)})
	}
	return s.InTx(ctx, func(tx *Store) error {
		for _, batch := range chunks(rows) {
			if _, err := tx.db.NewInsert().Model(&batch).On("CONFLICT (seq) DO NOTHING").Exec(ctx); err != nil {
				return fmt.Errorf("store: audit events: %w", err)
			}
		}
		return nil
	})
}

// AuditFilter selects audit events.
type AuditFilter struct {
	Actor, Action string
	Since, Until  time.Time
	Limit, Offset int
}

// AuditEvents returns one page of events, newest first, and how many match.
func (s *Store) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, int, error) {
	limit, offset := page(f.Limit, f.Offset)
	var rows []auditRow
	q := s.db.NewSelect().Model(&rows)
	if f.Actor != "" {
		q = q.Where("l.actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("l.action = ?", f.Action)
	}
	if !f.Since.IsZero() {
		q = q.Where("l.at >= ?", f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		q = q.Where("l.at < ?", f.Until.UnixMilli())
	}
	n, err := q.Order("l.seq DESC").Limit(int64(limit)).Offset(int64(offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("store: audit events: %w", err)
	}
	out := make([]AuditEvent, 0, len(rows))
	for _, r := range rows {
		out = append(out, AuditEvent{Seq: uint64(r.Seq), At: time.UnixMilli(r.At).UTC(), Actor: r.Actor, Action: r.Action,
			Target: r.Target, Detail: json.RawMessage(r.Detail)})
	}
	return out, int(n), nil
}
