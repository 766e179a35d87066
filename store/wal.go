package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// checkpoints truncates the SQLite WAL every interval while it is larger
// than walSizeLimit, until ctx is done. SQLite's automatic checkpoints
// copy the WAL into the database but start the log over only when no
// reader still needs its start; under a steady stream of readers that
// moment may never come and the file grows without a bound. A
// TRUNCATE checkpoint waits for those readers (up to the busy timeout)
// and empties the file.
func (s *Store) checkpoints(ctx context.Context, interval time.Duration) {
	defer close(s.checkpointsDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if size, err := s.walSize(); err != nil || size <= walSizeLimit {
			continue
		}
		_, _ = s.Checkpoint(ctx) // tried again at the next tick
	}
}

// walSize is the size of the SQLite WAL file (0 when there is none).
func (s *Store) walSize() (int64, error) {
	fi, err := os.Stat(s.walPath)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return fi.Size(), nil
}

// Checkpoint copies SQLite's WAL into the database and truncates it to
// zero bytes, through the writer connection (so writes wait meanwhile),
// and returns the WAL's size afterwards. It fails with ErrBusy when the
// writer or a reader held on longer than the waits allow, having copied
// what it could. On PostgreSQL it does nothing.
func (s *Store) Checkpoint(ctx context.Context) (walBytes int64, err error) {
	if s.driver != DriverSQLite || s.root == nil {
		return 0, nil
	}
	conn, err := s.writerConn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var blocked, logPages, copied int
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&blocked, &logPages, &copied); err != nil {
		return 0, fmt.Errorf("store: checkpoint: %w", busy(err))
	}
	size, err := s.walSize()
	if err != nil {
		return 0, err
	}
	if blocked != 0 {
		return size, fmt.Errorf("store: checkpoint: %w: a reader kept the log (%d of %d pages copied)", ErrBusy, copied, logPages)
	}
	return size, nil
}
