//go:build !windows

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kanadehq/kanade/app/config"
)

// startInstallServer runs a dev-mode server that serves the agent
// binaries `go build` just made (as `make build` would).
func startInstallServer(t *testing.T, adjust func(*config.Config)) (*testServer, string) {
	t.Helper()
	bin, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) {
		c.Server.AgentDownloads = bin
		if adjust != nil {
			adjust(c)
		}
	})
	return s, bin
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// shellRun is the Linux install command running in a shell of its own
// process group (the agent it starts stays in that group).
type shellRun struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan error
}

func (r *shellRun) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.Write(p)
}

func (r *shellRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

func startShell(t *testing.T, command string, env ...string) *shellRun {
	t.Helper()
	r := &shellRun{cmd: exec.Command("sh", "-c", command), done: make(chan error, 1)}
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = r, r
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
		if t.Failed() {
			t.Logf("output of the install command:\n%s", r.output())
		}
	})
	return r
}

// TestDownload_InstallCommandEndToEnd runs the Linux command that
// Settings › Add agents makes against a running server, as a help desk
// would paste it, with the real agent: it downloads the agent with the
// token, checks the hash, writes the bundle and starts the agent (in the
// foreground: KANADE_NO_SERVICE=1, so neither root nor systemd is
// needed), which enrolls with the new token over TLS (the broker's CA
// comes in the bundle the command carries), comes online in the token's
// group and runs a script. The token allowed one PC: the same command a
// second time is refused with the reason.
func TestDownload_InstallCommandEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (-short)")
	}
	for _, tool := range []string{"sh", "curl", "sha256sum", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	s, bin := startInstallServer(t, func(c *config.Config) { c.NATS.TLS = "auto" })
	if !strings.HasPrefix(s.NATSURL, "tls://") {
		t.Fatalf("the broker does not serve TLS: %s", s.NATSURL)
	}
	var got struct {
		Shell, SHA256, TokenID string
		DownloadURL            string `json:"download_url"`
		AgentURL               string `json:"agent_url"`
	}
	if code := s.post(t, "/api/agent-installs", map[string]any{"os": "linux", "groups": []string{"installed"}, "token": "new",
		"expires_in": "1h", "max_uses": 1, "auto_approve": true}, &got); code != http.StatusCreated {
		t.Fatalf("POST /api/agent-installs = %d", code)
	}
	if want := fileSHA256(t, filepath.Join(bin, "kanade-agent")); got.SHA256 != want || got.AgentURL != s.NATSURL {
		t.Fatalf("sha256 %s (want %s), agent_url %s (want %s)", got.SHA256, want, got.AgentURL, s.NATSURL)
	}

	prefix := t.TempDir()
	start := time.Now()
	r := startShell(t, got.Shell, "KANADE_PREFIX="+prefix, "KANADE_NO_SERVICE=1", "KANADE_DATA="+filepath.Join(prefix, "data"),
		"KANADE_AGENT_PC_ID=installed-pc", "KANADE_AGENT_HEARTBEAT_INTERVAL=1s")
	s.waitOnline(t, "installed-pc")
	t.Logf("install command to agent online: %s", time.Since(start).Round(10*time.Millisecond))
	if !strings.Contains(r.output(), "downloading the agent from "+got.DownloadURL) {
		t.Errorf("output: %s", r.output())
	}
	if h := fileSHA256(t, filepath.Join(prefix, "usr/local/bin/kanade-agent")); h != got.SHA256 {
		t.Errorf("installed agent hash %s, want %s", h, got.SHA256)
	}
	var agent struct{ Groups []string }
	s.get(t, "/api/agents/installed-pc", &agent)
	if strings.Join(agent.Groups, ",") != "installed" {
		t.Errorf("groups = %v, want the token's", agent.Groups)
	}
	e := s.run(t, map[string]any{"target": map[string]any{"groups": []string{"installed"}}, "shell": "sh", "script": "echo installed-ok", "timeout": "30s"})
	e = s.waitExec(t, e.ExecID, completed)
	if len(e.Targets) != 1 || e.Targets[0].State != "succeeded" || !strings.Contains(e.Targets[0].Stdout, "installed-ok") {
		t.Errorf("run on the installed agent: %+v", e.Targets)
	}

	// The token was for one PC: the same command again is refused.
	again := exec.Command("sh", "-c", got.Shell)
	again.Env = append(os.Environ(), "KANADE_PREFIX="+t.TempDir(), "KANADE_NO_SERVICE=1")
	out, err := again.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HTTP 403") || !strings.Contains(string(out), "used up") {
		t.Errorf("second install with a one-PC token: %v\n%s", err, out)
	}
}

// TestBrowser_AddAgents: an admin opens Settings › Add agents, picks
// Linux and a new token, and gets the command with a Copy button that
// copies it.
func TestBrowser_AddAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s, bin := startInstallServer(t, nil)
	want := fileSHA256(t, filepath.Join(bin, "kanade-agent"))
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/settings")); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `[data-testid=settings-tab-add-agents]`)
	waitJS(t, ctx, "the Add agents page", `location.pathname === '/settings/add-agents' && document.querySelector('[data-testid=add-agents-form]') !== null`)
	click(t, ctx, `[data-testid=os-linux]`)
	click(t, ctx, `[data-testid=token-new]`)
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`input[name=groups]`), "lab"),
		chromedp.SetValue(chromedp.CSS(`input[name=expires_in]`), "2h"),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "add-agents-form")
	click(t, ctx, `[data-testid=make-command]`)
	waitJS(t, ctx, "the Linux command", `document.querySelector('[data-testid=install-result]')?.dataset.os === 'linux'`)
	cmd := evalString(t, ctx, `document.querySelector('[data-testid=install-command]').textContent`)
	for _, w := range []string{"( set -eu; ", "h='" + want + "'", "u='" + s.URL + "/download/agent/linux-amd64'", "g='lab'", "s='" + s.NATSURL + "'"} {
		if !strings.Contains(cmd, w) {
			t.Errorf("the command lacks %s:\n%s", w, cmd)
		}
	}
	waitJS(t, ctx, "a Copy button on a loaded page", `document.readyState === 'complete' && document.querySelector('[data-testid=copy-command]')?.textContent.trim() === 'Copy'`)
	screenshot(t, ctx, "add-agents-command")
	click(t, ctx, `[data-testid=copy-command]`)
	// Copied, or, where the browser refuses the clipboard, selected for Ctrl+C.
	waitJS(t, ctx, "the Copy button reacted", `['copied', 'select'].includes(document.querySelector('[data-testid=copy-command]').dataset.state)`)
	if evalString(t, ctx, `document.querySelector('[data-testid=copy-command]').dataset.state`) == "select" &&
		evalString(t, ctx, `window.getSelection().toString()`) != cmd {
		t.Errorf("the selection is not the command")
	}
	// The new token is listed with the others.
	token := evalString(t, ctx, `document.querySelector('[data-testid=install-token-id]').textContent`)
	var toks struct{ Tokens []struct{ ID string } }
	s.get(t, "/api/enrollment-tokens", &toks)
	found := false
	for _, tk := range toks.Tokens {
		found = found || tk.ID == strings.TrimSpace(token)
	}
	if !found {
		t.Errorf("token %q not among %+v", token, toks.Tokens)
	}
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
