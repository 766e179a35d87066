// Package storetest gives tests a migrated, isolated store: SQLite in a
// temporary directory, and PostgreSQL in a fresh schema when the
// environment variable KANADE_TEST_POSTGRES_DSN names a database.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/kanadehq/kanade/store"
)

// PostgresEnv is the environment variable holding the PostgreSQL DSN that
// ForEach also runs its tests against.
const PostgresEnv = "KANADE_TEST_POSTGRES_DSN"

// New returns a migrated SQLite store in t.TempDir(), closed when the test
// ends.
func New(t testing.TB) *store.Store {
	t.Helper()
	return open(t, store.DriverSQLite, filepath.Join(t.TempDir(), "kanade.db"))
}

// NewPostgres returns a migrated store in a new schema of the PostgreSQL
// database dsn; the schema is dropped when the test ends.
func NewPostgres(t testing.TB, dsn string) *store.Store {
	t.Helper()
	// Registered after the schema cleanup, so it runs before it.
	return open(t, store.DriverPostgres, PostgresSchema(t, dsn))
}

// PostgresSchema creates a schema of its own in the PostgreSQL database
// dsn and returns dsn with search_path set to it, for a server under test
// to migrate and use; the schema is dropped when the test ends, after
// every cleanup registered later (the server's stop).
func PostgresSchema(t testing.TB, dsn string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("storetest: open postgres: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	schema := "kanade_test_" + randomHex(t)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storetest: create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(dsn, schema)
}

// ForEach runs fn as the subtest "sqlite" with New, and as the subtest
// "postgres" with NewPostgres when KANADE_TEST_POSTGRES_DSN is set.
func ForEach(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, New(t)) })
	if dsn := os.Getenv(PostgresEnv); dsn != "" {
		t.Run("postgres", func(t *testing.T) { fn(t, NewPostgres(t, dsn)) })
	}
}

func open(t testing.TB, driver, dsn string) *store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, driver, dsn)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storetest: %v", err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return s
}

// withSearchPath sets search_path in a URL or key=value DSN.
func withSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(dsn) + " search_path=" + schema
}

func randomHex(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return hex.EncodeToString(b)
}
