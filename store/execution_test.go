package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestCreateExecution(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e := execution("e1", t0)
		mustCreate(t, s, e, "pc2", "pc1", "pc2", "pc3")

		got := mustExecution(t, s, "e1")
		want := e
		want.Status = store.StatusRunning
		want.Counts = store.Counts{Pending: 3}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Execution (-want +got):\n%s", diff)
		}
		if got.Counts.Total() != 3 || got.Counts.Of(wire.StatePending) != 3 || got.Counts.Of("bogus") != 0 {
			t.Errorf("Counts = %+v: Total %d, Of(pending) %d", got.Counts, got.Counts.Total(), got.Counts.Of(wire.StatePending))
		}
		r := mustResult(t, s, "e1", "pc1")
		wantR := store.Result{ExecID: "e1", PCID: "pc1", State: wire.StatePending, UpdatedAt: t0}
		if diff := cmp.Diff(wantR, r); diff != "" {
			t.Errorf("pending Result (-want +got):\n%s", diff)
		}

		if err := s.CreateExecution(ctx, execution("e1", t0), []string{"pc9"}); !errors.Is(err, store.ErrExists) {
			t.Errorf("CreateExecution of a taken id: err = %v, want ErrExists", err)
		}
		if _, err := s.Result(ctx, "e1", "pc9"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("failed CreateExecution left a target behind: %v", err)
		}

		for _, bad := range []store.Execution{{JobID: "j", CreatedAt: t0}, {ExecID: "x", CreatedAt: t0}, {ExecID: "x", JobID: "j"}} {
			if err := s.CreateExecution(ctx, bad, nil); err == nil {
				t.Errorf("CreateExecution(%+v) = nil error, want one", bad)
			}
		}
	})
}

func TestCreateExecution_NoTargets(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		mustCreate(t, s, execution("empty", t0))
		got := mustExecution(t, s, "empty")
		if got.Status != store.StatusCompleted || !got.FinishedAt.Equal(t0) || got.Counts.Total() != 0 {
			t.Errorf("execution without targets: status %q, finished %v, %d targets; want completed at %v, 0",
				got.Status, got.FinishedAt, got.Counts.Total(), t0)
		}
	})
}

func TestCreateExecution_ManyTargets(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		mustCreate(t, s, execution("big", t0), pcs(1201)...)
		if got := mustExecution(t, s, "big").Counts; got != (store.Counts{Pending: 1201}) {
			t.Errorf("Counts = %+v, want 1201 pending", got)
		}
	})
}

func TestCreateExecution_KeepsEarlierResults(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		// A result that was projected before its execution row (a replay) survives.
		mustApply(t, s, t0, wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0)})
		mustCreate(t, s, execution("e1", t0), "pc1")
		got := mustExecution(t, s, "e1")
		if got.Counts != (store.Counts{Succeeded: 1}) || got.Status != store.StatusCompleted {
			t.Errorf("Execution = %s %+v, want completed with 1 succeeded", got.Status, got.Counts)
		}
	})
}

func TestExecutions(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for i := range 7 {
			e := execution(fmt.Sprintf("e%d", i), t0.Add(time.Duration(i)*time.Minute))
			if i%2 == 1 {
				e.JobID = "odd"
			}
			mustCreate(t, s, e, pcs(i+1)...)
		}
		// Same created_at: the id breaks the tie.
		mustCreate(t, s, execution("e6b", t0.Add(6*time.Minute)), "pc1")
		if err := s.RequestKill(ctx, "e3", "bob", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name  string
			f     store.ExecFilter
			want  []string
			total int
		}{
			{"newest first", store.ExecFilter{}, []string{"e6b", "e6", "e5", "e4", "e3", "e2", "e1", "e0"}, 8},
			{"paging", store.ExecFilter{Limit: 3, Offset: 2}, []string{"e5", "e4", "e3"}, 8},
			{"job", store.ExecFilter{JobID: "odd"}, []string{"e5", "e3", "e1"}, 3},
			{"status", store.ExecFilter{Status: store.StatusKilled}, []string{"e3"}, 1},
			{"job and status", store.ExecFilter{JobID: "odd", Status: store.StatusRunning, Limit: 1}, []string{"e5"}, 2},
			{"none", store.ExecFilter{JobID: "nope"}, []string{}, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				es, total, err := s.Executions(ctx, tt.f)
				if err != nil {
					t.Fatal(err)
				}
				got := []string{}
				for _, e := range es {
					got = append(got, e.ExecID)
					want := 1 // e6b
					if e.ExecID != "e6b" {
						want = int(e.ExecID[1]-'0') + 1 // e<i> has i+1 targets
					}
					if e.Counts.Total() != want {
						t.Errorf("%s: %d targets, want %d", e.ExecID, e.Counts.Total(), want)
					}
				}
				if diff := cmp.Diff(tt.want, got); diff != "" || total != tt.total {
					t.Errorf("Executions(%+v) total %d, want %d; ids (-want +got):\n%s", tt.f, total, tt.total, diff)
				}
			})
		}
	})
}

func TestRequestKill(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		mustCreate(t, s, execution("e1", t0), "pc1", "pc2", "pc3")
		mustApply(t, s, t0.Add(time.Second),
			wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateRunning, StartedAt: t0.Add(time.Second)},
			wire.Result{ExecID: "e1", PCID: "pc2", State: wire.StateSucceeded, ExitCode: exit(0)},
		)
		at := t0.Add(time.Minute)
		if err := s.RequestKill(ctx, "e1", "bob", at); err != nil {
			t.Fatal(err)
		}
		// A second request keeps the first requester and time.
		if err := s.RequestKill(ctx, "e1", "carol", at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		e := mustExecution(t, s, "e1")
		if e.Status != store.StatusKilled || e.KillRequestedBy != "bob" || !e.KillRequestedAt.Equal(at) || !e.FinishedAt.IsZero() {
			t.Errorf("after kill: status %q, by %q at %v, finished %v; want killed by bob at %v, not finished",
				e.Status, e.KillRequestedBy, e.KillRequestedAt, e.FinishedAt, at)
		}
		if want := (store.Counts{Running: 1, Succeeded: 1, Killed: 1}); e.Counts != want {
			t.Errorf("Counts = %+v, want %+v", e.Counts, want)
		}
		got := mustResult(t, s, "e1", "pc3")
		want := store.Result{ExecID: "e1", PCID: "pc3", State: wire.StateKilled, Reason: store.ReasonKilledBeforeStart, ByServer: true, UpdatedAt: at}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pending target after kill (-want +got):\n%s", diff)
		}

		// The running target reports killed: the execution is finished, still killed.
		end := at.Add(2 * time.Second)
		mustApply(t, s, end, wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateKilled, Reason: "killed by bob"})
		e = mustExecution(t, s, "e1")
		if e.Status != store.StatusKilled || !e.FinishedAt.Equal(end) {
			t.Errorf("after the last target ended: status %q, finished %v; want killed, %v", e.Status, e.FinishedAt, end)
		}
		if r := mustResult(t, s, "e1", "pc1"); !r.StartedAt.Equal(t0.Add(time.Second)) {
			t.Errorf("started_at = %v, want it kept from the running report", r.StartedAt)
		}

		// Killing a completed execution records the request and keeps the status.
		mustCreate(t, s, execution("done", t0), "pc1")
		mustApply(t, s, t0, wire.Result{ExecID: "done", PCID: "pc1", State: wire.StateFailed, ExitCode: exit(1)})
		if err := s.RequestKill(ctx, "done", "bob", at); err != nil {
			t.Fatal(err)
		}
		if e := mustExecution(t, s, "done"); e.Status != store.StatusCompleted || e.KillRequestedBy != "bob" {
			t.Errorf("completed execution after kill: status %q, by %q", e.Status, e.KillRequestedBy)
		}
	})
}

func TestRequestKill_AllPending(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		mustCreate(t, s, execution("e1", t0), "pc1", "pc2")
		if err := s.RequestKill(context.Background(), "e1", "bob", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		e := mustExecution(t, s, "e1")
		if e.Status != store.StatusKilled || !e.FinishedAt.Equal(t0.Add(time.Minute)) || e.Counts != (store.Counts{Killed: 2}) {
			t.Errorf("Execution = %s finished %v %+v; want killed, finished at the kill, 2 killed", e.Status, e.FinishedAt, e.Counts)
		}
		// The agent started before the kill reached it: its report wins over the server's.
		mustApply(t, s, t0.Add(2*time.Minute), wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0)})
		if r := mustResult(t, s, "e1", "pc1"); r.State != wire.StateSucceeded || r.ByServer {
			t.Errorf("pc1 = %s (by server %v), want succeeded from the agent", r.State, r.ByServer)
		}
	})
}

func TestDeleteExecution(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		mustCreate(t, s, execution("e1", t0), "pc1", "pc2")
		mustCreate(t, s, execution("e2", t0), "pc1")
		if err := s.DeleteExecution(ctx, "e1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Execution(ctx, "e1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Execution after delete: err = %v, want ErrNotFound", err)
		}
		rs, total, err := s.Results(ctx, store.ResultFilter{PCID: "pc1"})
		if err != nil {
			t.Fatal(err)
		}
		if total != 1 || len(rs) != 1 || rs[0].ExecID != "e2" {
			t.Errorf("results of pc1 after deleting e1 = %+v (total %d), want only e2's", rs, total)
		}
	})
}

func TestExpireOverdue(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		early := execution("early", t0)
		early.DeadlineAt = t0.Add(time.Minute)
		late := execution("late", t0)
		late.DeadlineAt = t0.Add(time.Hour)
		done := execution("done", t0)
		done.DeadlineAt = t0.Add(time.Minute)
		noDeadline := execution("none", t0)
		noDeadline.DeadlineAt = time.Time{}
		mustCreate(t, s, early, "pc1", "pc2", "pc3")
		mustCreate(t, s, late, "pc1")
		mustCreate(t, s, done, "pc1")
		mustCreate(t, s, noDeadline, "pc1")
		mustApply(t, s, t0,
			wire.Result{ExecID: "early", PCID: "pc1", State: wire.StateRunning},
			wire.Result{ExecID: "early", PCID: "pc2", State: wire.StateSucceeded, ExitCode: exit(0)},
			wire.Result{ExecID: "done", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0)},
		)

		// At the deadline nothing expires yet.
		ids, err := s.ExpireOverdue(ctx, t0.Add(time.Minute))
		if err != nil || len(ids) != 0 {
			t.Fatalf("ExpireOverdue at the deadline = %v, %v; want nothing", ids, err)
		}
		now := t0.Add(2 * time.Minute)
		ids, err = s.ExpireOverdue(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"early"}, ids); diff != "" {
			t.Errorf("ExpireOverdue ids (-want +got):\n%s", diff)
		}
		got := mustResult(t, s, "early", "pc3")
		want := store.Result{ExecID: "early", PCID: "pc3", State: wire.StateExpired, Reason: store.ReasonExpired, ByServer: true, UpdatedAt: now}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("expired target (-want +got):\n%s", diff)
		}
		e := mustExecution(t, s, "early")
		if e.Status != store.StatusRunning || e.Counts != (store.Counts{Running: 1, Succeeded: 1, Expired: 1}) {
			t.Errorf("early = %s %+v; want running (pc1 still runs)", e.Status, e.Counts)
		}
		if ids, err := s.ExpireOverdue(ctx, now); err != nil || len(ids) != 0 {
			t.Errorf("second ExpireOverdue = %v, %v; want nothing", ids, err)
		}

		// The running target ends: completed. Then the expired one answers
		// late with a final state, which replaces the server's expired.
		mustApply(t, s, now, wire.Result{ExecID: "early", PCID: "pc1", State: wire.StateFailed, ExitCode: exit(2)})
		if e := mustExecution(t, s, "early"); e.Status != store.StatusCompleted || !e.FinishedAt.Equal(now) {
			t.Errorf("early = %s finished %v, want completed at %v", e.Status, e.FinishedAt, now)
		}
		mustApply(t, s, now.Add(time.Second), wire.Result{ExecID: "early", PCID: "pc3", State: wire.StateSucceeded, ExitCode: exit(0)})
		e = mustExecution(t, s, "early")
		if e.Status != store.StatusCompleted || e.Counts != (store.Counts{Succeeded: 2, Failed: 1}) {
			t.Errorf("early = %s %+v; want completed, 2 succeeded 1 failed", e.Status, e.Counts)
		}
		for _, id := range []string{"late", "none"} {
			if e := mustExecution(t, s, id); e.Counts != (store.Counts{Pending: 1}) {
				t.Errorf("%s = %+v, want untouched", id, e.Counts)
			}
		}
	})
}

// TestCounts_EveryState checks that each of wire.States has its own
// counter: one target in each state is counted once, in its own state.
func TestCounts_EveryState(t *testing.T) {
	var rs []store.Result
	for _, st := range wire.States {
		rs = append(rs, store.Result{State: st})
	}
	c := store.CountResults(rs)
	if c.Total() != len(wire.States) {
		t.Errorf("Total() = %d, want %d (%+v)", c.Total(), len(wire.States), c)
	}
	for _, st := range wire.States {
		if got := c.Of(st); got != 1 {
			t.Errorf("Of(%s) = %d, want 1", st, got)
		}
		if got := c.Plus(c).Of(st); got != 2 {
			t.Errorf("Plus(c).Of(%s) = %d, want 2", st, got)
		}
	}
}
