package rollout_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// engineFixture is an Engine on a fake clock with a real store, broker
// and dispatcher; the PCs c1 (group canary) and f1 (group fleet) are
// enrolled. Results are written to the store as the results projector
// writes them.
type engineFixture struct {
	st    *store.Store
	disp  *dispatch.Dispatcher
	clock *clockwork.FakeClock
	e     *rollout.Engine
}

func newEngineFixture(t *testing.T) *engineFixture {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := storetest.New(t)
	b := bustest.Open(t)
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ev := events.New()
	disp := dispatch.New(st, b.CmdNC, b.CmdJS, keys, ev, dispatch.Limits{
		DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultDeadline: time.Hour, MaxFailures: "0"}, log)
	if err := disp.EnsureEmergencyStop(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.UpsertAgents(ctx, []store.Agent{
		{PCID: "c1", Groups: []string{"canary"}, LastSeen: now, Interval: 30 * time.Second},
		{PCID: "f1", Groups: []string{"fleet"}, LastSeen: now, Interval: 30 * time.Second},
	}); err != nil {
		t.Fatal(err)
	}
	// The dispatcher stamps executions with the real time; the engine's
	// clock starts after it, so that the first wave is due at once, on a
	// whole second, which the store keeps exactly.
	clock := clockwork.NewFakeClockAt(now.Add(time.Minute).Truncate(time.Second))
	e := rollout.NewEngine(st, disp, ev, nil, clock, log)
	disp.Rollouts = e
	return &engineFixture{st: st, disp: disp, clock: clock, e: e}
}

// run starts the engine and waits for its first look.
func (f *engineFixture) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	f.idle(t)
}

// idle waits until the engine has completed a look that began at the
// clock's current time or later (so it has seen everything stored
// before) and waits on its clock again (so the next advance reaches it).
func (f *engineFixture) idle(t *testing.T) {
	t.Helper()
	now := f.clock.Now()
	eventually.Within(t, 30*time.Second, func() error {
		if l := f.e.LastLook(); l.Before(now) {
			return fmt.Errorf("the engine last looked at %v, not since %v", l, now)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := f.clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("the engine does not wait on its clock: %v", err)
	}
}

// advance moves the clock by d and waits for the look it brings.
func (f *engineFixture) advance(t *testing.T, d time.Duration) {
	t.Helper()
	f.clock.Advance(d)
	f.idle(t)
}

// deploy starts a rollout of two waves, canary then fleet; extra is
// appended to the manifest.
func (f *engineFixture) deploy(t *testing.T, fleetDelay string, extra string) string {
	t.Helper()
	y := "id: waves\nversion: \"1\"\ntarget:\n  groups: [canary, fleet]\nexecute:\n  shell: sh\n  script: echo ok\n  timeout: 30s\n" +
		"rollout:\n  waves:\n    - name: canary\n      group: canary\n    - name: fleet\n      group: fleet\n      delay: " + fleetDelay + "\n" + extra
	m, problems := jobs.Parse("waves.yaml", []byte(y))
	if len(problems) > 0 {
		t.Fatalf("manifest: %v", problems)
	}
	e, err := f.disp.Deploy(t.Context(), dispatch.DeployRequest{Manifest: m, Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	return e.ExecID
}

// report stores pc's final result as the results projector does.
func (f *engineFixture) report(t *testing.T, id, pc string, state wire.State) {
	t.Helper()
	code := 0
	if state != wire.StateSucceeded {
		code = 1
	}
	now := f.clock.Now()
	if _, err := f.st.ApplyResults(t.Context(), []wire.Result{{Protocol: wire.ProtocolVersion, ExecID: id, PCID: pc, State: state,
		ExitCode: &code, StartedAt: now, FinishedAt: now}}, now); err != nil {
		t.Fatal(err)
	}
}

func (f *engineFixture) waves(t *testing.T, id string) []store.Wave {
	t.Helper()
	ws, err := f.st.Waves(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func waveStates(ws []store.Wave) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.State)
	}
	return out
}

// A wave's delay runs on the engine's clock: the fleet waits until the
// delay after the canary's end has passed, not a moment less, then
// starts with its deadline counted from its start.
func TestEngine_WaveDelayOnItsClock(t *testing.T) {
	f := newEngineFixture(t)
	f.run(t)
	id := f.deploy(t, "1h", "")
	f.advance(t, time.Second)
	if ws := f.waves(t, id); ws[0].State != store.WaveRunning || ws[1].State != store.WaveWaiting {
		t.Fatalf("after the deploy: waves %v, want canary running, fleet waiting", waveStates(ws))
	}
	f.report(t, id, "c1", wire.StateSucceeded)
	f.advance(t, time.Second)
	ws := f.waves(t, id)
	if ws[0].State != store.WaveSucceeded || ws[1].State != store.WaveWaiting {
		t.Fatalf("after the canary: waves %v, want succeeded, waiting", waveStates(ws))
	}
	if want := ws[0].FinishedAt.Add(time.Hour); !ws[1].ReadyAt.Equal(want) {
		t.Errorf("fleet ready at %v, want the canary's end + 1h = %v", ws[1].ReadyAt, want)
	}
	// A minute short of the delay, in steps the engine looks at.
	for range 59 {
		f.advance(t, time.Minute)
	}
	f.advance(t, 59*time.Second)
	if ws := f.waves(t, id); ws[1].State != store.WaveWaiting {
		t.Fatalf("a second before the delay ends: fleet %s, want waiting", ws[1].State)
	}
	f.advance(t, time.Second)
	ws = f.waves(t, id)
	if ws[1].State != store.WaveRunning {
		t.Fatalf("once the delay ended: fleet %s, want running", ws[1].State)
	}
	if !ws[1].StartedAt.Equal(f.clock.Now()) {
		t.Errorf("fleet started at %v, want the clock's %v", ws[1].StartedAt, f.clock.Now().UTC())
	}
	if want := ws[1].StartedAt.Add(time.Hour); !ws[1].DeadlineAt.Equal(want) {
		t.Errorf("fleet deadline %v, want its start + the wave deadline (1h) = %v", ws[1].DeadlineAt, want)
	}
}

// A rollout the canary halted starts no further wave, however long the
// engine's clock runs; its failed wave stays failed.
func TestEngine_HaltedStartsNoWave(t *testing.T) {
	f := newEngineFixture(t)
	f.run(t)
	id := f.deploy(t, "0s", "")
	f.advance(t, time.Second)
	f.report(t, id, "c1", wire.StateFailed)
	f.advance(t, time.Second)
	e, err := f.st.Execution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != store.StatusHalted {
		t.Fatalf("after the canary failed: status %s, want halted", e.Status)
	}
	for range 120 {
		f.advance(t, time.Minute)
	}
	ws := f.waves(t, id)
	if ws[0].State != store.WaveFailed || ws[1].State != store.WaveWaiting || ws[1].Counts.Pending != 1 {
		t.Errorf("two hours after the halt: waves %v (fleet counts %+v), want failed, waiting with its PC pending", waveStates(ws), ws[1].Counts)
	}
	if e, _ := f.st.Execution(t.Context(), id); e.Status != store.StatusHalted {
		t.Errorf("two hours after the halt: status %s, want halted", e.Status)
	}
}

// Resume counts the fleet's delay from the resume, on the engine's clock.
func TestEngine_ResumeDelaysFromNow(t *testing.T) {
	f := newEngineFixture(t)
	f.run(t)
	id := f.deploy(t, "10m", "")
	f.advance(t, time.Second)
	f.report(t, id, "c1", wire.StateFailed)
	f.advance(t, time.Second)
	f.advance(t, time.Hour) // the delay would long be over without the halt
	if err := f.e.Resume(t.Context(), id, "bob"); err != nil {
		t.Fatal(err)
	}
	resumed := f.clock.Now()
	f.idle(t)
	ws := f.waves(t, id)
	if ws[1].State != store.WaveWaiting || !ws[1].ReadyAt.Equal(resumed.Add(10*time.Minute)) {
		t.Fatalf("after resume: fleet %s ready at %v, want waiting until %v", ws[1].State, ws[1].ReadyAt, resumed.Add(10*time.Minute))
	}
	f.advance(t, 9*time.Minute)
	if ws := f.waves(t, id); ws[1].State != store.WaveWaiting {
		t.Fatalf("9 of 10 minutes after resume: fleet %s, want waiting", ws[1].State)
	}
	f.advance(t, time.Minute)
	if ws := f.waves(t, id); ws[1].State != store.WaveRunning {
		t.Fatalf("10 minutes after resume: fleet %s, want running", ws[1].State)
	}
}
