package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The hot and the dashboard queries use the indexes meant for them on
// SQLite (EXPLAIN QUERY PLAN).
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, DriverSQLite, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var rows []resultRow
	failures := s.failuresQuery(&rows, time.Now()).OrderExpr("r.finished_at DESC").Limit(10).String()
	for _, tc := range []struct{ name, query, want string }{
		{"recent failures", failures, "results_failures_idx"},
		{"counts", "SELECT exec_id, state, COUNT(*) FROM results WHERE exec_id IN ('a') GROUP BY exec_id, state", "results_exec_id_state_idx"},
	} {
		r, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tc.query)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for r.Next() {
			var id, parent, notused int
			var detail string
			if err := r.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		r.Close()
		if got := strings.Join(plan, "; "); !strings.Contains(got, tc.want) {
			t.Errorf("%s: plan %q does not use %s\nquery: %s", tc.name, got, tc.want, tc.query)
		}
	}
}
