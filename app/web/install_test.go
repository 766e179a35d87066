package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	agentenroll "github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/app/agentinstall"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/enroll"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/app/web"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// agentFixture is an embedded broker with an enrollment service (its
// default bundle written, admin approval) and a downloads directory with
// a Linux and a Windows "agent" (bytes the tests recognise).
type agentFixture struct {
	enroller  *enroll.Service
	dir       string // agent downloads
	data      string // the server's data directory
	linux     []byte
	windows   []byte
	brokerURL string
	st        *store.Store
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// withAgents wires the fixture into a handler's dependencies; the store
// is the handler's.
func withAgents(t *testing.T, f *agentFixture, more func(*web.Deps)) func(*web.Deps) {
	return func(d *web.Deps) {
		t.Helper()
		log := slog.New(slog.DiscardHandler)
		f.data, f.dir, f.st = t.TempDir(), t.TempDir(), d.Store
		b, err := bus.Open(context.Background(), bus.Options{DataDir: f.data, Listen: "127.0.0.1:0", MaxPayload: 8 << 20, Logger: log,
			Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
				ExecMaxBytes: 16 << 20, ResultsMaxBytes: 16 << 20, OutputMaxBytes: 16 << 20, AuditMaxBytes: 16 << 20}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		keys, err := sign.Load(filepath.Join(f.data, "secrets", "command-keys"))
		if err != nil {
			t.Fatal(err)
		}
		rec := audit.New(b.JS, log)
		ev := events.New()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = audit.Project(ctx, b.JS, d.Store, ev, log) }()
		t.Cleanup(func() { cancel(); <-done })
		e := enroll.New(d.Store, b, keys, ev, log)
		e.Audit = rec
		if _, err := e.WriteAgentCredentials(context.Background(), f.data, false, nil, nil); err != nil {
			t.Fatal(err)
		}
		f.enroller, f.brokerURL = e, b.ClientURL()
		f.linux, f.windows = []byte("\x7fELF linux agent"), []byte("MZ windows agent")
		for path, body := range map[string][]byte{"linux-amd64/kanade-agent": f.linux, "windows-amd64/kanade-agent.exe": f.windows} {
			p := filepath.Join(f.dir, filepath.FromSlash(path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, body, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		bins, err := agentinstall.NewBinaries(f.dir)
		if err != nil {
			t.Fatal(err)
		}
		d.Enroller, d.Audit, d.Events, d.AgentBinaries, d.BrokerURL = e, rec, ev, bins, f.brokerURL
		if more != nil {
			more(d)
		}
	}
}

type errorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"details"`
	} `json:"error"`
}

func decodeError(t *testing.T, body string) errorJSON {
	t.Helper()
	var e errorJSON
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not a JSON error: %v: %s", err, body)
	}
	return e
}

// TestDownload_Authorisation: a PC downloads the agent with an enrollment
// token that may still enroll, a signed-in user with any role; everyone
// else gets a JSON error that says what to do.
func TestDownload_Authorisation(t *testing.T) {
	f := &agentFixture{}
	s := newSignInServer(t, false, withAgents(t, f, nil))
	ctx := context.Background()
	secret := func(is enroll.Issued, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return is.Secret
	}
	good := secret(f.enroller.CreateToken(ctx, enroll.TokenRequest{Name: "good", By: "alice"}))
	revoked := secret(f.enroller.CreateToken(ctx, enroll.TokenRequest{Name: "revoked", By: "alice"}))
	tok, _ := f.enroller.CheckSecret(ctx, revoked)
	if err := f.enroller.RevokeToken(ctx, tok.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	expired := secret(f.enroller.CreateToken(ctx, enroll.TokenRequest{Name: "expired", ExpiresIn: time.Nanosecond, By: "alice"}))
	usedUp := secret(f.enroller.CreateToken(ctx, enroll.TokenRequest{Name: "once", MaxUses: 1, By: "alice"}))
	tok, _ = f.enroller.CheckSecret(ctx, usedUp)
	if err := f.st.CountTokenUse(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	defaultBundle, _ := os.ReadFile(filepath.Join(f.data, "agent-credentials"))
	defaultSecret, _ := enroll.BundleSecret(defaultBundle)
	bearer := func(v string) map[string]string { return map[string]string{"Authorization": "Bearer " + v} }

	anon := s.browser(t)
	for _, tc := range []struct {
		name, path string
		header     map[string]string
		status     int
		code, want string
	}{
		{"no token", "/download/agent/linux-amd64", nil, 401, "unauthorized", "Authorization: Bearer kanade-enroll-"},
		{"unknown token", "/download/agent/linux-amd64", bearer("kanade-enroll-nope"), 401, "invalid_token", "not valid"},
		{"unknown token in the query", "/download/agent/linux-amd64?token=kanade-enroll-nope", nil, 401, "invalid_token", "not valid"},
		{"API token that does not exist", "/download/agent/linux-amd64", bearer("kanade-api-nope"), 401, "unauthorized", "unknown API token"},
		{"revoked token", "/download/agent/linux-amd64", bearer(revoked), 403, "token_unusable", "revoked"},
		{"expired token", "/download/agent/linux-amd64", bearer(expired), 403, "token_unusable", "expired"},
		{"used-up token", "/download/agent/linux-amd64", bearer(usedUp), 403, "token_unusable", "used up"},
		{"unknown platform", "/download/agent/plan9-amd64", bearer(good), 404, "unknown_platform", "linux-amd64"},
		{"path tricks", "/download/agent/..%2f..%2fsecrets", bearer(good), 404, "unknown_platform", ""},
		{"not built", "/download/agent/linux-arm64", bearer(good), 404, "agent_not_built", "make build"},
	} {
		code, body := anon.do(http.MethodGet, tc.path, "", tc.header)
		e := decodeError(t, body)
		if code != tc.status || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.want) {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
		if tc.code == "agent_not_built" && !strings.Contains(e.Error.Message, f.dir) {
			t.Errorf("%s: the message does not name %s: %s", tc.name, f.dir, e.Error.Message)
		}
	}

	get := func(c *http.Client, path string, header map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, tc := range []struct {
		name, path string
		header     map[string]string
		want       []byte
	}{
		{"token header", "/download/agent/linux-amd64", bearer(good), f.linux},
		{"default token", "/download/agent/windows-amd64", bearer(defaultSecret), f.windows},
		{"token in the query", "/download/agent/windows-amd64?token=" + url.QueryEscape(good), nil, f.windows},
	} {
		resp, body := get(s.Client(), tc.path, tc.header)
		if resp.StatusCode != 200 || !bytes.Equal(body, tc.want) || resp.Header.Get("Kanade-SHA256") != sha(tc.want) ||
			resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("%s: %d %q %v", tc.name, resp.StatusCode, body, resp.Header)
		}
	}
	resp, body := get(s.Client(), "/download/agent/linux-amd64.sha256", bearer(good))
	if resp.StatusCode != 200 || string(body) != sha(f.linux)+"  kanade-agent\n" {
		t.Errorf(".sha256: %d %q", resp.StatusCode, body)
	}
	resp, body = get(s.Client(), "/download/agent/linux-amd64", map[string]string{"Authorization": "Bearer " + good, "Range": "bytes=1-3"})
	if resp.StatusCode != http.StatusPartialContent || string(body) != string(f.linux[1:4]) {
		t.Errorf("range: %d %q", resp.StatusCode, body)
	}

	// Signed in with the lowest role.
	viewer := s.browser(t)
	s.m.QueueUser(mockUser("vic@example.com", "staff"))
	if code, body := viewer.do(http.MethodGet, "/auth/start?next=/agents", "", nil); code != http.StatusOK {
		t.Fatalf("sign-in: %d %s", code, body)
	}
	resp, body = get(viewer.c, "/download/agent/linux-amd64", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, f.linux) {
		t.Errorf("signed-in viewer: %d %q", resp.StatusCode, body)
	}
	// …who may not make install commands.
	if code, body := viewer.do(http.MethodGet, "/settings/add-agents", "", nil); code != http.StatusForbidden {
		t.Errorf("viewer on Add agents: %d %s", code, body)
	}
	// An API token of the lowest role.
	apiSecret := "kanade-api-viewer-for-downloads"
	if err := f.st.CreateAPIToken(ctx, store.APIToken{ID: "t1", Name: "ci", Role: "viewer", CreatedAt: time.Now(), CreatedBy: "alice"}, auth.HashSecret(apiSecret)); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(s.Client(), "/download/agent/linux-amd64", bearer(apiSecret)); resp.StatusCode != 200 || !bytes.Equal(body, f.linux) {
		t.Errorf("API token: %d %q", resp.StatusCode, body)
	}
}

// installResponse is POST /api/agent-installs' answer.
type installResponse struct {
	OS, Arch, Command, PowerShell, Shell string
	SHA256                               string `json:"sha256"`
	DownloadURL                          string `json:"download_url"`
	AgentURL                             string `json:"agent_url"`
	TokenID                              string `json:"token_id"`
	Token                                struct {
		Name          string   `json:"name"`
		DefaultGroups []string `json:"default_groups"`
		MaxUses       int      `json:"max_uses"`
		AutoApprove   bool     `json:"auto_approve"`
		CreatedBy     string   `json:"created_by"`
		ExpiresAt     *time.Time
	}
	Groups []string
}

var bundleRE = regexp.MustCompile(`\bb='([A-Za-z0-9+/=]+)'`)

// bundleOf decodes the enrollment bundle a command carries and parses it
// as the agent does.
func bundleOf(t *testing.T, cmd string) ([]byte, agentenroll.EnrollmentFile) {
	t.Helper()
	m := bundleRE.FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("no bundle in the command: %s", cmd)
	}
	raw, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	file, err := agentenroll.ParseEnrollmentFile(raw)
	if err != nil {
		t.Fatalf("the command's bundle does not parse: %v\n%s", err, raw)
	}
	return raw, file
}

func postJSON(t *testing.T, url string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestAgentInstalls_API: a script gets a command for a new token (created
// and audited) or for the default one; the command carries the hash, the
// download URL, the broker URL and a bundle the agent parses, whose token
// downloads the agent. Mistakes create nothing.
func TestAgentInstalls_API(t *testing.T) {
	f := &agentFixture{}
	st := storetest.New(t)
	srv := httptest.NewServer(devHandler(t, st, withAgents(t, f, nil)))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	listen, _ := agentinstall.ListenOf(f.brokerURL)

	code, body := postJSON(t, srv.URL+"/api/agent-installs", map[string]any{"os": "linux", "groups": []string{"Lab", "canary"}, "token": "new",
		"expires_in": "24h", "max_uses": 3, "auto_approve": true})
	if code != http.StatusCreated {
		t.Fatalf("new token: %d %s", code, body)
	}
	var got installResponse
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != sha(f.linux) || got.DownloadURL != srv.URL+"/download/agent/linux-amd64" || got.AgentURL != "nats://"+listen ||
		got.Shell == "" || got.PowerShell != "" || got.Command != got.Shell || got.OS != "linux" || got.Arch != "amd64" {
		t.Fatalf("answer: %+v", got)
	}
	if diff := cmp.Diff([]string{"canary", "lab"}, got.Groups); diff != "" {
		t.Errorf("groups: %s", diff)
	}
	for _, want := range []string{"h='" + sha(f.linux) + "'", "u='" + got.DownloadURL + "'", "s='" + got.AgentURL + "'", "g='canary,lab'"} {
		if !strings.Contains(got.Shell, want) {
			t.Errorf("the command lacks %s", want)
		}
	}
	raw, file := bundleOf(t, got.Shell)
	tok, err := f.enroller.CheckSecret(ctx, file.Token)
	if err != nil || tok.ID != got.TokenID || tok.MaxUses != 3 || !tok.AutoApprove || tok.CreatedBy != "dev" || tok.ExpiresAt.IsZero() {
		t.Fatalf("the bundle's token: %+v %v", tok, err)
	}
	if diff := cmp.Diff([]string{"canary", "lab"}, tok.DefaultGroups); diff != "" {
		t.Errorf("token groups: %s", diff)
	}
	if !strings.Contains(got.Shell, "t='"+file.Token+"'") || !bytes.Contains(raw, []byte("NATS USER JWT")) {
		t.Error("the command's token secret is not the bundle's")
	}
	// The token in the command downloads the agent.
	status, h, dl := get(t, got.DownloadURL, "Authorization", "Bearer "+file.Token)
	if status != 200 || dl != string(f.linux) || h.Get("Kanade-SHA256") != got.SHA256 {
		t.Errorf("download with the command's token: %d", status)
	}
	// The creation is audited, by the caller.
	checkAudit(t, srv.URL, got.TokenID)

	// The default token: no token is created; the bundle is DATA/agent-credentials.
	before, _ := st.EnrollmentTokens(ctx)
	code, body = postJSON(t, srv.URL+"/api/agent-installs", map[string]any{"os": "windows", "groups": []string{"kiosk"}})
	if code != http.StatusOK {
		t.Fatalf("default token: %d %s", code, body)
	}
	got = installResponse{}
	_ = json.Unmarshal([]byte(body), &got)
	raw, _ = bundleOf(t, got.PowerShell)
	onDisk, _ := os.ReadFile(filepath.Join(f.data, "agent-credentials"))
	if got.TokenID != enroll.DefaultTokenID || !bytes.Equal(raw, onDisk) || got.SHA256 != sha(f.windows) || got.Shell != "" ||
		!strings.Contains(got.PowerShell, "$h='"+sha(f.windows)+"'") || !strings.Contains(got.PowerShell, "$g='kiosk'") {
		t.Errorf("default token answer: %+v", got)
	}
	after, _ := st.EnrollmentTokens(ctx)
	if len(after) != len(before) {
		t.Errorf("the default token created a token: %d → %d", len(before), len(after))
	}

	// Mistakes: every problem at once, and no token.
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		want   string
	}{
		{"unknown os", map[string]any{"os": "macos", "token": "new"}, 400, "os"},
		{"bad group", map[string]any{"os": "linux", "groups": []string{"a b"}, "token": "new"}, 400, "groups"},
		{"bad token kind", map[string]any{"os": "linux", "token": "old"}, 400, "token"},
		{"bad arch", map[string]any{"os": "linux", "arch": "mips", "token": "new"}, 400, "arch"},
		{"bad expiry", map[string]any{"os": "linux", "token": "new", "expires_in": "soon"}, 400, "expires_in"},
		{"negative uses", map[string]any{"os": "linux", "token": "new", "max_uses": -1}, 400, "max_uses"},
		{"not built", map[string]any{"os": "linux", "arch": "arm64", "token": "new"}, 404, "agent_not_built"},
	} {
		code, body := postJSON(t, srv.URL+"/api/agent-installs", tc.body)
		if code != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	if now, _ := st.EnrollmentTokens(ctx); len(now) != len(after) {
		t.Errorf("a refused request created a token: %d → %d", len(after), len(now))
	}
}

// checkAudit waits for the audit log to show the token's creation by dev.
func checkAudit(t *testing.T, base, tokenID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out struct {
			Events []struct{ Actor, Action, Target string }
		}
		getJSON(t, base+"/api/audit?action="+audit.TokenCreate, &out)
		for _, e := range out.Events {
			if e.Target == tokenID && e.Actor == "dev" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %s: %+v", audit.TokenCreate, tokenID, out.Events)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The broker URL: [nats] agent_url when set; a listener on every
// interface becomes the host the request used.
func TestAgentInstalls_AgentURL(t *testing.T) {
	for _, tc := range []struct {
		name           string
		public, broker string
		want           func(host string) string
	}{
		{"explicit", "tls://kanade.example.com:4222,tls://kanade2.example.com:4222", "",
			func(string) string { return "tls://kanade.example.com:4222,tls://kanade2.example.com:4222" }},
		{"any interface", "", "tls://0.0.0.0:4333", func(host string) string { return "tls://" + host + ":4333" }},
	} {
		f := &agentFixture{}
		srv := httptest.NewServer(devHandler(t, storetest.New(t), withAgents(t, f, func(d *web.Deps) {
			d.AgentURL = tc.public
			if tc.broker != "" {
				d.BrokerURL = tc.broker
			}
		})))
		code, body := postJSON(t, srv.URL+"/api/agent-installs", map[string]any{"os": "linux"})
		var got installResponse
		_ = json.Unmarshal([]byte(body), &got)
		u, _ := url.Parse(srv.URL)
		if want := tc.want(u.Hostname()); code != 200 || got.AgentURL != want || !strings.Contains(got.Shell, "s='"+want+"'") {
			t.Errorf("%s: %d agent_url %q, want %q", tc.name, code, got.AgentURL, want)
		}
		srv.Close()
	}
}

var commandRE = regexp.MustCompile(`(?s)<pre class="log" id="install-command" data-testid="install-command">(.*?)</pre>`)

// TestAddAgentsPage: the form makes a command for a new token, shown with
// its Copy button and what it carries; mistakes come back next to the
// form; platforms that are not built are marked.
func TestAddAgentsPage(t *testing.T) {
	f := &agentFixture{}
	srv := httptest.NewServer(devHandler(t, storetest.New(t), withAgents(t, f, nil)))
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(srv.URL + "/settings/add-agents")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d %s", resp.StatusCode, page)
	}
	for _, want := range []string{`data-testid="add-agents-form"`, `linux-arm64 (missing)`, `data-testid="platform-built">linux-amd64<`, f.dir,
		`value="24h"`, `data-testid="settings-tabs"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	csrf := pageCSRF(t, page)
	post := func(form url.Values) (int, string) {
		form.Set("_csrf", csrf)
		resp, err := c.PostForm(srv.URL+"/settings/add-agents", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode < 300 && resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("a page with a secret may be cached: %q", resp.Header.Get("Cache-Control"))
		}
		return resp.StatusCode, string(b)
	}
	code, body := post(url.Values{"os": {"linux"}, "arch": {"amd64"}, "groups": {"lab, canary"}, "token": {"new"}, "name": {"PC-0042"},
		"expires_in": {"2h"}, "max_uses": {"1"}, "auto_approve": {"true"}})
	if code != http.StatusCreated {
		t.Fatalf("form: %d %s", code, body)
	}
	m := commandRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no command on the page:\n%s", body)
	}
	cmd := htmlUnescape(m[1])
	_, file := bundleOf(t, cmd)
	tok, err := f.enroller.CheckSecret(context.Background(), file.Token)
	if err != nil || tok.Name != "PC-0042" || tok.MaxUses != 1 || !tok.AutoApprove {
		t.Errorf("token: %+v %v", tok, err)
	}
	for _, want := range []string{`data-copy="#install-command"`, "Linux: paste into a root shell", sha(f.linux), "enrollment token’s secret", tok.ID} {
		if !strings.Contains(body, want) {
			t.Errorf("the result lacks %s", want)
		}
	}
	if !strings.Contains(cmd, "h='"+sha(f.linux)+"'") || !strings.HasPrefix(cmd, "( set -eu; ") {
		t.Errorf("command: %s", cmd)
	}

	for _, tc := range []struct {
		name string
		form url.Values
		code int
		want string
		// where is the data-testid of the message: next to its field, or the form's own.
		where string
	}{
		{"bad group", url.Values{"os": {"linux"}, "token": {"new"}, "groups": {"a!"}}, 422, "Groups: group", "error-groups"},
		{"bad expiry", url.Values{"os": {"linux"}, "token": {"new"}, "expires_in": {"tomorrow"}}, 422, "Expires in: use a duration", "error-expires_in"},
		{"not built", url.Values{"os": {"linux"}, "arch": {"arm64"}, "token": {"new"}}, 404, "make build", "form-error"},
	} {
		code, body := post(tc.form)
		if code != tc.code || !strings.Contains(body, tc.want) || !strings.Contains(body, `data-testid="`+tc.where+`"`) || commandRE.MatchString(body) {
			t.Errorf("%s: %d, want %d with %q", tc.name, code, tc.code, tc.want)
		}
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}
