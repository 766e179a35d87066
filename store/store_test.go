package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/migrations"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestOpen_Errors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, driver, dsn string
	}{
		{"unknown driver", "mysql", "x"},
		{"empty sqlite path", store.DriverSQLite, ""},
		{"empty postgres dsn", store.DriverPostgres, ""},
		{"postgres refused", store.DriverPostgres, "postgres://nobody:x@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.Open(ctx, tt.driver, tt.dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q, %q) = nil error, want one", tt.driver, tt.dsn)
			}
		})
	}
}

func TestOpen_SQLiteCreatesDirectory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a", "b c", "kanade?#%.db")
	s, err := store.Open(ctx, store.DriverSQLite, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if got := s.Driver(); got != store.DriverSQLite {
		t.Errorf("Driver() = %q, want %q", got, store.DriverSQLite)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	// The file is where the path says, not somewhere the URI mangled it to.
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var journal string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&journal); err != nil {
		t.Fatal(err)
	}
	if journal != "wal" {
		t.Errorf("journal_mode = %q, want wal", journal)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM agents").Scan(&n); err != nil {
		t.Errorf("agents table missing in %s: %v", path, err)
	}
}

func TestMigrate_Twice(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		mustUpsert(t, s, agent("pc1", t0, "g"))
		for i := range 2 {
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate #%d: %v", i+2, err)
			}
		}
		a, err := s.Agent(ctx, "pc1")
		if err != nil {
			t.Fatalf("Agent after migrating again: %v", err)
		}
		if diff := cmp.Diff([]string{"g"}, a.Groups); diff != "" {
			t.Errorf("groups changed (-want +got):\n%s", diff)
		}
	})
}

// TestMigrate_Concurrent migrates one fresh database from several Stores
// (several servers starting at once): each migration is applied once and
// the lock is released.
func TestMigrate_Concurrent(t *testing.T) {
	ctx := context.Background()
	migrateAll := func(t *testing.T, driver, dsn string) {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			s, err := store.Open(ctx, driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			wg.Go(func() { errs[i] = s.Migrate(ctx) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	count := func(t *testing.T, db *sql.DB) (applied, locks int) {
		if err := db.QueryRow("SELECT COUNT(*) FROM bun_migrations").Scan(&applied); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT COUNT(*) FROM bun_migration_locks").Scan(&locks); err != nil {
			t.Fatal(err)
		}
		return applied, locks
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kanade.db")
		migrateAll(t, store.DriverSQLite, path)
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if applied, locks := count(t, db); applied != migrationCount(t) || locks != 0 {
			t.Errorf("bun_migrations = %d rows, bun_migration_locks = %d rows; want %d and 0", applied, locks, migrationCount(t))
		}
	})
	dsn := os.Getenv(storetest.PostgresEnv)
	if dsn == "" {
		return
	}
	t.Run("postgres", func(t *testing.T) {
		admin, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		schema := fmt.Sprintf("kanade_mc_%d", time.Now().UnixNano())
		if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
			t.Fatal(err)
		}
		defer admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		migrateAll(t, store.DriverPostgres, u.String())
		db, err := sql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if applied, _ := count(t, db); applied != migrationCount(t) {
			t.Errorf("bun_migrations = %d rows, want %d", applied, migrationCount(t))
		}
	})
}

func TestNotFound(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		mustCreate(t, s, execution("e1", t0), "pc1")
		tests := []struct {
			name string
			call func() error
		}{
			{"Agent", func() error { _, err := s.Agent(ctx, "nope"); return err }},
			{"Execution", func() error { _, err := s.Execution(ctx, "nope"); return err }},
			{"Result unknown exec", func() error { _, err := s.Result(ctx, "nope", "pc1"); return err }},
			{"Result unknown pc", func() error { _, err := s.Result(ctx, "e1", "nope"); return err }},
			{"RequestKill", func() error { return s.RequestKill(ctx, "nope", "bob", t0) }},
			{"DeleteExecution", func() error { return s.DeleteExecution(ctx, "nope") }},
		}
		for _, tt := range tests {
			if err := tt.call(); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", tt.name, err)
			}
		}
	})
}

func TestInTx(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		boom := errors.New("boom")
		err := s.InTx(ctx, func(tx *store.Store) error {
			mustUpsert(t, tx, agent("rolled-back", t0))
			if _, err := tx.Agent(ctx, "rolled-back"); err != nil {
				t.Errorf("Agent inside the transaction: %v", err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want %v", err, boom)
		}
		if _, err := s.Agent(ctx, "rolled-back"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Agent after rollback: err = %v, want ErrNotFound", err)
		}
		err = s.InTx(ctx, func(tx *store.Store) error {
			mustUpsert(t, tx, agent("kept", t0))
			// A nested InTx is a savepoint: its failure does not undo the outer work.
			_ = tx.InTx(ctx, func(tx *store.Store) error {
				mustUpsert(t, tx, agent("inner", t0))
				return boom
			})
			return nil
		})
		if err != nil {
			t.Fatalf("InTx: %v", err)
		}
		if _, err := s.Agent(ctx, "kept"); err != nil {
			t.Errorf("Agent after commit: %v", err)
		}
		if _, err := s.Agent(ctx, "inner"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Agent of a rolled-back savepoint: err = %v, want ErrNotFound", err)
		}
	})
}

// TestConcurrentWriters has several goroutines write at once, including
// transactions that read before they write (the pattern that fails with
// SQLITE_BUSY under deferred transactions).
func TestConcurrentWriters(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		const workers, rounds = 8, 15
		targets := pcs(workers)
		mustCreate(t, s, execution("shared", t0), targets...)
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds*4)
		for w := range workers {
			wg.Go(func() {
				for i := range rounds {
					now := t0.Add(time.Duration(i+1) * time.Second)
					pc := fmt.Sprintf("w%d-%d", w, i)
					errs <- s.UpsertAgents(ctx, []store.Agent{agent(pc, now, "g1", "g2"), agent(targets[(w+1)%workers], now, "g1")})
					errs <- s.InTx(ctx, func(tx *store.Store) error {
						_, total, err := tx.Agents(ctx, store.AgentFilter{Group: "g1", Limit: 1})
						if err != nil {
							return err
						}
						return tx.CreateExecution(ctx, execution(fmt.Sprintf("x%d-%d-%d", w, i, total), now), []string{pc})
					})
					_, err := s.ApplyResults(ctx, []wire.Result{
						{ExecID: "shared", PCID: targets[w], State: wire.StateRunning},
						{ExecID: "shared", PCID: targets[(w+1)%workers], State: wire.StateRunning},
					}, now)
					errs <- err
					_, err = s.ExpireOverdue(ctx, now)
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent write: %v", err)
			}
		}
		_, total, err := s.Executions(ctx, store.ExecFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if want := workers*rounds + 1; total != want {
			t.Errorf("executions = %d, want %d", total, want)
		}
		e := mustExecution(t, s, "shared")
		if diff := cmp.Diff(store.Counts{Running: workers}, e.Counts); diff != "" {
			t.Errorf("shared counts (-want +got):\n%s", diff)
		}
	})
}

// migrationCount is the number of migrations in migrations/.
func migrationCount(t *testing.T) int {
	t.Helper()
	ms, err := migrations.New()
	if err != nil {
		t.Fatal(err)
	}
	return len(ms.Sorted())
}
