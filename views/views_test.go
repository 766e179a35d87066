package views

import (
	"bytes"
	"context"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a-h/templ"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/kanadehq/kanade/static"
)

// shots, when set, makes TestRenderShots write sample pages and the static
// assets there, for looking at them in a browser:
//
//	go test ./views -run TestRenderShots -shots /tmp/kanade-shots
var shots = flag.String("shots", "", "directory to write sample pages to (TestRenderShots)")

// xss is hostile text that must come out as text, never as markup.
const xss = `<script>alert(1)</script><img src=x onerror=alert(2)>`

func sampleLayout(nav string) Layout {
	return Layout{Title: "Sample", Nav: nav, DevMode: true, CSRFToken: `tok"en</x>`, User: "alice", Role: "operator", Version: "v0.1.0-dev"}
}

func sampleAgentList() AgentListModel {
	rows := []AgentRow{
		{PCID: "PC-0001", Hostname: "tokyo-fin-01", OS: "Windows 11 Pro", OSVersion: "23H2 (22631.4460)", Arch: "amd64", AgentVersion: "0.1.0", Groups: []string{"canary", "finance"}, Online: true, LastSeen: TimeText{"4s ago", "2026-11-28T10:41:56Z"}, URL: "/agents/PC-0001"},
		{PCID: "PC-0002", Hostname: "tokyo-fin-02", OS: "Windows 11 Pro", OSVersion: "23H2 (22631.4460)", Arch: "amd64", AgentVersion: "0.1.0", Groups: []string{"finance"}, Online: true, HeartbeatLate: true, LastSeen: TimeText{"51s ago", "2026-11-28T10:41:09Z"}, URL: "/agents/PC-0002"},
		{PCID: "PC-0003", Hostname: "osaka-ops-07", OS: "Windows 10 Enterprise", OSVersion: "22H2 (19045.5131)", Arch: "amd64", AgentVersion: "0.0.9", Groups: []string{"wave1"}, Online: false, LastSeen: TimeText{"3h ago", "2026-11-28T07:40:00Z"}, URL: "/agents/PC-0003"},
		{PCID: "PC-0004", Hostname: "kiosk-lobby", OS: "Windows 11 IoT", OSVersion: "24H2", Arch: "arm64", AgentVersion: "0.1.0", Online: true, LastSeen: TimeText{"2s ago", "2026-11-28T10:41:58Z"}, URL: "/agents/PC-0004"},
		{PCID: "LNX-0101", Hostname: "build-runner-1", OS: "Debian", OSVersion: "13", Arch: "amd64", AgentVersion: "0.1.0", Groups: []string{"servers", "wave1", "linux"}, Online: true, LastSeen: TimeText{"1s ago", "2026-11-28T10:41:59Z"}, URL: "/agents/LNX-0101"},
		{PCID: "PC-0005", Hostname: xss, OS: "Windows 11 Pro", OSVersion: "23H2", Arch: "amd64", AgentVersion: "0.1.0", Groups: []string{xss}, Online: false, LastSeen: TimeText{"—", ""}, URL: "/agents/PC-0005"},
	}
	return AgentListModel{
		Q: "", Status: "", Group: "", Groups: []string{"canary", "finance", "linux", "servers", "wave1"},
		Rows: rows, Pager: Pager{Total: 1240, From: 1, To: 50, NextURL: "/agents?offset=50"}, Online: 1187, Total: 1240,
	}
}

func sampleCounts() Counts {
	return Counts{N: map[string]int{"pending": 40, "running": 212, "succeeded": 930, "failed": 31, "timed_out": 6, "killed": 2, "skipped": 9, "expired": 10}, Total: 1240}
}

func sampleExecRows() []ExecRow {
	return []ExecRow{
		{ExecID: "7f3a9c2e", JobID: "adhoc", Status: "running", InitiatedBy: "alice", Created: TimeText{"2m ago", "2026-11-28T10:40:00Z"}, Counts: sampleCounts(), URL: "/executions/7f3a9c2e"},
		{ExecID: "5b21e0d4", JobID: "inventory.refresh", Status: "completed", InitiatedBy: "scheduler", Created: TimeText{"1h ago", "2026-11-28T09:42:00Z"}, Counts: Counts{N: map[string]int{"succeeded": 1180, "failed": 3, "expired": 57}, Total: 1240}, URL: "/executions/5b21e0d4"},
		{ExecID: "c0ffee11", JobID: "adhoc", Status: "killed", InitiatedBy: "bob", Created: TimeText{"3h ago", "2026-11-28T07:42:00Z"}, Counts: Counts{N: map[string]int{"succeeded": 2, "killed": 10}, Total: 12}, URL: "/executions/c0ffee11"},
		{ExecID: "9e8d7c6b", JobID: "office.update", Status: "awaiting_approval", InitiatedBy: "carol", Created: TimeText{"5h ago", "2026-11-28T05:42:00Z"}, Counts: Counts{N: map[string]int{"pending": 1100, "succeeded": 140}, Total: 1240}, URL: "/executions/9e8d7c6b"},
	}
}

func sampleTargets() TargetTableModel {
	return TargetTableModel{
		ExecID: "7f3a9c2e",
		URL:    "/executions/7f3a9c2e/targets?state=&offset=0",
		Rows: []TargetRow{
			{ExecID: "7f3a9c2e", PCID: "PC-0001", State: "succeeded", ExitCode: "0", Started: TimeText{"2m ago", "2026-11-28T10:40:03Z"}, Duration: "1.4s", LogURL: "/executions/7f3a9c2e?pc=PC-0001"},
			{ExecID: "7f3a9c2e", PCID: "PC-0002", State: "failed", ExitCode: "1", Reason: "exit status 1", Started: TimeText{"2m ago", "2026-11-28T10:40:04Z"}, Duration: "3.0s", LogURL: "/executions/7f3a9c2e?pc=PC-0002", Selected: true},
			{ExecID: "7f3a9c2e", PCID: "PC-0003", State: "running", Started: TimeText{"58s ago", "2026-11-28T10:41:02Z"}, Duration: "58s", LogURL: "/executions/7f3a9c2e?pc=PC-0003"},
			{ExecID: "7f3a9c2e", PCID: "PC-0004", State: "timed_out", ExitCode: "", Reason: "timeout after 60s", Started: TimeText{"2m ago", "2026-11-28T10:40:05Z"}, Duration: "60.0s", Truncated: true, LogURL: "/executions/7f3a9c2e?pc=PC-0004"},
			{ExecID: "7f3a9c2e", PCID: "PC-0005", State: "pending", Started: TimeText{"—", ""}, LogURL: "/executions/7f3a9c2e?pc=PC-0005"},
			{ExecID: "7f3a9c2e", PCID: "PC-0006", State: "skipped", Reason: "emergency stop", Started: TimeText{"—", ""}, LogURL: "/executions/7f3a9c2e?pc=PC-0006"},
			{ExecID: "7f3a9c2e", PCID: "PC-0007", State: "killed", ExitCode: "-1", Reason: "killed by alice", Started: TimeText{"2m ago", "2026-11-28T10:40:05Z"}, Duration: "41.2s", LogURL: "/executions/7f3a9c2e?pc=PC-0007"},
			{ExecID: "7f3a9c2e", PCID: "PC-0008", State: "expired", Reason: "deadline passed while offline", Started: TimeText{"—", ""}, LogURL: "/executions/7f3a9c2e?pc=PC-0008"},
			{ExecID: "7f3a9c2e", PCID: "PC-0009", State: "lost", Reason: "the agent went offline and never reported the end", Started: TimeText{"20m ago", "2026-11-28T10:20:05Z"}, LogURL: "/executions/7f3a9c2e?pc=PC-0009"},
		},
		Pager: Pager{Total: 1240, From: 1, To: 50, NextURL: "/executions/7f3a9c2e/targets?offset=50"},
	}
}

func sampleExec() ExecModel {
	rows := sampleExecRows()
	return ExecModel{
		Summary: ExecSummaryModel{
			Exec: rows[0], Shell: "powershell", Timeout: "60s",
			Deadline: TimeText{"in 58m", "2026-11-28T11:40:00Z"}, Finished: TimeText{"—", ""},
			Killable: true, KillURL: "/executions/7f3a9c2e/kill", KillConfirm: "Kill execution 7f3a9c2e on 1,240 PCs?", CSRFToken: "tok",
		},
		Script:  "Get-Service Spooler | Restart-Service -Force\nGet-Service Spooler | Select-Object Status, Name\n" + xss,
		Targets: sampleTargets(),
		Log: LogModel{
			ExecID: "7f3a9c2e", PCID: "PC-0002", State: "failed",
			Stdout:    "Restarting Spooler...\nStatus   Name\n------   ----\nStopped  Spooler\n" + xss + "\n",
			Stderr:    "Restart-Service : Service 'Print Spooler (Spooler)' cannot be started due to the following error:\n    Cannot open Spooler service on computer '.'.\nAt line:1 char:23\n",
			Truncated: true, StreamURL: "/executions/7f3a9c2e/stream?pc=PC-0002", PanelURL: "/executions/7f3a9c2e/log?pc=PC-0002",
		},
		EventsURL:  "/executions/7f3a9c2e/events",
		SummaryURL: "/executions/7f3a9c2e/summary",
	}
}

func sampleRun() RunModel {
	return RunModel{
		TargetMode: "groups", Groups: "canary, finance", Shell: "powershell", Shells: []string{"powershell", "pwsh", "cmd", "sh"},
		Script:  "Get-ComputerInfo | Select-Object CsName, OsName, OsVersion\n",
		Timeout: "6o s",
		Errors:  map[string]string{"timeout": `"6o s" is not a duration; write it like 60s, 5m or 1h30m`, "": "Fix the timeout below, then run again."},
		Preview: RunPreviewModel{Matched: 214, Online: 201},
	}
}

func sampleAgent() AgentModel {
	a := sampleAgentList().Rows[0]
	return AgentModel{
		Agent: a, Interval: "30s", Running: 1, FirstSeen: TimeText{"12d ago", "2026-11-16T08:00:00Z"},
		Recent: sampleTargets().Rows[:3], RunURL: "/run?target_mode=pcs&pcs=PC-0001",
	}
}

// render renders c and parses the result.
func render(t *testing.T, c templ.Component) (string, *html.Node) {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatalf("Render: %v", err)
	}
	doc, err := html.Parse(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatalf("html.Parse: %v", err)
	}
	return buf.String(), doc
}

// walk calls fn for every element node under n.
func walk(n *html.Node, fn func(*html.Node)) {
	if n.Type == html.ElementNode {
		fn(n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// find returns the elements under n for which match is true.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	walk(n, func(e *html.Node) {
		if match(e) {
			out = append(out, e)
		}
	})
	return out
}

func byAttr(key, val string) func(*html.Node) bool {
	return func(n *html.Node) bool { v, ok := attr(n, key); return ok && v == val }
}

func byTag(tag string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == tag }
}

// text returns the text content of n.
func text(n *html.Node) string {
	var b strings.Builder
	var f func(*html.Node)
	f = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			f(c)
		}
	}
	f(n)
	return b.String()
}

// testids counts the data-testid values under n.
func testids(n *html.Node) map[string]int {
	m := map[string]int{}
	walk(n, func(e *html.Node) {
		if v, ok := attr(e, "data-testid"); ok {
			m[v]++
		}
	})
	return m
}

// pages are every full page, with sample models.
func pages() []struct {
	name string
	c    templ.Component
} {
	return []struct {
		name string
		c    templ.Component
	}{
		{"dashboard", DashboardPage(sampleLayout("dashboard"), DashboardModel{Online: 1187, Offline: 53, Total: 1240, Recent: sampleExecRows()})},
		{"agents", AgentListPage(sampleLayout("agents"), sampleAgentList())},
		{"agent", AgentPage(sampleLayout("agents"), sampleAgent())},
		{"run", RunPage(sampleLayout("run"), sampleRun())},
		{"executions", ExecListPage(sampleLayout("executions"), ExecListModel{Rows: sampleExecRows(), Pager: Pager{Total: 4, From: 1, To: 4}})},
		{"exec", ExecPage(sampleLayout("executions"), sampleExec())},
		{"error", ErrorPage(sampleLayout(""), ErrorModel{Code: 404, Title: "Not found", Message: "No agent " + xss})},
	}
}

func TestPages_TestIDs(t *testing.T) {
	tests := []struct {
		name string
		c    templ.Component
		want map[string]int // data-testid → count; only these keys are compared
	}{
		{"agents", AgentListPage(sampleLayout("agents"), sampleAgentList()), map[string]int{"agent-row": 6, "dev-banner": 1, "empty-state": 0}},
		{"agents empty", AgentListPage(sampleLayout("agents"), AgentListModel{}), map[string]int{"agent-row": 0, "empty-state": 1}},
		{"agent", AgentPage(sampleLayout("agents"), sampleAgent()), map[string]int{"result-row": 3, "run-on-pc": 1}},
		{"dashboard", DashboardPage(sampleLayout("dashboard"), DashboardModel{Online: 1, Offline: 2, Total: 3, Recent: sampleExecRows()}), map[string]int{"stat-online": 1, "stat-offline": 1, "stat-total": 1, "exec-row": 4, "progress": 4}},
		{"dashboard empty", DashboardPage(sampleLayout("dashboard"), DashboardModel{}), map[string]int{"exec-row": 0, "empty-state": 1}},
		{"run", RunPage(sampleLayout("run"), sampleRun()), map[string]int{"run-button": 1, "run-preview": 1, "error-timeout": 1, "form-error": 1, "error-pcs": 0}},
		{"executions", ExecListPage(sampleLayout("executions"), ExecListModel{Rows: sampleExecRows()}), map[string]int{"exec-row": 4, "progress": 4}},
		{"exec", ExecPage(sampleLayout("executions"), sampleExec()), map[string]int{"kill-button": 1, "target-row": 9, "log-out": 1, "log-err": 1, "truncated": 1, "live": 1, "script": 1, "progress": 1}},
		{"error", ErrorPage(sampleLayout(""), ErrorModel{Code: 500, Title: "Oops"}), map[string]int{"error": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, doc := render(t, tt.c)
			got := testids(doc)
			gotSome := map[string]int{}
			for k := range tt.want {
				gotSome[k] = got[k]
			}
			if diff := cmp.Diff(tt.want, gotSome); diff != "" {
				t.Errorf("data-testid counts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPages_StateBadges(t *testing.T) {
	_, doc := render(t, ExecPage(sampleLayout("executions"), sampleExec()))
	var got []string
	for _, row := range find(doc, byAttr("data-testid", "target-row")) {
		for _, b := range find(row, func(n *html.Node) bool { _, ok := attr(n, "data-state"); return ok }) {
			s, _ := attr(b, "data-state")
			got = append(got, s+"="+strings.TrimSpace(text(b)))
		}
	}
	want := []string{"succeeded=succeeded", "failed=failed", "running=running", "timed_out=timed out", "pending=pending", "skipped=skipped", "killed=killed", "expired=expired", "lost=lost"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("target row badges (-want +got):\n%s", diff)
	}
}

// TestPages_CSP checks what our Content-Security-Policy forbids: inline
// script bodies, style attributes and inline event handlers.
func TestPages_CSP(t *testing.T) {
	for _, p := range pages() {
		t.Run(p.name, func(t *testing.T) {
			out, doc := render(t, p.c)
			scripts := 0
			walk(doc, func(n *html.Node) {
				for _, a := range n.Attr {
					if a.Key == "style" || strings.HasPrefix(a.Key, "on") || strings.HasPrefix(a.Key, "hx-on") {
						t.Errorf("<%s %s=%q>: inline style or handler", n.Data, a.Key, a.Val)
					}
				}
				switch n.Data {
				case "script":
					scripts++
					if src, _ := attr(n, "src"); !strings.HasPrefix(src, "/static/") {
						t.Errorf("<script src=%q>: want a /static/ script", src)
					}
					if body := text(n); body != "" {
						t.Errorf("inline script body %q", body)
					}
				case "style":
					t.Errorf("inline <style> element")
				}
			})
			if scripts != 3 {
				t.Errorf("%d <script> elements, want 3 (htmx, sse, kanade.js)", scripts)
			}
			if strings.Contains(out, "<script>") {
				t.Errorf("output contains a raw <script> tag")
			}
		})
	}
}

func TestPages_Escaping(t *testing.T) {
	for _, p := range pages() {
		t.Run(p.name, func(t *testing.T) {
			out, doc := render(t, p.c)
			if strings.Contains(out, "<img") {
				t.Errorf("output contains a raw <img> from hostile text")
			}
			if n := len(find(doc, byTag("img"))); n != 0 {
				t.Errorf("%d <img> elements parsed, want 0", n)
			}
		})
	}
	// Where hostile text is shown, it is shown as text.
	tests := []struct {
		name string
		c    templ.Component
		id   string // data-testid of the element whose text must contain xss
	}{
		{"stdout", LogPanel(sampleExec().Log), "log-out"},
		{"stderr", LogPanel(LogModel{PCID: "p", State: "failed", Stderr: xss}), "log-err"},
		{"live", LogPanel(LogModel{PCID: "p", State: "running", Live: true, Stdout: xss}), "log-out"},
		{"script", ExecPage(sampleLayout(""), sampleExec()), "script"},
		{"error", ErrorPage(sampleLayout(""), ErrorModel{Title: "x", Message: xss}), "error"},
		{"preview", RunPreview(RunPreviewModel{Error: xss}), "run-preview"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, doc := render(t, tt.c)
			els := find(doc, byAttr("data-testid", tt.id))
			if len(els) != 1 {
				t.Fatalf("%d elements with data-testid=%q, want 1", len(els), tt.id)
			}
			if got := text(els[0]); !strings.Contains(got, xss) {
				t.Errorf("text of %q = %q, want it to contain %q", tt.id, got, xss)
			}
		})
	}
}

func TestLogChunk(t *testing.T) {
	tests := []struct {
		name, stream, data string
		want               string
	}{
		{"stdout", "stdout", "hello\n", `<span class="out">hello` + "\n" + `</span>`},
		{"stderr", "stderr", "oops", `<span class="err">oops</span>`},
		{"escaped", "stdout", "<b>&", `<span class="out">&lt;b&gt;&amp;</span>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := render(t, LogChunk(tt.stream, tt.data))
			if got != tt.want {
				t.Errorf("LogChunk(%q, %q) = %q, want %q", tt.stream, tt.data, got, tt.want)
			}
		})
	}
}

func TestLogPanel(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		_, doc := render(t, LogPanel(LogModel{Empty: true}))
		if got := text(doc); !strings.Contains(got, "Select a target to see its output") {
			t.Errorf("text = %q, want the select-a-target hint", got)
		}
		if n := len(find(doc, byTag("pre"))); n != 0 {
			t.Errorf("%d <pre>, want 0", n)
		}
	})
	t.Run("live", func(t *testing.T) {
		m := LogModel{PCID: "PC-1", State: "running", Live: true, Stdout: "a\n", Stderr: "b\n", StreamURL: "/s?pc=PC-1", PanelURL: "/p?pc=PC-1"}
		_, doc := render(t, LogPanel(m))
		conn := find(doc, byAttr("sse-connect", m.StreamURL))
		if len(conn) != 1 {
			t.Fatalf("%d sse-connect=%q elements, want 1", len(conn), m.StreamURL)
		}
		got := map[string]string{}
		for _, k := range []string{"hx-ext", "sse-close"} {
			got[k], _ = attr(conn[0], k)
		}
		pre := find(conn[0], byAttr("data-testid", "log-out"))
		if len(pre) != 1 {
			t.Fatalf("%d log-out inside the stream, want 1", len(pre))
		}
		for _, k := range []string{"sse-swap", "hx-swap", "data-follow"} {
			got["pre "+k], _ = attr(pre[0], k)
		}
		got["pre text"] = text(pre[0])
		done := find(conn[0], byAttr("hx-trigger", "sse:done"))
		if len(done) != 1 {
			t.Fatalf("%d sse:done triggers, want 1", len(done))
		}
		for _, k := range []string{"hx-get", "hx-target", "hx-swap"} {
			got["done "+k], _ = attr(done[0], k)
		}
		want := map[string]string{
			"hx-ext": "sse", "sse-close": "done",
			"pre sse-swap": "chunk", "pre hx-swap": "beforeend", "pre data-follow": "", "pre text": "a\nb\n",
			"done hx-get": m.PanelURL, "done hx-target": "#log-panel", "done hx-swap": "innerHTML",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("live panel (-want +got):\n%s", diff)
		}
	})
	t.Run("finished", func(t *testing.T) {
		_, doc := render(t, LogPanel(LogModel{PCID: "PC-1", State: "succeeded", Stdout: "out"}))
		if n := len(find(doc, func(n *html.Node) bool { _, ok := attr(n, "sse-connect"); return ok })); n != 0 {
			t.Errorf("%d sse-connect elements in a finished panel, want 0", n)
		}
		ids := testids(doc)
		if ids["log-out"] != 1 || ids["log-err"] != 0 || ids["truncated"] != 0 {
			t.Errorf("testids = %v, want one log-out, no log-err, no truncated", ids)
		}
		if got := text(doc); !strings.Contains(got, "Output — PC-1") {
			t.Errorf("text = %q, want the header naming the PC", got)
		}
	})
}

func TestExecPage_LiveRegions(t *testing.T) {
	m := sampleExec()
	_, doc := render(t, ExecPage(sampleLayout("executions"), m))
	conn := find(doc, func(n *html.Node) bool { _, ok := attr(n, "sse-connect"); return ok })
	// The execution's stream; the log panel is not live in the sample.
	if len(conn) != 1 {
		t.Fatalf("%d sse-connect elements, want 1", len(conn))
	}
	if v, _ := attr(conn[0], "sse-connect"); v != m.EventsURL {
		t.Errorf("sse-connect = %q, want %q", v, m.EventsURL)
	}
	type region struct{ ID, Get, Trigger, Swap string }
	var got []region
	for _, id := range []string{"exec-summary", "exec-targets"} {
		els := find(conn[0], byAttr("id", id))
		if len(els) != 1 {
			t.Fatalf("%d #%s inside the stream, want 1", len(els), id)
		}
		r := region{ID: id}
		r.Get, _ = attr(els[0], "hx-get")
		r.Trigger, _ = attr(els[0], "hx-trigger")
		r.Swap, _ = attr(els[0], "hx-swap")
		got = append(got, r)
	}
	want := []region{
		{"exec-summary", m.SummaryURL, "sse:changed", "innerHTML"},
		{"exec-targets", m.Targets.URL, "sse:changed", "innerHTML"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("live regions (-want +got):\n%s", diff)
	}
	if n := len(find(conn[0], byAttr("data-live", ""))); n != 1 {
		t.Errorf("%d live indicators in the stream, want 1", n)
	}
	if n := len(find(doc, byAttr("id", "log-panel"))); n != 1 {
		t.Errorf("%d #log-panel, want 1", n)
	}
	sel := find(doc, func(n *html.Node) bool { v, _ := attr(n, "class"); return n.Data == "tr" && v == "selected" })
	if len(sel) != 1 || !strings.Contains(text(sel[0]), "PC-0002") {
		t.Errorf("selected rows = %d, want 1 (PC-0002)", len(sel))
	}
}

func TestExecSummary_Kill(t *testing.T) {
	m := sampleExec().Summary
	t.Run("killable", func(t *testing.T) {
		_, doc := render(t, ExecSummary(m))
		forms := find(doc, byAttr("hx-post", m.KillURL))
		if len(forms) != 1 {
			t.Fatalf("%d kill forms, want 1", len(forms))
		}
		got := map[string]string{}
		for _, k := range []string{"method", "action", "hx-confirm", "hx-target", "hx-swap"} {
			got[k], _ = attr(forms[0], k)
		}
		if in := find(forms[0], byAttr("name", "_csrf")); len(in) == 1 {
			got["_csrf"], _ = attr(in[0], "value")
		}
		want := map[string]string{"method": "post", "action": m.KillURL, "hx-confirm": m.KillConfirm, "hx-target": "#exec-summary", "hx-swap": "innerHTML", "_csrf": m.CSRFToken}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("kill form (-want +got):\n%s", diff)
		}
		if n := len(find(forms[0], byAttr("data-testid", "kill-button"))); n != 1 {
			t.Errorf("%d kill buttons in the form, want 1", n)
		}
	})
	t.Run("not killable", func(t *testing.T) {
		m := m
		m.Killable = false
		_, doc := render(t, ExecSummary(m))
		if n := testids(doc)["kill-button"]; n != 0 {
			t.Errorf("%d kill buttons, want 0", n)
		}
	})
}

func TestPartials_RootIDs(t *testing.T) {
	tests := []struct {
		name string
		c    templ.Component
		want string
	}{
		{"AgentTable", AgentTable(sampleAgentList()), "agent-table"},
		{"AgentTable empty", AgentTable(AgentListModel{}), "agent-table"},
		{"ExecTable", ExecTable(ExecListModel{Rows: sampleExecRows()}), "exec-table"},
		{"RunPreview", RunPreview(RunPreviewModel{Matched: 1}), "run-preview"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := render(t, tt.c)
			prefix := `<div id="` + tt.want + `"`
			if !strings.HasPrefix(out, prefix) {
				t.Errorf("%s starts with %.60q, want %q", tt.name, out, prefix)
			}
		})
	}
}

func TestRunPreview_Text(t *testing.T) {
	tests := []struct {
		name string
		p    RunPreviewModel
		want string
	}{
		{"many", RunPreviewModel{Matched: 1240, Online: 1187}, "1,240 agents match, 1,187 online"},
		{"one", RunPreviewModel{Matched: 1, Online: 0}, "1 agent matches, 0 online"},
		{"error", RunPreviewModel{Error: "no such group \"x\""}, `no such group "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, doc := render(t, RunPreview(tt.p))
			if got := text(doc); !strings.HasPrefix(got, tt.want) {
				t.Errorf("RunPreview(%+v) text = %q, want prefix %q", tt.p, got, tt.want)
			}
		})
	}
}

func TestRunPage_Form(t *testing.T) {
	l := sampleLayout("run")
	m := sampleRun()
	_, doc := render(t, RunPage(l, m))
	forms := find(doc, byAttr("data-testid", "run-form"))
	if len(forms) != 1 {
		t.Fatalf("%d run forms, want 1", len(forms))
	}
	f := forms[0]
	got := map[string]string{}
	got["method"], _ = attr(f, "method")
	got["action"], _ = attr(f, "action")
	for _, name := range []string{"_csrf", "pcs", "groups", "timeout"} {
		if in := find(f, byAttr("name", name)); len(in) == 1 {
			got[name], _ = attr(in[0], "value")
		}
	}
	for _, in := range find(f, byAttr("name", "target_mode")) {
		if _, ok := attr(in, "checked"); ok {
			got["target_mode"], _ = attr(in, "value")
		}
	}
	for _, o := range find(f, byTag("option")) {
		if _, ok := attr(o, "selected"); ok {
			got["shell"], _ = attr(o, "value")
		}
	}
	if ta := find(f, byAttr("name", "script")); len(ta) == 1 {
		got["script"] = text(ta[0])
	}
	if in := find(f, byAttr("name", "timeout")); len(in) == 1 {
		got["timeout aria-invalid"], _ = attr(in[0], "aria-invalid")
		got["timeout aria-describedby"], _ = attr(in[0], "aria-describedby")
	}
	if fs := find(f, byAttr("hx-get", "/run/preview")); len(fs) == 1 {
		got["preview on"] = fs[0].Data
		got["preview hx-include"], _ = attr(fs[0], "hx-include")
		got["preview hx-target"], _ = attr(fs[0], "hx-target")
		got["preview hx-trigger"], _ = attr(fs[0], "hx-trigger")
	}
	if e := find(f, byAttr("id", "err-timeout")); len(e) == 1 {
		got["timeout error"] = text(e[0])
	}
	want := map[string]string{
		"method": "post", "action": "/run", "_csrf": l.CSRFToken,
		"pcs": "", "groups": m.Groups, "timeout": m.Timeout, "target_mode": "groups", "shell": "powershell", "script": m.Script,
		"timeout aria-invalid": "true", "timeout aria-describedby": "err-timeout",
		"preview on": "fieldset", "preview hx-include": "closest form", "preview hx-target": "#run-preview",
		"preview hx-trigger": "change, keyup changed delay:300ms",
		"timeout error":      m.Errors["timeout"],
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("run form (-want +got):\n%s", diff)
	}
}

func TestAgentListPage_Search(t *testing.T) {
	m := sampleAgentList()
	m.Q, m.Status, m.Group, m.OS = "tokyo", "online", "finance", "linux"
	_, doc := render(t, AgentListPage(sampleLayout("agents"), m))
	boxes := find(doc, byAttr("data-search", ""))
	if len(boxes) != 1 {
		t.Fatalf("%d search boxes, want 1", len(boxes))
	}
	got := map[string]string{}
	for _, k := range []string{"name", "value", "hx-get", "hx-trigger", "hx-target", "hx-push-url", "hx-include"} {
		got[k], _ = attr(boxes[0], k)
	}
	for _, sel := range find(doc, byTag("select")) {
		name, _ := attr(sel, "name")
		for _, o := range find(sel, byTag("option")) {
			if _, ok := attr(o, "selected"); ok {
				got[name], _ = attr(o, "value")
			}
		}
	}
	want := map[string]string{
		"name": "q", "value": "tokyo", "hx-get": "/agents", "hx-trigger": "keyup changed delay:300ms, search",
		"hx-target": "#agent-table", "hx-push-url": "true", "hx-include": "closest form",
		"status": "online", "group": "finance", "os": "linux",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("agent filters (-want +got):\n%s", diff)
	}
}

// An online agent whose heartbeat is overdue says so in the list and on
// its page; the others do not.
func TestAgents_HeartbeatLate(t *testing.T) {
	m := sampleAgentList()
	_, doc := render(t, AgentListPage(sampleLayout("agents"), m))
	var late []string
	for _, row := range find(doc, byAttr("data-testid", "agent-row")) {
		if len(find(row, byAttr("data-testid", "heartbeat-late"))) > 0 {
			late = append(late, strings.TrimSpace(text(find(row, byTag("a"))[0])))
		}
	}
	if !cmp.Equal(late, []string{"PC-0002"}) {
		t.Errorf("rows marked heartbeat late = %v, want [PC-0002]", late)
	}
	for _, tt := range []struct {
		row  int
		want int
	}{{0, 0}, {1, 1}} {
		a := sampleAgent()
		a.Agent = m.Rows[tt.row]
		_, doc := render(t, AgentPage(sampleLayout("agents"), a))
		if n := len(find(doc, byAttr("data-testid", "heartbeat-late"))); n != tt.want {
			t.Errorf("agent page of %s: %d heartbeat-late badges, want %d", a.Agent.PCID, n, tt.want)
		}
	}
}

func TestPage_Layout(t *testing.T) {
	tests := []struct {
		name        string
		l           Layout
		wantCurrent string
		wantDev     int
		wantStop    int
	}{
		{"agents dev", Layout{Nav: "agents", DevMode: true, CSRFToken: "t", Role: "admin"}, "Agents", 1, 0},
		{"run", Layout{Nav: "run", CSRFToken: "t", Role: "operator"}, "Run", 0, 0},
		{"emergency", Layout{Nav: "dashboard", Estop: &EstopState{Since: TimeText{Rel: "3m ago", Abs: "2026-12-07T10:42:00Z"}, By: "alice", Reason: "ransomware"}, Role: "viewer"}, "Dashboard", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, doc := render(t, ErrorPage(tt.l, ErrorModel{Title: "x"}))
			cur := find(doc, byAttr("aria-current", "page"))
			var got []string
			for _, c := range cur {
				if c.Data == "a" {
					got = append(got, text(c))
				}
			}
			if diff := cmp.Diff([]string{tt.wantCurrent}, got); diff != "" {
				t.Errorf("active nav (-want +got):\n%s", diff)
			}
			ids := testids(doc)
			if ids["dev-banner"] != tt.wantDev || ids["emergency-banner"] != tt.wantStop {
				t.Errorf("banners dev=%d stop=%d, want %d %d", ids["dev-banner"], ids["emergency-banner"], tt.wantDev, tt.wantStop)
			}
		})
	}
}

// TestPage_RoleHidesWhatItCannotDo: the nav, the emergency-stop button and
// sign-out follow the caller's role (the server enforces; this only hides).
func TestPage_RoleHidesWhatItCannotDo(t *testing.T) {
	for _, tc := range []struct {
		role     string
		signedIn bool
		nav      []string
		estop    int
		signOut  int
	}{
		{"viewer", true, []string{"Dashboard", "Agents", "Jobs", "Executions", "Schedules", "Agent versions", "Audit"}, 0, 1},
		{"operator", true, []string{"Dashboard", "Agents", "Run", "Jobs", "Executions", "Schedules", "Agent versions", "Audit"}, 0, 1},
		{"approver", false, []string{"Dashboard", "Agents", "Run", "Jobs", "Executions", "Schedules", "Agent versions", "Audit"}, 0, 0},
		{"admin", true, []string{"Dashboard", "Agents", "Run", "Jobs", "Executions", "Schedules", "Agent versions", "Audit", "Settings", "System"}, 1, 1},
		{"", false, nil, 0, 0}, // the sign-in page: nobody yet
	} {
		l := Layout{Nav: "dashboard", Role: tc.role, User: "Jane", SignedIn: tc.signedIn}
		_, doc := render(t, ErrorPage(l, ErrorModel{Title: "x"}))
		var nav []string
		for _, n := range find(doc, byAttr("class", "nav")) {
			for _, a := range find(n, byTag("a")) {
				nav = append(nav, text(a))
			}
		}
		if diff := cmp.Diff(tc.nav, nav); diff != "" {
			t.Errorf("%s: nav (-want +got):\n%s", tc.role, diff)
		}
		ids := testids(doc)
		if ids["estop-link"] != tc.estop || ids["sign-out"] != tc.signOut {
			t.Errorf("%s: estop link %d sign-out %d, want %d %d", tc.role, ids["estop-link"], ids["sign-out"], tc.estop, tc.signOut)
		}
	}
}

func TestPage_Head(t *testing.T) {
	l := sampleLayout("agents")
	_, doc := render(t, ErrorPage(l, ErrorModel{Title: "x"}))
	got := map[string]string{}
	for _, m := range find(doc, byAttr("name", "htmx-config")) {
		got["htmx-config"], _ = attr(m, "content")
	}
	for _, b := range find(doc, byTag("body")) {
		got["hx-headers"], _ = attr(b, "hx-headers")
	}
	for _, s := range find(doc, byTag("script")) {
		src, _ := attr(s, "src")
		got[src] = "script"
	}
	for _, s := range find(doc, byAttr("rel", "stylesheet")) {
		href, _ := attr(s, "href")
		got[href] = "css"
	}
	want := map[string]string{
		"htmx-config":            `{"includeIndicatorStyles":false,"allowEval":false}`,
		"hx-headers":             `{"X-CSRF-Token":"tok\"en\u003c/x\u003e"}`,
		"/static/" + static.HTMX: "script",
		"/static/" + static.SSE:  "script",
		"/static/" + static.JS:   "script",
		"/static/" + static.CSS:  "css",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("head (-want +got):\n%s", diff)
	}
}

func TestTargetTable_Links(t *testing.T) {
	m := sampleTargets()
	m.URL = "/executions/7f3a9c2e/targets?state=failed&offset=50"
	m.State = "failed"
	_, doc := render(t, TargetTable(m))
	var filters []string
	for _, a := range find(doc, func(n *html.Node) bool { v, _ := attr(n, "class"); return v == "seg" }) {
		href, _ := attr(a, "hx-get")
		_, cur := attr(a, "aria-current")
		if cur {
			href += " (current)"
		}
		filters = append(filters, href)
	}
	want := []string{
		"/executions/7f3a9c2e/targets",
		"/executions/7f3a9c2e/targets?state=pending",
		"/executions/7f3a9c2e/targets?state=running",
		"/executions/7f3a9c2e/targets?state=succeeded",
		"/executions/7f3a9c2e/targets?state=failed (current)",
		"/executions/7f3a9c2e/targets?state=timed_out",
		"/executions/7f3a9c2e/targets?state=killed",
		"/executions/7f3a9c2e/targets?state=skipped",
		"/executions/7f3a9c2e/targets?state=expired",
		"/executions/7f3a9c2e/targets?state=lost",
	}
	if diff := cmp.Diff(want, filters); diff != "" {
		t.Errorf("state filter links (-want +got):\n%s", diff)
	}
	logs := find(doc, byAttr("data-log-link", ""))
	if len(logs) != len(m.Rows) {
		t.Fatalf("%d log links, want %d", len(logs), len(m.Rows))
	}
	got := map[string]string{}
	for _, k := range []string{"href", "hx-get", "hx-target", "hx-swap", "hx-push-url"} {
		got[k], _ = attr(logs[0], k)
	}
	wantLink := map[string]string{"href": m.Rows[0].LogURL, "hx-get": m.Rows[0].LogURL, "hx-target": "#log-panel", "hx-swap": "innerHTML", "hx-push-url": "true"}
	if diff := cmp.Diff(wantLink, got); diff != "" {
		t.Errorf("log link (-want +got):\n%s", diff)
	}
	if n := len(find(doc, byAttr("data-url", m.URL))); n != 1 {
		t.Errorf("%d elements with data-url=%q, want 1", n, m.URL)
	}
	next := find(doc, byAttr("rel", "next"))
	if len(next) != 1 {
		t.Fatalf("%d next links, want 1", len(next))
	}
	if v, _ := attr(next[0], "hx-target"); v != "#exec-targets" {
		t.Errorf("next link hx-target = %q, want #exec-targets", v)
	}
}

func TestWithState(t *testing.T) {
	tests := []struct {
		u, state, want string
	}{
		{"/e/1/targets", "failed", "/e/1/targets?state=failed"},
		{"/e/1/targets?state=running&offset=100&limit=50", "failed", "/e/1/targets?limit=50&state=failed"},
		{"/e/1/targets?state=running", "", "/e/1/targets"},
	}
	for _, tt := range tests {
		if got := withState(tt.u, tt.state); got != tt.want {
			t.Errorf("withState(%q, %q) = %q, want %q", tt.u, tt.state, got, tt.want)
		}
	}
}

// TestRenderShots writes every sample page, with the static assets next to
// it, to the -shots directory.
func TestRenderShots(t *testing.T) {
	if *shots == "" {
		t.Skip("no -shots directory")
	}
	if err := os.MkdirAll(*shots, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range pages() {
		out, _ := render(t, p.c)
		out = strings.ReplaceAll(out, `"/static/`, `"./`)
		if err := os.WriteFile(filepath.Join(*shots, p.name+".html"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := fs.WalkDir(static.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.FS.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(*shots, path), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
