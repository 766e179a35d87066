package main

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/kanadehq/kanade/store/storetest"
)

// postgresRun is the test that runs the server's integration tests again
// on PostgreSQL.
const postgresRun = "TestPostgres"

// postgresSchemas maps a data directory to the DSN of its schema, so that
// a server restarted on the same directory (or a second server sharing
// it) finds the same database.
var postgresSchemas = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

// postgresFor is the DSN a server of t with its data in dataDir runs on:
// "" (SQLite) outside TestPostgres, else a fresh schema of
// KANADE_TEST_POSTGRES_DSN for each data directory, dropped when the
// test that created it ends.
func postgresFor(t testing.TB, dataDir string) string {
	dsn := os.Getenv(storetest.PostgresEnv)
	if dsn == "" || !strings.HasPrefix(t.Name(), postgresRun+"/") {
		return ""
	}
	postgresSchemas.Lock()
	defer postgresSchemas.Unlock()
	if s, ok := postgresSchemas.m[dataDir]; ok {
		return s
	}
	s := storetest.PostgresSchema(t, dsn)
	postgresSchemas.m[dataDir] = s
	t.Cleanup(func() {
		postgresSchemas.Lock()
		delete(postgresSchemas.m, dataDir)
		postgresSchemas.Unlock()
	})
	t.Logf("database: postgres (%s)", dataDir)
	return s
}
