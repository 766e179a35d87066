package web_test

import (
	"cmp"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// scenario is one route tried as every role of harnessRoles. Roles below
// min are refused by the role check (see denied); the others get want,
// or what by says for their role. A newcomer adding a route adds one
// scenario: TestScenarios_EveryRouteEveryRole fails until every route of
// the router has one.
type scenario struct {
	method string
	route  string // as the router has it: "/agents/:pc"
	// url is the request ("" = route). {key} is the harness's id of that
	// name (harness.ids), {role} the caller's role.
	url string
	// body is JSON when it starts with "{", a manifest (YAML) when it
	// starts with "id:", a form otherwise.
	body  string
	ctype string // the body's Content-Type when body does not tell
	min   string // least role; "" = public
	want  int
	by    map[string]int
	// check, when set, looks at an allowed caller's answer.
	check func(t *testing.T, role string, resp *http.Response, body string)
}

// denied is what the role check answers a caller below min: 401 to an
// anonymous API call or form, the sign-in for an anonymous page load,
// 403 to a role too low.
func (s scenario) denied(role string) int {
	if role != anonymous {
		return http.StatusForbidden
	}
	if s.method == http.MethodGet && !strings.HasPrefix(s.route, "/api/") {
		return http.StatusSeeOther
	}
	return http.StatusUnauthorized
}

func roleRank(role string) int { return slices.Index(harnessRoles, role) }

// expect is the status role must get.
func (s scenario) expect(role string) int {
	if s.min != "" && roleRank(role) < roleRank(s.min) {
		return s.denied(role)
	}
	if st, ok := s.by[role]; ok {
		return st
	}
	return s.want
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

// bodyHas checks that an allowed caller's answer contains s.
func bodyHas(s string) func(*testing.T, string, *http.Response, string) {
	return func(t *testing.T, role string, _ *http.Response, body string) {
		t.Helper()
		if !strings.Contains(body, s) {
			t.Errorf("answer to %s lacks %q: %.300s", role, s, body)
		}
	}
}

// header checks an allowed caller's answer's header.
func header(name, prefix string) func(*testing.T, string, *http.Response, string) {
	return func(t *testing.T, role string, resp *http.Response, _ string) {
		t.Helper()
		if got := resp.Header.Get(name); !strings.HasPrefix(got, prefix) {
			t.Errorf("answer to %s: %s %q, want %q…", role, name, got, prefix)
		}
	}
}

// Statuses by role, for routes whose answer changes with what the role
// before did (the first caller allowed acts, the next find it done).
func by(kv ...any) map[string]int {
	m := map[string]int{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(int)
	}
	return m
}

const (
	ok        = http.StatusOK
	created   = http.StatusCreated
	accepted  = http.StatusAccepted
	noContent = http.StatusNoContent
	found     = http.StatusFound
	seeOther  = http.StatusSeeOther
	conflict  = http.StatusConflict
)

// scenarios are run in this order, each as anonymous, viewer, operator,
// approver and admin in turn.
var scenarios = []scenario{
	// Public
	{method: "GET", route: "/healthz", want: ok},
	{method: "GET", route: "/metrics", want: ok, by: by(anonymous, http.StatusUnauthorized), check: bodyHas("go_goroutines")},
	{method: "GET", route: "/static/*", url: "/static/kanade.css", want: ok, check: header("Content-Type", "text/css")},
	{method: "GET", route: "/login", want: seeOther, by: by(anonymous, ok)},
	{method: "GET", route: "/auth/start", url: "/auth/start?next=/agents", want: found, check: header("Location", "http")},
	{method: "GET", route: "/auth/callback", url: "/auth/callback?state=forged&code=forged", want: http.StatusForbidden},
	{method: "POST", route: "/logout", want: seeOther},
	{method: "GET", route: "/download/agent/:platform", url: "/download/agent/windows-amd64", want: ok, by: by(anonymous, http.StatusUnauthorized)},

	// GUI
	{method: "GET", route: "/", min: viewer, want: ok},
	{method: "GET", route: "/agents", min: viewer, want: ok, check: bodyHas(agentPC)},
	{method: "GET", route: "/agents/:pc", url: "/agents/" + agentPC, min: viewer, want: ok},
	{method: "GET", route: "/run", min: operator, want: ok},
	{method: "GET", route: "/run/preview", url: "/run/preview?pcs=" + agentPC, min: operator, want: ok},
	{method: "POST", route: "/run", body: form("pcs", agentPC, "shell", "sh", "script", "echo form", "timeout", "1m"), min: operator, want: seeOther},
	{method: "GET", route: "/jobs", min: viewer, want: ok, check: bodyHas(helloJob)},
	{method: "GET", route: "/jobs/:id", url: "/jobs/" + helloJob, min: viewer, want: ok},
	{method: "GET", route: "/executions", min: viewer, want: ok},
	{method: "GET", route: "/executions/:id", url: "/executions/{exec}", min: viewer, want: ok},
	{method: "GET", route: "/executions/:id/summary", url: "/executions/{exec}/summary", min: viewer, want: ok},
	{method: "GET", route: "/executions/:id/targets", url: "/executions/{exec}/targets", min: viewer, want: ok},
	{method: "GET", route: "/executions/:id/events", url: "/executions/{exec}/events", min: viewer, want: ok, check: header("Content-Type", "text/event-stream")},
	{method: "GET", route: "/executions/:id/log/:pc", url: "/executions/{exec}/log/" + agentPC, min: viewer, want: ok},
	{method: "GET", route: "/executions/:id/log/:pc/stream", url: "/executions/{exec}/log/" + agentPC + "/stream", min: viewer, want: ok, check: header("Content-Type", "text/event-stream")},
	{method: "POST", route: "/executions/:id/kill", url: "/executions/fkill-{role}/kill", min: operator, want: seeOther},
	{method: "GET", route: "/executions/:id/again", url: "/executions/{exec}/again", min: operator, want: ok},
	{method: "POST", route: "/executions/:id/rerun-failed", url: "/executions/{exec}/rerun-failed", min: operator, want: conflict},
	{method: "GET", route: "/executions/:id/log/:pc/download", url: "/executions/{exec}/log/" + agentPC + "/download", min: viewer, want: ok},
	{method: "POST", route: "/executions/:id/waves/:n/approve", url: "/executions/{rollout}/waves/0/approve", min: approver, want: seeOther, by: by(admin, conflict)},
	{method: "POST", route: "/executions/:id/halt", url: "/executions/{rollout-halt}/halt", min: operator, want: conflict, by: by(operator, seeOther)},
	{method: "POST", route: "/executions/:id/resume", url: "/executions/{rollout-halt}/resume", min: operator, want: conflict, by: by(operator, seeOther)},
	{method: "POST", route: "/jobs/:id/deploy", url: "/jobs/" + helloJob + "/deploy", body: form("confirm", "true"), min: operator, want: seeOther},
	{method: "POST", route: "/jobs/:id/revoke", url: "/jobs/" + helloJob + "/revoke", min: operator, want: seeOther},
	{method: "POST", route: "/jobs/:id/unrevoke", url: "/jobs/" + helloJob + "/unrevoke", min: operator, want: seeOther},
	{method: "GET", route: "/schedules", min: viewer, want: ok},
	{method: "POST", route: "/schedules", body: form("id", "form-{role}", "cron", "0 0 4 * * *", "job_id", helloJob, "enabled", "true"), min: operator, want: seeOther},
	{method: "POST", route: "/schedules/:id/toggle", url: "/schedules/" + fixtureKey + "-toggle-{role}/toggle", min: operator, want: seeOther},
	{method: "POST", route: "/schedules/:id/delete", url: "/schedules/" + fixtureKey + "-fdelete-{role}/delete", min: operator, want: seeOther},
	{method: "GET", route: "/events/topbar", min: viewer, want: ok, check: header("Content-Type", "text/event-stream")},
	{method: "GET", route: "/emergency-stop", min: viewer, want: ok},
	{method: "GET", route: "/emergency-stop/effects", min: viewer, want: noContent}, // empty while no stop was recorded
	{method: "POST", route: "/emergency-stop", body: form("action", "lift"), min: admin, want: seeOther},
	{method: "GET", route: "/audit", min: viewer, want: ok},
	{method: "GET", route: "/audit/export.csv", min: viewer, want: ok, check: header("Content-Type", "text/csv")},
	{method: "POST", route: "/agents/:pc/inventory", url: "/agents/" + agentPC + "/inventory", min: operator, want: seeOther},
	{method: "POST", route: "/agents/:pc/ping", url: "/agents/" + agentPC + "/ping", min: operator, want: ok, check: bodyHas("answered in")},
	{method: "POST", route: "/agents/:pc/revoke", url: "/agents/" + revokedPC + "-2/revoke", min: admin, want: seeOther},
	{method: "POST", route: "/agents/:pc/groups", url: "/agents/" + agentPC + "/groups", body: form("groups", "lab"), min: admin, want: seeOther},
	{method: "POST", route: "/agents/groups/add", body: form("group", "lab", "pc", agentPC), min: admin, want: seeOther},
	{method: "GET", route: "/enrollments", min: admin, want: ok, check: bodyHas(pendingPC)},
	{method: "POST", route: "/enrollments/:pc/approve", url: "/enrollments/" + pendingPC + "-3/approve", min: admin, want: seeOther},
	{method: "POST", route: "/enrollments/:pc/reject", url: "/enrollments/" + pendingPC + "-4/reject", min: admin, want: seeOther},
	{method: "POST", route: "/enrollments/tokens", body: form("name", "form token"), min: admin, want: created, check: bodyHas("kanade-enroll-")},
	{method: "POST", route: "/enrollments/tokens/:id/revoke", url: "/enrollments/tokens/{enroll-token-form}/revoke", min: admin, want: seeOther},
	{method: "POST", route: "/enrollments/tokens/default/rotate", min: admin, want: seeOther},
	{method: "GET", route: "/settings", min: admin, want: ok},
	{method: "POST", route: "/settings/tokens", body: form("name", "form-token", "role", "viewer"), min: admin, want: created},
	{method: "POST", route: "/settings/tokens/:id/revoke", url: "/settings/tokens/{api-token-form}/revoke", min: admin, want: seeOther},
	{method: "GET", route: "/settings/add-agents", min: admin, want: ok},
	{method: "POST", route: "/settings/add-agents", body: form("os", "windows", "arch", "amd64", "token", "default"), min: admin, want: ok},
	{method: "GET", route: "/system", min: admin, want: ok},
	{method: "GET", route: "/settings/backups", min: admin, want: ok},

	// JSON API
	{method: "GET", route: "/api/me", min: viewer, want: ok, check: func(t *testing.T, role string, _ *http.Response, body string) {
		if !strings.Contains(body, `"role":"`+role+`"`) {
			t.Errorf("GET /api/me as %s: %s", role, body)
		}
	}},
	{method: "GET", route: "/api/openapi.json", min: viewer, want: ok, check: bodyHas(`"openapi"`)},
	{method: "GET", route: "/api/agents", min: viewer, want: ok, check: bodyHas(`"pc_id":"` + agentPC + `"`)},
	{method: "GET", route: "/api/agents/:pc", url: "/api/agents/" + agentPC, min: viewer, want: ok, check: bodyHas(`"online":true`)},
	{method: "POST", route: "/api/run", body: `{"target":{"pcs":["` + agentPC + `"]},"shell":"sh","script":"echo api","timeout":"1m"}`, min: operator, want: accepted},
	{method: "POST", route: "/api/deploy", body: "id: api-deploy\nversion: \"1\"\ntarget:\n  pcs: [pc1]\nexecute:\n  shell: sh\n  script: echo api\n  timeout: 30s\n", min: operator, want: accepted},
	{method: "POST", route: "/api/jobs/:id/revoke", url: "/api/jobs/" + helloJob + "/revoke", min: operator, want: ok},
	{method: "POST", route: "/api/jobs/:id/unrevoke", url: "/api/jobs/" + helloJob + "/unrevoke", min: operator, want: ok},
	{method: "GET", route: "/api/jobs", min: viewer, want: ok, check: bodyHas(helloJob)},
	{method: "GET", route: "/api/jobs/:id", url: "/api/jobs/" + helloJob, min: viewer, want: ok},
	{method: "GET", route: "/api/schemas/manifest.json", min: viewer, want: ok},
	{method: "GET", route: "/api/executions", min: viewer, want: ok},
	{method: "GET", route: "/api/executions/:id", url: "/api/executions/{exec}", min: viewer, want: ok},
	{method: "GET", route: "/api/executions/:id/wait", url: "/api/executions/{exec}/wait?timeout=0s", min: viewer, want: ok},
	{method: "POST", route: "/api/executions/:id/kill", url: "/api/executions/kill-{role}/kill", min: operator, want: accepted},
	{method: "POST", route: "/api/executions/:id/waves/:n/approve", url: "/api/executions/{rollout-api}/waves/0/approve", min: approver, want: ok, by: by(admin, conflict)},
	{method: "POST", route: "/api/executions/:id/halt", url: "/api/executions/{rollout-api-halt}/halt", min: operator, want: conflict, by: by(operator, ok)},
	{method: "POST", route: "/api/executions/:id/resume", url: "/api/executions/{rollout-api-halt}/resume", min: operator, want: conflict, by: by(operator, ok)},
	{method: "GET", route: "/api/results", min: viewer, want: ok},
	{method: "GET", route: "/api/audit", min: viewer, want: ok},
	{method: "GET", route: "/api/schedules", min: viewer, want: ok},
	{method: "GET", route: "/api/schedules/:id/fires", url: "/api/schedules/" + fixtureKey + "-put-viewer/fires", min: viewer, want: ok},
	{method: "POST", route: "/api/schedules", body: `{"id":"api-{role}","cron":"0 0 5 * * *","job_id":"` + helloJob + `"}`, min: operator, want: created},
	{method: "PUT", route: "/api/schedules/:id", url: "/api/schedules/" + fixtureKey + "-put-{role}", body: `{"cron":"0 0 6 * * *","job_id":"` + helloJob + `"}`, min: operator, want: ok},
	{method: "DELETE", route: "/api/schedules/:id", url: "/api/schedules/" + fixtureKey + "-delete-{role}", min: operator, want: noContent},
	{method: "GET", route: "/api/emergency-stop", min: viewer, want: ok},
	{method: "POST", route: "/api/emergency-stop", body: `{"reason":"harness"}`, min: admin, want: ok},
	{method: "DELETE", route: "/api/emergency-stop", min: admin, want: ok},
	{method: "POST", route: "/api/agents/:pc/inventory", url: "/api/agents/" + agentPC + "/inventory", min: operator, want: accepted},
	{method: "POST", route: "/api/agents/:pc/ping", url: "/api/agents/" + agentPC + "/ping", min: operator, want: ok, check: bodyHas(`"rtt_ms"`)},
	{method: "POST", route: "/api/agents/:pc/revoke", url: "/api/agents/" + revokedPC + "/revoke", min: admin, want: ok},
	{method: "PUT", route: "/api/agents/:pc/groups", url: "/api/agents/" + agentPC + "/groups", body: `{"groups":["lab"]}`, min: admin, want: ok},
	{method: "GET", route: "/api/enrollments", min: admin, want: ok, check: bodyHas(pendingPC)},
	{method: "POST", route: "/api/enrollments/:pc/approve", url: "/api/enrollments/" + pendingPC + "/approve", min: admin, want: ok},
	{method: "POST", route: "/api/enrollments/:pc/reject", url: "/api/enrollments/" + pendingPC + "-2/reject", min: admin, want: ok},
	{method: "GET", route: "/api/enrollment-tokens", min: admin, want: ok},
	{method: "POST", route: "/api/enrollment-tokens", body: `{"name":"api token"}`, min: admin, want: created},
	{method: "POST", route: "/api/enrollment-tokens/:id/revoke", url: "/api/enrollment-tokens/{enroll-token}/revoke", min: admin, want: ok},
	{method: "POST", route: "/api/enrollment-tokens/default/rotate", min: admin, want: ok},
	{method: "POST", route: "/api/agent-installs", body: `{"os":"windows","arch":"amd64"}`, min: admin, want: ok, check: bodyHas("/download/agent/windows-amd64")}, // 201 only when it makes a token
	{method: "GET", route: "/api/command-keys", min: viewer, want: ok},
	{method: "POST", route: "/api/command-keys/rotate", min: admin, want: ok},
	{method: "GET", route: "/api/tokens", min: admin, want: ok},
	{method: "POST", route: "/api/tokens", body: `{"name":"api-token","role":"viewer"}`, min: admin, want: created},
	{method: "POST", route: "/api/tokens/:id/revoke", url: "/api/tokens/{api-token}/revoke", min: admin, want: ok},
	{method: "GET", route: "/api/system", min: admin, want: ok},

	// Agent releases (self-update)
	{method: "GET", route: "/api/agent-releases", min: viewer, want: ok},
	{method: "POST", route: "/api/agent-releases", url: "/api/agent-releases?version=9.0.0&os=" + runtime.GOOS + "&arch=" + runtime.GOARCH, body: "an agent build", ctype: "application/octet-stream", min: admin, want: created, check: bodyHas(`"sha256"`)},
	{method: "POST", route: "/api/agent-releases/:version/rollout", url: "/api/agent-releases/9.0.0/rollout", body: `{"target":{"pcs":["` + revokedPC + `"]}}`, min: admin, want: accepted},
	{method: "DELETE", route: "/api/agent-releases/:version", url: "/api/agent-releases/9.0.0", min: admin, want: conflict, check: bodyHas("is not over")}, // its rollout waits for the offline gone-pc
	{method: "GET", route: "/api/release-keys", min: viewer, want: ok},
	{method: "POST", route: "/api/release-keys/rotate", min: admin, want: ok},
	{method: "GET", route: "/agent-versions", min: viewer, want: ok},
	{method: "POST", route: "/agent-versions", body: form("version", "9.1.0"), min: admin, want: http.StatusUnprocessableEntity},              // no binary in the form
	{method: "POST", route: "/agent-versions/rollout", body: form("version", "9.1.0", "pcs", agentPC), min: admin, want: http.StatusNotFound}, // no release 9.1.0
	{method: "POST", route: "/agent-versions/:version/delete", url: "/agent-versions/9.1.0/delete", min: admin, want: http.StatusNotFound},
}

// expand fills a scenario URL for role.
func (h *harness) expand(s, role string) string {
	for k, v := range h.ids {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	// In a form, as form() encoded it, too.
	return strings.NewReplacer("{role}", role, "%7Brole%7D", role).Replace(s)
}

// TestScenarios_EveryRouteEveryRole sends every route of the router as
// every role and checks the status (and, where set, the answer). It
// fails when a route has no scenario, so that a new route comes with
// its rows.
func TestScenarios_EveryRouteEveryRole(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		h := newHarness(t, st)
		covered := map[string]bool{}
		for _, s := range scenarios {
			key := s.method + " " + s.route
			if covered[key] {
				t.Errorf("two scenarios for %s", key)
			}
			covered[key] = true
		}
		var missing []string
		routed := map[string]bool{}
		for _, r := range h.e.Routes() {
			key := r.Method + " " + r.Path
			routed[key] = true
			if !covered[key] {
				missing = append(missing, key)
			}
		}
		sort.Strings(missing)
		for _, key := range missing {
			t.Errorf("route %s has no scenario: add one to scenarios (scenarios_test.go) with its least role and the status each role gets", key)
		}
		rows := 0
		for _, s := range scenarios {
			if !routed[s.method+" "+s.route] {
				t.Errorf("scenario for %s %s: the router has no such route", s.method, s.route)
				continue
			}
			for _, role := range harnessRoles {
				rows++
				u := h.expand(cmp.Or(s.url, s.route), role)
				resp, body := h.do(t, role, s.method, u, h.expand(s.body, role), s.ctype)
				want := s.expect(role)
				if resp.StatusCode != want {
					t.Errorf("%s %s as %s = %d, want %d: %s", s.method, u, role, resp.StatusCode, want, gist(body))
					continue
				}
				if want == s.denied(role) && s.min != "" && roleRank(role) < roleRank(s.min) {
					checkDenied(t, s, role, u, resp, body)
					continue
				}
				if s.check != nil && resp.StatusCode < 300 {
					s.check(t, role, resp, body)
				}
			}
		}
		t.Logf("%d routes, %d scenario rows", len(routed), rows)
	})
}

// checkDenied: a refusal says why, in the API's error body or by sending
// the browser to sign in.
func checkDenied(t *testing.T, s scenario, role, u string, resp *http.Response, body string) {
	t.Helper()
	switch resp.StatusCode {
	case http.StatusSeeOther:
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/auth/start?next=") {
			t.Errorf("%s %s as %s: sent to %q, want the sign-in", s.method, u, role, loc)
		}
	case http.StatusUnauthorized, http.StatusForbidden:
		code := map[int]string{http.StatusUnauthorized: "unauthorized", http.StatusForbidden: "forbidden"}[resp.StatusCode]
		if strings.HasPrefix(s.route, "/api/") && !strings.Contains(body, fmt.Sprintf(`"code":%q`, code)) {
			t.Errorf("%s %s as %s: %.300s, want the API's %s error", s.method, u, role, body, code)
		}
	}
}

var (
	titleRE      = regexp.MustCompile(`<title>([^<]*)</title>`)
	fieldErrorRE = regexp.MustCompile(`class="[^"]*(?:field-error|error)[^"]*"[^>]*>([^<]+)<`)
)

// gist is what a failure message shows of an answer: a page's title and
// the problems it shows, or the start of any other body.
func gist(body string) string {
	m := titleRE.FindStringSubmatch(body)
	if m == nil {
		if len(body) > 300 {
			return body[:300] + "…"
		}
		return body
	}
	out := "page " + strconv.Quote(html.UnescapeString(m[1]))
	for _, e := range fieldErrorRE.FindAllStringSubmatch(body, 5) {
		out += "; " + strconv.Quote(html.UnescapeString(strings.TrimSpace(e[1])))
	}
	return out
}
