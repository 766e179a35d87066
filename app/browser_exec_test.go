//go:build !windows

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/kanadehq/kanade/app/config"
)

// eExec is the part of API.md's Execution these tests read.
type eExec struct {
	ExecID      string         `json:"exec_id"`
	JobID       string         `json:"job_id"`
	Status      string         `json:"status"`
	Outcome     string         `json:"outcome"`
	Title       string         `json:"title"`
	Shell       string         `json:"shell"`
	Script      string         `json:"script"`
	Timeout     string         `json:"timeout"`
	TargetCount int            `json:"target_count"`
	Targets     []targetResult `json:"targets"`
}

// eExecOf reads one execution from the API.
func eExecOf(t *testing.T, s *testServer, id string) eExec {
	t.Helper()
	var e eExec
	if code := s.get(t, "/api/executions/"+id, &e); code != http.StatusOK {
		t.Fatalf("GET /api/executions/%s = %d", id, code)
	}
	return e
}

// eListIDs returns the exec_ids GET /api/executions answers for query q.
func eListIDs(t *testing.T, s *testServer, q string) []string {
	t.Helper()
	var body struct {
		Executions []eExec `json:"executions"`
		Total      int     `json:"total"`
	}
	if code := s.get(t, "/api/executions?"+q, &body); code != http.StatusOK {
		t.Fatalf("GET /api/executions?%s = %d, want 200", q, code)
	}
	ids := []string{}
	for _, e := range body.Executions {
		ids = append(ids, e.ExecID)
	}
	slices.Sort(ids)
	if body.Total != len(ids) {
		t.Errorf("GET /api/executions?%s: total %d, %d executions", q, body.Total, len(ids))
	}
	return ids
}

func eSorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// eRunDone runs req through the API and waits until the execution is over.
func eRunDone(t *testing.T, s *testServer, req map[string]any) string {
	t.Helper()
	id := s.run(t, req).ExecID
	s.waitExec(t, id, completed)
	return id
}

// eNavigate opens path in the browser.
func eNavigate(t *testing.T, ctx context.Context, s *testServer, path string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+path)); err != nil {
		t.Fatal(err)
	}
}

// eEval evaluates a JavaScript expression in the page.
func eEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// eRowsText is the text of every execution row of the page.
const eRowsText = `[...document.querySelectorAll('[data-testid=exec-row]')].map(r => r.textContent.replace(/\s+/g, ' '))`

// TestBrowser_Point1_OutcomeNotGreenOnFailure (issue 28, point 1): an
// execution whose target failed reads "failed" — never a green
// "completed" — on its page, in its tab title, on the executions list
// and the dashboard and in the API (a new field, "outcome"); the list
// filters by every outcome, also as ?status=.
func TestBrowser_Point1_OutcomeNotGreenOnFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "e1-a", nil, "")
	startAgent(t, s, "e1-b", nil, "")
	s.waitOnline(t, "e1-a", "e1-b")

	ok := eRunDone(t, s, map[string]any{"target": map[string]any{"pcs": []string{"e1-a"}}, "shell": "sh", "script": "echo fine"})
	bad := eRunDone(t, s, map[string]any{"target": map[string]any{"pcs": []string{"e1-a"}}, "shell": "sh",
		"script": "echo about to fail; exit 3", "title": "INC-1 broken printer"})
	mixed := eRunDone(t, s, map[string]any{"target": map[string]any{"pcs": []string{"e1-a", "e1-b"}}, "shell": "sh",
		"script": `[ "$KANADE_PC_ID" = e1-b ] && exit 1; echo ok`})

	// The API: each execution's outcome, also from /wait, and the filters.
	for id, want := range map[string]string{ok: "succeeded", bad: "failed", mixed: "completed_with_failures"} {
		if e := eExecOf(t, s, id); e.Outcome != want || e.Status != "completed" {
			t.Errorf("execution %s: outcome %q, status %q; want %q, completed", id, e.Outcome, e.Status, want)
		}
		var w eExec
		if code := s.get(t, "/api/executions/"+id+"/wait?timeout=1s", &w); code != http.StatusOK || w.Outcome != want {
			t.Errorf("wait on %s: %d, outcome %q; want 200, %q", id, code, w.Outcome, want)
		}
	}
	for q, want := range map[string][]string{
		"status=failed":                  {bad},
		"status=succeeded":               {ok},
		"status=completed_with_failures": {mixed},
		"outcome=failed":                 {bad},
		"status=completed":               {ok, bad, mixed},
		"status=running":                 {},
		"status=killed":                  {},
	} {
		if got := eListIDs(t, s, q); !slices.Equal(got, eSorted(want...)) {
			t.Errorf("GET /api/executions?%s = %v, want %v", q, got, eSorted(want...))
		}
	}
	var apiErr apiErrorBody
	if code := s.get(t, "/api/executions?status=bogus", &apiErr); code != http.StatusBadRequest || apiErr.Error.Code != "invalid_parameter" {
		t.Errorf("?status=bogus: %d %+v, want 400 invalid_parameter", code, apiErr)
	}

	ctx := newBrowser(t)
	// The failed execution's page: a red "failed", no green check, and
	// the tab title says so first.
	eNavigate(t, ctx, s, "/executions/"+bad)
	waitJS(t, ctx, "outcome failed", `document.querySelector('#exec-summary [data-testid=outcome]')?.dataset.state === 'failed'`)
	if got := eEval[string](t, ctx, `document.title`); !strings.HasPrefix(got, "✗ failed · INC-1 broken printer") {
		t.Errorf("tab title %q, want it to start with %q", got, "✗ failed · INC-1 broken printer")
	}
	const greenChecks = `[...document.querySelectorAll('main .badge')].filter(b => getComputedStyle(b, '::before').content.includes('✓')).map(b => b.textContent)`
	if got := eEval[[]string](t, ctx, greenChecks); len(got) != 0 {
		t.Errorf("a failed execution's page shows green checks on %q", got)
	}
	screenshot(t, ctx, "e-execution-failed")

	eNavigate(t, ctx, s, "/executions/"+mixed)
	waitJS(t, ctx, "outcome completed with failures", `document.querySelector('#exec-summary [data-testid=outcome]')?.textContent.trim() === 'completed with failures'`)
	if got := eEval[string](t, ctx, `document.title`); !strings.Contains(got, "completed with failures") {
		t.Errorf("tab title %q, want it to say completed with failures", got)
	}
	eNavigate(t, ctx, s, "/executions/"+ok)
	waitJS(t, ctx, "outcome succeeded with a check", `(b => b?.dataset.state === 'succeeded' && getComputedStyle(b, '::before').content.includes('✓'))(document.querySelector('#exec-summary [data-testid=outcome]'))`)
	if got := eEval[string](t, ctx, `document.title`); !strings.HasPrefix(got, "✓ succeeded") {
		t.Errorf("tab title %q, want it to start with ✓ succeeded", got)
	}

	// The list filters by outcome, as ?status= and with its select.
	eNavigate(t, ctx, s, "/executions?status=failed")
	waitJS(t, ctx, "only the failed execution", `document.querySelectorAll('[data-testid=exec-row]').length === 1`)
	if got := eEval[[]string](t, ctx, eRowsText); len(got) != 1 || !strings.Contains(got[0], bad) || !strings.Contains(got[0], "failed") {
		t.Errorf("?status=failed lists %q, want only %s, failed", got, bad)
	}
	screenshot(t, ctx, "e-executions-failed")
	eNavigate(t, ctx, s, "/executions")
	waitJS(t, ctx, "three executions", `document.querySelectorAll('[data-testid=exec-row]').length === 3`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`(s => { s.value = 'succeeded'; s.dispatchEvent(new Event('change', {bubbles: true})); })(document.querySelector('select[name=status]'))`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "only the succeeded execution", `document.querySelectorAll('[data-testid=exec-row]').length === 1 && document.querySelector('[data-testid=exec-row]').textContent.includes('`+ok+`') && location.search.includes('status=succeeded')`)
	if got := eEval[[]string](t, ctx, greenChecks); len(got) != 1 {
		t.Errorf("the list of succeeded executions shows green checks on %q, want one", got)
	}

	// The dashboard's recent executions say the same.
	eNavigate(t, ctx, s, "/")
	waitJS(t, ctx, "dashboard outcomes", `[...document.querySelectorAll('[data-testid=exec-row]')].length === 3`)
	rows := eEval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('[data-testid=exec-row]')].map(r => [r.querySelector('a.mono').textContent, r.querySelector('[data-testid=outcome]')?.dataset.state]))`)
	if want := map[string]string{ok: "succeeded", bad: "failed", mixed: "completed_with_failures"}; fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("dashboard outcomes %v, want %v", rows, want)
	}
	screenshot(t, ctx, "e-dashboard")
}

// TestBrowser_Point3_LiveOutput (issue 28, point 3): while a script prints,
// the output panel's badge says running (not the pending it was opened
// with), the durations tick, and once it ends the output stays at its
// tail; output over the cap keeps its head and its tail with a marker
// between. It measures run → first output line as a new user sees it.
func TestBrowser_Point3_LiveOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) { c.Execution.OutputCap = 8192 })
	startAgent(t, s, "e3-a", nil, "")
	s.waitOnline(t, "e3-a")
	ctx := newBrowser(t)

	gate := filepath.Join(t.TempDir(), "gate")
	script := "echo started; i=0; while [ $i -lt 150 ]; do echo line $i; i=$((i+1)); done\n" +
		"while [ ! -f " + shQuote(gate) + " ]; do sleep 0.05; done; echo the end"
	eNavigate(t, ctx, s, "/run?pcs=e3-a")
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`textarea[name=script]`)),
		chromedp.SetValue(chromedp.CSS(`textarea[name=script]`), script),
		chromedp.SetValue(chromedp.CSS(`input[name=timeout]`), "60s"),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "target preview", `document.querySelector('#run-preview').textContent.includes('1 agent')`)
	start := time.Now()
	click(t, ctx, `[data-testid=run-button]`)
	waitJS(t, ctx, "first line in the output panel", `(document.querySelector('#log-panel [data-testid=log-out]')?.textContent || '').includes('started')`)
	t.Logf("run → first output line on the execution page: %v", time.Since(start).Round(time.Millisecond))

	// The panel's badge follows the target while its lines stream.
	waitJS(t, ctx, "output badge running", `document.querySelector('#log-panel [data-testid=log-state] .badge')?.dataset.state === 'running'`)
	waitJS(t, ctx, "all lines so far", `(document.querySelector('#log-panel [data-testid=log-out]')?.textContent || '').includes('line 149')`)
	screenshot(t, ctx, "e-execution-live")
	// The durations tick while it runs.
	for _, sel := range []string{"#exec-summary [data-testid=exec-duration]", "#log-panel [data-testid=log-duration]"} {
		waitJS(t, ctx, sel+" shown", `(document.querySelector('`+sel+`')?.textContent || '').trim() !== ''`)
		first := eEval[string](t, ctx, `document.querySelector('`+sel+`').textContent`)
		waitJS(t, ctx, sel+" ticks", `(document.querySelector('`+sel+`')?.textContent || '') !== `+jsString(first))
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// At the end the panel shows the stored output, still at its tail.
	waitJS(t, ctx, "final output", `document.querySelector('#log-panel [data-testid=log-state] .badge')?.dataset.state === 'succeeded' && document.querySelector('#log-panel [sse-connect]') === null && (document.querySelector('#log-panel [data-testid=log-out]')?.textContent || '').includes('the end')`)
	waitJS(t, ctx, "output at its tail", `(p => p.scrollHeight > p.clientHeight + 50 && p.scrollHeight - p.scrollTop - p.clientHeight < 8)(document.querySelector('#log-panel [data-testid=log-out]'))`)
	waitJS(t, ctx, "outcome succeeded", `document.querySelector('#exec-summary [data-testid=outcome]')?.dataset.state === 'succeeded'`)
	durations := eEval[string](t, ctx, `document.querySelector('#exec-summary [data-testid=exec-duration]').textContent`)
	screenshot(t, ctx, "e-execution-end")

	// Output over the cap (8 KiB on this server): the head and the tail,
	// with how much was cut between them, and a note that names the cap.
	big := eRunDone(t, s, map[string]any{"target": map[string]any{"pcs": []string{"e3-a"}}, "shell": "sh",
		"script": "echo HEAD-MARK; head -c 30000 /dev/zero | tr '\\0' x; echo; echo TAIL-MARK"})
	e := eExecOf(t, s, big)
	if len(e.Targets) != 1 || !e.Targets[0].Truncated || !strings.HasPrefix(e.Targets[0].Stdout, "HEAD-MARK\n") ||
		!strings.HasSuffix(e.Targets[0].Stdout, "\nTAIL-MARK\n") || !strings.Contains(e.Targets[0].Stdout, " bytes cut …") {
		t.Errorf("stored output over the cap: %+v; want truncated, from HEAD-MARK to TAIL-MARK with a marker", e.Targets)
	}
	eNavigate(t, ctx, s, "/executions/"+big)
	waitJS(t, ctx, "head, marker and tail", `(t => t.includes('HEAD-MARK') && /… [0-9,]+ bytes cut …/.test(t) && t.includes('TAIL-MARK'))(document.querySelector('#log-panel [data-testid=log-out]')?.textContent || '')`)
	if note := eEval[string](t, ctx, `document.querySelector('#log-panel [data-testid=truncated]')?.textContent || ''`); !strings.Contains(note, "truncated at 8 KiB") {
		t.Errorf("truncation note %q, want it to name the 8 KiB cap", note)
	}
	if durations == "" {
		t.Error("no duration once the execution ended")
	}
}

// jsString quotes s as a JavaScript string.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

// TestBrowser_Point11_TitleAndFilters (issue 28, point 11): runs and deploys
// take an optional title, stored, audited and answered by the API; the
// executions list shows the title (or the script's first line, or the
// job) and the target in words, and filters by PC, title, initiator and
// outcome, in its form and in /api/executions.
func TestBrowser_Point11_TitleAndFilters(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "e11-a", []string{"canary"}, "")
	startAgent(t, s, "e11-b", []string{"canary"}, "")
	s.waitOnline(t, "e11-a", "e11-b")

	one := eRunDone(t, s, map[string]any{"target": map[string]any{"pcs": []string{"e11-a"}}, "shell": "sh", "script": "echo one",
		"title": "  INC-4242 printer queue "})
	two := eRunDone(t, s, map[string]any{"target": map[string]any{"groups": []string{"canary"}}, "shell": "sh", "script": "\n  hostname  \necho two"})
	all := eRunDone(t, s, map[string]any{"target": map[string]any{"all": true}, "shell": "sh", "script": "exit 1", "title": "all-hands check"})
	manifest := `{"id": "e11-job", "version": "1", "target": {"pcs": ["e11-b"]}, "execute": {"shell": "sh", "script": "echo job", "timeout": "30s"}}`
	var dep eExec
	if code := ePostRaw(t, s, "/api/deploy?title="+url.QueryEscape("CHG-7 weekly"), "application/json", manifest, &dep); code != http.StatusAccepted {
		t.Fatalf("POST /api/deploy?title= = %d", code)
	}
	s.waitExec(t, dep.ExecID, completed)

	if e := eExecOf(t, s, one); e.Title != "INC-4242 printer queue" {
		t.Errorf("title %q, want the trimmed %q", e.Title, "INC-4242 printer queue")
	}
	if e := eExecOf(t, s, dep.ExecID); e.Title != "CHG-7 weekly" || e.JobID != "e11-job" {
		t.Errorf("deploy: title %q, job %q; want CHG-7 weekly, e11-job", e.Title, e.JobID)
	}
	// A title that is not one line of text is refused and runs nothing.
	var apiErr apiErrorBody
	if code := s.post(t, "/api/run", map[string]any{"target": map[string]any{"pcs": []string{"e11-a"}}, "shell": "sh", "script": "echo x",
		"title": "two\nlines"}, &apiErr); code != http.StatusBadRequest || len(apiErr.Error.Details) == 0 || apiErr.Error.Details[0].Field != "title" {
		t.Errorf("a two-line title: %d %+v, want 400 naming the title", code, apiErr)
	}
	if code := s.post(t, "/api/run", map[string]any{"target": map[string]any{"pcs": []string{"e11-a"}}, "shell": "sh", "script": "echo x",
		"title": strings.Repeat("x", 201)}, &apiErr); code != http.StatusBadRequest {
		t.Errorf("a 201-character title: %d, want 400", code)
	}
	for q, want := range map[string][]string{
		"title=4242":                    {one},
		"title=PRINTER":                 {one},
		"pc_id=e11-b":                   {two, all, dep.ExecID},
		"pc_id=e11-a&title=all-hands":   {all},
		"initiated_by=dev":              {one, two, all, dep.ExecID},
		"initiated_by=nobody":           {},
		"status=failed":                 {all},
		"outcome=succeeded&pc_id=e11-a": {one, two},
		"title=%25":                     {},
	} {
		if got := eListIDs(t, s, q); !slices.Equal(got, eSorted(want...)) {
			t.Errorf("GET /api/executions?%s = %v, want %v", q, got, eSorted(want...))
		}
	}
	if code := s.get(t, "/api/executions?pc_id=no%20such", nil); code != http.StatusBadRequest {
		t.Errorf("?pc_id= with a space: %d, want 400", code)
	}
	// The audit event of the run keeps the title (the audit log is
	// projected from its stream, a moment later).
	checkFor(t, 10*time.Second, func() error {
		var audit struct {
			Events []struct {
				Target string         `json:"target"`
				Detail map[string]any `json:"detail"`
			} `json:"events"`
		}
		s.get(t, "/api/audit?action=run", &audit)
		for _, ev := range audit.Events {
			if ev.Target == one {
				if ev.Detail["title"] != "INC-4242 printer queue" {
					return fmt.Errorf("the audit event of run %s: %+v, want the title", one, ev.Detail)
				}
				return nil
			}
		}
		return fmt.Errorf("no audit event of run %s in %+v", one, audit.Events)
	})

	ctx := newBrowser(t)
	eNavigate(t, ctx, s, "/executions")
	waitJS(t, ctx, "four executions", `document.querySelectorAll('[data-testid=exec-row]').length === 4`)
	rows := eEval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('[data-testid=exec-row]')].map(r => [r.querySelector('a.mono').textContent, r.querySelector('[data-testid=exec-what]').textContent.replace(/\s+/g, ' ').trim() + ' | ' + r.querySelector('[data-testid=exec-target]').textContent.replace(/\s+/g, ' ').trim()]))`)
	nAll := eExecOf(t, s, all).TargetCount
	want := map[string]string{
		one:        "INC-4242 printer queue echo one | e11-a",
		two:        "hostname | group canary, 2 PCs",
		all:        fmt.Sprintf("all-hands check exit 1 | all agents, %d PCs", nAll),
		dep.ExecID: "CHG-7 weekly e11-job | e11-b",
	}
	for id, w := range want {
		if rows[id] != w {
			t.Errorf("row %s reads %q, want %q", id, rows[id], w)
		}
	}
	screenshot(t, ctx, "e-executions")

	// The filters: typing a title, choosing an outcome, a PC, an initiator.
	eSetFilter(t, ctx, "title", "4242", "keyup")
	waitJS(t, ctx, "filtered by title", `document.querySelectorAll('[data-testid=exec-row]').length === 1 && document.querySelector('[data-testid=exec-row]').textContent.includes('`+one+`') && location.search.includes('title=4242')`)
	eSetFilter(t, ctx, "title", "", "keyup")
	waitJS(t, ctx, "title filter cleared", `document.querySelectorAll('[data-testid=exec-row]').length === 4`)
	eSetFilter(t, ctx, "pc_id", "e11-a", "keyup")
	waitJS(t, ctx, "filtered by PC", `document.querySelectorAll('[data-testid=exec-row]').length === 3 && location.search.includes('pc_id=e11-a')`)
	eSetFilter(t, ctx, "status", "failed", "change")
	waitJS(t, ctx, "filtered by PC and outcome", `document.querySelectorAll('[data-testid=exec-row]').length === 1 && document.querySelector('[data-testid=exec-row]').textContent.includes('`+all+`')`)
	eSetFilter(t, ctx, "initiated_by", "nobody", "keyup")
	waitJS(t, ctx, "no execution by nobody", `document.querySelectorAll('[data-testid=exec-row]').length === 0 && document.querySelector('#exec-table').textContent.includes('No executions match')`)
	// The URL keeps the filters: reloading it shows the same.
	eNavigate(t, ctx, s, "/executions?pc_id=e11-a&status=failed&initiated_by=dev")
	waitJS(t, ctx, "filters from the URL", `document.querySelectorAll('[data-testid=exec-row]').length === 1 && document.querySelector('input[name=pc_id]').value === 'e11-a' && document.querySelector('select[name=status]').value === 'failed' && document.querySelector('input[name=initiated_by]').value === 'dev'`)
	screenshot(t, ctx, "e-executions-filtered")
}

// eSetFilter types value into the list filter named name and fires event.
func eSetFilter(t *testing.T, ctx context.Context, name, value, event string) {
	t.Helper()
	expr := `(el => { el.value = ` + jsString(value) + `; el.dispatchEvent(new Event('` + event + `', {bubbles: true})); })(document.querySelector('form.filters [name=` + name + `]'))`
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](expr)); err != nil {
		t.Fatal(err)
	}
}

// ePostRaw posts body with content type ct and decodes the JSON answer.
func ePostRaw(t *testing.T, s *testServer, path, ct, body string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		_ = jsonDecode(resp, v)
	}
	return resp.StatusCode
}

// TestBrowser_Point12_RunAgainRerunCopyDownload (issue 28, point 12): Run
// again opens the Run form with what ran; Re-run on failed asks, naming
// the count, then runs the same on the failed PCs only (a job is deployed
// to them); a target's output can be copied and downloaded.
func TestBrowser_Point12_RunAgainRerunCopyDownload(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "e12-a", nil, "")
	startAgent(t, s, "e12-b", nil, "")
	startAgent(t, s, "e12-c", nil, "")
	s.waitOnline(t, "e12-a", "e12-b", "e12-c")
	script := "echo out-$KANADE_PC_ID\ncase $KANADE_PC_ID in e12-a) exit 0 ;; esac\necho boom >&2; exit 2"
	id := eRunDone(t, s, map[string]any{"target": map[string]any{"pcs": []string{"e12-a", "e12-b", "e12-c"}}, "shell": "sh",
		"script": script, "timeout": "45s", "title": "INC-9"})

	ctx := newBrowser(t)
	// Run again: the Run form holds what ran.
	eNavigate(t, ctx, s, "/executions/"+id)
	dialogs := make(chan string, 8)
	go func() {
		for ev, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			dialogs <- ev.Message
		}
	}()
	click(t, ctx, `[data-testid=run-again]`)
	waitJS(t, ctx, "the Run form with the script", `document.querySelector('textarea[name=script]')?.value === `+jsString(script))
	form := eEval[map[string]string](t, ctx, `Object.fromEntries(['shell', 'timeout', 'pcs', 'title', 'target_mode'].map(n => [n, document.querySelector('form [name='+n+']:not([type=radio]), form [name='+n+']:checked')?.value ?? '(none)']))`)
	if form["shell"] != "sh" || form["timeout"] != "45s" || !strings.Contains(form["pcs"], "e12-a") || !strings.Contains(form["pcs"], "e12-c") ||
		form["title"] != "INC-9" || form["target_mode"] != "pcs" {
		t.Errorf("Run again form %v; want shell sh, timeout 45s, pcs e12-a…e12-c, title INC-9, target_mode pcs", form)
	}
	screenshot(t, ctx, "e-run-again")

	// Re-run on failed: confirmed by count, then only e12-b and e12-c.
	eNavigate(t, ctx, s, "/executions/"+id)
	if msg := eClickUntilAsked(t, ctx, `[data-testid=rerun-failed]`, dialogs); !strings.Contains(msg, "2 PCs") {
		t.Errorf("confirmation %q does not name the 2 PCs", msg)
	}
	waitJS(t, ctx, "the new execution's page", `location.pathname.startsWith('/executions/') && location.pathname !== '/executions/`+id+`'`)
	again := strings.TrimPrefix(eEval[string](t, ctx, `location.pathname`), "/executions/")
	s.waitExec(t, again, completed)
	e := eExecOf(t, s, again)
	var pcs []string
	for _, tr := range e.Targets {
		pcs = append(pcs, tr.PCID)
	}
	if e.Script != script || e.JobID != "adhoc" || !slices.Equal(pcs, []string{"e12-b", "e12-c"}) || !strings.Contains(e.Title, "INC-9") {
		t.Errorf("re-run: job %s, targets %v, title %q, same script %v; want adhoc on e12-b, e12-c", e.JobID, pcs, e.Title, e.Script == script)
	}

	// A job's Re-run on failed deploys the job to the failed PC.
	manifest := `{"id": "e12-job", "version": "3", "target": {"pcs": ["e12-a", "e12-b"]}, "execute": {"shell": "sh", "script": ` +
		`"[ \"$KANADE_PC_ID\" = e12-b ] && exit 4; echo fine", "timeout": "30s"}}`
	var dep eExec
	if code := ePostRaw(t, s, "/api/deploy", "application/json", manifest, &dep); code != http.StatusAccepted {
		t.Fatalf("POST /api/deploy = %d", code)
	}
	s.waitExec(t, dep.ExecID, completed)
	eNavigate(t, ctx, s, "/executions/"+dep.ExecID)
	asked := eClickUntilAsked(t, ctx, `[data-testid=rerun-failed]`, dialogs)
	if !strings.Contains(asked, "1 PC") || !strings.Contains(asked, "e12-job") {
		t.Errorf("confirmation %q does not name the PC and the job", asked)
	}
	waitJS(t, ctx, "the job's new execution", `location.pathname.startsWith('/executions/') && location.pathname !== '/executions/`+dep.ExecID+`'`)
	jobAgain := strings.TrimPrefix(eEval[string](t, ctx, `location.pathname`), "/executions/")
	ja := s.waitExec(t, jobAgain, completed)
	if ja.JobID != "e12-job" || len(ja.Targets) != 1 || ja.Targets[0].PCID != "e12-b" {
		t.Errorf("job re-run: job %s, targets %+v; want e12-job on e12-b", ja.JobID, ja.Targets)
	}

	// Copy and Download a target's output.
	eNavigate(t, ctx, s, "/executions/"+id+"?pc=e12-b")
	waitJS(t, ctx, "e12-b's output", `(document.querySelector('#log-panel')?.textContent || '').includes('boom')`)
	if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "clipboard-read"}, Setting: browser.PermissionSettingGranted, Origin: s.URL}); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `[data-testid=copy-output]`)
	waitJS(t, ctx, "copied", `document.querySelector('[data-testid=copy-output]').dataset.state === 'copied'`)
	copied, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(copied, "out-e12-b") || !strings.Contains(copied, "boom") {
		t.Errorf("copied %q, want e12-b's stdout and stderr", copied)
	}
	dl, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`fetch(document.querySelector('[data-testid=download-output]').href).then(async r => [String(r.status), r.headers.get('content-type'), r.headers.get('content-disposition'), await r.text()])`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 4 || dl[0] != "200" || !strings.HasPrefix(dl[1], "text/plain") || dl[2] != `attachment; filename="`+id+`-e12-b.log"` ||
		!strings.Contains(dl[3], "out-e12-b") || !strings.Contains(dl[3], "boom") {
		t.Errorf("download = %q; want 200 text/plain, attachment %s-e12-b.log with stdout and stderr", dl, id)
	}
	screenshot(t, ctx, "e-execution-output")
}

// eSSEClients is the number of live streams the server holds open.
func eSSEClients(t *testing.T, s *testServer) int {
	t.Helper()
	resp := s.open(t, context.Background(), "/metrics")
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "kanade_sse_clients "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("kanade_sse_clients %q: %v", v, err)
			}
			return int(n)
		}
	}
	t.Fatal("no kanade_sse_clients in /metrics")
	return 0
}

// TestBrowser_Point3_LeftPagesCloseTheirStreams (issue 28, point 3): a live
// execution page that the user leaves closes its streams, also when the
// browser keeps the page in its back/forward cache; otherwise each left
// page holds connections and, a few pages on, every request of the GUI
// waits about a minute for one.
func TestBrowser_Point3_LeftPagesCloseTheirStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "e3-b", nil, "")
	s.waitOnline(t, "e3-b")
	ctx := newBrowser(t)
	gate := filepath.Join(t.TempDir(), "gate")
	t.Cleanup(func() { _ = os.WriteFile(gate, nil, 0o600) })
	for i := range 4 {
		id := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"e3-b"}}, "shell": "sh",
			"script": fmt.Sprintf("echo page %d; while [ ! -f %s ]; do sleep 0.05; done", i, shQuote(gate))}).ExecID
		eNavigate(t, ctx, s, "/executions/"+id)
		waitJS(t, ctx, "live output", fmt.Sprintf(`(document.querySelector('#log-panel [data-testid=log-out]')?.textContent || '').includes('page %d')`, i))
		start := time.Now()
		eNavigate(t, ctx, s, "/agents")
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("leaving live page %d took %v", i, d)
		}
		// Left behind: the execution's stream and its output's; the top
		// bar's own stream stays.
		checkFor(t, 10*time.Second, func() error {
			if n := eSSEClients(t, s); n > 1 {
				return fmt.Errorf("%d live streams open after leaving page %d, want at most the top bar's", n, i)
			}
			return nil
		})
	}
}

// eClickUntilAsked clicks selector until the page asks a question (on
// dialogs) and returns it. The summary holding the button may be swapped
// by a live update right after the page loads, and a click on the element
// being replaced is lost.
func eClickUntilAsked(t *testing.T, ctx context.Context, selector string, dialogs <-chan string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		click(t, ctx, selector)
		select {
		case msg := <-dialogs:
			return msg
		case <-time.After(2 * time.Second):
		}
	}
	t.Fatalf("%s did not ask first", selector)
	return ""
}
