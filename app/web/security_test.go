package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/oauth2-proxy/mockoidc"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/web"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// devHandler is the web app in dev mode (every caller without a token is
// the admin "dev"), with adjust applied to its dependencies.
func devHandler(t *testing.T, st *store.Store, adjust func(*web.Deps)) http.Handler {
	t.Helper()
	d := web.Deps{Store: st, Log: slog.New(slog.DiscardHandler), DevMode: true, Events: events.New(), Version: "test"}
	if adjust != nil {
		adjust(&d)
	}
	return web.New(d)
}

// signInServer serves the web app with OIDC sign-in through an in-process
// mockoidc issuer: the group "it-admins" is admin, "staff" viewer.
type signInServer struct {
	*httptest.Server
	st *store.Store
	m  *mockoidc.MockOIDC
}

func newSignInServer(t *testing.T, tls bool, adjust func(*web.Deps)) *signInServer {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	var h http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	st := storetest.New(t)
	mc := m.Config()
	o := auth.NewOIDC(auth.OIDCConfig{Issuer: m.Issuer(), ClientID: mc.ClientID, ClientSecret: mc.ClientSecret,
		RedirectURL: srv.URL + "/auth/callback", Scopes: []string{"openid", "profile", "email", "groups"}, RolesClaim: "groups",
		RoleMap: map[string]auth.Role{"it-admins": auth.Admin, "staff": auth.Viewer}})
	keys := make([]byte, auth.KeySize)
	for i := range keys {
		keys[i] = byte(i)
	}
	a, err := auth.New(st, auth.Config{OIDC: o, Lifetime: time.Hour, IdleTimeout: time.Hour, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	d := web.Deps{Store: st, Log: slog.New(slog.DiscardHandler), Auth: a, Events: events.New(), Version: "test"}
	if adjust != nil {
		adjust(&d)
	}
	h = web.New(d)
	return &signInServer{Server: srv, st: st, m: m}
}

// cookieLog is a transport that remembers every cookie the server set.
type cookieLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	set  map[string]*http.Cookie
}

func (l *cookieLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err == nil {
		l.mu.Lock()
		for _, c := range resp.Cookies() {
			l.set[c.Name] = c
		}
		l.mu.Unlock()
	}
	return resp, err
}

// browser is a user's browser: a cookie jar and a log of cookies set.
type browser struct {
	t       *testing.T
	s       *signInServer
	c       *http.Client
	cookies *cookieLog
}

func (s *signInServer) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	log := &cookieLog{next: s.Client().Transport, set: map[string]*http.Cookie{}}
	return &browser{t: t, s: s, c: &http.Client{Jar: jar, Transport: log, Timeout: 20 * time.Second}, cookies: log}
}

// login signs in through the issuer as user and returns the page it lands on.
func (b *browser) login(user *mockoidc.MockUser) string {
	b.t.Helper()
	b.s.m.QueueUser(user)
	code, body := b.do(http.MethodGet, "/auth/start?next=/settings", "", nil)
	if code != http.StatusOK {
		b.t.Fatalf("sign-in as %s: %d %s", user.Email, code, body)
	}
	return body
}

func (b *browser) do(method, path, body string, header map[string]string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.s.URL+path, strings.NewReader(body))
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

var csrfFieldRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// pageCSRF returns the CSRF token a page carries.
func pageCSRF(t *testing.T, page string) string {
	t.Helper()
	m := csrfFieldRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

func mockUser(email string, groups ...string) *mockoidc.MockUser {
	return &mockoidc.MockUser{Subject: email, Email: email, PreferredUsername: email, Groups: groups}
}

// TestCSRF_BoundToSession: a CSRF token works only in the session whose
// page it came from, even when it is sent together with the CSRF cookie
// of the browser it came from (a cookie a neighbouring site can plant).
func TestCSRF_BoundToSession(t *testing.T) {
	s := newSignInServer(t, false, nil)
	ana, bo := s.browser(t), s.browser(t)
	anaToken := pageCSRF(t, ana.login(mockUser("ana@example.com", "it-admins")))
	boToken := pageCSRF(t, bo.login(mockUser("bo@example.com", "it-admins")))
	if anaToken == boToken {
		t.Fatalf("two sessions have the same CSRF token %q", anaToken)
	}
	// Bo's session with Ana's token, and Ana's CSRF cookie if she has one.
	u, _ := url.Parse(s.URL)
	var anaCSRFCookie string
	for _, c := range ana.c.Jar.Cookies(u) {
		if c.Name == "kanade_csrf" {
			anaCSRFCookie = c.Value
		}
	}
	if anaCSRFCookie != "" {
		bo.c.Jar.SetCookies(u, []*http.Cookie{{Name: "kanade_csrf", Value: anaCSRFCookie, Path: "/"}})
	}
	tokenBody := func(name string) string { return fmt.Sprintf(`{"name":%q,"role":"viewer"}`, name) }
	tests := []struct {
		name       string
		b          *browser
		method     string
		path, body string
		header     map[string]string
		wantStatus int
	}{
		{"API call with another session's token", bo, http.MethodPost, "/api/tokens", tokenBody("x1"),
			map[string]string{"Content-Type": "application/json", "X-CSRF-Token": anaToken}, http.StatusForbidden},
		{"form with another session's token", bo, http.MethodPost, "/settings/tokens", url.Values{"name": {"x2"}, "role": {"viewer"}, "_csrf": {anaToken}}.Encode(),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusForbidden},
		{"API call without a token", bo, http.MethodPost, "/api/tokens", tokenBody("x3"),
			map[string]string{"Content-Type": "application/json"}, http.StatusForbidden},
		{"API call with its own session's token", bo, http.MethodPost, "/api/tokens", tokenBody("x4"),
			map[string]string{"Content-Type": "application/json", "X-CSRF-Token": boToken}, http.StatusCreated},
		{"form with its own session's token", ana, http.MethodPost, "/settings/tokens", url.Values{"name": {"x5"}, "role": {"viewer"}, "_csrf": {anaToken}}.Encode(),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := tt.b.do(tt.method, tt.path, tt.body, tt.header); code != tt.wantStatus {
				t.Errorf("%s %s = %d, want %d: %s", tt.method, tt.path, code, tt.wantStatus, body)
			}
		})
	}
	// A new sign-in is a new session: the token of the old one is dead.
	bo.login(mockUser("bo@example.com", "it-admins"))
	if code, body := bo.do(http.MethodPost, "/api/tokens", tokenBody("x6"), map[string]string{"Content-Type": "application/json", "X-CSRF-Token": boToken}); code != http.StatusForbidden {
		t.Errorf("old session's token after signing in again: %d, want 403: %s", code, body)
	}
}

// TestCookies_SecureOverHTTPS: the session, login and CSRF cookies are
// Secure when the request came over TLS, even when the configuration does
// not say so.
func TestCookies_SecureOverHTTPS(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			s := newSignInServer(t, tls, nil)
			b := s.browser(t)
			b.login(mockUser("ana@example.com", "it-admins"))
			got := map[string]bool{}
			for _, name := range []string{auth.SessionCookie, auth.LoginCookie} {
				c, ok := b.cookies.set[name]
				if !ok {
					t.Fatalf("cookie %s was never set", name)
				}
				got[name] = c.Secure
			}
			// Dev mode's CSRF cookie.
			srv := httptest.NewUnstartedServer(devHandler(t, storetest.New(t), nil))
			if tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/run")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for _, c := range resp.Cookies() {
				got[c.Name] = c.Secure
			}
			want := map[string]bool{auth.SessionCookie: tls, auth.LoginCookie: tls, "kanade_csrf": tls}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Secure attribute by cookie (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDevMode_LoopbackHostAndOrigin: in dev mode only requests for a
// loopback host, from no origin or a loopback one, get through (DNS
// rebinding would otherwise make any web page the admin "dev").
func TestDevMode_LoopbackHostAndOrigin(t *testing.T) {
	h := devHandler(t, storetest.New(t), nil)
	tests := []struct {
		name, method, path, host, origin string
		wantStatus                       int
		wantCode                         string // the API's error code; "" for a page
	}{
		{"127.0.0.1", http.MethodGet, "/api/me", "127.0.0.1:8080", "", http.StatusOK, ""},
		{"localhost any case", http.MethodGet, "/api/me", "LocalHost:8080", "", http.StatusOK, ""},
		{"::1", http.MethodGet, "/api/me", "[::1]:8080", "", http.StatusOK, ""},
		{"127.0.0.2 without port", http.MethodGet, "/api/me", "127.0.0.2", "", http.StatusOK, ""},
		{"loopback origin", http.MethodGet, "/api/me", "127.0.0.1:8080", "http://localhost:8080", http.StatusOK, ""},
		{"rebound name", http.MethodGet, "/api/me", "evil.example:8080", "", http.StatusMisdirectedRequest, "misdirected_request"},
		{"name that starts like loopback", http.MethodGet, "/api/me", "127.0.0.1.evil.example:8080", "", http.StatusMisdirectedRequest, "misdirected_request"},
		{"localhost subdomain", http.MethodGet, "/api/me", "evil.localhost.example", "", http.StatusMisdirectedRequest, "misdirected_request"},
		{"LAN address", http.MethodGet, "/api/me", "192.168.1.20:8080", "", http.StatusMisdirectedRequest, "misdirected_request"},
		{"rebound name page", http.MethodGet, "/", "evil.example", "", http.StatusMisdirectedRequest, ""},
		{"foreign origin", http.MethodPost, "/api/run", "127.0.0.1:8080", "http://evil.example", http.StatusForbidden, "forbidden"},
		{"foreign origin on a loopback-looking name", http.MethodPost, "/api/run", "127.0.0.1:8080", "http://127.0.0.1.evil.example:8080", http.StatusForbidden, "forbidden"},
		{"null origin", http.MethodPost, "/api/run", "127.0.0.1:8080", "null", http.StatusForbidden, "forbidden"},
		{"foreign origin page", http.MethodPost, "/run", "localhost:8080", "https://evil.example", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{}`))
			req.Host = tt.host
			if tt.method == http.MethodPost {
				req.Header.Set("Content-Type", "application/json")
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("%s %s (Host %q, Origin %q) = %d, want %d: %s", tt.method, tt.path, tt.host, tt.origin, rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			if tt.wantCode == "" {
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(rec.Body.String(), "dev mode") {
					t.Errorf("page refusal: Content-Type %q, body %q; want a plain message about dev mode", ct, rec.Body)
				}
				return
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != tt.wantCode || !strings.Contains(body.Error.Message, "dev mode") {
				t.Errorf("API refusal = %s (%v), want error code %q with a message about dev mode", rec.Body, err, tt.wantCode)
			}
		})
	}

	// With sign-in configured the server answers any name: it sits behind
	// a reverse proxy, and nothing is granted without credentials.
	s := newSignInServer(t, false, nil)
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/me", nil)
	req.Host = "kanade.example.com"
	req.Header.Set("Origin", "https://kanade.example.com")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed-in mode, Host kanade.example.com: %d, want 401", resp.StatusCode)
	}
}

// scrapeFamilies parses a /metrics body.
func scrapeFamilies(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// TestMetrics_InventedMethods: 5,000 requests with invented methods, on
// routes and off them, add a handful of series, not thousands.
func TestMetrics_InventedMethods(t *testing.T) {
	h := devHandler(t, storetest.New(t), nil)
	serve := func(method, path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Method, req.Host = method, "127.0.0.1:8080"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	series := func() []string {
		rec := serve(http.MethodGet, "/metrics")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /metrics = %d", rec.Code)
		}
		var out []string
		for _, m := range scrapeFamilies(t, rec.Body.String())["kanade_http_request_duration_seconds"].GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			out = append(out, strings.Join(ls, ","))
		}
		sort.Strings(out)
		return out
	}
	serve(http.MethodGet, "/api/me")
	before := series()
	paths := []string{"/api/me", "/agents/pc1", "/api/executions/x/kill", "/no/such/page", "/api/nothing"}
	for i := range 5000 {
		serve(fmt.Sprintf("M%05d", i), paths[i%len(paths)])
	}
	after := series()
	if len(after)-len(before) > 10 {
		t.Errorf("5,000 requests with invented methods added %d series (want ≤ 10):\n%s", len(after)-len(before), strings.Join(after, "\n"))
	}
	for _, s := range after {
		if strings.Contains(s, "method=M") {
			t.Errorf("series %s carries an invented method", s)
		}
	}
}

// TestMetrics_NeedsToken: outside dev mode /metrics needs the metrics token
// or an API token (any role); in dev mode it is open.
func TestMetrics_NeedsToken(t *testing.T) {
	const metricsToken = "prometheus-scrape-token-0123456789"
	s := newSignInServer(t, false, func(d *web.Deps) { d.MetricsToken = metricsToken })
	_, viewer, err := auth.CreateToken(context.Background(), s.st, auth.NewTokenRequest{Name: "grafana", Role: auth.Viewer, By: "test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	get := func(url, bearer string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	dev := httptest.NewServer(devHandler(t, storetest.New(t), nil))
	defer dev.Close()
	tests := []struct {
		name, url, bearer string
		wantStatus        int
	}{
		{"no token", s.URL, "", http.StatusUnauthorized},
		{"unknown token", s.URL, "kanade_nope", http.StatusUnauthorized},
		{"metrics token", s.URL, metricsToken, http.StatusOK},
		{"metrics token with a wrong end", s.URL, metricsToken + "x", http.StatusUnauthorized},
		{"viewer API token", s.URL, viewer, http.StatusOK},
		{"dev mode without a token", dev.URL, "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(tt.url+"/metrics", tt.bearer)
			if code != tt.wantStatus {
				t.Fatalf("GET /metrics = %d, want %d: %s", code, tt.wantStatus, body)
			}
			if code == http.StatusOK && !strings.Contains(body, "go_goroutines") {
				t.Errorf("GET /metrics: no metrics in\n%s", body)
			}
			if code == http.StatusUnauthorized && !strings.Contains(body, `"code":"unauthorized"`) {
				t.Errorf("GET /metrics refused with %s, want the API's JSON error", body)
			}
		})
	}
}

// TestAPITokens_ReservedNames: the API and the settings form refuse token
// names the server records for its own actions.
func TestAPITokens_ReservedNames(t *testing.T) {
	st := storetest.New(t)
	srv := httptest.NewServer(devHandler(t, st, nil))
	defer srv.Close()
	for _, name := range []string{"scheduler", "dev", "Kanade", "token ci", "ci@example.com"} {
		resp, err := http.Post(srv.URL+"/api/tokens", "application/json", strings.NewReader(fmt.Sprintf(`{"name":%q,"role":"admin"}`, name)))
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct {
				Code    string
				Details []struct{ Field, Message string }
			}
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || body.Error.Code != "validation_failed" || len(body.Error.Details) != 1 || body.Error.Details[0].Field != "name" {
			t.Errorf("POST /api/tokens name %q = %d %+v, want 400 with a name problem", name, resp.StatusCode, body.Error)
		}
	}
	if ts, err := st.APITokens(context.Background()); err != nil || len(ts) != 0 {
		t.Errorf("tokens after refused creates: %v, %v; want none", ts, err)
	}
}

// devPage GETs a dev-mode page with a cookie jar and returns its CSRF token.
func devPage(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return pageCSRF(t, string(b))
}

// TestFormBody_Capped: a form larger than 1 MiB is answered 413 before any
// handler reads it, whether its length is announced or not.
func TestFormBody_Capped(t *testing.T) {
	srv := httptest.NewServer(devHandler(t, storetest.New(t), nil))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	token := devPage(t, c, srv.URL+"/run")
	big := url.Values{"_csrf": {token}, "pcs": {"pc1"}, "shell": {"sh"}, "timeout": {"1m"}, "script": {strings.Repeat("echo x\n", 300_000)}}.Encode()
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			var body io.Reader = strings.NewReader(big)
			if chunked {
				body = io.MultiReader(body) // no length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/run", body)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "1 MiB") {
				t.Errorf("POST /run with a %d-byte form = %d, want 413 saying 1 MiB: %.300s", len(big), resp.StatusCode, b)
			}
		})
	}
}

// sseStream is an open live stream.
type sseStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	lines  *bufio.Reader
}

// openSSE opens a live stream and returns it once the server sent its
// first line, or returns the refusal's status and body. The stream ends
// after 30 s, so that a test waiting for an event that never comes fails.
func openSSE(t *testing.T, url string, header map[string]string) (*sseStream, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, string(b)
	}
	s := &sseStream{resp: resp, cancel: cancel, lines: bufio.NewReader(resp.Body)}
	if _, err := s.lines.ReadString('\n'); err != nil {
		t.Fatalf("live stream: %v", err)
	}
	return s, resp.StatusCode, ""
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// TestSSE_CapPerCaller: one caller holds at most DefaultSSEPerCaller live
// streams; the next is refused with 429 until one closes, and other
// callers have their own allowance.
func TestSSE_CapPerCaller(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	now := time.Now().UTC()
	if err := st.CreateExecution(ctx, store.Execution{ExecID: "e1", JobID: "adhoc", Shell: wire.ShellSh, Script: "true",
		Timeout: time.Minute, CreatedAt: now, DeadlineAt: now.Add(time.Hour)}, []string{"pc1"}); err != nil {
		t.Fatal(err)
	}
	_, tok, err := auth.CreateToken(ctx, st, auth.NewTokenRequest{Name: "wallboard", Role: auth.Viewer, By: "test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(devHandler(t, st, nil))
	defer srv.Close()
	urls := []string{srv.URL + "/executions/e1/events", srv.URL + "/executions/e1/log/pc1/stream"}
	var open []*sseStream
	defer func() {
		for _, s := range open {
			s.close()
		}
	}()
	for i := range web.DefaultSSEPerCaller {
		s, code, body := openSSE(t, urls[i%2], nil)
		if s == nil {
			t.Fatalf("stream %d refused: %d %s", i+1, code, body)
		}
		open = append(open, s)
	}
	for _, u := range urls {
		if s, code, body := openSSE(t, u, nil); s != nil || code != http.StatusTooManyRequests || !strings.Contains(body, "live views open") {
			if s != nil {
				s.close()
			}
			t.Fatalf("stream %d on %s = %d %q, want 429 saying too many live views", web.DefaultSSEPerCaller+1, u, code, body)
		}
	}
	// Another caller (an API token) has its own allowance.
	s, code, body := openSSE(t, urls[0], map[string]string{"Authorization": "Bearer " + tok})
	if s == nil {
		t.Fatalf("a token's stream while dev has %d open: %d %s", web.DefaultSSEPerCaller, code, body)
	}
	s.close()
	// Closing one frees its place.
	open[0].close()
	open = open[1:]
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, code, _ := openSSE(t, urls[0], nil)
		if s != nil {
			open = append(open, s)
			break
		}
		if code != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after closing a stream: %d, want a new stream", code)
		}
		time.Sleep(10 * time.Millisecond) // polling for the server to see the close
	}
}
