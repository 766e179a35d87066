package dispatch

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/store"
)

// TestUnknownPCs_Refused: a run or deploy that names a PC no agent has
// ever had is refused with the ids, publishes nothing and records no
// execution; an enrolled PC without a heartbeat is known.
func TestUnknownPCs_Refused(t *testing.T) {
	d, b, st := testDispatcher(t)
	ctx := context.Background()
	if err := st.PutAgentKey(ctx, store.AgentKey{PCID: "enrolled-only", PublicKey: "UENROLLED", Status: store.KeyApproved}); err != nil {
		t.Fatal(err)
	}
	m := job("typo", "1", "sh", "true")
	m.Target.PCs = []string{"pc1", "PC-TYPO-99"}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"run, one unknown", func() error {
			_, err := d.Run(ctx, RunRequest{Target: store.Target{PCs: []string{"pc1", "PC-TYPO-99"}}, Shell: "sh", Script: "true"})
			return err
		}, "unknown PC: PC-TYPO-99"},
		{"run, unknown beside a group", func() error {
			_, err := d.Run(ctx, RunRequest{Target: store.Target{Groups: []string{"lab"}, PCs: []string{"zz-2", "aa-1", "zz-2"}}, Shell: "sh", Script: "true"})
			return err
		}, "unknown PCs: aa-1, zz-2"},
		{"deploy, the manifest's target", func() error {
			_, err := d.Deploy(ctx, DeployRequest{Manifest: m})
			return err
		}, "unknown PC: PC-TYPO-99"},
		{"deploy, an override", func() error {
			_, err := d.Deploy(ctx, DeployRequest{Manifest: job("typo2", "1", "sh", "true"), Target: &store.Target{PCs: []string{"PC-TYPO-99"}}})
			return err
		}, "unknown PC: PC-TYPO-99"},
	}
	before := execMsgs(t, b)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ve *problem.Error
			if err := tt.call(); !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *problem.Error", err)
			}
			want := []problem.Problem{{Field: "target.pcs", Message: tt.want}}
			if diff := cmp.Diff(want, ve.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
	if got := execMsgs(t, b); got != before {
		t.Errorf("refused requests published %d commands", got-before)
	}
	if _, total, err := st.Executions(ctx, store.ExecFilter{Limit: 10}); err != nil || total != 0 {
		t.Errorf("refused requests recorded %d executions (%v)", total, err)
	}
	if _, err := d.Run(ctx, RunRequest{Target: store.Target{PCs: []string{"enrolled-only", "pc2"}}, Shell: "sh", Script: "true"}); err != nil {
		t.Errorf("run on an enrolled PC without a heartbeat: %v", err)
	}
}

func TestUnknownPCsMessage(t *testing.T) {
	many := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"PC-TYPO-99"}, "unknown PC: PC-TYPO-99"},
		{[]string{"a", "b"}, "unknown PCs: a, b"},
		{many, "unknown PCs: a, b, c, d, e, f, g, h, i, j and 2 more"},
	}
	for _, tt := range tests {
		if got := UnknownPCsMessage(tt.in); got != tt.want {
			t.Errorf("UnknownPCsMessage(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
