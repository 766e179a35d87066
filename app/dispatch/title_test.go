package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/store"
)

func TestCheckTitle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"   ", "", true},
		{"  INC-4242 printer queue  ", "INC-4242 printer queue", true},
		{"プリンター　キュー", "プリンター　キュー", true}, // an ideographic space is a space
		{strings.Repeat("é", MaxTitleChars), strings.Repeat("é", MaxTitleChars), true},
		{strings.Repeat("é", MaxTitleChars+1), "", false},
		{"two\nlines", "", false},
		{"a\ttab", "", false},
		{"bell\a", "", false},
		{"right-to-left \u202egnp.exe", "", false},
		{"invalid \xff", "", false},
	}
	for _, tt := range tests {
		got, ps := CheckTitle(tt.in)
		if ok := len(ps) == 0; ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("CheckTitle(%q) = %q, %v; want %q, ok %v", tt.in, got, ps, tt.want, tt.ok)
		}
		for _, p := range ps {
			if p.Field != "title" {
				t.Errorf("CheckTitle(%q): problem on %q, want title", tt.in, p.Field)
			}
		}
	}
}

// A title is stored with the execution and recorded in the audit event;
// a bad one refuses the run or deploy before anything is recorded.
func TestTitle_RunAndDeploy(t *testing.T) {
	d, b, st := testDispatcher(t)
	ctx := context.Background()
	run, err := d.Run(ctx, RunRequest{Target: store.Target{PCs: []string{"pc1"}}, Shell: "sh", Script: "true", Actor: "alice", Title: " INC-1 "})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := st.Execution(ctx, run.ExecID); err != nil || e.Title != "INC-1" {
		t.Errorf("run: stored title %q (%v), want INC-1", e.Title, err)
	}
	if ev := lastAudit(t, b, audit.Run); ev.Target != run.ExecID || auditTitle(t, ev) != "INC-1" {
		t.Errorf("run audit: %+v, want the title INC-1", ev)
	}
	dep, err := d.Deploy(ctx, DeployRequest{Manifest: job("j1", "1", "sh", "true"), Actor: "alice", Title: "CHG-7"})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := st.Execution(ctx, dep.ExecID); err != nil || e.Title != "CHG-7" {
		t.Errorf("deploy: stored title %q (%v), want CHG-7", e.Title, err)
	}
	if ev := lastAudit(t, b, audit.Deploy); ev.Target != dep.ExecID || auditTitle(t, ev) != "CHG-7" {
		t.Errorf("deploy audit: %+v, want the title CHG-7", ev)
	}

	_, before, err := st.Executions(ctx, store.ExecFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ve *problem.Error
	if _, err := d.Run(ctx, RunRequest{Target: store.Target{PCs: []string{"pc1"}}, Shell: "sh", Script: "true", Actor: "alice", Title: "a\nb"}); !errors.As(err, &ve) || ve.Problems[0].Field != "title" {
		t.Errorf("run with a two-line title: %v, want a problem with the title", err)
	}
	if _, err := d.Deploy(ctx, DeployRequest{Manifest: job("j1", "2", "sh", "true"), Actor: "alice", Title: strings.Repeat("x", 201)}); !errors.As(err, &ve) || ve.Problems[0].Field != "title" {
		t.Errorf("deploy with a long title: %v, want a problem with the title", err)
	}
	if _, after, err := st.Executions(ctx, store.ExecFilter{}); err != nil || after != before {
		t.Errorf("refused requests recorded executions: %d before, %d after (%v)", before, after, err)
	}
}

// auditTitle is the title in an audit event's detail.
func auditTitle(t *testing.T, ev audit.Event) string {
	t.Helper()
	var d struct {
		Title string `json:"title"`
	}
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		t.Fatal(err)
	}
	return d.Title
}
