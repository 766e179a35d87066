//go:build !windows

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/kanadehq/kanade/agent/inventory"
	"github.com/kanadehq/kanade/agent/worker"
	"github.com/kanadehq/kanade/app/config"
)

// pUser is a mockoidc user whose ID token carries only what the embedded
// MockUser has (its subject and groups) while its UserInfo response names
// the person: the default of many issuers, which kanade used to show as
// the opaque subject.
type pUser struct {
	*mockoidc.MockUser
	info map[string]any
}

func (u pUser) Userinfo([]string) ([]byte, error) { return json.Marshal(u.info) }

// pGo navigates and fails the test on error.
func pGo(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
}

// pEval evaluates expr in the page (awaiting a promise) and returns its value.
func pEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// pMark marks the page; pStillMarked waits for a condition on the same
// page (it was updated live, not reloaded).
func pMark(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__pSamePage = true`)); err != nil {
		t.Fatal(err)
	}
}

func pStillMarked(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	waitJS(t, ctx, what+" (live, without a reload)", `window.__pSamePage === true && (`+cond+`)`)
}

// TestBrowser_Point13_ApprovalsChipLiveAndFourEyes (issue 28 point 13): the
// approvals chip of the top bar counts only the waves its user may
// approve — not their own rollouts under four-eyes, nothing for an
// operator — and follows the rollouts live, without a reload.
func TestBrowser_Point13_ApprovalsChipLiveAndFourEyes(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s, m := startOIDCServer(t, func(c *config.Config) { c.Rollout.FourEyes = true })
	s.token = cliToken(t, s, "admin", "ops")
	approveAgents(t, s, s.token)
	startAgent(t, s, "c1", []string{"canary"}, "")
	s.waitOnline(t, "c1")
	alice := cliToken(t, s, "operator", "alice-helpdesk")
	mgr := cliToken(t, s, "approver", "second-manager")
	gated := func(id string) string {
		return waveManifest(id, "echo ok", "    - name: canary\n      group: canary\n      approval: true\n")
	}

	m.QueueUser(&mockoidc.MockUser{Subject: "u-carol", PreferredUsername: "carol", Email: "carol@example.com", Groups: []string{"managers"}})
	ctx := newBrowser(t)
	pGo(t, ctx, s.URL+"/")
	waitJS(t, ctx, "carol signed in on the dashboard", `document.querySelector('[data-testid=role]')?.textContent === 'approver'`)
	if pEval[bool](t, ctx, `!!document.querySelector('[data-testid=approvals-link]')`) {
		t.Fatal("approvals chip shown while no wave awaits approval")
	}
	pMark(t, ctx)

	// Carol starts a gated rollout herself (the API, with her session):
	// under four-eyes she may not approve it, so her chip does not count it.
	own := pEval[string](t, ctx, `fetch('/api/deploy', {method: 'POST', headers: {'Content-Type': 'application/yaml',
		'X-CSRF-Token': JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']}, body: `+pJS(gated("p13-own"))+`})
		.then(r => r.json()).then(j => j.exec_id || JSON.stringify(j))`)
	s.waitRollout(t, own, "carol's rollout to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })

	// A help-desk operator's rollout: carol may approve that one.
	var other execution
	if code := s.deployAs(t, alice, gated("p13-other"), &other); code != http.StatusAccepted {
		t.Fatalf("deploy as alice: %d", code)
	}
	s.waitRollout(t, other.ExecID, "alice's rollout to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })
	pStillMarked(t, ctx, "the chip counts alice's wave, not carol's own",
		`document.querySelector('[data-testid=approvals-link]')?.dataset.count === '1' && document.querySelector('[data-testid=approvals-link]').textContent.includes('1 wave awaits approval')`)
	screenshot(t, ctx, "p-approvals-chip")

	// Another approver approves alice's wave: carol's chip goes, live.
	if code := s.call(t, http.MethodPost, "/api/executions/"+other.ExecID+"/waves/0/approve", mgr, nil, nil); code != http.StatusOK {
		t.Fatalf("approve as second-manager: %d", code)
	}
	pStillMarked(t, ctx, "the chip gone once the wave is approved", `!document.querySelector('[data-testid=approvals-link]')`)
	if r := s.rollout(t, own); r.Status != "awaiting_approval" {
		t.Fatalf("carol's own rollout = %s, want still awaiting approval", r.Status)
	}

	// An operator sees no chip although a wave awaits approval.
	ana := newUserAgent(t, s.URL)
	if code, body := ana.login(m, &mockoidc.MockUser{Subject: "u-ana", PreferredUsername: "ana", Groups: []string{"helpdesk"}}, "/"); code != http.StatusOK || strings.Contains(body, `data-testid="approvals-link"`) {
		t.Errorf("operator's dashboard: %d, approvals chip shown: %v", code, strings.Contains(body, `data-testid="approvals-link"`))
	}
}

// pJS quotes s as a JavaScript string literal.
func pJS(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowser_Point6_TopBarShowsEmergencyStop (issue 28 point 6, the top
// bar): while the emergency stop is on, every page's top bar says "ON"
// since when (the viewer's clock) and why, and links to the stop's page;
// it turns on and off live.
func TestBrowser_Point6_TopBarShowsEmergencyStop(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	ctx := newBrowser(t)
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: "en-GB"}); err != nil {
		t.Fatal(err)
	}
	pGo(t, ctx, s.URL+"/agents")
	waitJS(t, ctx, "the agents page with the stop off", `document.querySelector('[data-testid=estop-link]')?.dataset.state === 'off' && !document.querySelector('[data-testid=emergency-banner]')`)
	pMark(t, ctx)

	var es struct {
		Since time.Time `json:"since"`
	}
	if code := s.post(t, "/api/emergency-stop", map[string]string{"reason": "ransomware on PC-7"}, &es); code != http.StatusOK {
		t.Fatalf("emergency stop on: %d", code)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	clock := es.Since.In(tokyo).Format("15:04")
	pStillMarked(t, ctx, "the top bar says the stop is ON, since when and why",
		`(() => { const b = document.querySelector('[data-testid=estop-link]'); return b?.dataset.state === 'on' && b.getAttribute('href') === '/emergency-stop' &&
			b.textContent.includes('Emergency stop ON since `+clock+`') && b.textContent.includes('ransomware on PC-7') })()`)
	waitJS(t, ctx, "the red banner", `(document.querySelector('[data-testid=emergency-banner]')?.textContent || '').includes('ransomware on PC-7')`)
	screenshot(t, ctx, "p-estop-on")

	// Every page says so, at phone width too.
	for _, path := range []string{"/", "/executions", "/audit", "/jobs"} {
		pGo(t, ctx, s.URL+path)
		waitJS(t, ctx, "the stop shown on "+path, `document.querySelector('[data-testid=estop-link]')?.dataset.state === 'on' && !!document.querySelector('[data-testid=emergency-banner]')`)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the stop visible at phone width", `(() => { const r = document.querySelector('[data-testid=estop-link]').getBoundingClientRect(); return r.width > 0 && r.right <= 390 && r.top < 60 })()`)
	screenshot(t, ctx, "p-estop-on-phone")

	pMark(t, ctx)
	req, _ := http.NewRequest(http.MethodDelete, s.URL+"/api/emergency-stop", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pStillMarked(t, ctx, "the top bar back to the plain button once lifted",
		`document.querySelector('[data-testid=estop-link]')?.dataset.state === 'off' && !document.querySelector('[data-testid=emergency-banner]')`)
}

// TestBrowser_Point14_AuditReadsAsSentencesAndNamesPeople (issue 28 point
// 14): a user whose issuer names them only in its UserInfo response is
// named as a person in the nav and the audit log (the subject stays in
// the sign-in's detail), and the audit page reads as sentences that link
// to what they acted on, numbers waves as the execution page does, and
// keeps the JSON one click away.
func TestBrowser_Point14_AuditReadsAsSentencesAndNamesPeople(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s, m := startOIDCServer(t)
	s.token = cliToken(t, s, "admin", "ops")
	approveAgents(t, s, s.token)
	startAgent(t, s, "c1", []string{"canary"}, "")
	startAgent(t, s, "f1", []string{"fleet"}, "")
	s.waitOnline(t, "c1", "f1")
	alice := cliToken(t, s, "operator", "alice-helpdesk")

	// alice runs a long script on c1 and kills it (API).
	var run execution
	if code := s.call(t, http.MethodPost, "/api/run", alice, map[string]any{"target": map[string]any{"pcs": []string{"c1"}}, "shell": "sh", "script": "sleep 30", "timeout": "60s"}, &run); code != http.StatusAccepted {
		t.Fatalf("run as alice: %d", code)
	}
	s.waitExec(t, run.ExecID, targetIn("c1", "running"))
	if code := s.call(t, http.MethodPost, "/api/executions/"+run.ExecID+"/kill", alice, nil, nil); code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("kill as alice: %d", code)
	}
	// alice's rollout waits for a manager at its second wave.
	var e execution
	if code := s.deployAs(t, alice, waveManifest("p14-rollout", "echo hi",
		"    - name: canary\n      group: canary\n    - name: office\n      group: fleet\n      approval: true\n"), &e); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	s.waitRollout(t, e.ExecID, "wave 2 to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })

	m.QueueUser(pUser{&mockoidc.MockUser{Subject: "id-dana", Groups: []string{"managers"}},
		map[string]any{"sub": "id-dana", "preferred_username": "dana", "email": "dana@example.com", "name": "Dana Scully"}})
	ctx := newBrowser(t)
	pGo(t, ctx, s.URL+"/executions/"+e.ExecID)
	waitJS(t, ctx, "the nav names Dana, not her subject", `document.querySelector('[data-testid=user]')?.textContent === 'Dana Scully'`)
	click(t, ctx, "[data-testid=approve-button]")
	waitJS(t, ctx, "wave 2 approved by dana", `(document.querySelector('[data-testid=wave][data-wave="1"] [data-testid=approved-by]')?.textContent || '').includes('dana')`)

	// The audit trail is projected a moment after each action: the page is
	// read once everything it should show is recorded.
	checkFor(t, 30*time.Second, func() error {
		var a struct {
			Events []struct{ Actor, Action string } `json:"events"`
		}
		s.get(t, "/api/audit?limit=100", &a)
		var approved, killed bool
		for _, ev := range a.Events {
			approved = approved || (ev.Actor == "dana" && strings.Contains(ev.Action, "approve"))
			killed = killed || (ev.Actor == "alice-helpdesk" && strings.Contains(ev.Action, "kill"))
		}
		if !approved || !killed {
			return fmt.Errorf("audit has approve by dana %v, kill by alice %v: %+v", approved, killed, a.Events)
		}
		return nil
	})
	pGo(t, ctx, s.URL+"/audit")
	sentences := `[...document.querySelectorAll('[data-testid=audit-sentence]')]`
	rowWith := func(text string) string {
		return sentences + `.find(td => td.textContent.replace(/\s+/g, ' ').includes(` + pJS(text) + `))`
	}
	waitJS(t, ctx, "dana's approval as a sentence linking to the rollout",
		`(() => { const td = `+rowWith("dana approved wave 2 'office' of p14-rollout (execution "+e.ExecID+")")+`;
			return !!td && !!td.querySelector('a[href="/executions/`+e.ExecID+`"]') && !!td.querySelector('a[href="/jobs/p14-rollout"]') })()`)
	waitJS(t, ctx, "dana's sign-in under her name",
		`!!`+rowWith("dana signed in as approver"))
	waitJS(t, ctx, "alice's kill with its PC count, linking to the execution",
		`(() => { const td = `+rowWith("alice-helpdesk killed execution "+run.ExecID+" (1 PC, job adhoc)")+`; return !!td && !!td.querySelector('a[href="/executions/`+run.ExecID+`"]') })()`)
	waitJS(t, ctx, "no sentence names the subject", `!`+sentences+`.some(td => td.textContent.includes('id-dana'))`)
	screenshot(t, ctx, "p-audit")

	// The JSON is one click away, and keeps the subject.
	login := `[...document.querySelectorAll('[data-testid=audit-row]')].find(r => r.dataset.action === 'login' && r.dataset.actor === 'dana')`
	waitJS(t, ctx, "the sign-in's JSON is closed", `(() => { const d = `+login+`?.querySelector('details'); return !!d && !d.open })()`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](login+`.querySelector('details summary').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the opened JSON with the subject", `(() => { const d = `+login+`.querySelector('details'); return d.open && d.querySelector('pre').textContent.includes('"subject": "id-dana"') })()`)
	screenshot(t, ctx, "p-audit-json")
	if got := pEval[string](t, ctx, `document.title`); !strings.Contains(got, "Audit") {
		t.Errorf("title = %q", got)
	}
}

// pAgentWithInventory starts an agent that reports this machine's real
// inventory (its addresses, disks and software).
func pAgentWithInventory(t *testing.T, s *testServer, pc string, groups []string) *testAgent {
	t.Helper()
	return startAgentWith(t, s, pc, groups, "", func(c *worker.Config) {
		c.Inventory, c.InventoryInterval = inventory.Collect, time.Hour
	})
}

// pWaitInventory waits until the server has pc's inventory.
func pWaitInventory(t *testing.T, s *testServer, pc string) {
	t.Helper()
	checkFor(t, 60*time.Second, func() error {
		var a struct {
			Inventory *json.RawMessage `json:"inventory"`
		}
		if code := s.get(t, "/api/agents/"+pc, &a); code != http.StatusOK || a.Inventory == nil {
			return fmt.Errorf("no inventory of %s yet (status %d)", pc, code)
		}
		return nil
	})
}

// pHostAddresses are this machine's global unicast addresses.
func pHostAddresses(t *testing.T) map[string]bool {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsGlobalUnicast() {
			out[p.Addr().String()] = true
		}
	}
	return out
}

// TestBrowser_Point15_AgentsListSelectionAndAgentPage (issue 28 points 15 and
// the agents-list part of 10): select-all and "N selected", "Run on
// selected" disabled while nothing is selected, the IP column from the
// inventory, offline rows muted with how long they have been silent; the
// agent page puts recent results above the inventory and disables Run and
// Ping for a revoked agent, saying why.
func TestBrowser_Point15_AgentsListSelectionAndAgentPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	// pa1 reports this machine's inventory, and a logged-on user as a
	// Windows PC's heartbeat names one (the per-OS detection is tested in
	// agent/inventory; this container has nobody logged on).
	startAgentWith(t, s, "pa1", []string{"lab"}, "", func(c *worker.Config) {
		c.Inventory, c.InventoryInterval = inventory.Collect, time.Hour
		c.User = func() string { return `CORP\alice` }
	})
	startAgent(t, s, "pa2", []string{"lab"}, "")
	gone := startAgent(t, s, "pa3", []string{"lab"}, "")
	s.waitOnline(t, "pa1", "pa2", "pa3")
	gone.stop() // its last heartbeat says it is stopping: offline at once
	checkFor(t, 20*time.Second, func() error {
		var a struct {
			Online bool `json:"online"`
		}
		if s.get(t, "/api/agents/pa3", &a); a.Online {
			return fmt.Errorf("pa3 still online")
		}
		return nil
	})
	pWaitInventory(t, s, "pa1")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pa1"}}, "shell": "sh", "script": "echo p15"})
	s.waitExec(t, e.ExecID, completed)
	hostIPs := pHostAddresses(t)

	ctx := newBrowser(t)
	pGo(t, ctx, s.URL+"/agents")
	row := func(pc string) string { return `document.querySelector('[data-testid=agent-row][data-pc=` + pc + `]')` }
	waitJS(t, ctx, "three agents listed", `document.querySelectorAll('[data-testid=agent-row]').length === 3`)
	waitJS(t, ctx, "nothing selected: Run on selected disabled",
		`document.querySelector('[data-testid=run-selected]').disabled && document.querySelector('[data-testid=selected-count]').textContent === 'none selected'`)
	waitJS(t, ctx, "pa3 offline: muted, saying for how long",
		`(() => { const r = `+row("pa3")+`; return r.classList.contains('agent-offline') && getComputedStyle(r.querySelector('td')).color !== getComputedStyle(`+row("pa2")+`.querySelector('td')).color &&
			/^offline (just now|\d+[smhd])$/.test(r.querySelector('[data-testid=offline-for]').textContent) })()`)
	waitJS(t, ctx, "online rows not muted, without an offline note", `!`+row("pa1")+`.classList.contains('agent-offline') && !`+row("pa1")+`.querySelector('[data-testid=offline-for]')`)
	ip := pEval[string](t, ctx, row("pa1")+`.querySelector('[data-testid=agent-ip] span').textContent`)
	if !hostIPs[ip] {
		t.Errorf("pa1's IP column = %q, want one of this machine's addresses %v", ip, hostIPs)
	}
	if got := pEval[string](t, ctx, row("pa2")+`.querySelector('[data-testid=agent-ip]').textContent.trim()`); got != "—" {
		t.Errorf("pa2 (no inventory) IP column = %q, want —", got)
	}
	waitJS(t, ctx, "the logged-on user column", `[...document.querySelectorAll('#agent-table th')].some(th => th.textContent.trim() === 'User') &&
		`+row("pa1")+`.querySelector('[data-testid=agent-user]').textContent.trim() === 'CORP\\alice' && `+row("pa2")+`.querySelector('[data-testid=agent-user]').textContent.trim() === '—'`)

	click(t, ctx, "[data-testid=select-all]")
	waitJS(t, ctx, "select-all selects every row", `document.querySelectorAll('input[data-select]:checked').length === 3 &&
		document.querySelector('[data-testid=selected-count]').textContent === '3 selected' && !document.querySelector('[data-testid=run-selected]').disabled`)
	click(t, ctx, `input[data-select][value=pa2]`)
	waitJS(t, ctx, "2 selected, select-all half-checked", `document.querySelector('[data-testid=selected-count]').textContent === '2 selected' &&
		document.querySelector('[data-testid=select-all]').indeterminate`)
	screenshot(t, ctx, "p-agents")
	click(t, ctx, "[data-testid=select-all]")
	click(t, ctx, "[data-testid=select-all]")
	waitJS(t, ctx, "select-all clears: Run on selected disabled again", `document.querySelectorAll('input[data-select]:checked').length === 0 && document.querySelector('[data-testid=run-selected]').disabled`)
	click(t, ctx, `input[data-select][value=pa1]`)
	click(t, ctx, "[data-testid=run-selected]")
	waitJS(t, ctx, "the Run form for the selected PC", `location.pathname === '/run' && location.search.includes('pc=pa1')`)

	// The agent page: recent results first, then the inventory.
	pGo(t, ctx, s.URL+"/agents/pa1")
	waitJS(t, ctx, "recent results above the inventory", `(() => { const r = document.querySelector('[data-testid=recent-results]'), i = document.querySelector('[data-testid=inventory]');
		return !!r && !!i && !!(r.compareDocumentPosition(i) & Node.DOCUMENT_POSITION_FOLLOWING) && r.textContent.includes('`+e.ExecID+`') })()`)
	waitJS(t, ctx, "the logged-on user and the IP on the agent page", `document.querySelector('[data-testid=agent-user]')?.textContent === 'CORP\\alice' &&
		(document.querySelector('[data-testid=agent-ip]')?.textContent || '').includes('`+ip+`')`)
	waitJS(t, ctx, "Run and Ping enabled for an enrolled agent", `!document.querySelector('[data-testid=ping]').disabled && !document.querySelector('[data-testid=agent-blocked]')`)

	// A revoked agent: Run and Ping are disabled, and the page says why.
	if code := s.post(t, "/api/agents/pa2/revoke", nil, nil); code != http.StatusOK {
		t.Fatalf("revoke pa2: %d", code)
	}
	pGo(t, ctx, s.URL+"/agents/pa2")
	waitJS(t, ctx, "Run and Ping disabled, with the reason", `document.querySelector('[data-testid=ping]').disabled && document.querySelector('[data-testid=run-on-pc]').disabled &&
		!document.querySelector('[data-testid=inline-run]') && (document.querySelector('[data-testid=agent-blocked]')?.textContent || '').includes('revoked by dev')`)
	screenshot(t, ctx, "p-agent-revoked")
}

// pWidePages are the main pages of the GUI, for the phone-width test.
func pWidePages(execID, rolloutID, pc string) []string {
	return []string{"/", "/agents", "/agents/" + pc, "/run", "/jobs", "/jobs/tick", "/executions", "/executions/" + execID,
		"/executions/" + execID + "?pc=" + pc, "/executions/" + rolloutID, "/schedules", "/audit", "/settings", "/settings/add-agents",
		"/enrollments", "/system", "/emergency-stop"}
}

// TestBrowser_Point16_PhoneWidth (issue 28 point 16): at 390 px no main page
// is wider than the screen, and the emergency stop and the approvals stay
// in the top bar, the rest of the nav behind a menu.
func TestBrowser_Point16_PhoneWidth(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	dir := jobsDir(t)
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) { c.Server.JobsDir = dir })
	pAgentWithInventory(t, s, "pc-with-a-rather-long-name-0042", []string{"lab", "canary"})
	startAgent(t, s, "pc2", []string{"lab"}, "")
	s.waitOnline(t, "pc-with-a-rather-long-name-0042", "pc2")
	pc := "pc-with-a-rather-long-name-0042"
	long := strings.Repeat("x", 300)
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{pc, "pc2"}}, "shell": "sh",
		"script": "echo " + long + "; echo an-error-line-" + long + " >&2; exit 3"})
	s.waitExec(t, e.ExecID, completed)
	var r execution
	pWaitInventory(t, s, pc)
	manifest := "id: phone-rollout\nversion: \"1\"\ntarget:\n  groups: [lab]\nexecute:\n  shell: sh\n  script: echo hi\n  timeout: 30s\n" +
		"rollout:\n  waves:\n    - name: canary\n      group: canary\n    - name: everyone-else-in-the-lab\n      group: lab\n      approval: true\n"
	if code := s.deploy(t, manifest, &r); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	s.waitRollout(t, r.ExecID, "wave 2 to await approval", func(x rolloutExec) bool { return x.Status == "awaiting_approval" })
	if code := s.post(t, "/api/schedules", map[string]any{"id": "nightly-cleanup", "cron": "0 3 * * *", "job_id": "tick", "enabled": false}, nil); code != http.StatusCreated {
		t.Fatalf("schedule: %d", code)
	}

	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	// The elements that stick out of the screen, for the failure message.
	const wide = `[...document.querySelectorAll('body *')].filter(el => el.getBoundingClientRect().right > 391 && getComputedStyle(el).position !== 'fixed' &&
		![...Array(20)].reduce((a, _) => a.p && a.p !== document.body ? {p: a.p.parentElement, s: a.s || ['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(a.p).overflowX)} : a, {p: el.parentElement, s: false}).s)
		.slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') + ' ' + Math.round(el.getBoundingClientRect().right) + 'px in ' + (el.parentElement?.className || el.parentElement?.tagName) + ': ' + el.textContent.trim().slice(0, 50)).join('; ')`
	for _, path := range pWidePages(e.ExecID, r.ExecID, pc) {
		t.Run(strings.ReplaceAll(path, "/", "_"), func(t *testing.T) {
			pGo(t, ctx, s.URL+path)
			waitJS(t, ctx, path+" loaded", `document.readyState === 'complete' && !!document.querySelector('#main')`)
			// Live regions settle first (they re-fetch themselves once).
			checkFor(t, 5*time.Second, func() error {
				if w := pEval[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
					return fmt.Errorf("%s is %d px wide at 390 px: %s", path, w, pEval[string](t, ctx, wide))
				}
				return nil
			})
			switch path {
			case "/":
				screenshot(t, ctx, "p-phone-dashboard")
			case "/executions/" + r.ExecID:
				screenshot(t, ctx, "p-phone-rollout")
			case "/agents/" + pc:
				screenshot(t, ctx, "p-phone-agent")
			}
		})
	}
	screenshot(t, ctx, "p-phone-estop-page")

	// The top bar: the stop, the approvals and the menu button fit; the
	// sections are behind the menu.
	pGo(t, ctx, s.URL+"/agents")
	visible := func(sel string) string {
		return `(() => { const el = document.querySelector('` + sel + `'); if (!el) return false; const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= 390 && r.top < 48 })()`
	}
	waitJS(t, ctx, "the emergency stop in the bar", visible("[data-testid=estop-link]"))
	waitJS(t, ctx, "the approvals chip in the bar", visible("[data-testid=approvals-link]"))
	waitJS(t, ctx, "the menu button in the bar", visible("[data-testid=menu-button]"))
	waitJS(t, ctx, "the sections hidden behind the menu", `![...document.querySelectorAll('.nav a')].some(a => a.getBoundingClientRect().width > 0)`)
	click(t, ctx, "[data-testid=menu-button]")
	waitJS(t, ctx, "the menu open with every section", `document.querySelector('[data-testid=menu-button]').getAttribute('aria-expanded') === 'true' &&
		['Dashboard', 'Agents', 'Run', 'Jobs', 'Executions', 'Schedules', 'Audit', 'Settings', 'System'].every(l => [...document.querySelectorAll('.nav a')].some(a => a.textContent === l && a.getBoundingClientRect().width > 0 && a.getBoundingClientRect().right <= 390))`)
	screenshot(t, ctx, "p-phone-menu")
	click(t, ctx, `.nav a[href="/audit"]`)
	waitJS(t, ctx, "a section opened from the menu", `location.pathname === '/audit' && document.readyState === 'complete'`)
	checkFor(t, 5*time.Second, func() error {
		if w := pEval[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
			return fmt.Errorf("/audit opened from the menu is %d px wide: %s", w, pEval[string](t, ctx, wide))
		}
		return nil
	})
}
