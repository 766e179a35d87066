package dispatch

import (
	"sort"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
)

func TestNewExecID_ValidSortedUnique(t *testing.T) {
	base := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	var ids []string
	for i := 0; i < 1000; i++ {
		id := NewExecID(base.Add(time.Duration(i) * time.Millisecond))
		if err := wire.ValidateID("exec_id", id); err != nil || len(id) != 26 {
			t.Fatalf("NewExecID = %q (%v), want 26 subject-safe characters", id, err)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Error("ids do not sort by creation time")
	}
	if err := wire.ValidateID("job", adhocToken(ids[0])); err != nil {
		t.Errorf("ad-hoc subject token invalid: %v", err)
	}
}

func TestCheck(t *testing.T) {
	d := &Dispatcher{lim: Limits{DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultDeadline: time.Hour}}
	tests := []struct {
		name string
		req  RunRequest
		want []string // fields with problems, in order
	}{
		{"ok with defaults", RunRequest{Target: store.Target{PCs: []string{"pc1"}}, Shell: "sh", Script: "echo"}, nil},
		{"no target", RunRequest{Shell: "sh", Script: "echo"}, []string{"target"}},
		{"bad ids", RunRequest{Target: store.Target{Groups: []string{"a.b"}, PCs: []string{"*"}}, Shell: "sh", Script: "x"}, []string{"target.groups", "target.pcs"}},
		{"everything wrong", RunRequest{Target: store.Target{All: true}, Shell: "zsh", Script: "  ", Timeout: 2 * time.Hour, Deadline: -1}, []string{"shell", "script", "timeout", "deadline"}},
		{"script too large", RunRequest{Target: store.Target{All: true}, Shell: "sh", Script: string(make([]byte, MaxScriptBytes+1))}, []string{"script"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req
			var got []string
			for _, p := range d.Check(&r) {
				got = append(got, p.Field)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Check fields = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Check fields = %v, want %v", got, tt.want)
				}
			}
			if tt.want == nil && (r.Timeout != time.Minute || r.Deadline != time.Hour) {
				t.Errorf("defaults not applied: timeout %v deadline %v", r.Timeout, r.Deadline)
			}
		})
	}
}
