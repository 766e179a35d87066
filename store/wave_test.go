package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestRollouts(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		e := execution("r1", t0)
		e.FourEyes, e.WaveDeadline = true, 30*time.Minute
		waves := []store.Wave{{Name: "canary", MaxFailures: "0"}, {Name: "rest", Approval: true, Delay: time.Minute, MaxFailures: "10%", MinSuccess: "90%"}}
		if err := s.CreateRollout(ctx, e, waves, [][]string{{"pc1"}, {"pc2", "pc3"}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Execution(ctx, "r1")
		if err != nil || !got.FourEyes || got.WaveDeadline != 30*time.Minute || !got.DeadlineAt.IsZero() || got.Counts.Pending != 3 {
			t.Fatalf("rollout execution = %+v, %v (no execution deadline; three pending targets)", got, err)
		}
		ws, err := s.Waves(ctx, "r1")
		if err != nil || len(ws) != 2 || ws[1].TargetCount != 2 || ws[1].Counts.Pending != 2 || ws[1].State != store.WaveWaiting || ws[1].MinSuccess != "90%" || ws[1].Delay != time.Minute {
			t.Fatalf("waves = %+v, %v", ws, err)
		}
		if pcs, _ := s.WavePCs(ctx, "r1", 1); len(pcs) != 2 || pcs[0] != "pc2" {
			t.Errorf("wave 1 PCs = %v", pcs)
		}
		if ids, _ := s.OpenRollouts(ctx); len(ids) != 1 {
			t.Errorf("open rollouts = %v", ids)
		}
		// Wave 0 starts with a deadline; the execution awaits approval for wave 1.
		ws[0].State, ws[0].StartedAt, ws[0].DeadlineAt = store.WaveRunning, t0, t0.Add(30*time.Minute)
		ws[1].State = store.WaveAwaitingApproval
		if err := s.SaveRollout(ctx, "r1", store.StatusAwaitingApproval, "", ws, t0); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.CountWavesAwaitingApproval(ctx); n != 1 {
			t.Errorf("awaiting approval = %d", n)
		}
		if es, err := s.ExecutionsAwaitingApproval(ctx); err != nil || len(es) != 1 || es[0].ExecID != "r1" || !es[0].FourEyes || es[0].InitiatedBy != e.InitiatedBy {
			t.Errorf("executions awaiting approval = %+v, %v", es, err)
		}
		// Past the execution-wide default nothing expires; past wave 0's
		// deadline only its pending target expires, not the unstarted wave's.
		ids, err := s.ExpireOverdue(ctx, t0.Add(31*time.Minute))
		if err != nil || len(ids) != 1 {
			t.Fatalf("expire = %v, %v", ids, err)
		}
		ws, _ = s.Waves(ctx, "r1")
		if ws[0].Counts.Expired != 1 || ws[1].Counts.Pending != 2 {
			t.Errorf("after expiry: wave 0 %+v, wave 1 %+v", ws[0].Counts, ws[1].Counts)
		}
		rs, _, _ := s.Results(ctx, store.ResultFilter{ExecID: "r1"})
		for _, r := range rs {
			if r.Wave == nil || (r.PCID == "pc1") != (*r.Wave == 0) {
				t.Errorf("result %s wave %v", r.PCID, r.Wave)
			}
		}
		// A halted rollout keeps its status and reason; a kill ends it.
		if err := s.SaveRollout(ctx, "r1", store.StatusHalted, "halted by bob", ws, t0); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Execution(ctx, "r1"); got.Status != store.StatusHalted || got.HaltReason != "halted by bob" {
			t.Errorf("halted = %+v", got)
		}
		if err := s.RequestKill(ctx, "r1", "bob", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveRollout(ctx, "r1", store.StatusRunning, "", ws, t0); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Execution(ctx, "r1"); got.Status != store.StatusKilled || got.Counts.Of(wire.StateKilled) != 2 {
			t.Errorf("a killed rollout changed status: %+v", got)
		}
		if ids, _ := s.OpenRollouts(ctx); len(ids) != 0 {
			t.Errorf("a killed rollout is open: %v", ids)
		}
	})
}

// BenchmarkOpenRollouts measures the rollout engine's poll (every second
// and after every committed batch of results) with 5,000 executions in the
// history, one of them an open rollout.
func BenchmarkOpenRollouts(b *testing.B) {
	forEachBench(b, func(b *testing.B, s *store.Store) {
		ctx := b.Context()
		for i := range 5000 {
			if err := s.CreateExecution(ctx, execution(fmt.Sprintf("e%05d", i), t0.Add(time.Duration(i)*time.Second)), []string{"pc1"}); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.CreateRollout(ctx, execution("r1", t0), []store.Wave{{Name: "all", MaxFailures: "0"}}, [][]string{{"pc1"}}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if ids, err := s.OpenRollouts(ctx); err != nil || len(ids) != 1 {
				b.Fatalf("OpenRollouts = %v, %v", ids, err)
			}
		}
	})
}
