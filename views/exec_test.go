package views

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func TestExecTabTitle(t *testing.T) {
	tests := []struct{ outcome, name, want string }{
		{"failed", "INC-42 printer", "✗ failed · INC-42 printer"},
		{"succeeded", "echo hi", "✓ succeeded · echo hi"},
		{"completed_with_failures", "patch", "⚠ completed with failures · patch"},
		{"awaiting_approval", "rollout", "? awaiting approval · rollout"},
		{"", "x", "○ unknown · x"},
	}
	for _, tt := range tests {
		if got := ExecTabTitle(tt.outcome, tt.name); got != tt.want {
			t.Errorf("ExecTabTitle(%q, %q) = %q, want %q", tt.outcome, tt.name, got, tt.want)
		}
	}
}

// TestLogPanel_HeadAndActions: the state and duration sit where the
// stream's "state" events swap them while live; Copy takes the whole
// output, Download is offered once the output is stored; every output
// follows its tail.
func TestLogPanel_HeadAndActions(t *testing.T) {
	t.Run("live", func(t *testing.T) {
		_, doc := render(t, LogPanel(LogModel{ExecID: "e1", PCID: "PC-1", State: "running", Live: true, StreamURL: "/s",
			Duration: Tick{Text: "4s", From: "2026-12-07T10:00:00Z", Now: "2026-12-07T10:00:04Z"}}))
		state := find(doc, byAttr("data-testid", "log-state"))
		if len(state) != 1 {
			t.Fatalf("%d log-state, want 1", len(state))
		}
		if v, _ := attr(state[0], "sse-swap"); v != "state" || !inside(state[0], "sse-connect") {
			t.Errorf("log-state sse-swap %q, inside the stream %v; want state, true", v, inside(state[0], "sse-connect"))
		}
		tick := find(doc, byAttr("data-testid", "log-duration"))
		if len(tick) != 1 || text(tick[0]) != "4s" {
			t.Fatalf("log-duration %v, want one reading 4s", tick)
		}
		if from, _ := attr(tick[0], "data-tick-from"); from != "2026-12-07T10:00:00Z" {
			t.Errorf("data-tick-from %q", from)
		}
		ids := testids(doc)
		if ids["copy-output"] != 1 || ids["download-output"] != 0 {
			t.Errorf("testids %v: want Copy and no Download while live", ids)
		}
	})
	t.Run("finished", func(t *testing.T) {
		_, doc := render(t, LogPanel(LogModel{ExecID: "e1", PCID: "PC-1", State: "failed", Stdout: "out\n", Stderr: "boom\n",
			Truncated: true, Cap: "1 MiB", DownloadURL: "/executions/e1/log/PC-1/download", Duration: Tick{Text: "1.2s"}}))
		if n := len(find(doc, func(n *html.Node) bool { _, ok := attr(n, "sse-swap"); return ok })); n != 0 {
			t.Errorf("%d sse-swap in a finished panel, want 0", n)
		}
		copyBtn := find(doc, byAttr("data-testid", "copy-output"))
		if len(copyBtn) != 1 {
			t.Fatal("no Copy button")
		}
		sel, _ := attr(copyBtn[0], "data-copy")
		src := find(doc, byAttr("id", strings.TrimPrefix(sel, "#")))
		if len(src) != 1 || text(src[0]) != "out\nboom\n" {
			t.Errorf("Copy takes %q: %d elements; want the text out\\nboom\\n", sel, len(src))
		}
		dl := find(doc, byAttr("data-testid", "download-output"))
		if len(dl) != 1 {
			t.Fatal("no Download link")
		}
		if href, _ := attr(dl[0], "href"); href != "/executions/e1/log/PC-1/download" {
			t.Errorf("Download href %q", href)
		}
		for _, id := range []string{"log-out", "log-err"} {
			pre := find(doc, byAttr("data-testid", id))
			if _, ok := attr(pre[0], "data-follow"); len(pre) != 1 || !ok {
				t.Errorf("%s does not follow its tail", id)
			}
		}
		if note := find(doc, byAttr("data-testid", "truncated")); len(note) != 1 || !strings.Contains(text(note[0]), "truncated at 1 MiB") {
			t.Errorf("truncation note %v, want it to name the cap", note)
		}
	})
}

// inside reports whether an ancestor of n has the attribute key.
func inside(n *html.Node, key string) bool {
	for p := n.Parent; p != nil; p = p.Parent {
		if _, ok := attr(p, key); ok {
			return true
		}
	}
	return false
}

// TestExecSummary_Again: Run again and Re-run on failed are offered with
// their URLs, the confirmation naming the count; the fragment carries the
// tab title for htmx.
func TestExecSummary_Again(t *testing.T) {
	m := sampleExec().Summary
	m.RunAgainURL, m.RunAgainLabel = "/executions/e1/again", "Run again…"
	m.RerunURL, m.RerunCount, m.RerunConfirm = "/executions/e1/rerun-failed", 3, "Run the same script again on 3 PCs (3 failed)?"
	m.TabTitle = "✗ failed · INC-1"
	out, doc := render(t, ExecSummaryFragment(m))
	if !strings.HasPrefix(out, "<title>✗ failed · INC-1 · kanade</title>") {
		t.Errorf("fragment starts %.60q, want the tab title", out)
	}
	again := find(doc, byAttr("data-testid", "run-again"))
	if href, _ := attr(again[0], "href"); len(again) != 1 || href != m.RunAgainURL {
		t.Errorf("Run again %v", again)
	}
	btn := find(doc, byAttr("data-testid", "rerun-failed"))
	if len(btn) != 1 || text(btn[0]) != "Re-run on 3 failed PCs" {
		t.Fatalf("Re-run button %v", btn)
	}
	form := btn[0].Parent
	got := map[string]string{}
	for _, k := range []string{"action", "hx-post", "hx-confirm"} {
		got[k], _ = attr(form, k)
	}
	want := map[string]string{"action": m.RerunURL, "hx-post": m.RerunURL, "hx-confirm": m.RerunConfirm}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("Re-run form %s = %q, want %q", k, got[k], want[k])
		}
	}
	if n := len(find(doc, byAttr("name", "_csrf"))); n < 1 {
		t.Error("Re-run form without a CSRF token")
	}
}
