package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
	"github.com/kanadehq/kanade/views"
)

func TestTargetText(t *testing.T) {
	tests := []struct {
		t    store.Target
		n    int
		want string
	}{
		{store.Target{PCs: []string{"PC-042"}}, 1, "PC-042"},
		{store.Target{PCs: []string{"a", "b", "c"}}, 3, "a, b, c"},
		{store.Target{PCs: []string{"a", "b", "c", "d", "e"}}, 5, "a, b, c and 2 more, 5 PCs"},
		{store.Target{PCs: []string{"a", "b"}}, 1, "a, b, 1 PC"}, // one of them is not an agent's
		{store.Target{Groups: []string{"canary"}}, 40, "group canary, 40 PCs"},
		{store.Target{Groups: []string{"canary", "lab"}}, 41, "groups canary, lab, 41 PCs"},
		{store.Target{All: true}, 5213, "all agents, 5,213 PCs"},
		{store.Target{Groups: []string{"canary"}, PCs: []string{"pc9"}}, 3, "group canary + pc9, 3 PCs"},
		{store.Target{}, 0, "0 PCs"},
	}
	for _, tt := range tests {
		if got := targetText(tt.t, tt.n); got != tt.want {
			t.Errorf("targetText(%+v, %d) = %q, want %q", tt.t, tt.n, got, tt.want)
		}
	}
}

func TestExecName(t *testing.T) {
	tests := []struct {
		e                  store.Execution
		wantName, wantMore string
	}{
		{store.Execution{JobID: "adhoc", Script: "\n\n   Get-Service spooler | Restart-Service  \nexit 0"}, "Get-Service spooler | Restart-Service", ""},
		{store.Execution{JobID: "adhoc", Script: "echo x", Title: "INC-42 printer"}, "INC-42 printer", "echo x"},
		{store.Execution{JobID: "patch-tuesday", Script: "wuauclt /detectnow"}, "patch-tuesday", ""},
		{store.Execution{JobID: "patch-tuesday", Title: "CHG-7"}, "CHG-7", "patch-tuesday"},
		{store.Execution{JobID: "adhoc", Script: strings.Repeat("x", 100)}, strings.Repeat("x", 79) + "…", ""},
		{store.Execution{JobID: "adhoc", Script: "  \n\t\n"}, "", ""},
	}
	for _, tt := range tests {
		name, more := execName(tt.e)
		if name != tt.wantName || more != tt.wantMore {
			t.Errorf("execName(%q, %q, %q) = %q, %q; want %q, %q", tt.e.JobID, tt.e.Script, tt.e.Title, name, more, tt.wantName, tt.wantMore)
		}
	}
}

func TestTickText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 999 * time.Millisecond: "0s", 42 * time.Second: "42s",
		3*time.Minute + 5*time.Second: "3m 05s", time.Hour + 2*time.Minute + 59*time.Second: "1h 02m", 50 * time.Hour: "50h 00m",
	} {
		if got := tickText(d); got != want {
			t.Errorf("tickText(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestRunTick(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	now := start.Add(95 * time.Second)
	tests := []struct {
		name       string
		start, end time.Time
		want       views.Tick
	}{
		{"not started", time.Time{}, time.Time{}, views.Tick{}},
		{"running", start, time.Time{}, views.Tick{Text: "1m 35s", From: "2026-12-07T10:00:00Z", Now: "2026-12-07T10:01:35Z"}},
		{"ended", start, start.Add(1500 * time.Millisecond), views.Tick{Text: "1.5s"}},
	}
	for _, tt := range tests {
		if got := runTick(tt.start, tt.end, now); got != tt.want {
			t.Errorf("%s: runTick = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestRerunTitle(t *testing.T) {
	long := strings.Repeat("é", 200)
	tests := []struct{ title, want string }{
		{"", "Re-run on failed of 01abc"},
		{"INC-9", "INC-9 (re-run on failed)"},
		{long, strings.Repeat("é", 181) + " (re-run on failed)"},
	}
	for _, tt := range tests {
		got := rerunTitle(store.Execution{ExecID: "01abc", Title: tt.title})
		if got != tt.want {
			t.Errorf("rerunTitle(%q) = %q, want %q", tt.title, got, tt.want)
		}
		if n := len([]rune(got)); n > 200 {
			t.Errorf("rerunTitle(%q) is %d characters", tt.title, n)
		}
	}
}

func TestFailureText(t *testing.T) {
	c := store.Counts{Succeeded: 5, Failed: 2, TimedOut: 1, Skipped: 4, Lost: 1}
	if got, n := failureText(c), failedCount(c); got != "2 failed, 1 timed out, 1 lost" || n != 4 {
		t.Errorf("failureText = %q, failedCount = %d; want 2 failed, 1 timed out, 1 lost and 4", got, n)
	}
}

func TestLogText(t *testing.T) {
	for _, tt := range []struct{ out, err, want string }{
		{"ok\n", "", "ok\n"},
		{"", "boom\n", "--- stderr ---\nboom\n"},
		{"no newline", "boom", "no newline\n--- stderr ---\nboom"},
		{"", "", ""},
	} {
		if got := logText(tt.out, tt.err); got != tt.want {
			t.Errorf("logText(%q, %q) = %q, want %q", tt.out, tt.err, got, tt.want)
		}
	}
}

func TestExecFilter(t *testing.T) {
	tests := []struct {
		query string
		want  store.ExecFilter
		bad   string // the parameter a 400 names
	}{
		{"", store.ExecFilter{Limit: 50}, ""},
		{"status=completed", store.ExecFilter{Status: "completed", Limit: 50}, ""},
		{"status=failed", store.ExecFilter{Outcome: store.OutcomeFailed, Limit: 50}, ""},
		{"status=running", store.ExecFilter{Outcome: store.OutcomeRunning, Limit: 50}, ""},
		{"status=completed&outcome=completed_with_failures", store.ExecFilter{Status: "completed", Outcome: store.OutcomeCompletedWithFailures, Limit: 50}, ""},
		{"status=failed&outcome=failed", store.ExecFilter{Outcome: store.OutcomeFailed, Limit: 50}, ""},
		{"pc_id=PC-042&title=+INC-4+&initiated_by=ana&job_id=adhoc&limit=5&offset=10",
			store.ExecFilter{PCID: "PC-042", Title: "INC-4", InitiatedBy: "ana", JobID: "adhoc", Limit: 5, Offset: 10}, ""},
		{"status=bogus", store.ExecFilter{}, "status"},
		{"outcome=completed", store.ExecFilter{}, "outcome"},
		{"status=killed&outcome=failed", store.ExecFilter{}, "outcome"},
		{"pc_id=a+b", store.ExecFilter{}, "pc_id"},
		{"title=" + strings.Repeat("x", 201), store.ExecFilter{}, "title"},
		{"initiated_by=%FF", store.ExecFilter{}, "initiated_by"},
	}
	e := echo.New()
	for _, tt := range tests {
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/api/executions?"+tt.query, nil), httptest.NewRecorder())
		got, err := execFilter(c)
		if tt.bad != "" {
			var he *echo.HTTPError
			if !errors.As(err, &he) || he.Code != http.StatusBadRequest || !strings.HasPrefix(fmt.Sprint(he.Message), tt.bad+" ") {
				t.Errorf("execFilter(%q) = %+v, %v; want a 400 naming %s", tt.query, got, err, tt.bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("execFilter(%q): %v", tt.query, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("execFilter(%q) (-want +got):\n%s", tt.query, diff)
		}
	}
}

// TestRerunScope: Re-run on failed takes the failed targets of a plain
// execution, and of a rollout only those of the waves that started: the
// targets of the waves a kill stopped never ran.
func TestRerunScope(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	s := &server{Deps: Deps{Store: st}}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	res := func(exec, pc string, state wire.State) wire.Result {
		return wire.Result{ExecID: exec, PCID: pc, State: state, FinishedAt: at}
	}

	plain := store.Execution{ExecID: "plain", JobID: "adhoc", Script: "x", CreatedAt: at, DeadlineAt: at.Add(time.Hour)}
	if err := st.CreateExecution(ctx, plain, []string{"a", "b", "c", "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ApplyResults(ctx, []wire.Result{res("plain", "a", wire.StateSucceeded), res("plain", "b", wire.StateFailed),
		res("plain", "c", wire.StateTimedOut), res("plain", "d", wire.StateSkipped)}, at); err != nil {
		t.Fatal(err)
	}

	roll := store.Execution{ExecID: "roll", JobID: "patch", Version: "1", Script: "x", CreatedAt: at}
	if err := st.CreateRollout(ctx, roll, []store.Wave{{Name: "canary"}, {Name: "rest"}}, [][]string{{"p1", "p2"}, {"p3", "p4"}}); err != nil {
		t.Fatal(err)
	}
	ws, err := st.Waves(ctx, "roll")
	if err != nil {
		t.Fatal(err)
	}
	ws[0].State, ws[0].StartedAt = store.WaveRunning, at
	if err := st.SaveRollout(ctx, "roll", store.StatusRunning, "", ws, at); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ApplyResults(ctx, []wire.Result{res("roll", "p1", wire.StateFailed)}, at); err != nil {
		t.Fatal(err)
	}
	if err := st.RequestKill(ctx, "roll", "bob", at); err != nil { // p2, p3, p4 killed before they started
		t.Fatal(err)
	}

	for _, tt := range []struct {
		id      string
		wantN   int
		wantPCs []string
	}{
		{"plain", 2, []string{"b", "c"}},
		{"roll", 2, []string{"p1", "p2"}},
	} {
		e, err := st.Execution(ctx, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := s.rerunScope(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		pcs, err := s.failedPCs(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if n := failedCount(c); n != tt.wantN || !cmp.Equal(pcs, tt.wantPCs) {
			t.Errorf("%s: %d to re-run, PCs %v; want %d, %v", tt.id, n, pcs, tt.wantN, tt.wantPCs)
		}
	}
}
