package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestPCsOS(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		lin := agent("lin1", t0, "lab")
		lin.OS = "linux"
		mustUpsert(t, s, agent("win1", t0, "lab"), lin)
		// Enrolled, no heartbeat yet; and enrolled with a heartbeat that
		// reports another OS than the enrollment did.
		for _, k := range []store.AgentKey{
			{PCID: "new1", PublicKey: "UNEW1", Status: store.KeyPending, OS: "windows", RequestedAt: t0},
			{PCID: "lin1", PublicKey: "ULIN1", Status: store.KeyApproved, OS: "windows", RequestedAt: t0},
		} {
			if err := s.PutAgentKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.PCsOS(ctx, []string{"win1", "lin1", "new1", "PC-TYPO-99", "win1"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"win1": "windows", "lin1": "linux", "new1": "windows"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("PCsOS (-want +got):\n%s", diff)
		}
		if got, err := s.PCsOS(ctx, nil); err != nil || len(got) != 0 {
			t.Errorf("PCsOS(nil) = %v, %v", got, err)
		}
	})
}

func TestTargetOS(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		lin := agent("lin1", t0, "lab", "canary")
		lin.OS = "linux"
		mustUpsert(t, s, agent("win1", t0, "lab"), agent("win2", t0.Add(-time.Hour), "office"), lin)
		tests := []struct {
			name   string
			all    bool
			groups []string
			want   map[string]int
		}{
			{"all", true, nil, map[string]int{"windows": 2, "linux": 1}},
			{"one group", false, []string{"canary"}, map[string]int{"linux": 1}},
			{"groups overlap", false, []string{"lab", "canary"}, map[string]int{"windows": 1, "linux": 1}},
			{"unknown group", false, []string{"nope"}, map[string]int{}},
			{"nothing", false, nil, map[string]int{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.TargetOS(ctx, tt.all, tt.groups)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("TargetOS (-want +got):\n%s", diff)
				}
			})
		}
	})
}
