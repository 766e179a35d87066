package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status store.Status
		c      store.Counts
		want   store.Outcome
	}{
		{store.StatusRunning, store.Counts{Pending: 2}, store.OutcomeRunning},
		{store.StatusRunning, store.Counts{Running: 1, Failed: 3}, store.OutcomeRunning},
		{store.StatusRunning, store.Counts{Succeeded: 2}, store.OutcomeRunning},
		{store.StatusAwaitingApproval, store.Counts{Succeeded: 5, Pending: 20}, store.OutcomeAwaitingApproval},
		{store.StatusHalted, store.Counts{Failed: 3, Pending: 20}, store.OutcomeHalted},
		{store.StatusKilled, store.Counts{Killed: 1}, store.OutcomeKilled},
		{store.StatusKilled, store.Counts{Succeeded: 4}, store.OutcomeKilled},
		{store.StatusCompleted, store.Counts{Succeeded: 1}, store.OutcomeSucceeded},
		{store.StatusCompleted, store.Counts{Succeeded: 5213}, store.OutcomeSucceeded},
		{store.StatusCompleted, store.Counts{Failed: 1}, store.OutcomeFailed},
		{store.StatusCompleted, store.Counts{TimedOut: 1, Expired: 2, Lost: 1}, store.OutcomeFailed},
		{store.StatusCompleted, store.Counts{Skipped: 3}, store.OutcomeFailed},
		{store.StatusCompleted, store.Counts{}, store.OutcomeFailed},
		{store.StatusCompleted, store.Counts{Succeeded: 39, Failed: 1}, store.OutcomeCompletedWithFailures},
		{store.StatusCompleted, store.Counts{Succeeded: 1, TimedOut: 1}, store.OutcomeCompletedWithFailures},
		{store.StatusCompleted, store.Counts{Succeeded: 1, Skipped: 1}, store.OutcomeCompletedWithFailures},
		{store.StatusCompleted, store.Counts{Succeeded: 1, Expired: 1}, store.OutcomeCompletedWithFailures},
		{store.StatusCompleted, store.Counts{Succeeded: 1, Killed: 1}, store.OutcomeCompletedWithFailures},
		{store.StatusCompleted, store.Counts{Succeeded: 1, Lost: 1}, store.OutcomeCompletedWithFailures},
		// Not over yet, whatever the status says.
		{store.StatusCompleted, store.Counts{Succeeded: 1, Running: 1}, store.OutcomeRunning},
		{"", store.Counts{}, store.OutcomeRunning},
		{"bogus", store.Counts{Succeeded: 1}, store.OutcomeRunning},
	}
	for _, tt := range tests {
		if got := store.OutcomeOf(tt.status, tt.c); got != tt.want {
			t.Errorf("OutcomeOf(%q, %+v) = %q, want %q", tt.status, tt.c, got, tt.want)
		}
		if !tt.want.Valid() {
			t.Errorf("%q is not Valid", tt.want)
		}
	}
	if store.Outcome("completed").Valid() || store.Outcome("").Valid() {
		t.Error("completed and \"\" are Valid outcomes")
	}
}

// outcomeIDs lists the executions f selects, newest first.
func outcomeIDs(t *testing.T, s *store.Store, f store.ExecFilter) []string {
	t.Helper()
	es, total, err := s.Executions(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, e := range es {
		ids = append(ids, e.ExecID)
	}
	if total != len(ids) {
		t.Errorf("Executions(%+v): total %d, %d returned", f, total, len(ids))
	}
	return ids
}

// TestExecutions_Outcome: the stored outcome follows every change of an
// execution's status and targets, so that filtering by it agrees with
// the outcome derived on read.
func TestExecutions_Outcome(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
		res := func(exec, pc string, st wire.State) wire.Result {
			return wire.Result{ExecID: exec, PCID: pc, State: st, FinishedAt: at(1)}
		}
		mustCreate(t, s, execution("ok", at(0)), "pc1", "pc2")
		mustCreate(t, s, execution("bad", at(1)), "pc1")
		mustCreate(t, s, execution("mixed", at(2)), "pc1", "pc2")
		mustCreate(t, s, execution("late", at(3)), "pc1", "pc2")
		mustCreate(t, s, execution("killed", at(4)), "pc1")
		mustCreate(t, s, execution("empty", at(5)))
		mustApply(t, s, at(6),
			res("ok", "pc1", wire.StateSucceeded), res("ok", "pc2", wire.StateSucceeded),
			res("bad", "pc1", wire.StateFailed),
			res("mixed", "pc1", wire.StateSucceeded), res("mixed", "pc2", wire.StateTimedOut),
			res("late", "pc1", wire.StateSucceeded))
		if err := s.RequestKill(ctx, "killed", "bob", at(7)); err != nil {
			t.Fatal(err)
		}
		check := func(want map[store.Outcome][]string) {
			t.Helper()
			for _, o := range store.Outcomes {
				if got := outcomeIDs(t, s, store.ExecFilter{Outcome: o}); !cmp.Equal(got, append([]string{}, want[o]...)) {
					t.Errorf("Executions(outcome %s) = %v, want %v", o, got, want[o])
				}
				for _, id := range want[o] {
					if e := mustExecution(t, s, id); e.Outcome() != o {
						t.Errorf("%s: Outcome() = %s, but it is listed as %s", id, e.Outcome(), o)
					}
				}
			}
		}
		check(map[store.Outcome][]string{
			store.OutcomeSucceeded:             {"ok"},
			store.OutcomeFailed:                {"empty", "bad"},
			store.OutcomeCompletedWithFailures: {"mixed"},
			store.OutcomeRunning:               {"late"},
			store.OutcomeKilled:                {"killed"},
		})

		// The last target ends; then the sweeper expires one target and
		// its agent's late report replaces the expiry.
		mustCreate(t, s, store.Execution{ExecID: "exp", JobID: "j", CreatedAt: at(8), DeadlineAt: at(9)}, "pc1")
		mustApply(t, s, at(9), res("late", "pc2", wire.StateFailed))
		if _, err := s.ExpireOverdue(ctx, at(10)); err != nil {
			t.Fatal(err)
		}
		check(map[store.Outcome][]string{
			store.OutcomeSucceeded:             {"ok"},
			store.OutcomeFailed:                {"exp", "empty", "bad"},
			store.OutcomeCompletedWithFailures: {"late", "mixed"},
			store.OutcomeKilled:                {"killed"},
		})
		mustApply(t, s, at(11), res("exp", "pc1", wire.StateSucceeded))
		check(map[store.Outcome][]string{
			store.OutcomeSucceeded:             {"exp", "ok"},
			store.OutcomeFailed:                {"empty", "bad"},
			store.OutcomeCompletedWithFailures: {"late", "mixed"},
			store.OutcomeKilled:                {"killed"},
		})

		// A rollout's status moves outside of results.
		r := execution("roll", at(12))
		r.DeadlineAt = time.Time{}
		if err := s.CreateRollout(ctx, r, []store.Wave{{Name: "canary"}, {Name: "rest", Approval: true}}, [][]string{{"pc1"}, {"pc2"}}); err != nil {
			t.Fatal(err)
		}
		ws, err := s.Waves(ctx, "roll")
		if err != nil {
			t.Fatal(err)
		}
		for status, want := range map[store.Status]store.Outcome{
			store.StatusAwaitingApproval: store.OutcomeAwaitingApproval,
			store.StatusHalted:           store.OutcomeHalted,
			store.StatusRunning:          store.OutcomeRunning,
		} {
			if err := s.SaveRollout(ctx, "roll", status, "", ws, at(13)); err != nil {
				t.Fatal(err)
			}
			if got := outcomeIDs(t, s, store.ExecFilter{Outcome: want, JobID: r.JobID}); !cmp.Equal(got, []string{"roll"}) {
				t.Errorf("rollout saved as %s: Executions(outcome %s) = %v", status, want, got)
			}
		}
	})
}

// TestExecutions_Filters: by PC, title and initiator (substrings, any
// case, with LIKE's wildcards taken literally), with the title stored.
func TestExecutions_Filters(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		for i, e := range []struct {
			id, title, by string
			pcs           []string
		}{
			{"e0", "INC-4242 printer queue", "ana@example.com", []string{"pc1"}},
			{"e1", "", "bob", []string{"pc1", "pc2"}},
			{"e2", "100% disk_full", "Ana Lima", []string{"pc3"}},
			{"e3", "Printer driver", "scheduler", []string{"pc2"}},
		} {
			x := execution(e.id, t0.Add(time.Duration(i)*time.Minute))
			x.Title, x.InitiatedBy = e.title, e.by
			mustCreate(t, s, x, e.pcs...)
		}
		if got := mustExecution(t, s, "e0").Title; got != "INC-4242 printer queue" {
			t.Errorf("Title = %q", got)
		}
		tests := []struct {
			name string
			f    store.ExecFilter
			want []string
		}{
			{"pc", store.ExecFilter{PCID: "pc1"}, []string{"e1", "e0"}},
			{"pc2", store.ExecFilter{PCID: "pc2"}, []string{"e3", "e1"}},
			{"unknown pc", store.ExecFilter{PCID: "pc9"}, []string{}},
			{"title, any case", store.ExecFilter{Title: "PRINTER"}, []string{"e3", "e0"}},
			{"title with %", store.ExecFilter{Title: "100%"}, []string{"e2"}},
			{"title with _", store.ExecFilter{Title: "k_f"}, []string{"e2"}},
			{"a % is a character", store.ExecFilter{Title: "%"}, []string{"e2"}},
			{"initiator", store.ExecFilter{InitiatedBy: "ana"}, []string{"e2", "e0"}},
			{"initiator and pc", store.ExecFilter{InitiatedBy: "ana", PCID: "pc1"}, []string{"e0"}},
			{"title and pc", store.ExecFilter{Title: "printer", PCID: "pc2"}, []string{"e3"}},
		}
		for _, tt := range tests {
			if got := outcomeIDs(t, s, tt.f); !cmp.Equal(got, tt.want) {
				t.Errorf("%s: Executions(%+v) = %v, want %v", tt.name, tt.f, got, tt.want)
			}
		}
	})
}

// TestMigrate_FillsOutcomes: executions recorded before outcomes were
// kept get theirs when the store migrates.
func TestMigrate_FillsOutcomes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanade.db")
	ctx := context.Background()
	s, err := store.Open(ctx, store.DriverSQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for i, st := range []wire.State{wire.StateSucceeded, wire.StateFailed} {
		id := fmt.Sprintf("old%d", i)
		mustCreate(t, s, execution(id, t0), "pc1")
		mustApply(t, s, t0, wire.Result{ExecID: id, PCID: "pc1", State: st})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// As a database written before the outcome column was kept.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE executions SET outcome = ''"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err = store.Open(ctx, store.DriverSQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := outcomeIDs(t, s, store.ExecFilter{Outcome: store.OutcomeFailed}); len(got) != 0 {
		t.Fatalf("before Migrate: failed = %v, want none stored", got)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for o, want := range map[store.Outcome][]string{store.OutcomeSucceeded: {"old0"}, store.OutcomeFailed: {"old1"}} {
		if got := outcomeIDs(t, s, store.ExecFilter{Outcome: o}); !cmp.Equal(got, want) {
			t.Errorf("after Migrate: %s = %v, want %v", o, got, want)
		}
	}
}

func TestCounts_Plus(t *testing.T) {
	a := store.Counts{Pending: 1, Succeeded: 2, Lost: 3}
	b := store.Counts{Pending: 4, Failed: 5, Lost: 1}
	want := store.Counts{Pending: 5, Succeeded: 2, Failed: 5, Lost: 4}
	if got := a.Plus(b); got != want || a.Pending != 1 {
		t.Errorf("Plus = %+v, want %+v (and a unchanged: %+v)", got, want, a)
	}
}
