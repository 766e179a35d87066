//go:build !windows

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/kanadehq/kanade/agent/enroll"
)

// chromiumPath finds Debian's chromium (make test installs it).
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("KANADE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("browser tests need Chromium: run 'make test' (installs it) or 'apt-get install -y chromium', or set KANADE_CHROMIUM")
	return ""
}

// newBrowser starts headless Chromium that accepts every confirmation dialog.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	ctx := startChromium(t, 2*time.Minute)
	// Accept confirmation dialogs (the Kill button asks first).
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return ctx
}

// startChromium starts headless Chromium for at most timeout, with the
// flags this closed network needs; it ends with the test.
func startChromium(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// click clicks the element in one step in the page, so a live region
// swapped by htmx between finding and clicking cannot make it miss.
func click(t *testing.T, ctx context.Context, selector string) {
	t.Helper()
	waitJS(t, ctx, selector, `document.querySelector(`+"`"+selector+"`"+`) !== null`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector(`+"`"+selector+"`"+`).click()`)); err != nil {
		t.Fatal(err)
	}
}

// waitJS polls a JavaScript condition in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	checkFor(t, 30*time.Second, func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("waiting for %s", what)
		}
		return nil
	})
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("KANADE_SCREENSHOTS")
	if dir == "" {
		return
	}
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	_ = os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644)
}

// TestBrowser_RunAndKill drives the GUI in Chromium: run a script from
// the Run page, watch its state and output arrive live over SSE, then run
// a long script and kill it with the red button.
func TestBrowser_RunAndKill(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "bpc1", []string{"lab"}, "")
	s.waitOnline(t, "bpc1")
	ctx := newBrowser(t)

	// The agents page lists the agent as online.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/agents")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "bpc1 listed online", `[...document.querySelectorAll('[data-testid=agent-row]')].some(r => r.textContent.includes('bpc1') && r.textContent.includes('online'))`)
	screenshot(t, ctx, "agents")

	// Select the agent and add it to a group from the list.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`input[name=pc][value=bpc1]`)),
		chromedp.SetValue(chromedp.CSS(`#bulk input[name=group]`), "Night-Shift"),
	); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `[data-testid=add-to-group]`)
	waitJS(t, ctx, "filtered by the new group", `location.search.includes('group=night-shift')`)
	waitJS(t, ctx, "bpc1 in night-shift", `[...document.querySelectorAll('[data-testid=agent-row]')].some(r => r.textContent.includes('bpc1') && r.textContent.includes('night-shift'))`)

	gate := filepath.Join(t.TempDir(), "gate")
	script := "echo started; while [ ! -f " + shQuote(gate) + " ]; do sleep 0.05; done; echo hello"
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/run?pcs=bpc1"),
		chromedp.WaitVisible(chromedp.CSS(`textarea[name=script]`)),
		chromedp.SetValue(chromedp.CSS(`textarea[name=script]`), script),
		chromedp.SetValue(chromedp.CSS(`input[name=timeout]`), "60s"),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "target preview", `document.querySelector('#run-preview').textContent.includes('1 agent')`)
	screenshot(t, ctx, "run")
	click(t, ctx, `[data-testid=run-button]`)
	waitJS(t, ctx, "execution page", `location.pathname.startsWith('/executions/')`)
	screenshot(t, ctx, "execution-start")
	// Live: the target turns running and its first line streams in, with no reload.
	waitJS(t, ctx, "running state", `document.querySelector('#exec-targets [data-state=running]') !== null`)
	waitJS(t, ctx, "live output 'started'", `(document.querySelector('#log-panel')?.textContent || '').includes('started')`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__kanadeNoReload = true`)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "hello in the log panel", `(document.querySelector('#log-panel')?.textContent || '').includes('hello')`)
	waitJS(t, ctx, "succeeded state", `document.querySelector('#exec-targets [data-state=succeeded]') !== null`)
	waitJS(t, ctx, "same page (live, not reloaded)", `window.__kanadeNoReload === true`)
	screenshot(t, ctx, "execution")

	// Kill a long run with the red button.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/run?pcs=bpc1"),
		chromedp.WaitVisible(chromedp.CSS(`textarea[name=script]`)),
		chromedp.SetValue(chromedp.CSS(`textarea[name=script]`), "sleep 60"),
	); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `[data-testid=run-button]`)
	waitJS(t, ctx, "running state", `document.querySelector('#exec-targets [data-state=running]') !== null`)
	click(t, ctx, `[data-testid=kill-button]`)
	waitJS(t, ctx, "killed state", `document.querySelector('#exec-targets [data-state=killed]') !== null`)
	screenshot(t, ctx, "killed")
}

// TestBrowser_SignIn signs in through the OIDC issuer (mockoidc) in
// Chromium: a page load goes to the issuer and back, the nav shows the
// user and their role and hides what the role cannot do, and Sign out ends
// the session.
func TestBrowser_SignIn(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s, m := startOIDCServer(t)
	m.QueueUser(&mockoidc.MockUser{Subject: "u-ana", Email: "ana@example.com", PreferredUsername: "ana", Groups: []string{"helpdesk"}})
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/agents")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "signed in as ana on the agents page", `location.pathname === '/agents' && document.querySelector('[data-testid=user]')?.textContent === 'ana'`)
	waitJS(t, ctx, "operator role, Run but no Settings or emergency stop",
		`document.querySelector('[data-testid=role]').textContent === 'operator' && [...document.querySelectorAll('.nav a')].some(a => a.textContent === 'Run') && ![...document.querySelectorAll('.nav a')].some(a => a.textContent === 'Settings') && !document.querySelector('[data-testid=estop-link]')`)
	screenshot(t, ctx, "signed-in")
	click(t, ctx, "[data-testid=sign-out]")
	waitJS(t, ctx, "signed out", `location.pathname === '/login' && document.body.textContent.includes('You are signed out') && !document.querySelector('[data-testid=user]')`)
	// The session is over: the agents page sends the browser to sign in again.
	m.QueueUser(&mockoidc.MockUser{Subject: "u-bo", Email: "bo@example.com", Groups: []string{"it-admins"}})
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/agents")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "signed in again as bo, an admin", `document.querySelector('[data-testid=user]')?.textContent === 'bo@example.com' && document.querySelector('[data-testid=role]').textContent === 'admin' && [...document.querySelectorAll('.nav a')].some(a => a.textContent === 'Settings')`)
}

// approveAgents approves every pending enrollment with an admin token until
// the test ends (a server with sign-in holds agents for approval).
func approveAgents(t *testing.T, s *testServer, admin string) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			var list struct {
				Enrollments []struct {
					PCID string `json:"pc_id"`
				} `json:"enrollments"`
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/enrollments?status=pending", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&list)
				resp.Body.Close()
			}
			for _, e := range list.Enrollments {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/enrollments/"+e.PCID+"/approve", nil)
				req.Header.Set("Authorization", "Bearer "+admin)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

// TestBrowser_ApproveWave: a help-desk operator's rollout waits for a
// manager; the manager signs in, approves wave 2 on the rollout page and
// watches it run.
func TestBrowser_ApproveWave(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s, m := startOIDCServer(t)
	s.token = cliToken(t, s, "admin", "ops")
	approveAgents(t, s, s.token)
	startAgent(t, s, "c1", []string{"canary"}, "")
	startAgent(t, s, "f1", []string{"fleet"}, "")
	startAgent(t, s, "f2", []string{"fleet"}, "")
	s.waitOnline(t, "c1", "f1", "f2")
	alice := cliToken(t, s, "operator", "alice-helpdesk")
	var e execution
	if code := s.deployAs(t, alice, waveManifest("browser-gated", "echo hello from $KANADE_PC_ID",
		"    - name: canary\n      group: canary\n    - name: fleet\n      group: fleet\n      approval: true\n"), &e); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	s.waitRollout(t, e.ExecID, "wave 2 to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })

	m.QueueUser(&mockoidc.MockUser{Subject: "u-carol", Email: "carol@example.com", Groups: []string{"managers"}})
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the approvals link for the manager", `document.querySelector('[data-testid=approvals-link]')?.textContent.includes('1 wave awaits approval')`)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/executions/"+e.ExecID)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "wave 2 awaiting approval with an Approve button", `document.querySelector('[data-testid=wave][data-wave="1"]')?.dataset.state === 'awaiting_approval' && !!document.querySelector('[data-testid=approve-button]')`)
	screenshot(t, ctx, "rollout-awaiting")
	click(t, ctx, "[data-testid=approve-button]")
	waitJS(t, ctx, "wave 2 succeeded live, approved by carol", `document.querySelector('[data-testid=wave][data-wave="1"]')?.dataset.state === 'succeeded' && document.querySelector('[data-testid=wave][data-wave="1"] [data-testid=approved-by]')?.textContent.includes('carol@example.com')`)
	screenshot(t, ctx, "rollout-done")
	if r := s.rollout(t, e.ExecID); r.Status != "completed" || r.Waves[1].Counts["succeeded"] != 2 {
		t.Errorf("rollout = %s %+v", r.Status, r.Waves)
	}
}

// TestBrowser_RotateEnrollmentFile: an admin rotates DATA/agent-credentials
// from the Pending agents page; the old file can no longer connect, the
// new one enrolls, and the running agent is not affected.
func TestBrowser_RotateEnrollmentFile(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "rpc1", nil, "")
	s.waitOnline(t, "rpc1")
	old, err := os.ReadFile(s.Creds)
	if err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/enrollments")); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `[data-testid=rotate-default]`)
	waitJS(t, ctx, "back on the enrollments page", `location.pathname === '/enrollments' && document.readyState === 'complete'`)
	checkFor(t, 10*time.Second, func() error {
		b, err := os.ReadFile(s.Creds)
		if err != nil || string(b) == string(old) {
			return fmt.Errorf("DATA/agent-credentials not rewritten (%v)", err)
		}
		return nil
	})
	oldFile, err := enroll.ParseEnrollmentFile(old)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed(oldFile.Seed)
	if err != nil {
		t.Fatal(err)
	}
	// The handler answers once the revocation is pushed; the file is
	// written just before it.
	checkFor(t, 10*time.Second, func() error {
		nc, err := nats.Connect(s.NATSURL, nats.UserJWT(func() (string, error) { return oldFile.JWT, nil }, kp.Sign), nats.NoReconnect())
		if err == nil {
			nc.Close()
			return errors.New("the old enrollment file still connects")
		}
		return nil
	})
	startAgent(t, s, "rpc2", nil, "")
	s.waitOnline(t, "rpc1", "rpc2")
}
