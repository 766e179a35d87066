package schedule

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jonboulle/clockwork"

	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// t0 is where the fake clock starts: an instant of every schedule below
// ("*/2 * * * * *", "0 0 * * * *").
var t0 = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

// fixture is a Scheduler on a fake clock, with a real store, broker,
// dispatcher and jobs directory (the job "tick" on pc1).
type fixture struct {
	st    *store.Store
	clock *clockwork.FakeClock
	s     *Scheduler
	stop  func()
}

func newFixture(t *testing.T, grace time.Duration) *fixture {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := storetest.New(t)
	b := bustest.Open(t)
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	disp := dispatch.New(st, b.CmdNC, b.CmdJS, keys, events.New(), dispatch.Limits{
		DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultDeadline: time.Hour}, log)
	if err := disp.EnsureEmergencyStop(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := "id: tick\nversion: \"1\"\ntarget:\n  pcs: [pc1]\nexecute:\n  shell: sh\n  script: echo tick\n  timeout: 30s\n"
	if err := os.WriteFile(filepath.Join(dir, "tick.yaml"), []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertAgents(ctx, []store.Agent{{PCID: "pc1", LastSeen: time.Now(), Interval: 30 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(t0)
	return &fixture{st: st, clock: clock, s: New(st, cat, disp, grace, clock, log)}
}

// add stores a schedule of the job tick.
func (f *fixture) add(t *testing.T, id, cron string, enabled bool) {
	t.Helper()
	if err := f.st.CreateSchedule(t.Context(), store.Schedule{ID: id, Cron: cron, JobID: "tick", Enabled: enabled,
		CreatedBy: "test", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
}

// run starts Run and waits until it waits for its clock; f.stop ends it
// and waits for the fires it started.
func (f *fixture) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.s.Run(ctx) }()
	f.stop = func() {
		if cancel == nil {
			return
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		cancel = nil
	}
	t.Cleanup(f.stop)
	f.idle(t)
}

// idle waits until Run waits on its clock again and the fires it started
// have ended: between two wake-ups Run holds no timer, so one timer means
// it has handled everything up to the clock's time.
func (f *fixture) idle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := f.clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("Run does not wait on the clock: %v", err)
	}
	f.s.inflight.Wait()
}

// step moves the clock by d, n times, letting Run handle each move.
func (f *fixture) step(t *testing.T, d time.Duration, n int) {
	t.Helper()
	for range n {
		f.clock.Advance(d)
		f.idle(t)
	}
}

// fires returns schedule id's fires, oldest first.
func (f *fixture) fires(t *testing.T, id string) []store.Fire {
	t.Helper()
	fs, err := f.st.Fires(t.Context(), id, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(fs)-1; i < j; i, j = i+1, j-1 {
		fs[i], fs[j] = fs[j], fs[i]
	}
	return fs
}

func (f *fixture) firedAt(t *testing.T, id string) []time.Time {
	t.Helper()
	var at []time.Time
	for _, fi := range f.fires(t, id) {
		at = append(at, fi.At)
	}
	return at
}

func instants(from time.Time, step time.Duration, n int) []time.Time {
	var out []time.Time
	for i := 1; i <= n; i++ {
		out = append(out, from.Add(time.Duration(i)*step))
	}
	return out
}

// A live schedule fires at each of its instants through the dispatcher,
// as the actor scheduler.
func TestScheduler_FiresAtEachInstant(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.add(t, "every2", "*/2 * * * * *", true)
	f.run(t)
	f.step(t, 2*time.Second, 3)
	f.stop()
	fs := f.fires(t, "every2")
	if diff := cmp.Diff(instants(t0, 2*time.Second, 3), f.firedAt(t, "every2")); diff != "" {
		t.Fatalf("fire instants (-want +got):\n%s", diff)
	}
	for _, fi := range fs {
		if fi.Status != store.FireFired || fi.ExecID == "" {
			t.Errorf("fire %+v: want fired, with an execution", fi)
			continue
		}
		e, err := f.st.Execution(t.Context(), fi.ExecID)
		if err != nil || e.InitiatedBy != Actor || e.JobID != "tick" {
			t.Errorf("execution of %v: %+v, %v; want job tick by %s", fi.At, e, err, Actor)
		}
	}
}

// Schedules that are not live never fire, however long the clock runs;
// a live one beside them fires at every instant meanwhile.
func TestScheduler_NotLiveDoesNotFire(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.add(t, "live", "*/2 * * * * *", true)
	f.add(t, "disabled", "*/2 * * * * *", false)
	f.add(t, "bad-cron", "61 * * * *", true)
	f.run(t)
	f.step(t, 2*time.Second, 10)
	f.stop()
	if got := len(f.fires(t, "live")); got != 10 {
		t.Errorf("the live schedule fired %d times over 10 instants", got)
	}
	for _, id := range []string{"disabled", "bad-cron"} {
		if got := f.fires(t, id); len(got) != 0 {
			t.Errorf("%s fired: %+v", id, got)
		}
	}
}

// Disabling a schedule applies at the next instant, without a restart:
// Run reads the definitions before it fires. Enabled again, it fires from
// the first instant after Run reads it.
func TestScheduler_DisableAndEnable(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.add(t, "s", "*/2 * * * * *", true)
	f.run(t)
	f.step(t, 2*time.Second, 2) // t0+2, t0+4
	sc, err := f.st.Schedule(t.Context(), "s")
	if err != nil {
		t.Fatal(err)
	}
	sc.Enabled = false
	if err := f.st.UpdateSchedule(t.Context(), sc); err != nil {
		t.Fatal(err)
	}
	f.step(t, 2*time.Second, 5) // t0+6 … t0+14: nothing
	sc.Enabled = true
	if err := f.st.UpdateSchedule(t.Context(), sc); err != nil {
		t.Fatal(err)
	}
	f.step(t, 2*time.Second, 3) // read at t0+16; fires at t0+18, t0+20
	f.stop()
	want := append(instants(t0, 2*time.Second, 2), instants(t0.Add(16*time.Second), 2*time.Second, 2)...)
	if diff := cmp.Diff(want, f.firedAt(t, "s")); diff != "" {
		t.Errorf("fire instants (-want +got):\n%s", diff)
	}
}

// An instant found more than 5 s late (the process stalled) is skipped,
// not fired late; the next ones fire on time.
func TestScheduler_SkipsOutdatedInstants(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.add(t, "s", "*/2 * * * * *", true)
	f.run(t)
	f.step(t, 10*time.Second, 1)
	f.step(t, 2*time.Second, 1)
	f.stop()
	if diff := cmp.Diff([]time.Time{t0.Add(12 * time.Second)}, f.firedAt(t, "s")); diff != "" {
		t.Errorf("fire instants (-want +got):\n%s", diff)
	}
}

// At start, the newest instant missed while no server ran is made up once
// when it is within the grace and the schedule fired before; older missed
// instants are not.
func TestScheduler_MakesUpOneMissedFire(t *testing.T) {
	tests := []struct {
		name     string
		cron     string
		grace    time.Duration
		lastFire time.Time // zero: never fired
		want     []time.Time
	}{
		{"missed within the grace", "*/2 * * * * *", time.Minute, t0.Add(-10 * time.Second), []time.Time{t0}},
		{"missed before the grace", "0 30 * * * *", 10 * time.Second, t0.Add(-90 * time.Minute), nil},
		{"nothing missed", "0 0 * * * *", 2 * time.Hour, t0, nil},
		{"never fired", "*/2 * * * * *", time.Minute, time.Time{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.grace)
			f.add(t, "s", tt.cron, true)
			if !tt.lastFire.IsZero() {
				if ok, err := f.st.ClaimFire(t.Context(), "s", tt.lastFire, tt.lastFire); err != nil || !ok {
					t.Fatalf("ClaimFire = %v, %v", ok, err)
				}
				if err := f.st.FinishFire(t.Context(), "s", tt.lastFire, store.FireFired, "", ""); err != nil {
					t.Fatal(err)
				}
			}
			f.run(t)
			f.stop()
			var got []time.Time
			for _, fi := range f.fires(t, "s") {
				if fi.At.After(tt.lastFire) {
					got = append(got, fi.At)
					if fi.Reason != MadeUp {
						t.Errorf("made-up fire %+v: reason %q, want %q", fi, fi.Reason, MadeUp)
					}
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("made-up fires (-want +got):\n%s", diff)
			}
		})
	}
}
