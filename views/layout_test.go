package views

import (
	"strings"
	"testing"
)

// TestTopBarLive: the approvals chip (only with waves to approve) and the
// emergency-stop button, which says when the stop is on, since when and
// why, for every role, and links to its page; off, only admins see it.
func TestTopBarLive(t *testing.T) {
	on := &EstopState{Since: TimeText{Rel: "3m ago", Abs: "2026-12-07T14:02:00Z"}, By: "alice", Reason: "ransomware on PC-7"}
	tests := []struct {
		name      string
		l         Layout
		approvals string // the chip's text, "" for none
		estop     string // the button's data-state, "" for none
		banner    bool
	}{
		{"viewer, stop off", Layout{Role: "viewer"}, "", "", false},
		{"admin, stop off", Layout{Role: "admin"}, "", "off", false},
		{"viewer, stop on", Layout{Role: "viewer", Estop: on}, "", "on", true},
		{"approver with one wave", Layout{Role: "approver", Approvals: 1}, "1 wave awaits approval", "", false},
		{"admin with three waves, stop on", Layout{Role: "admin", Approvals: 3, Estop: on}, "3 waves await approval", "on", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, doc := render(t, TopBarUpdate(tt.l))
			chips := find(doc, byAttr("data-testid", "approvals-link"))
			switch {
			case tt.approvals == "" && len(chips) != 0:
				t.Errorf("approvals chip shown: %q", text(chips[0]))
			case tt.approvals != "" && (len(chips) != 1 || !strings.Contains(strings.Join(strings.Fields(text(chips[0])), " "), tt.approvals)):
				t.Errorf("approvals chip = %d, want one saying %q", len(chips), tt.approvals)
			}
			btns := find(doc, byAttr("data-testid", "estop-link"))
			if tt.estop == "" {
				if len(btns) != 0 {
					t.Errorf("emergency-stop button shown to a %s while the stop is off", tt.l.Role)
				}
			} else if len(btns) != 1 {
				t.Fatalf("%d emergency-stop buttons, want 1", len(btns))
			} else if st, _ := attr(btns[0], "data-state"); st != tt.estop {
				t.Errorf("emergency-stop button data-state = %q, want %q", st, tt.estop)
			} else if href, _ := attr(btns[0], "href"); href != "/emergency-stop" {
				t.Errorf("emergency-stop button links to %q", href)
			}
			if tt.estop == "on" {
				got := strings.Join(strings.Fields(text(btns[0])), " ")
				if !strings.Contains(got, "Emergency stop ON since 2026-12-07 14:02 UTC — ransomware on PC-7") {
					t.Errorf("emergency-stop button says %q", got)
				}
				if len(find(btns[0], byAttr("datetime", on.Since.Abs))) != 1 {
					t.Error("the stop's time is not a <time> the page shows in the viewer's zone")
				}
			}
			if got := len(find(doc, byAttr("data-testid", "emergency-banner"))); got != map[bool]int{true: 1}[tt.banner] {
				t.Errorf("%d emergency banners, want banner=%v", got, tt.banner)
			}
			// Both are replaced by id when the live stream sends them.
			for _, id := range []string{"topbar-live", "estop-banner"} {
				if len(find(doc, byAttr("id", id))) != 1 {
					t.Errorf("no element with id %q", id)
				}
			}
		})
	}
}
