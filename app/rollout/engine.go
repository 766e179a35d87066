package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/store"
)

// Publisher sends a wave's command to its PCs (the dispatcher). It must be
// idempotent: a wave published twice runs once per PC.
type Publisher interface {
	PublishWave(ctx context.Context, e store.Execution, pcs []string, deadline time.Time) error
	// Stopped returns an error while the emergency stop is on.
	Stopped(ctx context.Context) error
}

// Actor of the engine's own audit events (auto-halts).
const Actor = "kanade"

// Engine drives every open rollout: once a second, when results are
// projected, and right after an operator acts. All of a rollout's state
// is in the database, so a restarted server resumes where it was. Wave
// delays, deadlines and the pace of its looks follow its clock.
type Engine struct {
	st    *store.Store
	pub   Publisher
	ev    *events.Broker
	audit *audit.Recorder
	log   *slog.Logger
	clock clockwork.Clock

	mu    sync.Mutex // one decision at a time
	nudge chan struct{}
	// lastLook is when (on the clock) the latest completed look began,
	// in Unix nanoseconds.
	lastLook atomic.Int64
}

// NewEngine returns an engine that keeps time by clock
// (clockwork.NewRealClock() in production); rec may be nil.
func NewEngine(st *store.Store, pub Publisher, ev *events.Broker, rec *audit.Recorder, clock clockwork.Clock, log *slog.Logger) *Engine {
	return &Engine{st: st, pub: pub, ev: ev, audit: rec, log: log, clock: clock, nudge: make(chan struct{}, 1)}
}

// LastLook is when, on the engine's clock, its latest completed look at
// the open rollouts began (zero before the first): everything stored
// before that time has been looked at.
func (e *Engine) LastLook() time.Time {
	n := e.lastLook.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// now is the clock's time in UTC.
func (e *Engine) now() time.Time { return e.clock.Now().UTC() }

// Kick makes the engine look at the rollouts now.
func (e *Engine) Kick() {
	select {
	case e.nudge <- struct{}{}:
	default:
	}
}

// Run steps the open rollouts until ctx is done. Between two looks it
// holds exactly one timer of its clock and nothing else, so a test on a
// fake clock knows a look has ended once Run waits on the clock again.
func (e *Engine) Run(ctx context.Context) error {
	results, unsub := e.ev.Subscribe(events.Executions)
	defer unsub()
	for {
		looked := e.clock.Now()
		e.look(ctx)
		e.lastLook.Store(looked.UnixNano())
		t := e.clock.NewTimer(pollEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.Chan():
		case <-e.nudge:
			t.Stop()
		case <-results:
			t.Stop()
			// Results come in batches, dozens a second while a fleet
			// reports: one look per resultsGap is enough for them (an
			// operator's action is not held back).
			if !e.pause(ctx, resultsGap-e.clock.Since(looked)) {
				return nil
			}
		}
	}
}

// look steps every open rollout once.
func (e *Engine) look(ctx context.Context) {
	ids, err := e.st.OpenRollouts(ctx)
	if err != nil && ctx.Err() == nil {
		e.log.Error("rollouts: list open", "err", err)
	}
	for _, id := range ids {
		if err := e.act(ctx, id, "", nil); err != nil && ctx.Err() == nil {
			e.log.Error("rollout step", "exec_id", id, "err", err)
		}
	}
}

// pause waits d on the clock, or less when the engine is kicked; it
// reports false when ctx ended first.
func (e *Engine) pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := e.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
	case <-e.nudge:
	}
	return true
}

const (
	// pollEvery is how often Run looks at the open rollouts without a
	// prompt: wave delays end and deadlines pass without one.
	pollEvery = time.Second
	// resultsGap is the least time between two looks at the rollouts
	// that results prompt.
	resultsGap = 250 * time.Millisecond
)

func (e *Engine) load(ctx context.Context, id string) (*State, error) {
	ex, err := e.st.Execution(ctx, id)
	if err != nil {
		return nil, err
	}
	ws, err := e.st.Waves(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(ws) == 0 {
		return nil, fmt.Errorf("%w: execution %s has no waves", ErrState, id)
	}
	return &State{Exec: ex, Waves: ws}, nil
}

// act loads a rollout, applies fn (an operator action, or nil), steps it,
// publishes the waves that start, and saves what changed.
func (e *Engine) act(ctx context.Context, id, action string, fn func(*State, time.Time) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, err := e.load(ctx, id)
	if err != nil {
		return err
	}
	before := snapshot(st)
	now := e.now()
	if fn != nil {
		if err := fn(st, now); err != nil {
			return err
		}
	}
	starts, _ := Step(st, now)
	if len(starts) > 0 {
		if err := e.pub.Stopped(ctx); err != nil {
			// No wave starts during an emergency stop: the rollout halts.
			st, _ = e.load(ctx, id)
			if Halt(st, "emergency stop") != nil {
				return nil
			}
			starts = nil
		}
	}
	for _, i := range starts {
		w := st.Waves[i]
		pcs, err := e.st.WavePCs(ctx, id, i)
		if err != nil {
			return err
		}
		if len(pcs) > 0 {
			// Published before it is saved as running: a crash in between
			// publishes it again, which agents run once.
			if err := e.pub.PublishWave(ctx, st.Exec, pcs, w.DeadlineAt); err != nil {
				return fmt.Errorf("start wave %d: %w", i, err)
			}
		}
		e.log.Info("rollout wave started", "exec_id", id, "wave", w.Name, "targets", len(pcs))
	}
	if snapshot(st) == before {
		return nil
	}
	if err := e.st.SaveRollout(ctx, id, st.Exec.Status, st.Exec.HaltReason, st.Waves, now); err != nil {
		return err
	}
	if st.Exec.Status == store.StatusHalted && action == "" && before.status != store.StatusHalted {
		// A halt stops work: it stands even when it cannot be recorded.
		e.log.Warn("rollout halted", "exec_id", id, "reason", st.Exec.HaltReason)
		if err := e.audit.Record(ctx, Actor, audit.RolloutAutoHalt, id, map[string]any{"reason": st.Exec.HaltReason}); err != nil {
			e.log.Error("rollout halted without an audit record", "exec_id", id, "reason", st.Exec.HaltReason, "err", err)
		}
	}
	e.ev.Publish(events.Execution(id))
	e.ev.Publish(events.Executions)
	return nil
}

type snap struct {
	status        store.Status
	reason, waves string
}

func snapshot(st *State) snap {
	s := snap{status: st.Exec.Status, reason: st.Exec.HaltReason}
	for _, w := range st.Waves {
		s.waves += fmt.Sprintf("%s|%d|%s|%d|%d|%d|%s;", w.State, w.ReadyAt.UnixMilli(), w.ApprovedBy, w.StartedAt.UnixMilli(), w.FinishedAt.UnixMilli(), w.DeadlineAt.UnixMilli(), w.Reason)
	}
	return s
}

// Approve releases wave idx of a rollout.
func (e *Engine) Approve(ctx context.Context, id string, idx int, actor Caller) error {
	return e.recorded(ctx, actor.Name, audit.WaveApprove, id, map[string]any{"wave": idx}, func(st *State, now time.Time) error { return Approve(st, idx, actor, now) })
}

// recorded applies an operator's action: checked against the rollout's
// state (a refused request leaves no event), recorded (refused when it
// cannot be), then carried out by act; a failure from then on is recorded
// as the action's failure.
func (e *Engine) recorded(ctx context.Context, actor, action, id string, detail any, fn func(*State, time.Time) error) error {
	st, err := e.load(ctx, id)
	if err != nil {
		return err
	}
	if err := fn(st, e.now()); err != nil {
		return err
	}
	if err := e.audit.Record(ctx, actor, action, id, detail); err != nil {
		return err
	}
	err = e.act(ctx, id, action, fn)
	e.audit.Failed(ctx, actor, action, id, err)
	return err
}

// Halt stops a rollout from starting new waves.
func (e *Engine) Halt(ctx context.Context, id, actor string) error {
	return e.recorded(ctx, actor, audit.RolloutHalt, id, nil, func(st *State, _ time.Time) error { return Halt(st, "halted by "+actor) })
}

// Resume continues a halted rollout (refused during an emergency stop).
func (e *Engine) Resume(ctx context.Context, id, actor string) error {
	if err := e.pub.Stopped(ctx); err != nil {
		return err
	}
	return e.recorded(ctx, actor, audit.RolloutResume, id, nil, func(st *State, now time.Time) error { return Resume(st, now) })
}

// Killed records that a rollout was killed: its waves end.
func (e *Engine) Killed(ctx context.Context, id, actor string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, err := e.load(ctx, id)
	if errors.Is(err, ErrState) {
		return nil // not a rollout
	}
	if err != nil {
		return err
	}
	now := e.now()
	Killed(st, actor, now)
	if err := e.st.SaveRollout(ctx, id, st.Exec.Status, st.Exec.HaltReason, st.Waves, now); err != nil {
		return err
	}
	e.ev.Publish(events.Execution(id))
	return nil
}

// HaltAll halts every running rollout (the emergency stop) and returns
// the exec_ids of those it halted (not those halted already).
func (e *Engine) HaltAll(ctx context.Context, reason string) ([]string, error) {
	ids, err := e.st.OpenRollouts(ctx)
	if err != nil {
		return nil, err
	}
	var halted []string
	for _, id := range ids {
		err := e.act(ctx, id, audit.RolloutHalt, func(st *State, _ time.Time) error { return Halt(st, reason) })
		switch {
		case err == nil:
			halted = append(halted, id)
		case !errors.Is(err, ErrState):
			return halted, err
		}
	}
	return halted, nil
}
