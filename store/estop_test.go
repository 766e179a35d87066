package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// What an emergency stop did is kept per stop; agents acknowledge the
// stop they apply, once each, and the online ones that did not are named.
func TestEmergencyStopRecordAndAcks(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		stop1, stop2 := t0, t0.Add(time.Hour)
		if _, err := s.EmergencyStopRecord(ctx, stop1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("no record: %v, want ErrNotFound", err)
		}
		if err := s.RecordEmergencyStop(ctx, store.EmergencyStop{}); err == nil {
			t.Error("a record without since was stored")
		}
		rec := store.EmergencyStop{Since: stop1, By: "alice", Reason: "bad script", Killed: []string{"e1", "e2"}, Halted: []string{"r1"}}
		if err := s.RecordEmergencyStop(ctx, rec); err != nil {
			t.Fatal(err)
		}
		rec.Killed = append(rec.Killed, "e3") // recorded again: replaced
		if err := s.RecordEmergencyStop(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if got, err := s.EmergencyStopRecord(ctx, stop1); err != nil || !cmp.Equal(rec, got) {
			t.Errorf("record = %+v, %v; want %+v", got, err, rec)
		}

		now := stop2.Add(time.Minute)
		mustUpsert(t, s, agent("pc1", now), agent("pc2", now), agent("pc3", now), agent("gone", t0))
		acks := func(since time.Time) store.StopAcks {
			t.Helper()
			a, err := s.EmergencyStopAcks(ctx, since, now)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		if diff := cmp.Diff(store.StopAcks{Online: 3, Silent: []string{"pc1", "pc2", "pc3"}}, acks(stop1)); diff != "" {
			t.Errorf("before any acknowledgement (-want +got):\n%s", diff)
		}
		if err := s.AckEmergencyStops(ctx, map[string]time.Time{"pc1": stop1, "pc2": stop1, "gone": stop1}, stop1); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(store.StopAcks{Acked: 3, Online: 3, Silent: []string{"pc3"}}, acks(stop1)); diff != "" {
			t.Errorf("stop 1 (-want +got):\n%s", diff)
		}
		// A new stop: each agent's acknowledgement is of the stop it applies last.
		if err := s.AckEmergencyStops(ctx, map[string]time.Time{"pc2": stop2, "pc3": stop2}, stop2); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(store.StopAcks{Acked: 2, Online: 3, Silent: []string{"pc1"}}, acks(stop2)); diff != "" {
			t.Errorf("stop 2 (-want +got):\n%s", diff)
		}
		if a := acks(stop1); a.Acked != 2 {
			t.Errorf("stop 1 after stop 2: %d acknowledged, want 2 (pc1, gone)", a.Acked)
		}
	})
}

// A kill that says why adds it to the reason of the targets it cancels.
func TestRequestKillBecause(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		mustCreate(t, s, execution("e1", t0), "pc1")
		if err := s.RequestKillBecause(t.Context(), "e1", "alice", "emergency stop: bad script", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if r := mustResult(t, s, "e1", "pc1"); r.Reason != "killed before it started: emergency stop: bad script" {
			t.Errorf("reason %q", r.Reason)
		}
	})
}
