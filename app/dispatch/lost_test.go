package dispatch

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestLostReason(t *testing.T) {
	t0 := time.Date(2026, 12, 14, 9, 0, 0, 0, time.UTC)
	const grace = 2 * time.Minute
	// The target was stored running at t0 with a 10 minute timeout: it is
	// due at t0+10m and may be lost from t0+12m.
	agent := func(lastSeen time.Time, running int, execs ...string) store.Agent {
		return store.Agent{PCID: "pc1", LastSeen: lastSeen, OfflineAfter: lastSeen.Add(90 * time.Second),
			Interval: 30 * time.Second, Running: running, RunningExecs: execs}
	}
	watching := t0.Add(-time.Hour) // the server has been up for long
	tests := []struct {
		name     string
		agent    *store.Agent // nil: unknown to the server
		now      time.Time
		watching time.Time
		want     string // a word of the reason, "" for not lost
	}{
		{"online, listing it, long past", ptr(agent(t0.Add(20*time.Minute), 1, "e1")), t0.Add(20 * time.Minute), watching, ""},
		{"online, not listing it, before the grace", ptr(agent(t0.Add(11*time.Minute), 0)), t0.Add(11 * time.Minute), watching, ""},
		{"online, not listing it, past the grace", ptr(agent(t0.Add(12*time.Minute), 0)), t0.Add(12 * time.Minute), watching, "no longer runs it"},
		{"online, listing others only", ptr(agent(t0.Add(13*time.Minute), 2, "e0", "e2")), t0.Add(13 * time.Minute), watching, "no longer runs it"},
		{"online, list incomplete", ptr(agent(t0.Add(13*time.Minute), 300)), t0.Add(13 * time.Minute), watching, ""},
		{"online, count only, running one", ptr(agent(t0.Add(13*time.Minute), 1)), t0.Add(13 * time.Minute), watching, ""},
		{"online, last heartbeat from before the timeout", &store.Agent{PCID: "pc1", LastSeen: t0.Add(9 * time.Minute), OfflineAfter: t0.Add(24 * time.Minute),
			Interval: 5 * time.Minute}, t0.Add(13 * time.Minute), watching, ""},
		{"offline, before the grace", ptr(agent(t0.Add(time.Minute), 1, "e1")), t0.Add(12*time.Minute - time.Millisecond), watching, ""},
		{"offline, past the grace", ptr(agent(t0.Add(time.Minute), 1, "e1")), t0.Add(12 * time.Minute), watching, "went offline"},
		{"offline, but the server just started", ptr(agent(t0.Add(time.Minute), 1, "e1")), t0.Add(30 * time.Minute), t0.Add(29 * time.Minute), ""},
		{"offline, the server listened for three beats", ptr(agent(t0.Add(time.Minute), 1, "e1")), t0.Add(30 * time.Minute), t0.Add(30*time.Minute - 90*time.Second), "went offline"},
		{"unknown agent", nil, t0.Add(12 * time.Minute), watching, "no heartbeat"},
		{"unknown agent, the server just started", nil, t0.Add(12 * time.Minute), t0.Add(11 * time.Minute), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := store.RunningTarget{ExecID: "e1", PCID: "pc1", Since: t0, Timeout: 10 * time.Minute}
			if tt.agent != nil {
				rt.Agent, rt.KnownAgent = *tt.agent, true
			}
			got := LostReason(rt, tt.now, tt.watching, grace)
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
				t.Errorf("LostReason = %q, want %q", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// SweepLost, on both databases and with an injected clock, ends the target
// of an agent that died mid-run, leaves a live agent's target alone, and
// completes the execution.
func TestSweepLost(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 14, 9, 0, 0, 0, time.UTC)
		ev := events.New()
		changed, unsub := ev.Subscribe(events.Execution("e1"))
		defer unsub()
		d := New(st, nil, nil, nil, ev, Limits{LostGrace: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		now := t0
		d.now = func() time.Time { return now }

		if err := st.CreateExecution(ctx, store.Execution{ExecID: "e1", JobID: AdhocJob, Shell: "sh", Script: "sleep 1",
			Timeout: 5 * time.Minute, CreatedAt: t0, DeadlineAt: t0.Add(time.Hour)}, []string{"dead", "alive"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ApplyResults(ctx, []wire.Result{
			{ExecID: "e1", PCID: "dead", State: wire.StateRunning, StartedAt: t0},
			{ExecID: "e1", PCID: "alive", State: wire.StateRunning, StartedAt: t0},
		}, t0); err != nil {
			t.Fatal(err)
		}
		beat := func(pc string, at time.Time, execs ...string) {
			t.Helper()
			if err := st.UpsertAgents(ctx, []store.Agent{{PCID: pc, Interval: 30 * time.Second, LastSeen: at,
				Running: len(execs), RunningExecs: execs}}); err != nil {
				t.Fatal(err)
			}
		}
		beat("dead", t0, "e1") // its last heartbeat
		for at := t0; !at.After(t0.Add(7 * time.Minute)); at = at.Add(30 * time.Second) {
			beat("alive", at, "e1")
		}
		watching := t0.Add(-time.Hour)

		now = t0.Add(6*time.Minute - time.Millisecond) // timeout + grace not yet over
		if ids, err := d.SweepLost(ctx, watching); err != nil || len(ids) != 0 {
			t.Fatalf("before the grace: %v, %v", ids, err)
		}
		now = t0.Add(7 * time.Minute)
		if ids, err := d.SweepLost(ctx, watching); err != nil || len(ids) != 1 || ids[0] != "e1" {
			t.Fatalf("past the grace: %v, %v; want [e1]", ids, err)
		}
		select {
		case <-changed:
		default:
			t.Error("no execution event")
		}
		r, _ := st.Result(ctx, "e1", "dead")
		if r.State != wire.StateLost || !strings.Contains(r.Reason, "offline") {
			t.Errorf("dead = %s %q, want lost", r.State, r.Reason)
		}
		if r, _ := st.Result(ctx, "e1", "alive"); r.State != wire.StateRunning {
			t.Errorf("alive = %s, want running (its heartbeat lists it)", r.State)
		}
		// The live agent's heartbeat stops listing it: it is lost too, and
		// the execution is over.
		now = t0.Add(8 * time.Minute)
		beat("alive", now)
		if ids, err := d.SweepLost(ctx, watching); err != nil || len(ids) != 1 {
			t.Fatalf("after the agent forgot it: %v, %v", ids, err)
		}
		e, err := st.Execution(ctx, "e1")
		if err != nil || e.Status != store.StatusCompleted || e.Counts.Lost != 2 {
			t.Errorf("execution = %s %+v, %v; want completed with 2 lost", e.Status, e.Counts, err)
		}
	})
}
