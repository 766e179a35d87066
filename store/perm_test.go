//go:build !windows

package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/store"
)

// modes returns the permission bits of the database and its -wal and
// -shm files ("missing" for a file that does not exist).
func modes(t *testing.T, db string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(db + suffix)
		switch {
		case os.IsNotExist(err):
			out["db"+suffix] = "missing"
		case err != nil:
			t.Fatal(err)
		default:
			out["db"+suffix] = fi.Mode().Perm().String()
		}
	}
	return out
}

func TestOpen_SQLiteFilesOwnerOnly(t *testing.T) {
	ctx := context.Background()
	want := map[string]string{"db": "-rw-------", "db-wal": "-rw-------", "db-shm": "-rw-------"}
	tests := []struct {
		name string
		// prepare runs before Open on the database path.
		prepare func(t *testing.T, db string)
	}{
		{"new database", func(t *testing.T, db string) {}},
		{"existing database readable by all", func(t *testing.T, db string) {
			s, err := store.Open(ctx, store.DriverSQLite, db)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			s.Close()
			for _, p := range []string{db, db + "-wal", db + "-shm"} {
				if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "data", "kanade.db")
			tt.prepare(t, db)
			s, err := store.Open(ctx, store.DriverSQLite, db)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, modes(t, db)); diff != "" {
				t.Errorf("file modes after Open and a write (-want +got):\n%s", diff)
			}
		})
	}
}
