package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/web"
	"github.com/kanadehq/kanade/store/storetest"
)

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// openAPIRoles are the values of x-kanade-role, lowest first.
var openAPIRoles = []auth.Role{auth.Viewer, auth.Operator, auth.Approver, auth.Admin}

// openAPIDoc is the document as GET /api/openapi.json serves it: paths
// to methods to operations, and the whole document for its references.
type openAPIDoc struct {
	OpenAPI string                               `json:"openapi"`
	Info    map[string]any                       `json:"info"`
	Paths   map[string]map[string]map[string]any `json:"paths"`
	raw     map[string]any
}

// operation is one method on one path of the document.
type operation struct {
	Method, Path string // "POST", "/api/executions/{id}/kill"
	Op           map[string]any
}

func (o operation) String() string { return o.Method + " " + o.Path }

func (d openAPIDoc) operations() []operation {
	var out []operation
	for p, item := range d.Paths {
		for _, m := range openAPIMethods {
			if op, ok := item[m]; ok {
				out = append(out, operation{Method: strings.ToUpper(m), Path: p, Op: op})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// fetchOpenAPI reads the document from the handler h, as a client would.
func fetchOpenAPI(t *testing.T, h http.Handler, header ...string) openAPIDoc {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/api/openapi.json", nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/openapi.json: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET /api/openapi.json: Content-Type %q, want application/json", ct)
	}
	body := rec.Body.Bytes()
	var d openAPIDoc
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI JSON document: %v", err)
	}
	if err := json.Unmarshal(body, &d.raw); err != nil {
		t.Fatal(err)
	}
	return d
}

// devWeb is the web app in dev mode on a fresh store.
func devWeb(t *testing.T) *echo.Echo {
	t.Helper()
	return web.New(web.Deps{Store: storetest.New(t), Log: slog.New(slog.DiscardHandler), DevMode: true, Events: events.New(), Version: "test"})
}

// openAPIPath is an echo route path as OpenAPI writes it: ":id" → "{id}".
var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

func openAPIPath(echoPath string) string { return echoParam.ReplaceAllString(echoPath, "{$1}") }

// apiRoutes lists the router's /api routes as "METHOD /api/path/{param}".
func apiRoutes(e *echo.Echo) map[string]bool {
	out := map[string]bool{}
	for _, r := range e.Routes() {
		if strings.HasPrefix(r.Path, "/api/") {
			out[r.Method+" "+openAPIPath(r.Path)] = true
		}
	}
	return out
}

func TestOpenAPI_Document(t *testing.T) {
	d := fetchOpenAPI(t, devWeb(t))
	if d.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", d.OpenAPI)
	}
	if d.Info["title"] == nil || d.Info["version"] == nil {
		t.Errorf("info lacks title or version: %v", d.Info)
	}
	ids := map[string]string{}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for _, o := range d.operations() {
		if s, _ := o.Op["summary"].(string); s == "" {
			t.Errorf("%s has no summary", o)
		}
		id, _ := o.Op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", o)
		} else if prev, dup := ids[id]; dup {
			t.Errorf("%s and %s share operationId %q", prev, o, id)
		}
		ids[id] = o.String()
		role, _ := o.Op["x-kanade-role"].(string)
		if _, err := auth.ParseRole(role); err != nil {
			t.Errorf("%s: x-kanade-role %q: %v", o, role, err)
		}
		if rs, _ := o.Op["responses"].(map[string]any); len(rs) == 0 {
			t.Errorf("%s has no responses", o)
		}
		// Every {param} of the path is declared, in the path item or the operation.
		declared := map[string]bool{}
		params, _ := o.Op["parameters"].([]any)
		if shared, ok := d.raw["paths"].(map[string]any)[o.Path].(map[string]any)["parameters"].([]any); ok {
			params = append(params, shared...)
		}
		for _, p := range params {
			p := resolve(d.raw, p)
			if p["in"] == "path" {
				declared[fmt.Sprint(p["name"])] = true
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(o.Path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %q is not declared", o, m[1])
			}
		}
	}
	// Every reference names something the document has.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if lookup(d.raw, ref) == nil {
					t.Errorf("$ref %q points at nothing", ref)
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(d.raw)
}

// lookup follows a local JSON pointer ("#/components/schemas/Execution").
func lookup(doc map[string]any, ref string) map[string]any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	return m
}

// resolve returns v, or what its $ref points at.
func resolve(doc map[string]any, v any) map[string]any {
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		return lookup(doc, ref)
	}
	return m
}

// TestOpenAPI_MatchesTheRouteTable: every /api route of routes.go has
// exactly one operation in openapi.json, and openapi.json has no
// operation the router lacks.
func TestOpenAPI_MatchesTheRouteTable(t *testing.T) {
	e := devWeb(t)
	routes := apiRoutes(e)
	if len(routes) < 10 || !routes["GET /api/openapi.json"] {
		t.Fatalf("the router lists %d /api routes, without GET /api/openapi.json: %v", len(routes), routes)
	}
	documented := map[string]bool{}
	for _, o := range fetchOpenAPI(t, e).operations() {
		documented[o.String()] = true
	}
	var missing, extra []string
	for r := range routes {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for o := range documented {
		if !routes[o] {
			extra = append(extra, o)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, r := range missing {
		t.Errorf("route %s (app/web/routes.go) has no operation in app/web/openapi.json (and docs/API.md)", r)
	}
	for _, o := range extra {
		t.Errorf("app/web/openapi.json describes %s, which app/web/routes.go does not route", o)
	}
}

// TestOpenAPI_RolesMatchTheRouteTable asks every operation as nobody, as
// the role below its x-kanade-role and as that role: 401, then 403
// forbidden, then past the role check (whatever the handler answers to a
// request without a body or for ids that do not exist).
func TestOpenAPI_RolesMatchTheRouteTable(t *testing.T) {
	st := storetest.New(t)
	keys := make([]byte, auth.KeySize)
	// Sign-in configured: a caller without credentials is nobody. The
	// issuer is never asked: every caller here sends an API token.
	a, err := auth.New(st, auth.Config{OIDC: auth.NewOIDC(auth.OIDCConfig{Issuer: "http://127.0.0.1:1", ClientID: "kanade"}),
		Lifetime: time.Hour, IdleTimeout: time.Hour, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	h := web.New(web.Deps{Store: st, Log: slog.New(slog.DiscardHandler), Auth: a, Events: events.New(), Version: "test"})
	tokens := map[auth.Role]string{}
	for _, r := range openAPIRoles {
		_, secret, err := auth.CreateToken(context.Background(), st, auth.NewTokenRequest{Name: "role-" + r.String(), Role: r, By: "test"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tokens[r] = secret
	}
	ops := fetchOpenAPI(t, h, "Authorization", "Bearer "+tokens[auth.Viewer]).operations()
	ask := func(o operation, token string) (int, string) {
		path := regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(o.Path, "x1")
		req := httptest.NewRequest(o.Method, "http://127.0.0.1"+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		b, _ := io.ReadAll(rec.Body)
		_ = json.Unmarshal(b, &body)
		return rec.Code, body.Error.Code
	}
	for _, o := range ops {
		role, err := auth.ParseRole(fmt.Sprint(o.Op["x-kanade-role"]))
		if err != nil {
			continue // TestOpenAPI_Document reports it
		}
		if status, code := ask(o, ""); status != http.StatusUnauthorized || code != "unauthorized" {
			t.Errorf("%s without credentials: %d %q, want 401 unauthorized", o, status, code)
		}
		if role > auth.Viewer {
			if status, code := ask(o, tokens[role-1]); status != http.StatusForbidden || code != "forbidden" {
				t.Errorf("%s as %s: %d %q, want 403 forbidden (x-kanade-role says %s; routes.go lets a lower role through)", o, role-1, status, code, role)
			}
		}
		if status, code := ask(o, tokens[role]); status == http.StatusUnauthorized || code == "forbidden" {
			t.Errorf("%s as %s: %d %q: refused the role x-kanade-role names (routes.go needs a higher one)", o, role, status, code)
		}
	}
}
