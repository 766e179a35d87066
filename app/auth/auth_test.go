package auth_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
	"github.com/kanadehq/kanade/views"
)

func TestParseRole(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want auth.Role
		err  bool
	}{
		{"viewer", auth.Viewer, false}, {"Operator", auth.Operator, false}, {" approver ", auth.Approver, false},
		{"admin", auth.Admin, false}, {"", auth.RoleNone, true}, {"root", auth.RoleNone, true},
	} {
		got, err := auth.ParseRole(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseRole(%q) = %v, %v", tc.in, got, err)
		}
	}
	if !(auth.Viewer < auth.Operator && auth.Operator < auth.Approver && auth.Approver < auth.Admin) {
		t.Error("roles are not ordered viewer < operator < approver < admin")
	}
}

func TestMapRole(t *testing.T) {
	m := map[string]auth.Role{"helpdesk": auth.Operator, "managers": auth.Approver, "it-admins": auth.Admin, "staff": auth.Viewer}
	for _, tc := range []struct {
		values []string
		def    auth.Role
		want   auth.Role
	}{
		{[]string{"helpdesk"}, auth.RoleNone, auth.Operator},
		{[]string{"staff", "it-admins", "helpdesk"}, auth.RoleNone, auth.Admin}, // highest wins
		{[]string{"finance"}, auth.RoleNone, auth.RoleNone},                     // deny
		{[]string{"finance"}, auth.Viewer, auth.Viewer},                         // default role
		{nil, auth.RoleNone, auth.RoleNone},
	} {
		if got := auth.MapRole(tc.values, m, tc.def); got != tc.want {
			t.Errorf("MapRole(%v, def %v) = %v, want %v", tc.values, tc.def, got, tc.want)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/executions/abc?x=1": "/executions/abc?x=1", "": "/", "https://evil.example/": "/", "//evil.example": "/",
		"/\\evil.example": "/", "jobs": "/", "/ok\r\nSet-Cookie: x": "/",
	} {
		if got := auth.LocalPath(in); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewTokenRequest_Validate(t *testing.T) {
	err := auth.NewTokenRequest{Name: " ", Role: auth.RoleNone, ExpiresIn: -time.Second}.Validate()
	for _, field := range []string{"name:", "role:", "expires_in:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
	if !errors.Is(err, auth.ErrInvalid) || len(auth.FieldErrors(err)) != 3 {
		t.Errorf("error %v does not wrap ErrInvalid or lacks field errors", err)
	}
	if err := (auth.NewTokenRequest{Name: "ci", Role: auth.Operator}).Validate(); err != nil {
		t.Errorf("valid request: %v", err)
	}
}

func TestNewTokenRequest_ValidateName(t *testing.T) {
	tests := []struct {
		name, tokenName string
		wantErr         string // "" = valid
	}{
		{"plain", "nightly-report", ""},
		{"spaces dots underscores", "CI runner_2.1", ""},
		{"scheduler", "scheduler", "reserved"},
		{"scheduler any case", " Scheduler ", "reserved"},
		{"dev", "dev", "reserved"},
		{"kanade", "KANADE", "reserved"},
		{"anonymous", "anonymous", "reserved"},
		{"token prefix", "token ops", "reserved"},
		{"token prefix any case", "Token ops", "reserved"},
		{"token word alone", "tokens", ""},
		{"email", "ana@example.com", "may contain only"},
		{"cli actor", "cli:root@host", "may contain only"},
		{"newline", "ops\nadmin", "may contain only"},
		{"non-ASCII", "opérateur", "may contain only"},
		{"empty", "  ", "must not be empty"},
		{"long", strings.Repeat("a", 65), "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := auth.NewTokenRequest{Name: tt.tokenName, Role: auth.Viewer}.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate(name %q) = %v, want nil", tt.tokenName, err)
				}
				return
			}
			fes := auth.FieldErrors(err)
			if len(fes) != 1 || fes[0].Field != "name" || !strings.Contains(fes[0].Message, tt.wantErr) {
				t.Errorf("Validate(name %q) = %v, want a name error containing %q", tt.tokenName, err, tt.wantErr)
			}
		})
	}
	// CreateToken validates too: nothing is stored.
	st := storetest.New(t)
	if _, _, err := auth.CreateToken(t.Context(), st, auth.NewTokenRequest{Name: "scheduler", Role: auth.Admin}, time.Now()); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("CreateToken(scheduler) = %v, want ErrInvalid", err)
	}
	if ts, err := st.APITokens(t.Context()); err != nil || len(ts) != 0 {
		t.Errorf("APITokens after a refused create = %v, %v; want none", ts, err)
	}
}

// harness is a tiny web app around the Service: /login, /cb, /me, /logout.
type harness struct {
	svc  *auth.Service
	st   *store.Store
	m    *mockoidc.MockOIDC
	srv  *httptest.Server
	now  time.Time
	jar  http.CookieJar
	http *http.Client
}

func newHarness(t *testing.T, def auth.Role) *harness {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	h := &harness{st: storetest.New(t), m: m, now: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)}
	mux := http.NewServeMux()
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	cfg := m.Config()
	o := auth.NewOIDC(auth.OIDCConfig{Issuer: m.Issuer(), ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURL: h.srv.URL + "/cb", Scopes: []string{"openid", "profile", "email", "groups"}, RolesClaim: "groups",
		RoleMap: map[string]auth.Role{"helpdesk": auth.Operator, "it-admins": auth.Admin}, DefaultRole: def})
	keys := make([]byte, auth.KeySize)
	h.svc, err = auth.New(h.st, auth.Config{OIDC: o, Lifetime: 8 * time.Hour, IdleTimeout: time.Hour, Keys: keys, Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		u, err := h.svc.BeginLogin(w, r, r.URL.Query().Get("next"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		http.Redirect(w, r, u, http.StatusFound)
	})
	mux.HandleFunc("/cb", func(w http.ResponseWriter, r *http.Request) {
		id, next, err := h.svc.FinishLogin(w, r)
		if err != nil {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "refused %s: %v", id.Name, err)
			return
		}
		http.Redirect(w, r, next, http.StatusFound)
	})
	mux.HandleFunc("/me", func(w http.ResponseWriter, r *http.Request) {
		p, err := h.svc.Authenticate(w, r)
		if err != nil || p == nil {
			http.Error(w, fmt.Sprint("nobody ", err), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s %s %s %s", p.Kind, p.Name, p.Display, p.Role)
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := h.svc.Logout(w, r); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	h.jar, _ = cookiejar.New(nil)
	h.http = &http.Client{Jar: h.jar, Timeout: 10 * time.Second}
	return h
}

func (h *harness) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := h.http.Get(h.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// infoUser is a mockoidc user whose ID token carries only what the
// embedded MockUser has (its subject and groups, say) while its UserInfo
// response says more, as many issuers answer by default.
type infoUser struct {
	*mockoidc.MockUser
	info map[string]any
}

func (u infoUser) Userinfo([]string) ([]byte, error) { return json.Marshal(u.info) }

func TestLogin_UsersAndRoles(t *testing.T) {
	h := newHarness(t, auth.RoleNone)
	for _, tc := range []struct {
		name       string
		user       mockoidc.User
		wantStatus int
		want       string // "<kind> <name> <display> <role>" or "refused <name>"
	}{
		{"user name before email", &mockoidc.MockUser{Subject: "1", Email: "ana@example.com", PreferredUsername: "ana", Groups: []string{"helpdesk"}}, 200, "user ana ana operator"},
		{"email without a user name", &mockoidc.MockUser{Subject: "2", Email: "bo@example.com", Groups: []string{"helpdesk", "it-admins"}}, 200, "user bo@example.com bo@example.com admin"},
		{"no role", &mockoidc.MockUser{Subject: "3", PreferredUsername: "cy", Groups: []string{"finance"}}, 403, "refused cy"},
		{"names only in UserInfo", infoUser{&mockoidc.MockUser{Subject: "id1", Groups: []string{"helpdesk"}},
			map[string]any{"sub": "id1", "preferred_username": "dana", "email": "dana@example.com", "name": "Dana Scully"}}, 200, "user dana Dana Scully operator"},
		{"full name only", infoUser{&mockoidc.MockUser{Subject: "id2", Groups: []string{"helpdesk"}},
			map[string]any{"sub": "id2", "name": "Eve Moneypenny"}}, 200, "user Eve Moneypenny Eve Moneypenny operator"},
		{"groups only in UserInfo", infoUser{&mockoidc.MockUser{Subject: "id3", Email: "fay@example.com"},
			map[string]any{"sub": "id3", "groups": []string{"it-admins"}}}, 200, "user fay@example.com fay@example.com admin"},
		{"the ID token wins over UserInfo", infoUser{&mockoidc.MockUser{Subject: "id4", PreferredUsername: "gus", Groups: []string{"helpdesk"}},
			map[string]any{"sub": "id4", "preferred_username": "root", "groups": []string{"it-admins"}}}, 200, "user gus gus operator"},
		{"UserInfo about someone else is not used", infoUser{&mockoidc.MockUser{Subject: "id5", Groups: []string{"helpdesk"}},
			map[string]any{"sub": "someone-else", "preferred_username": "mallory"}}, 200, "user id5 id5 operator"},
		{"nothing names the user: the subject", infoUser{&mockoidc.MockUser{Subject: "id6", Groups: []string{"helpdesk"}},
			map[string]any{"sub": "id6"}}, 200, "user id6 id6 operator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.jar, _ = cookiejar.New(nil)
			h.http.Jar = h.jar
			h.m.QueueUser(tc.user)
			code, body := h.get(t, "/login?next=/me")
			if code != tc.wantStatus || !strings.Contains(body, tc.want) {
				t.Errorf("sign-in as %s: %d %q, want %d %q", tc.user.ID(), code, body, tc.wantStatus, tc.want)
			}
		})
	}
}

func TestLogin_DefaultRole(t *testing.T) {
	h := newHarness(t, auth.Viewer)
	h.m.QueueUser(&mockoidc.MockUser{Subject: "3", Email: "cy@example.com", Groups: []string{"finance"}})
	if code, body := h.get(t, "/login?next=/me"); code != 200 || !strings.HasSuffix(body, " viewer") {
		t.Errorf("default role: %d %q", code, body)
	}
}

func TestSession_IdleLifetimeLogout(t *testing.T) {
	h := newHarness(t, auth.RoleNone)
	login := func() {
		t.Helper()
		h.m.QueueUser(&mockoidc.MockUser{Subject: "1", Email: "ana@example.com", Groups: []string{"helpdesk"}})
		if code, body := h.get(t, "/login?next=/me"); code != 200 {
			t.Fatalf("login: %d %q", code, body)
		}
	}
	start := h.now
	login()
	// Active every 50 minutes: the idle timeout (1h) never hits.
	for i := 1; i <= 5; i++ {
		h.now = start.Add(time.Duration(i) * 50 * time.Minute)
		if code, _ := h.get(t, "/me"); code != 200 {
			t.Fatalf("after %d×50m of activity: %d", i, code)
		}
	}
	// Idle for an hour: signed out.
	h.now = h.now.Add(time.Hour)
	if code, _ := h.get(t, "/me"); code != 401 {
		t.Errorf("idle for 1h: %d, want 401", code)
	}
	// The fixed lifetime (8h) ends a session even when it is active.
	start = h.now
	login()
	for i := 1; i <= 10; i++ {
		h.now = start.Add(time.Duration(i) * 50 * time.Minute)
		code, _ := h.get(t, "/me")
		if want := map[bool]int{true: 200, false: 401}[i*50 < 8*60]; code != want {
			t.Fatalf("%dm after sign-in: %d, want %d", i*50, code, want)
		}
	}
	// Logout ends the session on the server: a copy of the cookie is worthless.
	h.now = h.now.Add(time.Minute)
	login()
	u := h.srv.URL + "/me"
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for _, c := range h.jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	if code, _ := h.get(t, "/logout"); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	resp, err := http.DefaultClient.Do(req) // the copied cookie
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("copied cookie after logout: %d, want 401", resp.StatusCode)
	}
}

func TestLogin_StateMismatchAndReplay(t *testing.T) {
	h := newHarness(t, auth.RoleNone)
	// A callback without a login cookie (e.g. forged link) is refused.
	if code, body := h.get(t, "/cb?code=x&state=y"); code != 403 || !strings.Contains(body, "try again") {
		t.Errorf("callback without login: %d %q", code, body)
	}
	// The issuer's error is shown.
	if code, body := h.get(t, "/cb?error=access_denied&error_description=user+cancelled"); code != 403 || !strings.Contains(body, "user cancelled") {
		t.Errorf("issuer error: %d %q", code, body)
	}
	// A state that does not match the login cookie is refused.
	noRedirect := &http.Client{Jar: h.jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(h.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, body := h.get(t, "/cb?code=abc&state=forged"); code != 403 || !strings.Contains(body, "state does not match") {
		t.Errorf("forged state: %d %q", code, body)
	}
}

func TestTokens(t *testing.T) {
	st := storetest.New(t)
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	svc, err := auth.New(st, auth.Config{Lifetime: time.Hour, IdleTimeout: time.Hour, Keys: make([]byte, auth.KeySize), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok, secret, err := auth.CreateToken(t.Context(), st, auth.NewTokenRequest{Name: "ci", Role: auth.Operator, ExpiresIn: time.Hour, By: "alice"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, auth.TokenPrefix) || len(secret) < 40 {
		t.Errorf("secret %q is short or unprefixed", secret)
	}
	call := func(header string) (*auth.Principal, error) {
		r := httptest.NewRequest(http.MethodGet, "/api/agents", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		return svc.Authenticate(httptest.NewRecorder(), r)
	}
	p, err := call("Bearer " + secret)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&auth.Principal{Kind: auth.KindToken, Name: "ci", Display: "ci", Role: auth.Operator, ID: tok.ID, Subject: "token:" + tok.ID}, p); diff != "" {
		t.Errorf("principal (-want +got):\n%s", diff)
	}
	list, _ := st.APITokens(t.Context())
	if len(list) != 1 || !list[0].LastUsedAt.Equal(now) {
		t.Errorf("last used not recorded: %+v", list)
	}
	for _, h := range []string{"Bearer nope", "Basic " + secret, "Bearer "} {
		if _, err := call(h); !errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("%q: %v, want ErrUnauthorized", h, err)
		}
	}
	// No credentials in dev mode (no OIDC): the admin "dev".
	if p, err := call(""); err != nil || p.Kind != auth.KindDev || p.Role != auth.Admin {
		t.Errorf("no credentials in dev mode = %+v, %v", p, err)
	}
	now = now.Add(time.Hour)
	if _, err := call("Bearer " + secret); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	now = now.Add(-time.Minute)
	if _, err := st.RevokeAPIToken(t.Context(), tok.ID, "bob", now, false); err != nil {
		t.Fatal(err)
	}
	if _, err := call("Bearer " + secret); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked token: %v", err)
	}
	// Stored hashed: the secret appears nowhere in the database row.
	if list, _ := st.APITokens(t.Context()); strings.Contains(fmt.Sprintf("%+v", list), secret) {
		t.Error("the secret is stored")
	}
}

func TestLoadKeys(t *testing.T) {
	path := t.TempDir() + "/secrets/session.key"
	a, err := auth.LoadKeys(path)
	if err != nil || len(a) != auth.KeySize {
		t.Fatalf("create: %d bytes, %v", len(a), err)
	}
	b, err := auth.LoadKeys(path)
	if err != nil || string(a) != string(b) {
		t.Errorf("reload differs: %v", err)
	}
}

func TestParseLifetime(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "720h": 720 * time.Hour, "1d": 24 * time.Hour,
		"0d": 0, "-1h": 0, "1.5d": 0, "d": 0, "soon": 0} {
		got, err := auth.ParseLifetime(in)
		if got != want || (err != nil) != (want == 0) {
			t.Errorf("ParseLifetime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// TestRoles_ViewsAgree checks that the pages hide exactly what each role
// may not do: views.Layout.Can ranks the role names as Principal.Can does.
func TestRoles_ViewsAgree(t *testing.T) {
	for _, have := range auth.Roles() {
		for _, need := range auth.Roles() {
			p := &auth.Principal{Role: have}
			l := views.Layout{Role: have.String()}
			if got, want := l.Can(need.String()), p.Can(need); got != want {
				t.Errorf("Layout{Role: %s}.Can(%s) = %v, want %v", have, need, got, want)
			}
		}
	}
}
