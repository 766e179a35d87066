package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Schedule is a schedule created in the GUI or the API.
type Schedule struct {
	ID, Description, Cron, Timezone, JobID string
	// Target replaces the job's target (nil keeps it).
	Target               *Target
	Enabled              bool
	CreatedBy            string
	CreatedAt, UpdatedAt time.Time
}

type scheduleRow struct {
	bun.BaseModel `bun:"table:schedules,alias:sc"`
	ID            string `bun:"id,pk"`
	Description   string `bun:"description"`
	Cron          string `bun:"cron"`
	Timezone      string `bun:"timezone"`
	JobID         string `bun:"job_id"`
	Target        string `bun:"target"`
	Enabled       bool   `bun:"enabled"`
	CreatedBy     string `bun:"created_by"`
	CreatedAt     int64  `bun:"created_at"`
	UpdatedAt     int64  `bun:"updated_at"`
}

func (r scheduleRow) schedule() Schedule {
	s := Schedule{ID: r.ID, Description: r.Description, Cron: r.Cron, Timezone: r.Timezone, JobID: r.JobID, Enabled: r.Enabled,
		CreatedBy: r.CreatedBy, CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC()}
	if r.Target != "" {
		var t Target
		if json.Unmarshal([]byte(r.Target), &t) == nil {
			s.Target = &t
		}
	}
	return s
}

func toScheduleRow(s Schedule) scheduleRow {
	r := scheduleRow{ID: s.ID, Description: s.Description, Cron: s.Cron, Timezone: s.Timezone, JobID: s.JobID, Enabled: s.Enabled,
		CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt.UnixMilli(), UpdatedAt: s.UpdatedAt.UnixMilli()}
	if s.Target != nil {
		b, _ := json.Marshal(s.Target)
		r.Target = string(b)
	}
	return r
}

// CreateSchedule stores a new schedule; a taken id wraps ErrExists.
func (s *Store) CreateSchedule(ctx context.Context, sc Schedule) error {
	r := toScheduleRow(sc)
	res, err := s.w().NewInsert().Model(&r).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: schedule %s: %w", sc.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: schedule %s: %w", sc.ID, ErrExists)
	}
	return nil
}

// UpdateSchedule replaces a schedule's definition (not its creation).
func (s *Store) UpdateSchedule(ctx context.Context, sc Schedule) error {
	r := toScheduleRow(sc)
	res, err := s.w().NewUpdate().Model(&r).Column("description", "cron", "timezone", "job_id", "target", "enabled", "updated_at").WherePK().Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: schedule %s: %w", sc.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: schedule %s: %w", sc.ID, ErrNotFound)
	}
	return nil
}

// DeleteSchedule removes a schedule; its fire history stays.
func (s *Store) DeleteSchedule(ctx context.Context, id string) error {
	res, err := s.w().NewDelete().Model((*scheduleRow)(nil)).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: schedule %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: schedule %s: %w", id, ErrNotFound)
	}
	return nil
}

// Schedule returns one schedule.
func (s *Store) Schedule(ctx context.Context, id string) (Schedule, error) {
	var r scheduleRow
	err := s.db.NewSelect().Model(&r).Where("sc.id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Schedule{}, fmt.Errorf("store: schedule %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Schedule{}, fmt.Errorf("store: schedule %s: %w", id, err)
	}
	return r.schedule(), nil
}

// Schedules lists every schedule by id.
func (s *Store) Schedules(ctx context.Context) ([]Schedule, error) {
	var rows []scheduleRow
	if err := s.db.NewSelect().Model(&rows).OrderExpr(s.orderText("sc.id")).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: schedules: %w", err)
	}
	out := make([]Schedule, len(rows))
	for i, r := range rows {
		out[i] = r.schedule()
	}
	return out, nil
}

// Fire statuses.
const (
	FireFiring     = "firing"
	FireFired      = "fired"
	FireSuppressed = "suppressed"
	FireFailed     = "failed"
)

// Fire is one fire of a schedule.
type Fire struct {
	ScheduleID     string
	At, ClaimedAt  time.Time
	Status         string
	ExecID, Reason string
}

type fireRow struct {
	bun.BaseModel `bun:"table:schedule_fires,alias:f"`
	ScheduleID    string `bun:"schedule_id,pk"`
	FireAt        int64  `bun:"fire_at,pk"`
	Status        string `bun:"status"`
	ExecID        string `bun:"exec_id"`
	Reason        string `bun:"reason"`
	ClaimedAt     int64  `bun:"claimed_at"`
}

func (r fireRow) fire() Fire {
	return Fire{ScheduleID: r.ScheduleID, At: time.UnixMilli(r.FireAt).UTC(), ClaimedAt: time.UnixMilli(r.ClaimedAt).UTC(),
		Status: r.Status, ExecID: r.ExecID, Reason: r.Reason}
}

// ClaimFire records that this process fires schedule id's instant at. It
// reports false when the instant was claimed already (by another process,
// or before a restart).
func (s *Store) ClaimFire(ctx context.Context, id string, at, now time.Time) (bool, error) {
	r := fireRow{ScheduleID: id, FireAt: at.UnixMilli(), Status: FireFiring, ClaimedAt: now.UnixMilli()}
	res, err := s.w().NewInsert().Model(&r).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("store: claim fire %s@%s: %w", id, at.Format(time.RFC3339), err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishFire records how a claimed fire ended.
func (s *Store) FinishFire(ctx context.Context, id string, at time.Time, status, execID, reason string) error {
	if _, err := s.w().NewUpdate().Model((*fireRow)(nil)).Set("status = ?, exec_id = ?, reason = ?", status, execID, reason).
		Where("schedule_id = ? AND fire_at = ?", id, at.UnixMilli()).Exec(ctx); err != nil {
		return fmt.Errorf("store: fire %s@%s: %w", id, at.Format(time.RFC3339), err)
	}
	return nil
}

// LastFires returns the newest fire of each schedule.
func (s *Store) LastFires(ctx context.Context) (map[string]Fire, error) {
	var rows []fireRow
	if err := s.db.NewSelect().Model(&rows).
		Where("f.fire_at = (SELECT MAX(f2.fire_at) FROM schedule_fires AS f2 WHERE f2.schedule_id = f.schedule_id)").
		Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: last fires: %w", err)
	}
	out := make(map[string]Fire, len(rows))
	for _, r := range rows {
		out[r.ScheduleID] = r.fire()
	}
	return out, nil
}

// Fires lists a schedule's fires, newest first.
func (s *Store) Fires(ctx context.Context, id string, limit int) ([]Fire, error) {
	limit, _ = page(limit, 0)
	var rows []fireRow
	if err := s.db.NewSelect().Model(&rows).Where("f.schedule_id = ?", id).OrderExpr("f.fire_at DESC").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: fires of %s: %w", id, err)
	}
	out := make([]Fire, len(rows))
	for i, r := range rows {
		out[i] = r.fire()
	}
	return out, nil
}
