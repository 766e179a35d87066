package views

import (
	"strings"
	"testing"
)

// The wave filter replaces the wave and keeps the other filters; both
// filters start on the first page, and the page's address is the
// execution page with the same filters.
func TestTargetFilterURLs(t *testing.T) {
	const u = "/executions/e1/targets?offset=100&pc=PC-1&state=failed&wave=1"
	tests := []struct{ got, want string }{
		{withWave(u, 2), "/executions/e1/targets?pc=PC-1&state=failed&wave=2"},
		{withWave(u, 0), "/executions/e1/targets?pc=PC-1&state=failed"},
		{withState(u, "killed"), "/executions/e1/targets?pc=PC-1&state=killed&wave=1"},
		{targetsPageURL(withWave(u, 2)), "/executions/e1?pc=PC-1&state=failed&wave=2"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

// A rollout's targets table has a Wave column and a wave filter that
// marks the current wave and keeps the state; a waiting target says why,
// with its deadline as a local time; an empty filter says which.
func TestTargetTable_Waves(t *testing.T) {
	m := TargetTableModel{ExecID: "r1", State: "pending", URL: "/executions/r1/targets?state=pending&wave=2",
		TargetWaves: TargetWaves{Wave: 2, Waves: []WaveOption{{1, "1. canary"}, {2, "2. fleet"}}},
		Rows:        []TargetRow{{ExecID: "r1", PCID: "PC-1", State: "pending", Reason: xss, TargetWhy: TargetWhy{Wave: "2. fleet", Why: "offline — runs when it reconnects", Until: "2026-12-07T17:22:00Z"}}}}
	out, doc := render(t, TargetTable(m))
	nav := find(doc, byAttr("aria-label", "Filter by wave"))
	if len(nav) != 1 {
		t.Fatalf("wave filters: %d", len(nav))
	}
	var current []string
	for _, a := range find(nav[0], byTag("a")) {
		href, _ := attr(a, "href")
		if !strings.Contains(href, "state=pending") {
			t.Errorf("wave link %s drops the state", href)
		}
		if v, _ := attr(a, "aria-current"); v == "true" {
			current = append(current, text(a))
		}
	}
	if len(current) != 1 || current[0] != "2. fleet" {
		t.Errorf("current wave = %v", current)
	}
	if w := find(doc, byAttr("data-testid", "target-wave")); len(w) != 1 || text(w[0]) != "2. fleet" {
		t.Errorf("wave column: %d cells", len(w))
	}
	why := find(doc, byAttr("data-testid", "target-reason"))
	if len(why) != 1 || !strings.HasPrefix(text(why[0]), "offline — runs when it reconnects, until ") || len(find(why[0], byAttr("data-local", ""))) != 1 {
		t.Errorf("reason cell: %q", out)
	}
	if strings.Contains(out, "<script>") {
		t.Error("a reason is rendered as markup")
	}
	m.Rows = nil
	if _, doc := render(t, TargetTable(m)); !strings.Contains(text(doc), "No targets of wave 2. fleet are pending.") {
		t.Errorf("empty: %q", text(doc))
	}
}

// A wave that passed with failures is not a green "succeeded", and the
// wave of a halted rollout says to resume first and offers no Approve.
func TestWaveCards_Truth(t *testing.T) {
	m := ExecSummaryModel{HaltReason: "halted by bob", Waves: []WaveCard{
		{Index: 0, Name: "canary", State: "succeeded", Targets: 4, RolloutView: RolloutView{Outcome: "passed_with_failures", OutcomeText: "passed with 1 failed (limit 1)",
			Tally: []CountLink{{State: "failed", N: 1, URL: "/executions/r1?state=failed&wave=1", TableURL: "/executions/r1/targets?state=failed&wave=1"}}}},
		{Index: 1, Name: "fleet", State: "awaiting_approval", Targets: 2, ApproveNote: "Resume the rollout first", RolloutView: RolloutView{Halted: true}},
	}}
	_, doc := render(t, ExecSummary(m))
	cards := find(doc, byAttr("data-testid", "wave"))
	if len(cards) != 2 {
		t.Fatalf("%d cards", len(cards))
	}
	if b := find(cards[0], byAttr("data-testid", "wave-outcome")); len(b) != 1 || text(b[0]) != "passed with 1 failed (limit 1)" {
		t.Errorf("wave 1 badge: %q", text(cards[0]))
	}
	if len(find(cards[0], byAttr("data-state", "succeeded"))) != 1 { // the card itself only
		t.Errorf("wave 1 shows a succeeded badge: %q", text(cards[0]))
	}
	if a := find(cards[0], byAttr("data-count-state", "failed")); len(a) != 1 {
		t.Error("wave 1's failed count is not a link")
	} else if href, _ := attr(a[0], "href"); href != "/executions/r1?state=failed&wave=1" {
		t.Errorf("failed link %s", href)
	}
	if txt := text(cards[1]); !strings.Contains(txt, "resume first") || len(find(cards[1], byAttr("data-testid", "approve-button"))) != 0 {
		t.Errorf("halted wave 2: %q", txt)
	}
}
