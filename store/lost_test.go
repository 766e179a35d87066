package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// RunningPastTimeout finds the running targets of open (and killed but
// unfinished) executions whose timeout has passed, with their agents;
// EndLost ends them, completes the execution, and leaves alone a target
// reported on meanwhile.
func TestRunningPastTimeout_EndLost(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := agent("pc1", t0)
		a.Running, a.RunningExecs = 2, []string{"e0", "e9"}
		mustUpsert(t, s, a)
		e := execution("e1", t0) // timeout 1m
		mustCreate(t, s, e, "pc1", "pc2", "pc3")
		started := t0.Add(time.Second)
		mustApply(t, s, started,
			wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateRunning, StartedAt: started},
			wire.Result{ExecID: "e1", PCID: "pc2", State: wire.StateRunning, StartedAt: started},
			wire.Result{ExecID: "e1", PCID: "pc3", State: wire.StateSucceeded, ExitCode: exit(0)})
		// Another execution, completed, and one whose timeout is long.
		mustCreate(t, s, execution("e2", t0), "pc1")
		mustApply(t, s, started, wire.Result{ExecID: "e2", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0)})
		long := execution("e3", t0)
		long.Timeout = time.Hour
		mustCreate(t, s, long, "pc1")
		mustApply(t, s, started, wire.Result{ExecID: "e3", PCID: "pc1", State: wire.StateRunning, StartedAt: started})

		if got, err := s.RunningPastTimeout(ctx, started.Add(time.Minute-time.Millisecond), "", ""); err != nil || len(got) != 0 {
			t.Fatalf("before the timeout: %+v, %v; want none", got, err)
		}
		got, err := s.RunningPastTimeout(ctx, started.Add(time.Minute), "", "")
		if err != nil {
			t.Fatal(err)
		}
		want := []store.RunningTarget{
			{ExecID: "e1", PCID: "pc1", Since: started, Timeout: time.Minute, KnownAgent: true,
				Agent: store.Agent{PCID: "pc1", LastSeen: t0, OfflineAfter: t0.Add(90 * time.Second), Interval: 30 * time.Second,
					Running: 2, RunningExecs: []string{"e0", "e9"}}},
			{ExecID: "e1", PCID: "pc2", Since: started, Timeout: time.Minute},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("RunningPastTimeout (-want +got):\n%s", diff)
		}
		if after, err := s.RunningPastTimeout(ctx, started.Add(time.Minute), "e1", "pc1"); err != nil || len(after) != 1 || after[0].PCID != "pc2" {
			t.Errorf("RunningPastTimeout after e1/pc1 = %+v, %v; want pc2 only", after, err)
		}

		// pc2 reports its end between the look and the write: it keeps it.
		mustApply(t, s, started.Add(time.Minute), wire.Result{ExecID: "e1", PCID: "pc2", State: wire.StateFailed, ExitCode: exit(1), FinishedAt: started.Add(time.Minute)})
		now := started.Add(3 * time.Minute)
		ids, err := s.EndLost(ctx, []store.LostTarget{
			{ExecID: "e1", PCID: "pc2", Since: started, Reason: "gone"},
			{ExecID: "e1", PCID: "pc1", Since: started, Reason: "gone"},
		}, now)
		if err != nil || !cmp.Equal(ids, []string{"e1"}) {
			t.Fatalf("EndLost = %v, %v; want [e1]", ids, err)
		}
		if r := mustResult(t, s, "e1", "pc1"); r.State != wire.StateLost || r.Reason != "gone" || !r.ByServer || !r.FinishedAt.Equal(now) {
			t.Errorf("pc1 = %+v, want lost by the server at %v", r, now)
		}
		if r := mustResult(t, s, "e1", "pc2"); r.State != wire.StateFailed {
			t.Errorf("pc2 = %s, want its own report (failed)", r.State)
		}
		ex := mustExecution(t, s, "e1")
		if ex.Status != store.StatusCompleted || ex.Counts != (store.Counts{Succeeded: 1, Failed: 1, Lost: 1}) || ex.Counts.Total() != 3 {
			t.Errorf("execution = %s %+v, want completed with one lost", ex.Status, ex.Counts)
		}
		if got, err := s.RunningPastTimeout(ctx, now, "", ""); err != nil || len(got) != 0 {
			t.Errorf("after EndLost: %+v, %v; want none", got, err)
		}
		// Lost targets are failures on the dashboard.
		fails, n, err := s.RecentFailures(ctx, t0, 10)
		if err != nil || n != 2 || len(fails) != 2 || fails[0].State != wire.StateLost {
			t.Errorf("RecentFailures = %d %+v, %v; want the lost and the failed target", n, fails, err)
		}
		if rs, n, err := s.Results(ctx, store.ResultFilter{State: wire.StateLost}); err != nil || n != 1 || rs[0].PCID != "pc1" {
			t.Errorf("Results(state=lost) = %d %+v, %v", n, rs, err)
		}
	})
}

// A late report of the agent replaces lost: a final one wins, a late
// "running" does not reopen the target.
func TestApplyResults_LateReportReplacesLost(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		mustCreate(t, s, execution("e1", t0), "pc1")
		mustApply(t, s, t0, wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateRunning, StartedAt: t0})
		if _, err := s.EndLost(ctx, []store.LostTarget{{ExecID: "e1", PCID: "pc1", Since: t0, Reason: "gone"}}, t0.Add(5*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if ids := mustApply(t, s, t0.Add(6*time.Minute), wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateRunning, StartedAt: t0}); len(ids) != 0 {
			t.Errorf("a late running report changed %v", ids)
		}
		if r := mustResult(t, s, "e1", "pc1"); r.State != wire.StateLost {
			t.Fatalf("after a late running report: %s, want lost", r.State)
		}
		done := t0.Add(30 * time.Second)
		mustApply(t, s, t0.Add(7*time.Minute), wire.Result{ExecID: "e1", PCID: "pc1", State: wire.StateSucceeded, ExitCode: exit(0),
			Stdout: "ok\n", StartedAt: t0, FinishedAt: done})
		r := mustResult(t, s, "e1", "pc1")
		if r.State != wire.StateSucceeded || r.ByServer || r.Stdout != "ok\n" || !r.FinishedAt.Equal(done) {
			t.Errorf("after the real report: %+v, want the agent's success", r)
		}
		if e := mustExecution(t, s, "e1"); e.Status != store.StatusCompleted || e.Counts != (store.Counts{Succeeded: 1}) {
			t.Errorf("execution = %s %+v", e.Status, e.Counts)
		}
	})
}

// Killing an execution ends the running targets of offline agents as lost;
// an online agent's target waits for the agent's report, and an unknown
// agent's for the sweeper.
func TestRequestKill_OfflineRunningBecomeLost(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := t0.Add(10 * time.Minute)
		mustUpsert(t, s, agent("on", now.Add(-time.Second)), agent("off", t0))
		mustCreate(t, s, execution("e1", t0), "on", "off", "ghost", "idle")
		mustApply(t, s, t0,
			wire.Result{ExecID: "e1", PCID: "on", State: wire.StateRunning, StartedAt: t0},
			wire.Result{ExecID: "e1", PCID: "off", State: wire.StateRunning, StartedAt: t0},
			wire.Result{ExecID: "e1", PCID: "ghost", State: wire.StateRunning, StartedAt: t0})
		if err := s.RequestKill(ctx, "e1", "alice", now); err != nil {
			t.Fatal(err)
		}
		for pc, want := range map[string]wire.State{"on": wire.StateRunning, "off": wire.StateLost, "ghost": wire.StateRunning, "idle": wire.StateKilled} {
			r := mustResult(t, s, "e1", pc)
			if r.State != want || (want == wire.StateLost && (r.Reason != store.ReasonLostAtKill || !r.ByServer)) {
				t.Errorf("%s = %s (%q), want %s", pc, r.State, r.Reason, want)
			}
		}
		if e := mustExecution(t, s, "e1"); e.Status != store.StatusKilled || !e.FinishedAt.IsZero() {
			t.Errorf("execution = %s finished %v, want killed and open", e.Status, e.FinishedAt)
		}
		// The killed execution's last running target is still looked at.
		got, err := s.RunningPastTimeout(ctx, now, "", "")
		if err != nil || len(got) != 2 || got[0].PCID != "ghost" || got[1].PCID != "on" {
			t.Errorf("RunningPastTimeout after kill = %+v, %v; want the targets of the unknown and the online agent", got, err)
		}
	})
}

// A heartbeat's running exec_ids are stored by both write paths.
func TestAgents_RunningExecs(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := agent("pc1", t0)
		a.Running, a.RunningExecs = 2, []string{"e1", "e2"}
		mustUpsert(t, s, a)
		got, err := s.Agent(ctx, "pc1")
		if err != nil || !cmp.Equal(got.RunningExecs, []string{"e1", "e2"}) || !got.RunningComplete() {
			t.Fatalf("after upsert: %v complete=%v, %v", got.RunningExecs, got.RunningComplete(), err)
		}
		if _, err := s.TouchAgents(ctx, []store.Seen{{PCID: "pc1", LastSeen: t0.Add(time.Second), OfflineAfter: t0.Add(time.Minute), Running: 3}}); err != nil {
			t.Fatal(err)
		}
		if got, _ = s.Agent(ctx, "pc1"); got.RunningExecs != nil || got.Running != 3 || got.RunningComplete() {
			t.Errorf("after a count-only heartbeat: %v running %d complete=%v", got.RunningExecs, got.Running, got.RunningComplete())
		}
	})
}

func TestAgent_HeartbeatLate(t *testing.T) {
	a := agent("pc1", t0) // 30 s interval, offline after 90 s
	tests := []struct {
		after    time.Duration
		late, on bool
	}{
		{after: 30 * time.Second, on: true},
		{after: 45 * time.Second, on: true},
		{after: 46 * time.Second, late: true, on: true},
		{after: 89 * time.Second, late: true, on: true},
		{after: 90 * time.Second},
	}
	for _, tt := range tests {
		now := t0.Add(tt.after)
		if a.HeartbeatLate(now) != tt.late || a.Online(now) != tt.on {
			t.Errorf("after %s: late %v online %v, want %v %v", tt.after, a.HeartbeatLate(now), a.Online(now), tt.late, tt.on)
		}
	}
}
