//go:build !windows

package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/kanadehq/kanade/store"
)

// rViewerZone is the browser's time zone in these tests: half an hour off
// UTC, so a time shown in UTC can never pass for the viewer's.
const rViewerZone = "Asia/Kolkata"

// rBrowser is newBrowser in rViewerZone.
func rBrowser(t *testing.T) (context.Context, *time.Location) {
	t.Helper()
	ctx := newBrowser(t)
	loc, err := time.LoadLocation(rViewerZone)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: rViewerZone}); err != nil {
		t.Fatal(err)
	}
	return ctx, loc
}

// rClockJS is a JavaScript test that a text shows t as a clock time in
// loc, 24-hour or 12-hour ("17:22", "05:22 PM"): loc is half an hour off
// UTC, so the minutes alone tell the viewer's time from UTC.
func rClockJS(t time.Time, loc *time.Location) string {
	lt := t.In(loc)
	return `(txt => ['` + lt.Format("15:04") + `', '` + lt.Format("3:04") + `'].some(c => txt.includes(c)))`
}

func rOpen(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
}

// rStopAgent stops an agent (its last heartbeat says so) and waits until
// the server lists it as offline.
func rStopAgent(t *testing.T, s *testServer, a *testAgent) {
	t.Helper()
	a.stop()
	checkFor(t, 20*time.Second, func() error {
		var got struct {
			Online bool `json:"online"`
		}
		if code := s.get(t, "/api/agents/"+a.PC, &got); code != http.StatusOK || got.Online {
			return fmt.Errorf("agent %s still online (status %d)", a.PC, code)
		}
		return nil
	})
}

// rRow is the JavaScript expression of the target row of pc.
func rRow(pc string) string { return rRowFn + "('" + pc + "')" }

// rRowFn is a JavaScript function from a PC to its target row.
const rRowFn = `(pc => [...document.querySelectorAll('#exec-targets [data-testid=target-row]')].find(r => r.querySelector('td').textContent.trim() === pc))`

// rCard is the JavaScript expression of the card of wave index i (0-based).
func rCard(i int) string {
	return `document.querySelector('[data-testid=wave][data-wave="` + strconv.Itoa(i) + `"]')`
}

// rLegacyExecution stores, in the database of a server about to start on
// data, an execution aimed at pc, a PC id no agent ever had: what an
// execution recorded before such ids were refused looks like. It returns
// the execution's id.
func rLegacyExecution(t *testing.T, data, pc string) string {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.DriverSQLite, filepath.Join(data, "kanade.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	e := store.Execution{ExecID: "legacy-typo", JobID: "adhoc", Shell: "sh", Script: "echo typo", Timeout: 30 * time.Second,
		Target: store.Target{PCs: []string{pc}}, InitiatedBy: "admin", CreatedAt: now, DeadlineAt: now.Add(time.Hour)}
	if err := st.CreateExecution(ctx, e, []string{pc}); err != nil {
		t.Fatal(err)
	}
	return e.ExecID
}

// TestBrowser_Points2And5_RolloutCardsAndWaveFilter covers issue points 2 and 5.
// A canary wave that passes with one failure within its limit is amber
// and says so, never a green "succeeded"; its "1 failed" opens the
// targets table filtered to that wave's failed targets, and the table has
// a wave column and filter that combine with the state filter. A halted
// rollout's wave awaiting approval says to resume first and offers no
// Approve button (the engine refuses to approve a wave of a halted
// rollout); after Resume the wave is approved and runs.
func TestBrowser_Points2And5_RolloutCardsAndWaveFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	for _, a := range []struct{ pc, group string }{{"c1", "canary"}, {"c2", "canary"}, {"f1", "fleet"}, {"f2", "fleet"}} {
		startAgent(t, s, a.pc, []string{a.group}, "")
	}
	s.waitOnline(t, "c1", "c2", "f1", "f2")
	var e execution
	if code := s.deploy(t, waveManifest("r2-limit", `[ "$KANADE_PC_ID" != c1 ]`,
		"    - name: canary\n      group: canary\n      max_failures: 1\n    - name: fleet\n      group: fleet\n      approval: true\n"), &e); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	s.waitRollout(t, e.ExecID, "wave 2 to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })
	ctx, _ := rBrowser(t)
	page := s.URL + "/executions/" + e.ExecID
	rOpen(t, ctx, page)

	// Point 2: passed with a failure within its limit, in amber (the
	// colour of the badge of the wave awaiting approval), not green.
	waitJS(t, ctx, "wave 1 passed with 1 failed (limit 1), amber", `(() => {
		const b = `+rCard(0)+`?.querySelector('.wave-head .badge'), amber = `+rCard(1)+`?.querySelector('.wave-head .badge');
		return !!b && !!amber && b.dataset.state !== 'succeeded' && b.textContent.trim() === 'passed with 1 failed (limit 1)' &&
			getComputedStyle(b).backgroundColor === getComputedStyle(amber).backgroundColor;
	})()`)
	screenshot(t, ctx, "r-rollout-passed-with-failures")

	// Point 5: the card's "1 failed" opens wave 1's failed targets.
	click(t, ctx, `[data-testid=wave][data-wave="0"] a[data-count-state=failed]`)
	waitJS(t, ctx, "the table filtered to wave 1's failed targets", `(() => {
		const rows = [...document.querySelectorAll('#exec-targets [data-testid=target-row]')];
		const q = new URLSearchParams(location.search);
		return q.get('state') === 'failed' && q.get('wave') === '1' && rows.length === 1 &&
			rows[0].querySelector('td').textContent.trim() === 'c1' &&
			rows[0].querySelector('[data-testid=target-wave]')?.textContent.trim() === '1. canary';
	})()`)
	// The state filter keeps the wave, and the wave filter keeps the state.
	waitJS(t, ctx, "filters that combine", `(() => {
		const st = [...document.querySelectorAll('#exec-targets nav[aria-label="Filter by state"] a')];
		const wv = [...document.querySelectorAll('#exec-targets nav[aria-label="Filter by wave"] a')];
		const q = a => new URLSearchParams(a.getAttribute('href').split('?')[1] || '');
		return st.length > 0 && st.every(a => q(a).get('wave') === '1') &&
			wv.length === 3 && wv.every(a => q(a).get('state') === 'failed') &&
			wv.find(a => a.getAttribute('aria-current') === 'true')?.textContent.trim() === '1. canary';
	})()`)
	screenshot(t, ctx, "r-rollout-failed-of-wave-1")
	// A shared link to the second wave shows its targets only.
	rOpen(t, ctx, page+"?wave=2")
	waitJS(t, ctx, "wave 2's targets only", `(() => {
		const rows = [...document.querySelectorAll('#exec-targets [data-testid=target-row]')];
		return rows.length === 2 && rows.every(r => r.querySelector('[data-testid=target-wave]')?.textContent.trim() === '2. fleet');
	})()`)
	// A wave that does not exist is refused in words.
	var bad apiErrorBody
	if code := s.get(t, "/executions/"+e.ExecID+"/targets?wave=9", &bad); code != http.StatusBadRequest {
		t.Errorf("?wave=9: %d, want 400", code)
	}

	// Point 2: halted, wave 2 says resume first and offers no Approve.
	rOpen(t, ctx, page)
	click(t, ctx, `[data-testid=halt-button]`)
	waitJS(t, ctx, "wave 2 of the halted rollout says resume first, with no Approve button", `(() => {
		const c = `+rCard(1)+`;
		return !!document.querySelector('[data-testid=resume-button]') && !!c && c.textContent.includes('resume first') &&
			!c.querySelector('[data-testid=approve-button]');
	})()`)
	screenshot(t, ctx, "r-rollout-halted")
	click(t, ctx, `[data-testid=resume-button]`)
	waitJS(t, ctx, "the Approve button after Resume", `!!document.querySelector('[data-testid=approve-button]') && !`+rCard(1)+`.textContent.includes('resume first')`)

	start := time.Now()
	click(t, ctx, `[data-testid=approve-button]`)
	waitJS(t, ctx, "approved shown", rCard(1)+`?.querySelector('[data-testid=approved-by]') !== null`)
	t.Logf("approve → approved shown: %v", time.Since(start).Round(time.Millisecond))
	waitJS(t, ctx, "wave 2 succeeded", rCard(1)+`?.dataset.state === 'succeeded' && `+rCard(1)+`.querySelector('.wave-head .badge').dataset.state === 'succeeded'`)
	screenshot(t, ctx, "r-rollout-done")
}

// TestBrowser_Point4_PendingTargetsSayWhy covers issue point 4: a target that
// cannot run yet says why in the targets table — its agent is offline
// (until the deadline, in the viewer's time zone), its wave has not
// started, or no agent ever had its PC id (an execution recorded before
// such ids were refused).
func TestBrowser_Point4_PendingTargetsSayWhy(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	data := t.TempDir()
	legacy := rLegacyExecution(t, data, "PC-TYPO-99")
	s := startServer(t, data, "")
	startAgent(t, s, "on1", nil, "")
	off := startAgent(t, s, "off1", nil, "")
	s.waitOnline(t, "on1", "off1")
	rStopAgent(t, s, off)

	// Offline: runs when it reconnects, until the deadline.
	adhoc := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"off1"}}, "shell": "sh", "script": "echo hi", "timeout": "30s", "deadline": "1h"})
	var withDeadline struct {
		DeadlineAt time.Time `json:"deadline_at"`
	}
	if code := s.get(t, "/api/executions/"+adhoc.ExecID, &withDeadline); code != http.StatusOK || withDeadline.DeadlineAt.IsZero() {
		t.Fatalf("execution %s: %d, deadline %v", adhoc.ExecID, code, withDeadline.DeadlineAt)
	}
	// Waiting for its wave: the second wave awaits approval.
	var rollout execution
	if code := s.deploy(t, "id: r4-waves\nversion: \"1\"\ntarget:\n  pcs: [on1, off1]\nexecute:\n  shell: sh\n  script: 'true'\n  timeout: 30s\nrollout:\n  waves:\n"+
		"    - name: canary\n      pcs: [on1]\n    - name: fleet\n      pcs: [off1]\n      approval: true\n", &rollout); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	s.waitRollout(t, rollout.ExecID, "wave 2 to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })

	ctx, loc := rBrowser(t)
	rOpen(t, ctx, s.URL+"/executions/"+adhoc.ExecID)
	waitJS(t, ctx, "off1 offline until "+withDeadline.DeadlineAt.In(loc).Format("15:04")+" in the viewer's time zone", `(() => {
		const why = `+rRow("off1")+`?.querySelector('[data-testid=target-reason]');
		return !!why && why.textContent.includes('offline — runs when it reconnects, until ') && `+rClockJS(withDeadline.DeadlineAt, loc)+`(why.querySelector('time')?.textContent || '');
	})()`)
	screenshot(t, ctx, "r-target-offline")
	rOpen(t, ctx, s.URL+"/executions/"+rollout.ExecID)
	waitJS(t, ctx, "off1 waits for wave 2", rRow("off1")+`?.querySelector('[data-testid=target-reason]')?.textContent.includes('waiting for wave 2')`)
	screenshot(t, ctx, "r-target-waiting-for-wave")
	rOpen(t, ctx, s.URL+"/executions/"+legacy)
	waitJS(t, ctx, "PC-TYPO-99 is an unknown PC", rRow("PC-TYPO-99")+`?.querySelector('[data-testid=target-reason]')?.textContent.includes('unknown PC')`)
	screenshot(t, ctx, "r-target-unknown")
}

// TestBrowser_Point6_EmergencyStopAftermath covers issue point 6 (the page and
// the data; the top-bar indicator is tested with the layout): after the
// stop, the killed targets say "emergency stop: <reason>", and the page
// says what the stop did — executions killed (linked), rollouts halted,
// agents that acknowledged — with its time in the viewer's time zone. It
// also measures kill → killed shown.
func TestBrowser_Point6_EmergencyStopAftermath(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "a1", nil, "")
	startAgent(t, s, "a2", nil, "")
	off := startAgent(t, s, "off1", nil, "")
	s.waitOnline(t, "a1", "a2", "off1")
	rStopAgent(t, s, off)
	ctx, loc := rBrowser(t)

	// Kill → killed, as a help desk does it: the red button.
	k := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"a2"}}, "shell": "sh", "script": "sleep 60", "timeout": "90s"})
	rOpen(t, ctx, s.URL+"/executions/"+k.ExecID)
	waitJS(t, ctx, "running", `document.querySelector('#exec-targets [data-state=running]') !== null`)
	start := time.Now()
	click(t, ctx, `[data-testid=kill-button]`)
	waitJS(t, ctx, "killed shown", `document.querySelector('#exec-targets [data-state=killed]') !== null`)
	t.Logf("kill → killed shown: %v", time.Since(start).Round(time.Millisecond))

	// What the stop will meet: a running target and one pending on an
	// offline PC, and a rollout waiting for approval.
	x := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"a1", "off1"}}, "shell": "sh", "script": "sleep 60", "timeout": "90s", "deadline": "1h"})
	s.waitExec(t, x.ExecID, targetIn("a1", "running"))
	var r execution
	if code := s.deploy(t, "id: r6-waves\nversion: \"1\"\ntarget:\n  pcs: [a1, a2]\nexecute:\n  shell: sh\n  script: 'true'\n  timeout: 30s\nrollout:\n  waves:\n"+
		"    - name: canary\n      pcs: [a2]\n    - name: rest\n      pcs: [a1]\n      approval: true\n", &r); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	s.waitRollout(t, r.ExecID, "wave 2 to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })

	const reason = "R6 bad script in finance"
	rOpen(t, ctx, s.URL+"/emergency-stop")
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`[data-testid=estop-reason]`), reason)); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `[data-testid=estop-button]`)
	var es struct {
		Active bool      `json:"active"`
		Since  time.Time `json:"since"`
	}
	checkFor(t, 10*time.Second, func() error {
		if code := s.get(t, "/api/emergency-stop", &es); code != http.StatusOK || !es.Active {
			return fmt.Errorf("the stop is not on (%d)", code)
		}
		return nil
	})
	waitJS(t, ctx, "what the stop did", `(() => {
		const txt = id => document.querySelector('[data-testid=' + id + ']')?.textContent.replace(/\s+/g, ' ').trim() || '';
		return txt('estop-killed').startsWith('1 execution') && !!document.querySelector('[data-testid=estop-killed] a[href="/executions/`+x.ExecID+`"]') &&
			txt('estop-halted').startsWith('1 rollout') && !!document.querySelector('[data-testid=estop-halted] a[href="/executions/`+r.ExecID+`"]') &&
			txt('estop-acks').startsWith('2 of 2 online agents') &&
			`+rClockJS(es.Since, loc)+`(document.querySelector('[data-testid=estop-since] time')?.textContent || '');
	})()`)
	screenshot(t, ctx, "r-estop-on")

	rOpen(t, ctx, s.URL+"/executions/"+x.ExecID)
	waitJS(t, ctx, "killed targets say emergency stop: reason", `(() => {
		const row = `+rRowFn+`;
		const why = pc => row(pc)?.querySelector('[data-testid=target-reason]')?.textContent || '';
		const st = pc => row(pc)?.querySelector('.badge')?.dataset.state;
		return st('a1') === 'killed' && why('a1').includes('emergency stop') && why('a1').includes('`+reason+`') &&
			st('off1') === 'killed' && why('off1').includes('emergency stop: `+reason+`');
	})()`)
	screenshot(t, ctx, "r-estop-killed-targets")
}
