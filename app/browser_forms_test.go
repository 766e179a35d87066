//go:build !windows

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/kanadehq/kanade/agent/worker"
	"github.com/kanadehq/kanade/app/config"
)

// fDialogs records the confirmation dialogs a page opens and answers
// them as told (accept by default).
type fDialogs struct {
	mu      sync.Mutex
	msgs    []string
	dismiss bool
}

// answer sets how the next dialogs are answered.
func (d *fDialogs) answer(accept bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dismiss = !accept
}

func (d *fDialogs) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.msgs)
}

// next waits for the dialog after the first n and returns its message.
func (d *fDialogs) next(t *testing.T, n int, what string) string {
	t.Helper()
	var msg string
	checkFor(t, 15*time.Second, func() error {
		if s := d.seen(); len(s) > n {
			msg = s[n]
			return nil
		}
		return fmt.Errorf("no confirmation dialog for %s", what)
	})
	return msg
}

// fBrowser is newBrowser whose dialogs the test answers (fDialogs).
func fBrowser(t *testing.T) (context.Context, *fDialogs) {
	t.Helper()
	ctx := startChromium(t, 4*time.Minute)
	d := &fDialogs{}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			d.mu.Lock()
			d.msgs = append(d.msgs, ev.Message)
			accept := !d.dismiss
			d.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept})
		}
	}()
	return ctx, d
}

func fNavigate(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "page loaded", `document.readyState === 'complete'`)
}

// fSet sets a form field's value as typing would (input and change events).
func fSet(t *testing.T, ctx context.Context, selector, value string) {
	t.Helper()
	waitJS(t, ctx, selector, `document.querySelector(`+"`"+selector+"`"+`) !== null`)
	js := fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = %q;
		el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new KeyboardEvent('keyup', {bubbles: true}));
		el.dispatchEvent(new Event('change', {bubbles: true})); })()`, selector, value)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](js)); err != nil {
		t.Fatal(err)
	}
}

func fEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// fExecCount is the number of executions the server recorded.
func fExecCount(t *testing.T, s *testServer) int {
	t.Helper()
	var list struct {
		Total int `json:"total"`
	}
	if code := s.get(t, "/api/executions?limit=1", &list); code != http.StatusOK {
		t.Fatalf("GET /api/executions: %d", code)
	}
	return list.Total
}

// fAPIError is an API error response with its details.
type fAPIError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"details"`
	} `json:"error"`
}

// fJobsServer runs a server whose jobs directory holds "tick" (group lab).
func fJobsServer(t *testing.T) *testServer {
	t.Helper()
	dir := jobsDir(t)
	return startServerWith(t, t.TempDir(), "", func(c *config.Config) { c.Server.JobsDir = dir })
}

// TestBrowser_Point4_UnknownPCRefused (issue 28, point 4): a PC id no agent
// has ever had is refused by the API (run, deploy, schedules) with the ids
// named, and by the Run and schedule forms next to the field with what was
// typed kept; the Run preview says "1 unknown: PC-TYPO-99".
func TestBrowser_Point4_UnknownPCRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := fJobsServer(t)
	startAgent(t, s, "fpc1", []string{"lab"}, "")
	s.waitOnline(t, "fpc1")

	refused := func(what string, code int, body fAPIError) {
		t.Helper()
		if code != http.StatusBadRequest || !strings.Contains(body.Error.Message, "unknown PC: PC-TYPO-99") ||
			len(body.Error.Details) != 1 || body.Error.Details[0].Field != "target.pcs" {
			t.Errorf("%s: %d %+v, want 400 naming PC-TYPO-99 in target.pcs", what, code, body.Error)
		}
	}
	var body fAPIError
	code := s.post(t, "/api/run", map[string]any{"target": map[string]any{"pcs": []string{"fpc1", "PC-TYPO-99"}}, "shell": "sh", "script": "true"}, &body)
	refused("POST /api/run", code, body)
	body = fAPIError{}
	code = s.deploy(t, manifest("typo", "1", "pcs: [fpc1, PC-TYPO-99]", "true"), &body)
	refused("POST /api/deploy", code, body)
	body = fAPIError{}
	code = s.post(t, "/api/schedules", map[string]any{"id": "typo-nightly", "cron": "0 3 * * *", "job_id": "tick",
		"target": map[string]any{"pcs": []string{"PC-TYPO-99"}}}, &body)
	refused("POST /api/schedules", code, body)
	if n := fExecCount(t, s); n != 0 {
		t.Errorf("%d executions recorded for refused requests", n)
	}

	ctx, _ := fBrowser(t)
	fNavigate(t, ctx, s.URL+"/run?pcs=fpc1,PC-TYPO-99")
	waitJS(t, ctx, "the preview names the unknown PC", `document.querySelector('#run-preview').textContent.includes('1 unknown: PC-TYPO-99')`)
	screenshot(t, ctx, "f-run-unknown-preview")
	fSet(t, ctx, `textarea[name=script]`, "echo typed-script")
	click(t, ctx, `[data-testid=run-button]`)
	waitJS(t, ctx, "the error next to the PCs", `location.pathname === '/run' && (document.querySelector('[data-testid=error-pcs]')?.textContent || '').includes('PC-TYPO-99')`)
	if got := fEval[string](t, ctx, `document.querySelector('textarea[name=script]').value`); got != "echo typed-script" {
		t.Errorf("the script after the error = %q", got)
	}
	if got := fEval[string](t, ctx, `document.querySelector('input[name=pcs]').value`); got != "fpc1,PC-TYPO-99" {
		t.Errorf("the PCs after the error = %q", got)
	}
	screenshot(t, ctx, "f-run-unknown-error")

	fNavigate(t, ctx, s.URL+"/schedules")
	fSet(t, ctx, `[data-testid=schedule-form] input[name=id]`, "typo-nightly")
	fSet(t, ctx, `[data-testid=schedule-form] input[name=cron]`, "0 3 * * *")
	fSet(t, ctx, `[data-testid=schedule-form] input[name=pcs]`, "PC-TYPO-99")
	click(t, ctx, `[data-testid=create-schedule]`)
	waitJS(t, ctx, "the schedule form's error next to the PCs", `(document.querySelector('[data-testid=schedule-form] [data-testid=error-pcs]')?.textContent || '').includes('PC-TYPO-99')`)
	if got := fEval[string](t, ctx, `document.querySelector('[data-testid=schedule-form] input[name=id]').value`); got != "typo-nightly" {
		t.Errorf("the schedule id after the error = %q", got)
	}
	var list struct {
		Total int `json:"total"`
	}
	if s.get(t, "/api/schedules", &list); list.Total != 0 || fExecCount(t, s) != 0 {
		t.Errorf("refused forms created %d schedules, %d executions", list.Total, fExecCount(t, s))
	}
}

// TestBrowser_Point7_ConfirmationsNameWhatHappens (issue 28, point 7): Run and
// Deploy to more than one PC, deleting a schedule, revoking an enrollment
// token (loudly for the default one), revoking an API token and rejecting
// an agent each ask first, naming what happens; a dismissed question
// changes nothing.
func TestBrowser_Point7_ConfirmationsNameWhatHappens(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := fJobsServer(t)
	for _, pc := range []string{"fc1", "fc2", "fc3"} {
		startAgent(t, s, pc, []string{"lab"}, "")
	}
	s.waitOnline(t, "fc1", "fc2", "fc3")
	ctx, dlg := fBrowser(t)

	// Run on three PCs: the question names the count; dismissed, nothing runs.
	fNavigate(t, ctx, s.URL+"/run?pcs=fc1,fc2,fc3")
	fSet(t, ctx, `textarea[name=script]`, "echo confirm")
	waitJS(t, ctx, "the preview", `document.querySelector('#run-preview').textContent.includes('3 agents match')`)
	dlg.answer(false)
	click(t, ctx, `[data-testid=run-button]`)
	if msg := dlg.next(t, 0, "Run on 3 PCs"); !strings.Contains(msg, "Run on 3 PCs?") {
		t.Errorf("run question = %q", msg)
	}
	// The count is the real one, also when the preview has not caught up.
	fSet(t, ctx, `input[name=pcs]`, "fc1,fc2")
	click(t, ctx, `[data-testid=run-button]`)
	if msg := dlg.next(t, 1, "Run on 2 PCs"); !strings.Contains(msg, "Run on 2 PCs?") {
		t.Errorf("run question after a change = %q", msg)
	}
	click(t, ctx, `input[name=target_mode][value=all]`)
	click(t, ctx, `[data-testid=run-button]`)
	if msg := dlg.next(t, 2, "all agents"); !strings.Contains(msg, "All 3 agents?") {
		t.Errorf("run on all question = %q", msg)
	}
	// The dismissed questions left the page as it was.
	if p := fEval[string](t, ctx, `location.pathname`); p != "/run" || fExecCount(t, s) != 0 {
		t.Fatalf("after dismissed questions: on %s with %d executions", p, fExecCount(t, s))
	}
	screenshot(t, ctx, "f-run-confirm")
	dlg.answer(true)
	click(t, ctx, `[data-testid=run-button]`)
	waitJS(t, ctx, "the execution page", `location.pathname.startsWith('/executions/')`)
	// One PC: no question.
	asked := len(dlg.seen())
	fNavigate(t, ctx, s.URL+"/run?pcs=fc1")
	fSet(t, ctx, `textarea[name=script]`, "echo one")
	click(t, ctx, `[data-testid=run-button]`)
	waitJS(t, ctx, "the execution page", `location.pathname.startsWith('/executions/')`)
	if got := dlg.seen(); len(got) != asked {
		t.Errorf("questions: %q, want none for one PC", got[asked:])
	}

	// Deploy tick (group lab, three PCs) from its page.
	fNavigate(t, ctx, s.URL+"/jobs/tick")
	dlg.answer(false)
	asked = len(dlg.seen())
	click(t, ctx, `[data-testid=deploy-button]`)
	if msg := dlg.next(t, asked, "deploy"); !strings.Contains(msg, "Deploy tick version 1 to 3 PCs?") {
		t.Errorf("deploy question = %q", msg)
	}
	if p := fEval[string](t, ctx, `location.pathname`); p != "/jobs/tick" || fExecCount(t, s) != 2 {
		t.Errorf("dismissed deploy: on %s, %d executions", p, fExecCount(t, s))
	}

	// Delete a schedule.
	if code := s.post(t, "/api/schedules", map[string]any{"id": "nightly", "cron": "0 3 * * *", "job_id": "tick"}, nil); code != http.StatusCreated {
		t.Fatalf("create schedule: %d", code)
	}
	fNavigate(t, ctx, s.URL+"/schedules")
	asked = len(dlg.seen())
	click(t, ctx, `[data-testid=schedule-row][data-id=nightly] [data-testid=delete-schedule]`)
	if msg := dlg.next(t, asked, "delete schedule"); !strings.Contains(msg, "Delete schedule nightly?") {
		t.Errorf("delete schedule question = %q", msg)
	}
	var scheds struct {
		Total int `json:"total"`
	}
	if s.get(t, "/api/schedules", &scheds); scheds.Total != 1 {
		t.Errorf("a dismissed delete removed the schedule")
	}
	dlg.answer(true)
	click(t, ctx, `[data-testid=schedule-row][data-id=nightly] [data-testid=delete-schedule]`)
	waitJS(t, ctx, "the schedule gone", `document.readyState === 'complete' && location.pathname === '/schedules' && !document.querySelector('[data-testid=schedule-row][data-id=nightly]')`)
	if s.get(t, "/api/schedules", &scheds); scheds.Total != 0 {
		t.Errorf("%d schedules after an accepted delete", scheds.Total)
	}

	// Revoke enrollment tokens: the default one with a loud warning.
	var tok struct {
		Token struct {
			ID string `json:"id"`
		} `json:"token"`
		Credentials string `json:"agent_credentials"`
	}
	if code := s.post(t, "/api/enrollment-tokens", map[string]any{"name": "held", "auto_approve": false}, &tok); code != http.StatusCreated {
		t.Fatalf("create enrollment token: %d", code)
	}
	fNavigate(t, ctx, s.URL+"/enrollments")
	dlg.answer(false)
	asked = len(dlg.seen())
	click(t, ctx, `[data-testid=token-row][data-id=default] [data-testid=revoke-token]`)
	if msg := dlg.next(t, asked, "revoke the default token"); !strings.Contains(msg, "DEFAULT") || !strings.Contains(msg, "agent-credentials") {
		t.Errorf("revoke default token question = %q", msg)
	}
	click(t, ctx, `[data-testid=token-row][data-id=`+tok.Token.ID+`] [data-testid=revoke-token]`)
	if msg := dlg.next(t, asked+1, "revoke a token"); !strings.Contains(msg, "Revoke enrollment token held?") {
		t.Errorf("revoke token question = %q", msg)
	}
	var toks struct {
		Tokens []struct {
			ID     string `json:"id"`
			Usable bool   `json:"usable"`
		} `json:"tokens"`
	}
	s.get(t, "/api/enrollment-tokens", &toks)
	for _, x := range toks.Tokens {
		if !x.Usable {
			t.Errorf("token %s revoked by a dismissed question", x.ID)
		}
	}

	// Reject an agent waiting for approval (enrolled with the held token).
	creds := filepath.Join(t.TempDir(), "agent-credentials")
	if err := os.WriteFile(creds, []byte(tok.Credentials), 0o600); err != nil {
		t.Fatal(err)
	}
	enrollPending(t, s, creds, "fpend")
	checkFor(t, 20*time.Second, func() error {
		var l struct {
			Total int `json:"total"`
		}
		if s.get(t, "/api/enrollments?status=pending", &l); l.Total != 1 {
			return fmt.Errorf("%d pending", l.Total)
		}
		return nil
	})
	fNavigate(t, ctx, s.URL+"/enrollments")
	asked = len(dlg.seen())
	click(t, ctx, `[data-testid=reject-button]`)
	if msg := dlg.next(t, asked, "reject"); !strings.Contains(msg, "Reject fpend") {
		t.Errorf("reject question = %q", msg)
	}
	var l struct {
		Enrollments []struct {
			PCID   string `json:"pc_id"`
			Status string `json:"status"`
		} `json:"enrollments"`
	}
	s.get(t, "/api/enrollments?status=pending", &l)
	if len(l.Enrollments) != 1 || l.Enrollments[0].PCID != "fpend" {
		t.Errorf("a dismissed reject decided the enrollment: %+v", l)
	}

	// Revoke an API token.
	if code := s.post(t, "/api/tokens", map[string]any{"name": "nightly-ci", "role": "viewer"}, nil); code != http.StatusCreated {
		t.Fatalf("create API token: %d", code)
	}
	fNavigate(t, ctx, s.URL+"/settings")
	asked = len(dlg.seen())
	click(t, ctx, `[data-testid=revoke-api-token]`)
	if msg := dlg.next(t, asked, "revoke API token"); !strings.Contains(msg, "Revoke API token nightly-ci (viewer)?") {
		t.Errorf("revoke API token question = %q", msg)
	}
	var apiToks struct {
		Tokens []struct {
			Usable bool `json:"usable"`
		} `json:"tokens"`
	}
	if s.get(t, "/api/tokens", &apiToks); len(apiToks.Tokens) != 1 || !apiToks.Tokens[0].Usable {
		t.Errorf("a dismissed revoke revoked the API token: %+v", apiToks)
	}
}

// TestBrowser_Point8_RevokeJob (issue 28, point 8): Revoke job asks, then the
// job page shows the job revoked, with one page, not a page drawn inside
// the button.
func TestBrowser_Point8_RevokeJob(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := fJobsServer(t)
	ctx, dlg := fBrowser(t)
	fNavigate(t, ctx, s.URL+"/jobs/tick")
	click(t, ctx, `[data-testid=revoke-button]`)
	if msg := dlg.next(t, 0, "revoke job"); !strings.Contains(msg, "Revoke job tick?") {
		t.Errorf("revoke question = %q", msg)
	}
	waitJS(t, ctx, "the job page, revoked", `!!document.querySelector('[data-testid=unrevoke-button]') && !document.querySelector('[data-testid=revoke-button]')`)
	if n := fEval[int](t, ctx, `document.querySelectorAll('header.topbar, main').length`); n != 2 {
		t.Errorf("%d top bars and mains after Revoke job, want one page", n-1)
	}
	screenshot(t, ctx, "f-job-revoked")
	// An htmx request that fails shows why, and leaves the page as it was.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`htmx.ajax('POST', '/executions/nope/kill', {source: document.body, swap: 'none'})`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the error toast", `(document.querySelector('#toasts [data-toast]')?.textContent || '').includes('No execution nope.')`)
	if n := fEval[int](t, ctx, `document.querySelectorAll('header.topbar, main').length`); n != 2 {
		t.Errorf("%d top bars and mains after a failed request", n)
	}
	// Revoked: the job's own file can no longer be deployed.
	var body fAPIError
	tick := "id: tick\nversion: \"1\"\ntarget:\n  groups: [lab]\nexecute:\n  shell: sh\n  script: echo tick\n  timeout: 30s\n"
	if code := s.deploy(t, tick, &body); code != http.StatusConflict || !strings.Contains(body.Error.Message, "revoked") {
		t.Errorf("deploy of the revoked job: %d %+v", code, body.Error)
	}
}

// fHxPost is one hx-post attribute of a template: its file and expression.
type fHxPost struct{ file, expr string }

var hxPostRE = regexp.MustCompile(`hx-post=(?:\{\s*([^}]*?)\s*\}|"([^"]*)")`)

// fTemplateHxPosts lists every hx-post of views/*.templ.
func fTemplateHxPosts(t *testing.T) []fHxPost {
	t.Helper()
	files, err := filepath.Glob("../views/*.templ")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates (%v)", err)
	}
	var out []fHxPost
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range hxPostRE.FindAllStringSubmatch(string(b), -1) {
			out = append(out, fHxPost{filepath.Base(f), m[1] + m[2]})
		}
	}
	return out
}

// TestBrowser_Point8_EveryHxPostAnswersAPartial (issue 28, point 8) walks
// every hx-post of the templates, sent as htmx sends it, on success and
// on failure: the answer is a fragment or tells htmx where to go
// (HX-Redirect, HX-Location, HX-Refresh), never a redirect (which htmx
// follows and swaps the whole page into the button) nor a full page.
func TestBrowser_Point8_EveryHxPostAnswersAPartial(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	s := fJobsServer(t)
	startAgent(t, s, "fw1", []string{"canary"}, "")
	startAgent(t, s, "fw2", []string{"fleet"}, "")
	s.waitOnline(t, "fw1", "fw2")
	running := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"fw1"}}, "shell": "sh", "script": "sleep 30"})
	s.waitExec(t, running.ExecID, targetIn("fw1", "running"))
	var gated, halting execution
	if code := s.deploy(t, waveManifest("f-gated", "true", "    - name: canary\n      group: canary\n    - name: fleet\n      group: fleet\n      approval: true\n"), &gated); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	if code := s.deploy(t, waveManifest("f-halting", "true", "    - name: canary\n      group: canary\n    - name: fleet\n      group: fleet\n      approval: true\n"), &halting); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	failed := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"fw2"}}, "shell": "sh", "script": "exit 3"})
	s.waitExec(t, failed.ExecID, completed)
	s.waitRollout(t, gated.ExecID, "wave 2 to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })
	s.waitRollout(t, halting.ExecID, "wave 2 to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })

	// Each hx-post of the templates, and the requests that reach it: one
	// that succeeds and one that fails.
	walks := []struct {
		h     fHxPost
		paths []string
	}{
		{fHxPost{"agent_show.templ", "m.PingURL"}, []string{"/agents/fw1/ping", "/agents/nope/ping"}},
		{fHxPost{"agent_show.templ", "m.RefreshURL"}, []string{"/agents/fw1/inventory", "/agents/nope/inventory"}},
		{fHxPost{"exec_show.templ", "m.KillURL"}, []string{"/executions/" + running.ExecID + "/kill", "/executions/nope/kill"}},
		{fHxPost{"exec_show.templ", "m.RerunURL"}, []string{"/executions/" + failed.ExecID + "/rerun-failed", "/executions/nope/rerun-failed"}},
		{fHxPost{"exec_show.templ", "w.ApproveURL"}, []string{"/executions/" + gated.ExecID + "/waves/1/approve", "/executions/" + gated.ExecID + "/waves/7/approve"}},
		{fHxPost{"exec_show.templ", "m.HaltURL"}, []string{"/executions/" + halting.ExecID + "/halt", "/executions/nope/halt"}},
		{fHxPost{"exec_show.templ", "m.ResumeURL"}, []string{"/executions/" + halting.ExecID + "/resume", "/executions/" + halting.ExecID + "/resume"}},
		{fHxPost{"job_show.templ", "m.Deploy.StatusURL"}, []string{"/jobs/tick/revoke", "/jobs/tick/unrevoke", "/jobs/nope/revoke"}},
		{fHxPost{"enroll.templ", "id.RevokeURL"}, []string{"/agents/fw2/revoke", "/agents/fw2/revoke"}},
	}
	walked := map[fHxPost]bool{}
	for _, w := range walks {
		walked[w.h] = true
	}
	var missing []string
	for _, h := range fTemplateHxPosts(t) {
		if !walked[h] {
			missing = append(missing, h.file+": hx-post="+h.expr)
		}
	}
	if len(missing) > 0 {
		t.Errorf("hx-posts this test does not walk (add them to walks):\n%s", strings.Join(missing, "\n"))
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(s.URL + "/run")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no CSRF token on /run")
	}
	csrf := string(m[1])
	for _, w := range walks {
		h := w.h
		for _, p := range w.paths {
			req, _ := http.NewRequest(http.MethodPost, s.URL+p, strings.NewReader(url.Values{"_csrf": {csrf}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("HX-Request", "true")
			req.Header.Set("HX-Current-URL", s.URL+"/")
			req.Header.Set("X-CSRF-Token", csrf)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			where := fmt.Sprintf("%s hx-post=%s: POST %s", h.file, h.expr, p)
			switch {
			case resp.StatusCode >= 300 && resp.StatusCode < 400:
				t.Errorf("%s: %d redirect to %s; htmx follows it and swaps the whole page in", where, resp.StatusCode, resp.Header.Get("Location"))
			case strings.Contains(strings.ToLower(string(body)), "<html"):
				t.Errorf("%s: %d answers a full page to htmx", where, resp.StatusCode)
			case resp.StatusCode == http.StatusForbidden && strings.Contains(string(body), "form expired"):
				t.Errorf("%s: the CSRF token was refused", where)
			default:
				t.Logf("%s: %d HX-Redirect=%q %d bytes", where, resp.StatusCode, resp.Header.Get("HX-Redirect"), len(body))
			}
		}
	}
}

// TestBrowser_Point9_ErrorsKeepInput (issue 28, point 9): form errors show
// next to their field, once, in plain words, with what was typed kept;
// the emergency stop's refusal shows in the Run form and the Deploy panel;
// 404s name what is missing without the server's internals.
func TestBrowser_Point9_ErrorsKeepInput(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := fJobsServer(t)
	startAgent(t, s, "fe1", []string{"lab"}, "")
	s.waitOnline(t, "fe1")
	ctx, _ := fBrowser(t)

	// No PC: one message, next to the field, and nothing of "all, groups or pcs".
	fNavigate(t, ctx, s.URL+"/run")
	fSet(t, ctx, `input[name=pcs]`, "")
	fSet(t, ctx, `input[name=title]`, "INC-4711 disk full")
	fSet(t, ctx, `textarea[name=script]`, "echo keep-me")
	click(t, ctx, `[data-testid=run-button]`)
	waitJS(t, ctx, "the error next to the PCs", `!!document.querySelector('[data-testid=error-pcs]') && location.pathname === '/run'`)
	if n := fEval[int](t, ctx, `[...document.querySelectorAll('main *')].filter(e => e.children.length === 0 && /at least one/i.test(e.textContent)).length`); n != 1 {
		t.Errorf("the missing target is reported %d times, want once", n)
	}
	if txt := fEval[string](t, ctx, `document.querySelector('main').textContent`); strings.Contains(txt, "all, groups or pcs") || strings.Contains(txt, "choose at least one") {
		t.Errorf("the Run form speaks the API's words: %q", txt)
	}
	for sel, want := range map[string]string{`textarea[name=script]`: "echo keep-me", `input[name=title]`: "INC-4711 disk full"} {
		if got := fEval[string](t, ctx, `document.querySelector('`+sel+`').value`); got != want {
			t.Errorf("%s after the error = %q, want %q", sel, got, want)
		}
	}
	screenshot(t, ctx, "f-run-no-target")

	// The emergency stop: the Run form and the Deploy panel say so, and keep the input.
	if code := s.post(t, "/api/emergency-stop", map[string]string{"reason": "f9 drill"}, nil); code != http.StatusOK {
		t.Fatalf("emergency stop: %d", code)
	}
	fNavigate(t, ctx, s.URL+"/run?pcs=fe1")
	fSet(t, ctx, `textarea[name=script]`, "echo during-stop")
	click(t, ctx, `[data-testid=run-button]`)
	waitJS(t, ctx, "the emergency stop in the Run form", `location.pathname === '/run' && /emergency stop/i.test(document.querySelector('[data-testid=run-form] [data-testid=form-error]')?.textContent || '')`)
	if got := fEval[string](t, ctx, `document.querySelector('textarea[name=script]').value`); got != "echo during-stop" {
		t.Errorf("the script after the refusal = %q", got)
	}
	if fEval[bool](t, ctx, `!!document.querySelector('[data-testid=error]')`) {
		t.Error("the refusal is an error page")
	}
	screenshot(t, ctx, "f-run-estop")
	fNavigate(t, ctx, s.URL+"/jobs/tick")
	fSet(t, ctx, `[data-testid=deploy-panel] input[name=version]`, "7")
	fSet(t, ctx, `[data-testid=deploy-panel] input[name=title]`, "CHG-12")
	click(t, ctx, `[data-testid=deploy-button]`)
	waitJS(t, ctx, "the emergency stop in the Deploy panel", `location.pathname.startsWith('/jobs/tick') && /emergency stop/i.test(document.querySelector('[data-testid=deploy-panel] [data-testid=form-error]')?.textContent || '')`)
	for sel, want := range map[string]string{`input[name=version]`: "7", `input[name=title]`: "CHG-12"} {
		if got := fEval[string](t, ctx, `document.querySelector('[data-testid=deploy-panel] `+sel+`').value`); got != want {
			t.Errorf("deploy %s after the refusal = %q, want %q", sel, got, want)
		}
	}
	screenshot(t, ctx, "f-deploy-estop")
	if code := s.call(t, http.MethodDelete, "/api/emergency-stop", "", nil, nil); code != http.StatusOK {
		t.Fatalf("lift the emergency stop: %d", code)
	}

	// A schedule with a bad cron: the error next to Cron, once.
	fNavigate(t, ctx, s.URL+"/schedules")
	fSet(t, ctx, `[data-testid=schedule-form] input[name=id]`, "f9-report")
	fSet(t, ctx, `[data-testid=schedule-form] input[name=cron]`, "every day")
	click(t, ctx, `[data-testid=create-schedule]`)
	waitJS(t, ctx, "the error next to Cron", `!!document.querySelector('[data-testid=schedule-form] [data-testid=error-cron]')`)
	if got := fEval[string](t, ctx, `document.querySelector('[data-testid=schedule-form] input[name=id]').value`); got != "f9-report" {
		t.Errorf("the schedule id after the error = %q", got)
	}
	if n := fEval[int](t, ctx, `document.querySelectorAll('[data-testid=schedule-form] .field-error').length`); n != 1 {
		t.Errorf("%d errors in the schedule form, want 1", n)
	}

	// An API token that expires "soon": the error next to Expires in.
	fNavigate(t, ctx, s.URL+"/settings")
	fSet(t, ctx, `input[name=name]`, "f9-token")
	fSet(t, ctx, `input[name=expires_in]`, "soon")
	click(t, ctx, `[data-testid=create-api-token]`)
	waitJS(t, ctx, "the error next to Expires in", `!!document.querySelector('[data-testid=error-expires_in]')`)
	if got := fEval[string](t, ctx, `document.querySelector('input[name=name]').value`); got != "f9-token" {
		t.Errorf("the token name after the error = %q", got)
	}

	// An agent's groups: a bad name shows next to the field, as typed.
	fNavigate(t, ctx, s.URL+"/agents/fe1")
	fSet(t, ctx, `[data-testid=groups-form] input[name=groups]`, "lab, night shift!")
	click(t, ctx, `[data-testid=groups-form] button[type=submit]`)
	waitJS(t, ctx, "the error next to Groups", `!!document.querySelector('[data-testid=groups-form] [data-testid=error-groups]')`)
	if got := fEval[string](t, ctx, `document.querySelector('[data-testid=groups-form] input[name=groups]').value`); got != "lab, night shift!" {
		t.Errorf("the groups after the error = %q", got)
	}

	// 404s name what is missing, on pages and in the API.
	fNavigate(t, ctx, s.URL+"/agents/nope")
	if txt := fEval[string](t, ctx, `document.querySelector('main').textContent`); !strings.Contains(txt, "No agent named nope.") || strings.Contains(txt, "store:") {
		t.Errorf("agent 404 page: %q", txt)
	}
	screenshot(t, ctx, "f-404")
	for path, want := range map[string]string{"/api/agents/nope": "No agent named nope.", "/api/executions/nope": "No execution nope."} {
		var body fAPIError
		if code := s.get(t, path, &body); code != http.StatusNotFound || body.Error.Message != want {
			t.Errorf("GET %s: %d %q, want 404 %q", path, code, body.Error.Message, want)
		}
	}
}

// TestBrowser_Point10_SensibleDefaults (issue 28, point 10): the Run form's
// shell follows the selected PCs' OS (PowerShell for Windows, sh else,
// none and a hint when mixed) with a matching placeholder; a token form
// that shows "90d" makes a 90-day token; placeholders read as examples.
func TestBrowser_Point10_SensibleDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := fJobsServer(t)
	startAgentWith(t, s, "fwin1", []string{"lab"}, "", func(c *worker.Config) { c.OS = "windows" })
	startAgent(t, s, "flin1", []string{"lab"}, "")
	s.waitOnline(t, "fwin1", "flin1")
	ctx, _ := fBrowser(t)

	shell := `document.querySelector('select[name=shell]').value`
	placeholder := `document.querySelector('textarea[name=script]').placeholder`
	fNavigate(t, ctx, s.URL+"/run?pc=fwin1")
	if got, ph := fEval[string](t, ctx, shell), fEval[string](t, ctx, placeholder); got != "powershell" || !strings.Contains(ph, "Get-") {
		t.Errorf("a Windows PC: shell %q, placeholder %q", got, ph)
	}
	fNavigate(t, ctx, s.URL+"/run?pc=flin1")
	if got, ph := fEval[string](t, ctx, shell), fEval[string](t, ctx, placeholder); got != "sh" || strings.Contains(ph, "Get-") {
		t.Errorf("a Linux PC: shell %q, placeholder %q", got, ph)
	}
	// Typing a Windows PC switches the shell the user has not chosen.
	fSet(t, ctx, `input[name=pcs]`, "fwin1")
	waitJS(t, ctx, "PowerShell for the Windows PC", shell+` === 'powershell' && `+placeholder+`.includes('Get-')`)
	fNavigate(t, ctx, s.URL+"/run?pc=fwin1&pc=flin1")
	if got := fEval[string](t, ctx, shell); got != "" {
		t.Errorf("Windows and Linux PCs: shell %q, want none chosen", got)
	}
	if hint := fEval[string](t, ctx, `document.querySelector('[data-testid=shell-hint]')?.textContent || ''`); !strings.Contains(hint, "Windows") || !strings.Contains(hint, "Linux") {
		t.Errorf("mixed PCs hint = %q", hint)
	}
	screenshot(t, ctx, "f-run-mixed")
	fSet(t, ctx, `textarea[name=script]`, "hostname")
	click(t, ctx, `[data-testid=run-button]`)
	waitJS(t, ctx, "choose a shell", `/choose a shell/i.test(document.querySelector('[data-testid=error-shell]')?.textContent || '')`)
	if n := fExecCount(t, s); n != 0 {
		t.Errorf("%d executions without a shell", n)
	}

	// The API token form: what it shows is what it makes.
	fNavigate(t, ctx, s.URL+"/settings")
	in := fEval[map[string]string](t, ctx, `(() => { const e = document.querySelector('input[name=expires_in]'); return {value: e.value, placeholder: e.placeholder}; })()`)
	if in["value"] == "" && in["placeholder"] != "" && !strings.HasPrefix(in["placeholder"], "e.g.") {
		t.Errorf("Expires in shows %q as a placeholder", in["placeholder"])
	}
	fSet(t, ctx, `input[name=name]`, "f10-token")
	click(t, ctx, `[data-testid=create-api-token]`)
	waitJS(t, ctx, "the new token", `!!document.querySelector('[data-testid=api-token-secret]')`)
	var toks struct {
		Tokens []struct {
			Name      string     `json:"name"`
			CreatedAt time.Time  `json:"created_at"`
			ExpiresAt *time.Time `json:"expires_at"`
		} `json:"tokens"`
	}
	s.get(t, "/api/tokens", &toks)
	if len(toks.Tokens) != 1 || toks.Tokens[0].ExpiresAt == nil || toks.Tokens[0].ExpiresAt.Sub(toks.Tokens[0].CreatedAt) != 90*24*time.Hour {
		t.Errorf("the form showed %q and made %+v, want a 90-day token", in["value"]+in["placeholder"], toks.Tokens)
	}

	// Placeholders of the forms read as examples, never as values.
	for _, p := range []string{"/run", "/jobs/tick", "/schedules", "/settings", "/enrollments", "/settings/add-agents"} {
		fNavigate(t, ctx, s.URL+p)
		bad := fEval[[]string](t, ctx, `[...document.querySelectorAll('main form input[placeholder], main form textarea[placeholder]')].filter(e => e.type !== 'search' && e.name !== 'script' && !e.placeholder.startsWith('e.g. ')).map(e => e.name + '=' + e.placeholder)`)
		if len(bad) > 0 {
			t.Errorf("%s: placeholders that look like values: %q", p, bad)
		}
	}
}

// TestBrowser_Point12_CopyTokens (issue 28, point 12): the pages that show a
// new API token or enrollment token once have Copy buttons for the secret
// and the credentials file.
func TestBrowser_Point12_CopyTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	ctx, _ := fBrowser(t)
	copies := func(button, source string) {
		t.Helper()
		waitJS(t, ctx, button+" on a loaded page", `document.readyState === 'complete' && document.querySelector('[data-testid=`+button+`]')?.textContent.trim() === 'Copy'`)
		want := fEval[string](t, ctx, `document.querySelector('[data-testid=`+source+`]').textContent`)
		if strings.TrimSpace(want) == "" {
			t.Fatalf("%s is empty", source)
		}
		click(t, ctx, `[data-testid=`+button+`]`)
		waitJS(t, ctx, button+" reacted", `['copied', 'select'].includes(document.querySelector('[data-testid=`+button+`]').dataset.state)`)
		if fEval[string](t, ctx, `document.querySelector('[data-testid=`+button+`]').dataset.state`) == "select" &&
			strings.TrimSpace(fEval[string](t, ctx, `window.getSelection().toString()`)) != strings.TrimSpace(want) {
			t.Errorf("%s selected something else than %s", button, source)
		}
	}
	fNavigate(t, ctx, s.URL+"/settings")
	fSet(t, ctx, `input[name=name]`, "f12-token")
	click(t, ctx, `[data-testid=create-api-token]`)
	copies("copy-api-token", "api-token-secret")
	screenshot(t, ctx, "f-api-token-created")

	fNavigate(t, ctx, s.URL+"/enrollments")
	fSet(t, ctx, `#enrollment-tokens input[name=name]`, "f12 laptops")
	click(t, ctx, `[data-testid=create-token]`)
	copies("copy-token-secret", "token-secret")
	copies("copy-credentials", "token-credentials")
	screenshot(t, ctx, "f-enrollment-token-created")
}
