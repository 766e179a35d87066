package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Session is a signed-in browser session. IDHash is the SHA-256 (hex) of
// the random id its cookie carries.
type Session struct {
	IDHash, Subject, Name, Display, Email, Role string
	CreatedAt, LastSeenAt, ExpiresAt            time.Time
}

type sessionRow struct {
	bun.BaseModel `bun:"table:sessions,alias:ss"`
	IDHash        string `bun:"id_hash,pk"`
	Subject       string `bun:"subject"`
	Name          string `bun:"name"`
	Display       string `bun:"display"`
	Email         string `bun:"email"`
	Role          string `bun:"role"`
	CreatedAt     int64  `bun:"created_at"`
	LastSeenAt    int64  `bun:"last_seen_at"`
	ExpiresAt     int64  `bun:"expires_at"`
}

func (r sessionRow) session() Session {
	return Session{IDHash: r.IDHash, Subject: r.Subject, Name: r.Name, Display: r.Display, Email: r.Email, Role: r.Role,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), LastSeenAt: time.UnixMilli(r.LastSeenAt).UTC(), ExpiresAt: time.UnixMilli(r.ExpiresAt).UTC()}
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, ss Session) error {
	r := sessionRow{IDHash: ss.IDHash, Subject: ss.Subject, Name: ss.Name, Display: ss.Display, Email: ss.Email, Role: ss.Role,
		CreatedAt: ss.CreatedAt.UnixMilli(), LastSeenAt: ss.LastSeenAt.UnixMilli(), ExpiresAt: ss.ExpiresAt.UnixMilli()}
	if _, err := s.w().NewInsert().Model(&r).Exec(ctx); err != nil {
		return fmt.Errorf("store: session: %w", err)
	}
	return nil
}

// Session returns the session with the id hash.
func (s *Store) Session(ctx context.Context, idHash string) (Session, error) {
	var r sessionRow
	err := s.db.NewSelect().Model(&r).Where("ss.id_hash = ?", idHash).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("store: session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("store: session: %w", err)
	}
	return r.session(), nil
}

// TouchSession records activity on a session.
func (s *Store) TouchSession(ctx context.Context, idHash string, at time.Time) error {
	if _, err := s.w().NewUpdate().Table("sessions").Set("last_seen_at = ?", at.UnixMilli()).Where("id_hash = ?", idHash).Exec(ctx); err != nil {
		return fmt.Errorf("store: session: %w", err)
	}
	return nil
}

// DeleteSession ends a session; an unknown one wraps ErrNotFound.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	res, err := s.w().NewDelete().Table("sessions").Where("id_hash = ?", idHash).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: session: %w", ErrNotFound)
	}
	return nil
}

// DeleteSessionsBefore removes the sessions that expired or were idle
// since before idleBefore, and returns how many.
func (s *Store) DeleteSessionsBefore(ctx context.Context, now, idleBefore time.Time) (int, error) {
	res, err := s.w().NewDelete().Table("sessions").Where("expires_at <= ? OR last_seen_at < ?", now.UnixMilli(), idleBefore.UnixMilli()).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
