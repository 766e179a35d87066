package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// openSQLite opens and migrates a SQLite store in a temporary directory.
func openSQLite(t *testing.T) (*Store, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kanade.db")
	s, err := Open(ctx, DriverSQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s, path
}

func testExecution(id string) Execution {
	now := time.Date(2026, 12, 14, 9, 0, 0, 0, time.UTC)
	return Execution{ExecID: id, JobID: "adhoc", Shell: "sh", Script: "true", Timeout: time.Minute, CreatedAt: now, DeadlineAt: now.Add(time.Hour)}
}

// A write that cannot get the writer in time fails with ErrBusy and
// writes nothing, while reads go on beside the held writer.
func TestWriter_BusyAfterWait(t *testing.T) {
	s, _ := openSQLite(t)
	ctx := context.Background()
	s.writerWait = 200 * time.Millisecond
	if err := s.CreateExecution(ctx, testExecution("e0"), []string{"pc1"}); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.InTx(ctx, func(tx *Store) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	err := s.CreateExecution(ctx, testExecution("e1"), []string{"pc1"})
	if !errors.Is(err, ErrBusy) || !IsBusy(err) {
		t.Errorf("write while the writer is held: %v, want ErrBusy", err)
	}
	// Reads do not wait for the writer.
	readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if e, err := s.Execution(readCtx, "e0"); err != nil || e.Counts.Pending != 1 {
		t.Errorf("read while the writer is held: %+v, %v", e.Counts, err)
	}
	cancel()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execution(ctx, "e1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the busy write left e1 behind: %v", err)
	}
	if err := s.CreateExecution(ctx, testExecution("e1"), []string{"pc1"}); err != nil {
		t.Errorf("write after the writer was released: %v", err)
	}
}

// SQLite's own busy and locked errors count as busy; others do not.
func TestIsBusy_DriverErrors(t *testing.T) {
	_, path := openSQLite(t)
	ctx := context.Background()
	// Two plain connections without a busy timeout: the second writer
	// gets SQLITE_BUSY at once.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: "_pragma=busy_timeout(0)"}
	var conns []*sql.Conn
	for range 2 {
		db, err := sql.Open("sqlite", u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	if _, err := conns[0].ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conns[0].ExecContext(ctx, "ROLLBACK")
	_, err := conns[1].ExecContext(ctx, "BEGIN IMMEDIATE")
	if err == nil || !IsBusy(fmt.Errorf("store: wrapped: %w", err)) || !errors.Is(busy(err), ErrBusy) {
		t.Errorf("second writer: %v; want a busy error", err)
	}
	_, err = conns[1].ExecContext(ctx, "SELECT * FROM no_such_table")
	if err == nil || IsBusy(err) || errors.Is(busy(err), ErrBusy) {
		t.Errorf("missing table: %v; want an error that is not busy", err)
	}
}

// Many concurrent writers and readers, as 20 clients posting runs while
// results and heartbeats arrive, all succeed: writes queue for the writer
// instead of failing on the database lock.
func TestWriter_ConcurrentClients(t *testing.T) {
	if testing.Short() {
		t.Skip("load test (-short)")
	}
	s, _ := openSQLite(t)
	ctx := context.Background()
	const clients = 20
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	var mu sync.Mutex
	runs := 0
	for c := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("c%02d-%05d", c, i)
				pcs := []string{"pc1", "pc2", "pc3", fmt.Sprintf("pc-%d", c)}
				if err := s.CreateExecution(ctx, testExecution(id), pcs); err != nil {
					errs <- fmt.Errorf("client %d create: %w", c, err)
					return
				}
				var rs []wire.Result
				for _, pc := range pcs {
					code := 0
					rs = append(rs, wire.Result{ExecID: id, PCID: pc, State: wire.StateSucceeded, ExitCode: &code, Stdout: strings.Repeat("x", 200)})
				}
				if _, err := s.ApplyResults(ctx, rs, time.Now()); err != nil {
					errs <- fmt.Errorf("client %d results: %w", c, err)
					return
				}
				if _, err := s.TouchAgents(ctx, []Seen{{PCID: "pc1", LastSeen: time.Now(), OfflineAfter: time.Now().Add(time.Minute)}}); err != nil {
					errs <- fmt.Errorf("client %d heartbeat: %w", c, err)
					return
				}
				if _, _, err := s.Executions(ctx, ExecFilter{Limit: 20}); err != nil {
					errs <- fmt.Errorf("client %d list: %w", c, err)
					return
				}
				mu.Lock()
				runs++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if runs == 0 {
		t.Error("no run got through")
	}
	t.Logf("%d runs by %d clients", runs, clients)
}

// A checkpoint empties the WAL, which a reader holding an old snapshot
// had kept growing; a reset log is also cut back to journal_size_limit.
func TestCheckpoint_TruncatesWAL(t *testing.T) {
	s, _ := openSQLite(t)
	ctx := context.Background()
	var limit int64
	if err := s.root.QueryRowContext(ctx, "PRAGMA journal_size_limit").Scan(&limit); err != nil || limit != walSizeLimit {
		t.Errorf("journal_size_limit = %d, %v; want %d", limit, err, walSizeLimit)
	}
	// A reader in the middle of a transaction pins the log's start.
	reader, err := s.root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rtx, err := reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rtx.QueryRowContext(ctx, "SELECT COUNT(*) FROM executions").Scan(&n); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		e := testExecution(fmt.Sprintf("e%03d", i))
		e.Script = strings.Repeat("echo x\n", 16<<10) // 112 KiB
		if err := s.CreateExecution(ctx, e, []string{"pc1"}); err != nil {
			t.Fatal(err)
		}
	}
	grown, err := s.walSize()
	if err != nil || grown < 4<<20 {
		t.Fatalf("WAL after 4 MiB of writes under a pinned reader = %d, %v", grown, err)
	}
	_ = rtx.Rollback()
	_ = reader.Close()
	size, err := s.Checkpoint(ctx)
	if err != nil || size != 0 {
		t.Errorf("Checkpoint = %d, %v; want an empty WAL", size, err)
	}
	if e, err := s.Execution(ctx, "e039"); err != nil || len(e.Script) != 16<<10*7 {
		t.Errorf("after the checkpoint: %d bytes, %v", len(e.Script), err)
	}
}
