package store

import (
	"context"
	"fmt"
	"time"
)

// ProbeWrite rewrites the health_probe row: proof that the database still
// takes writes (a full disk fails it where a ping would still answer).
func (s *Store) ProbeWrite(ctx context.Context, at time.Time) error {
	_, err := s.w().NewRaw("INSERT INTO health_probe (id, checked_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
		at.UnixMilli()).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: write: %w", err)
	}
	return nil
}

// Size is the database's size in bytes: SQLite's pages (the write-ahead
// log not included), PostgreSQL's database on disk.
func (s *Store) Size(ctx context.Context) (int64, error) {
	q := "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
	if s.driver == DriverPostgres {
		q = "SELECT pg_database_size(current_database())"
	}
	var n int64
	if err := s.db.NewRaw(q).Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("store: database size: %w", err)
	}
	return n, nil
}
