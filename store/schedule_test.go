package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestSchedules(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		sc := store.Schedule{ID: "nightly", Cron: "0 3 * * *", JobID: "disk", Target: &store.Target{Groups: []string{"lab"}}, Enabled: true,
			CreatedBy: "alice", CreatedAt: t0, UpdatedAt: t0}
		if err := s.CreateSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSchedule(ctx, sc); !errors.Is(err, store.ErrExists) {
			t.Errorf("duplicate = %v", err)
		}
		sc.Enabled, sc.Timezone, sc.UpdatedAt = false, "Asia/Tokyo", t0.Add(time.Minute)
		if err := s.UpdateSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		got, err := s.Schedule(ctx, "nightly")
		if err != nil || got.Enabled || got.Timezone != "Asia/Tokyo" || got.Target == nil || got.Target.Groups[0] != "lab" {
			t.Errorf("schedule = %+v, %v", got, err)
		}
		// Claiming an instant succeeds once.
		at := t0.Add(3 * time.Hour)
		for i, want := range []bool{true, false} {
			ok, err := s.ClaimFire(ctx, "nightly", at, t0)
			if err != nil || ok != want {
				t.Errorf("claim %d = %v, %v; want %v", i, ok, err, want)
			}
		}
		if err := s.FinishFire(ctx, "nightly", at, store.FireFired, "e1", ""); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.ClaimFire(ctx, "nightly", at.Add(24*time.Hour), t0); !ok {
			t.Error("next day's claim refused")
		}
		last, err := s.LastFires(ctx)
		if err != nil || !last["nightly"].At.Equal(at.Add(24*time.Hour)) || last["nightly"].Status != store.FireFiring {
			t.Errorf("last fires = %+v, %v", last, err)
		}
		fires, _ := s.Fires(ctx, "nightly", 10)
		if len(fires) != 2 || fires[1].ExecID != "e1" {
			t.Errorf("fires = %+v", fires)
		}
		if err := s.DeleteSchedule(ctx, "nightly"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Schedule(ctx, "nightly"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted = %v", err)
		}
	})
}
