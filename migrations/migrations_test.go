package migrations_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	_ "modernc.org/sqlite"

	"github.com/kanadehq/kanade/migrations"
)

func TestNew(t *testing.T) {
	ms, err := migrations.New()
	if err != nil {
		t.Fatal(err)
	}
	sorted := ms.Sorted()
	if len(sorted) == 0 {
		t.Fatal("no migrations found")
	}
	for _, m := range sorted {
		if m.Up == nil || m.Down == nil {
			t.Errorf("migration %s_%s: up %v, down %v; want both", m.Name, m.Comment, m.Up != nil, m.Down != nil)
		}
	}
}

// TestUpDownUp applies every migration, rolls them all back and applies
// them again, on SQLite and (when KANADE_TEST_POSTGRES_DSN is set) on
// PostgreSQL.
func TestUpDownUp(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(t.TempDir(), "m.db")), RawQuery: "_pragma=foreign_keys(1)"}
		sqldb, err := sql.Open("sqlite", u.String())
		if err != nil {
			t.Fatal(err)
		}
		db := bun.NewDB(sqldb, sqlitedialect.New())
		t.Cleanup(func() { db.Close() })
		upDownUp(t, db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'bun_%' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	})
	dsn := os.Getenv("KANADE_TEST_POSTGRES_DSN")
	if dsn == "" {
		return
	}
	t.Run("postgres", func(t *testing.T) {
		b := make([]byte, 6)
		rand.Read(b)
		schema := "kanade_mig_" + hex.EncodeToString(b)
		admin, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Close() })
		if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		sqldb, err := sql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		db := bun.NewDB(sqldb, pgdialect.New())
		t.Cleanup(func() { db.Close() })
		upDownUp(t, db, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name NOT LIKE 'bun_%' ORDER BY table_name")
	})
}

func upDownUp(t *testing.T, db *bun.DB, listTables string) {
	t.Helper()
	ctx := context.Background()
	ms, err := migrations.New()
	if err != nil {
		t.Fatal(err)
	}
	m := migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	tables := func() []string {
		var names []string
		if err := db.NewRaw(listTables).Scan(ctx, &names); err != nil {
			t.Fatal(err)
		}
		return names
	}
	want := []string{"agent_disks", "agent_groups", "agent_hotfixes", "agent_inventory", "agent_ips", "agent_keys", "agent_nics", "agent_releases", "agent_software", "agents", "api_tokens", "audit_log", "emergency_stop_acks", "emergency_stops", "enrollment_tokens", "executions", "health_probe", "results", "revoked_keys", "schedule_fires", "schedules", "sessions", "software_names", "waves"}
	up := func(step string) {
		t.Helper()
		if _, err := m.Migrate(ctx); err != nil {
			t.Fatalf("%s: migrate: %v", step, err)
		}
		if got := tables(); !slices.Equal(got, want) {
			t.Errorf("%s: tables = %v, want %v", step, got, want)
		}
	}
	up("first up")
	if _, err := m.Rollback(ctx); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if got := tables(); len(got) != 0 {
		t.Errorf("tables after down = %v, want none", got)
	}
	up("second up")
}
