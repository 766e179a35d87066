package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// A pending target says why it has not run: its wave has not started
// (halted or not), its PC is unknown, its agent never connected or is
// offline (until the deadline: the wave's in a rollout). Other targets,
// and pending ones of online agents, need no words.
func TestPendingWhy(t *testing.T) {
	now := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
	deadline, waveDeadline := now.Add(22*time.Minute), now.Add(time.Hour)
	online := store.ExecTarget{AgentKnown: true, AgentSeen: true, AgentOfflineAfter: now.Add(time.Minute)}
	offline := store.ExecTarget{AgentKnown: true, AgentSeen: true, AgentOfflineAfter: now.Add(-time.Minute)}
	enrolled := store.ExecTarget{AgentKnown: true}
	unknown := store.ExecTarget{}
	in := func(t store.ExecTarget, st wire.State, wave int) store.ExecTarget {
		t.State = st
		if wave >= 0 {
			t.Wave = new(wave)
		}
		return t
	}
	run := store.Execution{Status: store.StatusRunning, DeadlineAt: deadline}
	halted := store.Execution{Status: store.StatusHalted}
	waves := []store.Wave{
		{Index: 0, Name: "canary", State: store.WaveRunning, DeadlineAt: waveDeadline},
		{Index: 1, Name: "office", State: store.WaveAwaitingApproval},
		{Index: 2, Name: "rest", State: store.WaveWaiting},
	}
	tests := []struct {
		name  string
		t     store.ExecTarget
		e     store.Execution
		want  string
		until time.Time
	}{
		{"offline", in(offline, wire.StatePending, -1), run, "offline — runs when it reconnects", deadline},
		{"never connected", in(enrolled, wire.StatePending, -1), run, "never connected — runs when its agent first connects", deadline},
		{"unknown PC", in(unknown, wire.StatePending, -1), run, "unknown PC: no agent has ever had this id, so nothing will run it", time.Time{}},
		{"online", in(online, wire.StatePending, -1), run, "", time.Time{}},
		{"not pending", in(offline, wire.StateRunning, -1), run, "", time.Time{}},
		{"offline in a running wave", in(offline, wire.StatePending, 0), run, "offline — runs when it reconnects", waveDeadline},
		{"wave awaiting approval", in(offline, wire.StatePending, 1), run, "waiting for wave 2 (office) to be approved", time.Time{}},
		{"wave waiting", in(unknown, wire.StatePending, 2), run, "waiting for wave 3 (rest) to start", time.Time{}},
		{"halted, awaiting approval", in(online, wire.StatePending, 1), halted, "waiting for wave 2 (office): it awaits approval once the rollout is resumed", time.Time{}},
		{"halted, waiting", in(online, wire.StatePending, 2), halted, "waiting for wave 3 (rest), which does not start while the rollout is halted", time.Time{}},
	}
	for _, tt := range tests {
		got, until := pendingWhy(tt.t, tt.e, waves, now)
		if got != tt.want || !until.Equal(tt.until) {
			t.Errorf("%s: %q until %v; want %q until %v", tt.name, got, until, tt.want, tt.until)
		}
	}
}

// A wave that succeeded with failures within its limit says so with the
// limit; a clean success, or a failure, says nothing more than its state.
func TestWaveView(t *testing.T) {
	tests := []struct {
		name string
		w    store.Wave
		want string
	}{
		{"passed with failures", store.Wave{State: store.WaveSucceeded, MaxFailures: "2", TargetCount: 40, Counts: store.Counts{Succeeded: 38, Failed: 1, TimedOut: 1}}, "passed with 2 failed (limit 2)"},
		{"a percentage", store.Wave{State: store.WaveSucceeded, MaxFailures: "10%", TargetCount: 30, Counts: store.Counts{Succeeded: 29, Expired: 1}}, "passed with 1 failed (limit 10%: 3)"},
		{"no limit", store.Wave{State: store.WaveSucceeded, TargetCount: 2, Counts: store.Counts{Succeeded: 1, Lost: 1}}, "passed with 1 failed"},
		{"clean", store.Wave{State: store.WaveSucceeded, MaxFailures: "2", TargetCount: 2, Counts: store.Counts{Succeeded: 2}}, ""},
		{"failed", store.Wave{State: store.WaveFailed, MaxFailures: "0", TargetCount: 2, Counts: store.Counts{Succeeded: 1, Failed: 1}}, ""},
	}
	for _, tt := range tests {
		v := waveView(store.Execution{ExecID: "r1", Status: store.StatusRunning}, tt.w)
		if v.OutcomeText != tt.want || (v.Outcome != "") != (tt.want != "") || v.Halted {
			t.Errorf("%s: %+v, want %q", tt.name, v, tt.want)
		}
	}
	if v := waveView(store.Execution{Status: store.StatusHalted}, store.Wave{State: store.WaveAwaitingApproval}); !v.Halted {
		t.Error("the wave of a halted rollout does not say so")
	}
}

// Every count links to its targets, of the wave when there is one.
func TestCountLinks(t *testing.T) {
	got := countLinks("r 1", store.Counts{Succeeded: 3, Failed: 1}, 2)
	want := []views.CountLink{{State: "pending"}, {State: "running"},
		{State: "succeeded", N: 3, URL: "/executions/r%201?state=succeeded&wave=2", TableURL: "/executions/r%201/targets?state=succeeded&wave=2"},
		{State: "failed", N: 1, URL: "/executions/r%201?state=failed&wave=2", TableURL: "/executions/r%201/targets?state=failed&wave=2"},
		{State: "timed_out"}, {State: "killed"}, {State: "skipped"}, {State: "expired"}, {State: "lost"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := countLinks("e1", store.Counts{Failed: 1}, 0); got[3].URL != "/executions/e1?state=failed" {
		t.Errorf("without a wave: %+v", got[3])
	}
}

// The wave filter takes a wave's number as the page shows it, and refuses
// anything else in words.
func TestWaveParam(t *testing.T) {
	tests := []struct {
		q      string
		waves  int
		want   int
		failed bool
	}{
		{"", 3, 0, false}, {"", 0, 0, false}, {"1", 3, 1, false}, {"3", 3, 3, false},
		{"0", 3, 0, true}, {"4", 3, 0, true}, {"-1", 3, 0, true}, {"x", 3, 0, true}, {"1", 0, 0, true},
	}
	for _, tt := range tests {
		c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/executions/e1/targets?wave="+tt.q, nil), httptest.NewRecorder())
		got, err := waveParam(c, tt.waves)
		if got != tt.want || (err != nil) != tt.failed {
			t.Errorf("wave=%q of %d waves: %d, %v; want %d (error %v)", tt.q, tt.waves, got, err, tt.want, tt.failed)
		}
	}
}
