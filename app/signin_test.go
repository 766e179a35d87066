package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/config"
	"github.com/kanadehq/kanade/app/web"
)

// startOIDCServer runs a server that signs users in with an in-process
// mockoidc issuer. Its groups claim maps viewers/helpdesk/managers/it-admins
// to viewer/operator/approver/admin; anything else is refused.
func startOIDCServer(t *testing.T, adjust ...func(*config.Config)) (*testServer, *mockoidc.MockOIDC) {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	httpAddr := freeAddr(t)
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) {
		c.Server.HTTP = httpAddr
		mc := m.Config()
		c.OIDC = config.OIDC{Issuer: m.Issuer(), ClientID: mc.ClientID, ClientSecret: mc.ClientSecret,
			RedirectURL: "http://" + httpAddr + "/auth/callback", Scopes: []string{"openid", "profile", "email", "groups"},
			RolesClaim: "groups", Roles: map[string]string{"viewers": "viewer", "helpdesk": "operator", "managers": "approver", "it-admins": "admin"}}
		for _, a := range adjust {
			a(c)
		}
	})
	return s, m
}

// cliToken creates an API token with `kanade token create` on the server's data directory and database.
func cliToken(t *testing.T, s *testServer, role, name string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(append([]string{"token", "create", "--role", role, "--name", name, "--data", s.data}, s.dbFlags()...), &out, &errb); err != nil {
		t.Fatalf("kanade token create: %v\n%s", err, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	if !strings.HasPrefix(tok, auth.TokenPrefix) || strings.Count(tok, "\n") > 0 {
		t.Fatalf("kanade token create printed %q", out.String())
	}
	return tok
}

// userAgent is an HTTP client with a cookie jar, like a user's browser.
type userAgent struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newUserAgent(t *testing.T, base string) *userAgent {
	jar, _ := cookiejar.New(nil)
	return &userAgent{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

// login signs in as user through the issuer and returns the page it lands on.
func (b *userAgent) login(m *mockoidc.MockOIDC, user *mockoidc.MockUser, next string) (int, string) {
	b.t.Helper()
	m.QueueUser(user)
	return b.do(http.MethodGet, "/auth/start?next="+url.QueryEscape(next), "", nil)
}

// csrf is the token the browser's pages carry (bound to its session).
func (b *userAgent) csrf() string {
	b.t.Helper()
	_, page := b.do(http.MethodGet, "/", "", nil)
	m := csrfFieldRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

var csrfFieldRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func (b *userAgent) do(method, path, body string, header map[string]string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// form posts a browser form with the CSRF token.
func (b *userAgent) form(path string, v url.Values) (int, string) {
	b.t.Helper()
	v.Set("_csrf", b.csrf())
	return b.do(http.MethodPost, path, v.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

func bearer(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
}

var secretRE = regexp.MustCompile(`data-testid="api-token-secret">([^<]+)<`)

func TestSignIn_OIDCRolesSessionsTokens(t *testing.T) {
	skipIfShort(t)
	s, m := startOIDCServer(t)
	anon := newUserAgent(t, s.URL)
	anon.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	// No credentials: the API answers 401, a page goes to the sign-in.
	if code, body := anon.do(http.MethodGet, "/api/agents", "", nil); code != 401 || !strings.Contains(body, `"unauthorized"`) {
		t.Errorf("anonymous API: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/executions?status=running", nil)
	resp, err := anon.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != "/auth/start?next="+url.QueryEscape("/executions?status=running") {
		t.Errorf("anonymous page: %d → %q", resp.StatusCode, loc)
	}
	if code, _ := anon.do(http.MethodGet, "/healthz", "", nil); code != 200 {
		t.Errorf("healthz needs no sign-in, got %d", code)
	}

	// An operator (helpdesk) signs in and lands where they were going.
	ana := newUserAgent(t, s.URL)
	code, body := ana.login(m, &mockoidc.MockUser{Subject: "u-ana", Email: "ana@example.com", PreferredUsername: "ana", Groups: []string{"helpdesk", "staff"}}, "/api/me")
	if code != 200 || !strings.Contains(body, `"name":"ana"`) || !strings.Contains(body, `"role":"operator"`) || !strings.Contains(body, `"kind":"user"`) {
		t.Fatalf("ana signs in: %d %s", code, body)
	}
	if code, body := ana.do(http.MethodGet, "/", "", nil); code != 200 || !strings.Contains(body, `data-testid="user">ana<`) || !strings.Contains(body, `data-testid="role">operator<`) {
		t.Errorf("nav does not show ana and her role: %d", code)
	}
	// A session-cookie API call must carry the CSRF token; with it, it goes through.
	if code, body := ana.do(http.MethodPost, "/api/run", `{}`, map[string]string{"Content-Type": "application/json"}); code != 403 || !strings.Contains(body, "form expired") {
		t.Errorf("session API POST without CSRF token: %d %s", code, body)
	}
	if code, body := ana.do(http.MethodPost, "/api/run", `{}`, map[string]string{"Content-Type": "application/json", "X-CSRF-Token": ana.csrf()}); code != 400 {
		t.Errorf("session API POST with CSRF token: %d %s (want 400: the body is invalid)", code, body)
	}
	// A form without the token (another site's form) is refused, and so is a cross-site fetch.
	if code, _ := ana.do(http.MethodPost, "/executions/x/kill", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); code != 403 {
		t.Errorf("form POST without CSRF token: %d", code)
	}
	if code, _ := ana.do(http.MethodPost, "/api/run", `{}`, map[string]string{"Content-Type": "application/json", "X-CSRF-Token": ana.csrf(), "Sec-Fetch-Site": "cross-site"}); code != 403 {
		t.Errorf("cross-site POST: %d", code)
	}
	// Her role is too low for the emergency stop and the settings.
	if code, body := ana.form("/emergency-stop", url.Values{"reason": {"test"}}); code != 403 || !strings.Contains(body, "needs the admin role") {
		t.Errorf("operator stops the fleet: %d", code)
	}
	if code, _ := ana.do(http.MethodGet, "/settings", "", nil); code != 403 {
		t.Errorf("operator opens settings: %d", code)
	}

	// Someone whose groups map to no role is refused with a clear page.
	cy := newUserAgent(t, s.URL)
	code, body = cy.login(m, &mockoidc.MockUser{Subject: "u-cy", Email: "cy@example.com", Groups: []string{"finance"}}, "/")
	if code != 403 || !strings.Contains(body, "kanade has no role for you") || !strings.Contains(body, "finance") {
		t.Errorf("unmapped user: %d %s", code, body)
	}
	if code, _ := cy.do(http.MethodGet, "/api/me", "", nil); code != 401 {
		t.Errorf("the refused user has a session: %d", code)
	}

	// An admin creates an API token in Settings; it is shown once and works at once.
	bo := newUserAgent(t, s.URL)
	if code, body := bo.login(m, &mockoidc.MockUser{Subject: "u-bo", Email: "bo@example.com", Groups: []string{"helpdesk", "it-admins"}}, "/settings"); code != 200 || !strings.Contains(body, "API tokens") {
		t.Fatalf("admin opens settings: %d", code)
	}
	if code, body := bo.form("/settings/tokens", url.Values{"name": {""}, "role": {"root"}, "expires_in": {"soon"}}); code != 422 ||
		!strings.Contains(body, `data-testid="error-name"`) || !strings.Contains(body, `data-testid="error-role"`) || !strings.Contains(body, `data-testid="error-expires_in"`) {
		t.Errorf("bad token form: %d", code)
	}
	code, body = bo.form("/settings/tokens", url.Values{"name": {"nightly-report"}, "role": {"operator"}, "expires_in": {"90d"}})
	sm := secretRE.FindStringSubmatch(body)
	if code != 201 || sm == nil {
		t.Fatalf("create token: %d", code)
	}
	tok := sm[1]
	if code, body := anon.do(http.MethodGet, "/api/me", "", bearer(tok)); code != 200 || !strings.Contains(body, `"name":"nightly-report"`) || !strings.Contains(body, `"kind":"token"`) {
		t.Errorf("new token: %d %s", code, body)
	}
	// Token calls need no CSRF token; what they do is audited under the token's name.
	// (A run names PCs some agent has had: ghost-pc asks to enroll and waits.)
	enrollPending(t, s, s.Creds, "ghost-pc")
	checkFor(t, 20*time.Second, func() error {
		if code, body := anon.do(http.MethodPost, "/api/run", `{"target":{"pcs":["ghost-pc"]},"shell":"sh","script":"true"}`, bearer(tok)); code != 202 {
			return fmt.Errorf("token run: %d %s", code, body)
		}
		return nil
	})
	var tokens struct {
		Tokens []struct {
			ID, Name   string
			LastUsedAt *time.Time `json:"last_used_at"`
		} `json:"tokens"`
	}
	admin := cliToken(t, s, "admin", "ops-cli")
	if code, body := anon.do(http.MethodGet, "/api/tokens", "", bearer(admin)); code != 200 || json.Unmarshal([]byte(body), &tokens) != nil {
		t.Fatalf("list tokens: %d %s", code, body)
	}
	var id string
	for _, x := range tokens.Tokens {
		if x.Name == "nightly-report" {
			id = x.ID
			if x.LastUsedAt == nil {
				t.Error("last use not recorded")
			}
		}
	}
	// Revocation takes effect on the next request.
	if code, _ := bo.do(http.MethodPost, "/api/tokens/"+id+"/revoke", "", map[string]string{"X-CSRF-Token": bo.csrf()}); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if code, body := anon.do(http.MethodGet, "/api/me", "", bearer(tok)); code != 401 || !strings.Contains(body, "revoked") {
		t.Errorf("revoked token: %d %s", code, body)
	}

	// Logout ends the session on the server: a copy of the cookie is worthless.
	u, _ := url.Parse(s.URL)
	stolen := newUserAgent(t, s.URL)
	stolen.c.Jar.SetCookies(u, bo.c.Jar.Cookies(u))
	if code, _ := stolen.do(http.MethodGet, "/api/me", "", nil); code != 200 {
		t.Fatalf("copied cookie before logout: %d", code)
	}
	if code, body := bo.form("/logout", url.Values{}); code != 200 || !strings.Contains(body, "You are signed out") {
		t.Errorf("logout: %d", code)
	}
	for who, b := range map[string]*userAgent{"logged-out browser": bo, "copied cookie": stolen} {
		if code, _ := b.do(http.MethodGet, "/api/me", "", nil); code != 401 {
			t.Errorf("%s after logout: %d", who, code)
		}
	}

	// Every sign-in event is audited with the real actor.
	want := []string{"login ana", "login.failed cy@example.com", "login bo@example.com",
		"api_token.create bo@example.com", "run nightly-report", "api_token.revoke bo@example.com", "logout bo@example.com"}
	checkFor(t, 10*time.Second, func() error {
		var got struct {
			Events []struct{ Actor, Action string } `json:"events"`
		}
		_, body := anon.do(http.MethodGet, "/api/audit?limit=100", "", bearer(admin))
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range got.Events {
			seen[e.Action+" "+e.Actor] = true
		}
		for _, w := range want {
			if !seen[w] {
				return fmt.Errorf("audit lacks %q; has %v", w, seen)
			}
		}
		return nil
	})
}

// TestRoleMatrix calls every route with no credentials and with a token of
// each role, and checks 401 / 403 / allowed against the table below (the
// role matrix of docs/API.md). A route added without a row here fails the test.
func TestRoleMatrix(t *testing.T) {
	skipIfShort(t)
	const public = auth.RoleNone
	V, O, P, A := auth.Viewer, auth.Operator, auth.Approver, auth.Admin
	matrix := map[string]auth.Role{
		"GET /healthz": public, "GET /metrics": V, "GET /static/*": public, "GET /login": public,
		"GET /auth/start": public, "GET /auth/callback": public, "POST /logout": public,

		"GET /": V, "GET /agents": V, "GET /agents/:pc": V, "GET /jobs": V, "GET /jobs/:id": V,
		"GET /executions": V, "GET /executions/:id": V, "GET /executions/:id/summary": V,
		"GET /executions/:id/targets": V, "GET /executions/:id/events": V, "GET /executions/:id/log/:pc": V,
		"GET /executions/:id/log/:pc/stream": V, "GET /emergency-stop": V, "GET /audit": V, "GET /audit/export.csv": V,
		"GET /run": O, "GET /run/preview": O, "POST /run": O, "POST /executions/:id/kill": O,
		"POST /executions/:id/halt": O, "POST /executions/:id/resume": O, "POST /executions/:id/waves/:n/approve": P, "POST /jobs/:id/deploy": O,
		"POST /jobs/:id/revoke": O, "POST /jobs/:id/unrevoke": O,
		"GET /executions/:id/again": O, "POST /executions/:id/rerun-failed": O, "GET /executions/:id/log/:pc/download": V,
		"GET /events/topbar": V, "GET /emergency-stop/effects": V, "GET /api/openapi.json": V,
		"POST /emergency-stop": A, "POST /agents/:pc/revoke": A, "POST /agents/:pc/inventory": O, "POST /api/agents/:pc/inventory": O,
		"POST /agents/:pc/ping": O, "POST /api/agents/:pc/ping": O, "POST /agents/:pc/groups": A, "POST /agents/groups/add": A,
		"GET /enrollments": A, "POST /enrollments/:pc/approve": A, "POST /enrollments/:pc/reject": A,
		"POST /enrollments/tokens": A, "POST /enrollments/tokens/:id/revoke": A, "POST /enrollments/tokens/default/rotate": A,
		"GET /schedules": V, "POST /schedules": O, "POST /schedules/:id/toggle": O, "POST /schedules/:id/delete": O,
		"GET /api/schedules": V, "GET /api/schedules/:id/fires": V, "POST /api/schedules": O, "PUT /api/schedules/:id": O, "DELETE /api/schedules/:id": O,
		"GET /settings": A, "POST /settings/tokens": A, "POST /settings/tokens/:id/revoke": A,
		"GET /settings/add-agents": A, "POST /settings/add-agents": A, "POST /api/agent-installs": A, "GET /settings/backups": A,
		// Also an enrollment token (TestDownload_Authorisation); JSON errors like the API's.
		"GET /download/agent/:platform": V,

		"GET /api/me": V, "GET /api/agents": V, "GET /api/agents/:pc": V, "GET /api/jobs": V, "GET /api/jobs/:id": V,
		"GET /api/schemas/manifest.json": V, "GET /api/executions": V, "GET /api/executions/:id": V, "GET /api/executions/:id/wait": V, "GET /api/results": V,
		"GET /api/audit": V, "GET /api/emergency-stop": V, "GET /api/command-keys": V,
		"POST /api/run": O, "POST /api/deploy": O, "POST /api/jobs/:id/revoke": O, "POST /api/jobs/:id/unrevoke": O,
		"POST /api/executions/:id/kill": O, "POST /api/executions/:id/halt": O, "POST /api/executions/:id/resume": O,
		"POST /api/executions/:id/waves/:n/approve": P,
		"POST /api/emergency-stop":                  A, "DELETE /api/emergency-stop": A, "POST /api/agents/:pc/revoke": A,
		"PUT /api/agents/:pc/groups": A, "GET /api/enrollments": A, "POST /api/enrollments/:pc/approve": A,
		"POST /api/enrollments/:pc/reject": A, "GET /api/enrollment-tokens": A, "POST /api/enrollment-tokens": A,
		"POST /api/enrollment-tokens/:id/revoke": A, "POST /api/enrollment-tokens/default/rotate": A, "POST /api/command-keys/rotate": A,
		"GET /api/tokens": A, "POST /api/tokens": A, "POST /api/tokens/:id/revoke": A,
		"GET /system": A, "GET /api/system": A,
		"GET /agent-versions": V, "POST /agent-versions": A, "POST /agent-versions/rollout": A, "POST /agent-versions/:version/delete": A,
		"GET /api/agent-releases": V, "POST /api/agent-releases": A, "DELETE /api/agent-releases/:version": A,
		"POST /api/agent-releases/:version/rollout": A, "GET /api/release-keys": V, "POST /api/release-keys/rotate": A,
	}
	// The routes the server really has.
	routes := map[string]bool{}
	for _, r := range web.New(web.Deps{DevMode: true}).Routes() {
		routes[r.Method+" "+r.Path] = true
	}
	for r := range routes {
		if _, ok := matrix[r]; !ok {
			t.Errorf("route %s has no row in the role matrix", r)
		}
	}
	for r := range matrix {
		if !routes[r] {
			t.Errorf("matrix row %s is not a route", r)
		}
	}

	s, _ := startOIDCServer(t)
	tokens := map[auth.Role]string{}
	for _, r := range auth.Roles() {
		tokens[r] = cliToken(t, s, r.String(), "matrix-"+r.String())
	}
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fill := strings.NewReplacer(":id", "nope", ":pc", "nope-pc", ":n", "1", "*", "kanade.css", ":platform", "linux-amd64")
	keys := make([]string, 0, len(matrix))
	for k := range matrix {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		min := matrix[k]
		method, path, _ := strings.Cut(k, " ")
		path = fill.Replace(path)
		// /metrics answers a scraper without a token like the API: 401.
		isAPI := strings.HasPrefix(path, "/api/") || path == "/metrics" || strings.HasPrefix(path, "/download/")
		for _, caller := range append([]auth.Role{auth.RoleNone}, auth.Roles()...) {
			body := ""
			req, _ := http.NewRequest(method, s.URL+path, nil)
			if method != http.MethodGet {
				if isAPI {
					body = "{}"
					req.Header.Set("Content-Type", "application/json")
				} else {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				req.Body = io.NopCloser(strings.NewReader(body))
			}
			if caller != auth.RoleNone {
				req.Header.Set("Authorization", "Bearer "+tokens[caller])
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s as %v: %v", k, caller, err)
			}
			resp.Body.Close()
			got, loc := resp.StatusCode, resp.Header.Get("Location")
			who := caller.String()
			if caller == auth.RoleNone {
				who = "nobody"
			}
			switch {
			case min == public:
				if got == 401 || strings.HasPrefix(loc, "/auth/start") {
					t.Errorf("%s as %s: %d %s; public routes need no sign-in", k, who, got, loc)
				}
			case caller == auth.RoleNone && !isAPI && method == http.MethodGet:
				if got != 303 || !strings.HasPrefix(loc, "/auth/start?next=") {
					t.Errorf("%s as nobody: %d %q, want 303 to the sign-in", k, got, loc)
				}
			case caller == auth.RoleNone:
				if got != 401 {
					t.Errorf("%s as nobody: %d, want 401", k, got)
				}
			case caller < min:
				if got != 403 {
					t.Errorf("%s as %s: %d, want 403 (needs %s)", k, who, got, min)
				}
			default:
				if got == 401 || got == 403 {
					t.Errorf("%s as %s: %d, want it allowed", k, who, got)
				}
			}
		}
	}
}
