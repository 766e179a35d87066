// Package migrations holds the SQL schema of the kanade database as
// numbered bun/migrate files. Every file is written in the subset of SQL
// that runs unchanged on SQLite and PostgreSQL: TEXT, BIGINT, INTEGER and
// BOOLEAN columns, times as BIGINT unix milliseconds and durations as
// BIGINT milliseconds. Files are immutable once merged; change the schema
// by adding a new pair.
//
// Files are named NNNNNNNNNNNNNN_name.tx.up.sql / .tx.down.sql (the ".tx"
// makes bun run each file in one transaction) and split into statements
// with "--bun:split" lines, so no driver has to run several statements in
// one call.
package migrations

import (
	"embed"
	"fmt"

	"github.com/uptrace/bun/migrate"
)

//go:embed *.sql
var files embed.FS

// New returns the registry of every migration in this package.
func New() (*migrate.Migrations, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(files); err != nil {
		return nil, fmt.Errorf("migrations: discover: %w", err)
	}
	return ms, nil
}
