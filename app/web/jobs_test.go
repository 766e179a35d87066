package web_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/app/web"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store/storetest"
)

// threeMistakes is a manifest with a bad group (line 4), a bad duration
// (line 8) and a percentage over 100 (line 14).
const threeMistakes = `id: clean-temp
version: 1.0.0
target:
  groups: [Finance]
execute:
  shell: powershell
  script: Remove-Item $env:TEMP\* -Recurse
  timeout: 10 minutes
rollout:
  waves:
    - name: canary
      count: 5
    - name: rest
      percent: 150
`

const diskReport = `id: disk-report
version: 1.2.0
description: Disk <b>usage</b>
target:
  groups: [linux]
  pcs: [pc-1]
execute:
  shell: sh
  script: df -h
  timeout: 1m
  jitter: 30s
rollout:
  waves:
    - name: canary
      group: canary
      max_failures: 1
    - name: rest
      percent: 100
      delay: 1h30m
      approval: true
      min_success: 90%
`

// newJobsServer serves a catalog over files (name → text) in a temp dir.
func newJobsServer(t *testing.T, files map[string]string) (*httptest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return newServerOn(t, dir), dir
}

func newServerOn(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	cat, err := catalog.New(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.New(web.Deps{Store: storetest.New(t), Catalog: cat, Log: log, DevMode: true, Version: "test"}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	status, h, body := get(t, url)
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q, body %s", url, ct, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	return status
}

type jobJSON struct {
	ID          string         `json:"id"`
	Version     string         `json:"version"`
	Description string         `json:"description"`
	Source      string         `json:"source"`
	Kind        string         `json:"kind"`
	Valid       bool           `json:"valid"`
	Errors      []jobs.Problem `json:"errors"`
}

var wantThreeProblems = []jobs.Problem{
	{Field: "target.groups[0]", Line: 4, Message: `"Finance" must be lower-case`},
	{Field: "execute.timeout", Line: 8, Message: `"10 minutes" is not a duration: write one such as "30s", "10m" or "1h30m"`},
	{Field: "rollout.waves[1].percent", Line: 14, Message: "must be from 1 to 100, not 150"},
}

func TestAPIJobs_List(t *testing.T) {
	srv, _ := newJobsServer(t, map[string]string{
		"disk-report.yaml":   diskReport,
		"clean-temp.yaml":    threeMistakes,
		"nightly.yaml":       "id: nightly\ncron: '0 3 * * *'\njob_id: disk-report\n",
		"drafts/broken.yaml": "version: 2\n",
	})
	var got struct {
		Jobs  []jobJSON `json:"jobs"`
		Total int       `json:"total"`
	}
	if status := getJSON(t, srv.URL+"/api/jobs", &got); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	want := []jobJSON{
		{ID: "clean-temp", Version: "1.0.0", Source: "clean-temp.yaml", Kind: "job", Errors: wantThreeProblems},
		{ID: "disk-report", Version: "1.2.0", Description: "Disk <b>usage</b>", Source: "disk-report.yaml", Kind: "job", Valid: true, Errors: []jobs.Problem{}},
		{ID: "drafts/broken.yaml", Version: "2", Source: "drafts/broken.yaml", Kind: "job", Errors: []jobs.Problem{
			{Field: "id", Line: 1, Message: "is required: name the job (letters, digits, '-' and '_')"},
			{Field: "target", Line: 1, Message: "is required: say which PCs run the job (all, groups or pcs)"},
			{Field: "execute", Line: 1, Message: "is required: give the shell, the script and the timeout"},
		}},
		{ID: "nightly", Source: "nightly.yaml", Kind: "schedule", Valid: true, Errors: []jobs.Problem{}},
	}
	if diff := cmp.Diff(want, got.Jobs); diff != "" {
		t.Errorf("GET /api/jobs (-want +got):\n%s", diff)
	}
	if got.Total != 4 {
		t.Errorf("total = %d, want 4", got.Total)
	}
}

func TestAPIJobs_Detail(t *testing.T) {
	srv, _ := newJobsServer(t, map[string]string{"disk-report.yaml": diskReport, "clean-temp.yaml": threeMistakes, "sub/no id.yaml": "version: 2\n"})
	tests := []struct {
		name, path string
		wantStatus int
		want       map[string]any
	}{
		{"valid", "/api/jobs/disk-report", http.StatusOK, map[string]any{
			"id": "disk-report", "version": "1.2.0", "description": "Disk <b>usage</b>", "kind": "job", "source": "disk-report.yaml",
			"valid": true, "errors": []any{}, "yaml": diskReport,
			"target":  map[string]any{"groups": []any{"linux"}, "pcs": []any{"pc-1"}},
			"execute": map[string]any{"shell": "sh", "script": "df -h", "timeout": "1m0s", "jitter": "30s"},
			"rollout": map[string]any{"waves": []any{
				map[string]any{"name": "canary", "group": "canary", "max_failures": 1.0},
				map[string]any{"name": "rest", "percent": 100.0, "delay": "1h30m0s", "approval": true, "min_success": "90%"},
			}},
		}},
		{"invalid still answers", "/api/jobs/clean-temp", http.StatusOK, map[string]any{
			"id": "clean-temp", "version": "1.0.0", "kind": "job", "source": "clean-temp.yaml", "valid": false, "yaml": threeMistakes,
			"errors": []any{
				map[string]any{"field": "target.groups[0]", "line": 4.0, "message": `"Finance" must be lower-case`},
				map[string]any{"field": "execute.timeout", "line": 8.0, "message": `"10 minutes" is not a duration: write one such as "30s", "10m" or "1h30m"`},
				map[string]any{"field": "rollout.waves[1].percent", "line": 14.0, "message": "must be from 1 to 100, not 150"},
			},
			"target":  map[string]any{"groups": []any{"Finance"}},
			"execute": map[string]any{"shell": "powershell", "script": `Remove-Item $env:TEMP\* -Recurse`, "timeout": "0s"},
			"rollout": map[string]any{"waves": []any{
				map[string]any{"name": "canary", "count": 5.0},
				map[string]any{"name": "rest", "percent": 150.0},
			}},
		}},
		{"file name with a slash", "/api/jobs/sub%2Fno%20id.yaml", http.StatusOK, map[string]any{
			"id": "sub/no id.yaml", "version": "2", "kind": "job", "source": "sub/no id.yaml", "valid": false, "yaml": "version: 2\n",
			"target": map[string]any{}, "execute": map[string]any{"shell": "", "script": "", "timeout": "0s"},
		}},
		{"unknown", "/api/jobs/nope", http.StatusNotFound, map[string]any{
			"error": map[string]any{"code": "not_found", "message": `job "nope" does not exist`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]any
			if status := getJSON(t, srv.URL+tt.path, &got); status != tt.wantStatus {
				t.Errorf("GET %s status = %d, want %d", tt.path, status, tt.wantStatus)
			}
			if _, ok := got["modified_at"]; ok || tt.wantStatus == http.StatusOK {
				if _, ok := got["modified_at"].(string); !ok {
					t.Errorf("modified_at = %v", got["modified_at"])
				}
				delete(got, "modified_at")
			}
			if tt.name == "file name with a slash" {
				delete(got, "errors")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GET %s (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

func TestAPIManifestSchema(t *testing.T) {
	srv, _ := newJobsServer(t, nil)
	status, h, body := get(t, srv.URL+"/api/schemas/manifest.json")
	if status != http.StatusOK || h.Get("Content-Type") != "application/schema+json" {
		t.Errorf("status %d, Content-Type %q", status, h.Get("Content-Type"))
	}
	if body != string(jobs.Schema()) {
		t.Error("body is not jobs.Schema()")
	}
}

// TestAPIJobs_Samples serves the repository's own jobs directory: every
// sample loads, valid.
func TestAPIJobs_Samples(t *testing.T) {
	srv := newServerOn(t, filepath.Join("..", "..", "jobs"))
	var got struct {
		Jobs []jobJSON `json:"jobs"`
	}
	getJSON(t, srv.URL+"/api/jobs", &got)
	ids := map[string]bool{}
	for _, j := range got.Jobs {
		ids[j.ID] = true
		if !j.Valid {
			t.Errorf("sample %s (%s) is invalid: %v", j.ID, j.Source, j.Errors)
		}
	}
	for _, id := range []string{"echo-test", "wave-echo", "echo-every-10s", "scheduled-echo"} {
		if !ids[id] {
			t.Errorf("sample %s is not listed", id)
		}
	}
}

func parseHTML(t *testing.T, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func byAttr(key, val string) func(*html.Node) bool {
	return func(n *html.Node) bool { v, ok := attr(n, key); return ok && v == val }
}

// textOf returns the text of n, its text nodes separated by spaces.
func textOf(n *html.Node) string {
	var parts []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			parts = append(parts, n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

func TestJobPage_ThreeMistakes(t *testing.T) {
	srv, _ := newJobsServer(t, map[string]string{"clean-temp.yaml": threeMistakes})
	status, _, body := get(t, srv.URL+"/jobs/clean-temp")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	doc := parseHTML(t, body)
	type item struct{ Line, Field, Href, Text string }
	var got []item
	for _, li := range findAll(doc, byAttr("data-testid", "job-problem")) {
		it := item{Text: textOf(li)}
		it.Line, _ = attr(li, "data-line")
		it.Field, _ = attr(li, "data-field")
		for _, a := range findAll(li, func(n *html.Node) bool { return n.Data == "a" }) {
			it.Href, _ = attr(a, "href")
		}
		got = append(got, it)
	}
	want := []item{
		{"4", "target.groups[0]", "#L4", `line 4 target.groups[0] "Finance" must be lower-case`},
		{"8", "execute.timeout", "#L8", `line 8 execute.timeout "10 minutes" is not a duration: write one such as "30s", "10m" or "1h30m"`},
		{"14", "rollout.waves[1].percent", "#L14", "line 14 rollout.waves[1].percent must be from 1 to 100, not 150"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	// Every line of the file has its anchor; the three problem lines are marked.
	lines := findAll(doc, func(n *html.Node) bool { c, _ := attr(n, "class"); return strings.HasPrefix(c, "line") })
	if len(lines) != 14 {
		t.Fatalf("%d YAML lines, want 14", len(lines))
	}
	var bad []string
	for i, l := range lines {
		if id, _ := attr(l, "id"); id != "L"+strconv.Itoa(i+1) {
			t.Errorf("line %d has id %q", i+1, id)
		}
		if c, _ := attr(l, "class"); c == "line line-bad" {
			id, _ := attr(l, "id")
			bad = append(bad, id)
		}
	}
	if diff := cmp.Diff([]string{"L4", "L8", "L14"}, bad); diff != "" {
		t.Errorf("marked lines (-want +got):\n%s", diff)
	}
	if got := textOf(lines[7]); got != "timeout: 10 minutes" {
		t.Errorf("line 8 = %q", got)
	}
	if n := len(findAll(doc, byAttr("data-testid", "invalid-badge"))); n != 1 {
		t.Errorf("%d invalid badges", n)
	}
}

func TestJobPage_Valid(t *testing.T) {
	srv, _ := newJobsServer(t, map[string]string{"disk-report.yaml": diskReport, "nightly.yaml": "id: nightly\ncron: '@daily'\njob_id: disk-report\n"})
	_, _, body := get(t, srv.URL+"/jobs/disk-report")
	doc := parseHTML(t, body)
	if n := len(findAll(doc, byAttr("data-testid", "job-problem"))); n != 0 {
		t.Errorf("%d problems on a valid job", n)
	}
	var waves []string
	for _, r := range findAll(doc, byAttr("data-testid", "wave-row")) {
		waves = append(waves, textOf(r))
	}
	want := []string{"1 canary group canary — — 1 —", "2 rest 100 % of the target 1h30m approval — 90%"}
	if diff := cmp.Diff(want, waves); diff != "" {
		t.Errorf("waves (-want +got):\n%s", diff)
	}
	if got := textOf(findAll(doc, byAttr("data-testid", "job-target"))[0]); got != "groups linux PCs pc-1" {
		t.Errorf("target = %q", got)
	}
	if !strings.Contains(body, "Disk &lt;b&gt;usage&lt;/b&gt;") {
		t.Error("the description is not escaped")
	}
	// The schedule links to its job.
	_, _, body = get(t, srv.URL+"/jobs/nightly")
	if links := findAll(parseHTML(t, body), byAttr("href", "/jobs/disk-report")); len(links) != 1 {
		t.Errorf("schedule page has %d links to its job", len(links))
	}
}

func TestJobPage_NotFound(t *testing.T) {
	srv, _ := newJobsServer(t, nil)
	status, h, body := get(t, srv.URL+"/jobs/nope")
	if status != http.StatusNotFound || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, `job &#34;nope&#34; does not exist`) {
		t.Errorf("GET /jobs/nope = %d %s:\n%s", status, h.Get("Content-Type"), body)
	}
}

func TestJobList(t *testing.T) {
	srv, dir := newJobsServer(t, map[string]string{
		"disk-report.yaml": diskReport,
		"clean-temp.yaml":  threeMistakes,
		"nightly.yaml":     "id: nightly\ncron: '@daily'\njob_id: disk-report\n",
	})
	tests := []struct {
		name, query string
		partial     bool
		want        []string // row ids
	}{
		{"all", "", false, []string{"clean-temp", "disk-report", "nightly"}},
		{"invalid", "?status=invalid", false, []string{"clean-temp"}},
		{"schedules", "?kind=schedule", true, []string{"nightly"}},
		{"search", "?q=USAGE", true, []string{"disk-report"}},
		{"no match", "?q=zzz", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.partial {
				hdr = []string{"HX-Request", "true"}
			}
			status, _, body := get(t, srv.URL+"/jobs"+tt.query, hdr...)
			if status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			if tt.partial == strings.Contains(body, "<html") {
				t.Errorf("partial=%v but the answer has <html>: %v", tt.partial, !tt.partial)
			}
			doc := parseHTML(t, body)
			var got []string
			for _, r := range findAll(doc, byAttr("data-testid", "job-row")) {
				id, _ := attr(r, "data-id")
				got = append(got, id)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
	_, _, body := get(t, srv.URL+"/jobs")
	doc := parseHTML(t, body)
	badges := findAll(doc, byAttr("data-testid", "invalid-badge"))
	if len(badges) != 1 || textOf(badges[0]) != "invalid · 3 errors" {
		t.Errorf("invalid badges = %d", len(badges))
	}
	var nav []string
	for _, a := range findAll(doc, byAttr("aria-current", "page")) {
		nav = append(nav, textOf(a))
	}
	if diff := cmp.Diff([]string{"Jobs"}, nav); diff != "" {
		t.Errorf("current nav (-want +got):\n%s", diff)
	}
	if !strings.Contains(body, dir) {
		t.Error("the page does not name the jobs directory")
	}
	if status, _, _ := get(t, srv.URL+"/jobs?status=broken"); status != http.StatusBadRequest {
		t.Errorf("bad status filter: %d", status)
	}
}

func TestJobList_Empty(t *testing.T) {
	srv, dir := newJobsServer(t, nil)
	_, _, body := get(t, srv.URL+"/jobs")
	empty := findAll(parseHTML(t, body), byAttr("data-testid", "empty-state"))
	if len(empty) != 1 {
		t.Fatalf("%d empty states", len(empty))
	}
	want := "No jobs yet — put manifests in " + dir + " (one *.yaml file per job; they load within seconds)."
	if got := textOf(empty[0]); got != want {
		t.Errorf("empty state = %q, want %q", got, want)
	}
}
