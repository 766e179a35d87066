package store_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// ExecTargets filters a rollout's targets by state and wave, pages them,
// and says what the server knows of each target's PC: seen (online or
// not), only enrolled, or never heard of.
func TestExecTargets(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		mustUpsert(t, s, agent("on1", t0), agent("off1", t0.Add(-2*time.Hour)))
		if err := s.PutAgentKey(ctx, store.AgentKey{PCID: "enrolled", PublicKey: "UENROLLED", Status: store.KeyApproved, RequestedAt: t0}); err != nil {
			t.Fatal(err)
		}
		waves := []store.Wave{{Name: "canary"}, {Name: "rest"}}
		if err := s.CreateRollout(ctx, execution("r1", t0), waves, [][]string{{"on1", "typo"}, {"enrolled", "off1"}}); err != nil {
			t.Fatal(err)
		}
		mustApply(t, s, t0, wire.Result{ExecID: "r1", PCID: "on1", State: wire.StateFailed, Reason: "exit code 1", ExitCode: exit(1), StartedAt: t0, FinishedAt: t0})
		type got struct {
			PC                string
			State             wire.State
			Wave              int
			Known, Seen, Live bool
		}
		list := func(f store.TargetFilter) ([]got, int) {
			t.Helper()
			f.ExecID = "r1"
			ts, total, err := s.ExecTargets(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []got
			for _, x := range ts {
				out = append(out, got{x.PCID, x.State, *x.Wave, x.AgentKnown, x.AgentSeen, x.AgentOnline(t0.Add(time.Minute))})
			}
			return out, total
		}
		tests := []struct {
			name  string
			f     store.TargetFilter
			want  []got
			total int
		}{
			{"all", store.TargetFilter{}, []got{
				{"enrolled", wire.StatePending, 1, true, false, false},
				{"off1", wire.StatePending, 1, true, true, false},
				{"on1", wire.StateFailed, 0, true, true, true},
				{"typo", wire.StatePending, 0, false, false, false},
			}, 4},
			{"wave 0", store.TargetFilter{Wave: new(0)}, []got{
				{"on1", wire.StateFailed, 0, true, true, true},
				{"typo", wire.StatePending, 0, false, false, false},
			}, 2},
			{"failed of wave 0", store.TargetFilter{Wave: new(0), State: wire.StateFailed}, []got{{"on1", wire.StateFailed, 0, true, true, true}}, 1},
			{"failed of wave 1", store.TargetFilter{Wave: new(1), State: wire.StateFailed}, nil, 0},
			{"pending, second page of one", store.TargetFilter{State: wire.StatePending, Limit: 1, Offset: 1}, []got{{"off1", wire.StatePending, 1, true, true, false}}, 3},
		}
		for _, tt := range tests {
			g, total := list(tt.f)
			if diff := cmp.Diff(tt.want, g); diff != "" || total != tt.total {
				t.Errorf("%s: total %d, want %d (-want +got):\n%s", tt.name, total, tt.total, diff)
			}
		}
	})
}
