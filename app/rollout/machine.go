// Package rollout runs executions in waves: a state machine over the
// waves stored in the database (Step, Approve, Halt, Resume — pure
// functions of the state and the clock) and the Engine that drives it
// from projected results and timers, publishing each wave when it starts.
//
// Transitions of a wave (the execution's status in brackets):
//
//	waiting → (delay over, no approval) running              [running]
//	waiting → (delay over, approval)    awaiting_approval    [awaiting_approval]
//	awaiting_approval → (Approve)       running              [running]
//	running → (failures > max_failures)             failed   [halted: auto-halt]
//	running → (all final, successes < min_success)  failed   [halted: auto-halt]
//	running → (all final)                           succeeded, next wave
//	any → (Halt) unchanged, no wave starts          [halted]
//	halted → (Resume) a failed wave counts as done  [running]
//	last wave succeeded                             [completed when every target is final]
//	Kill → waves not started become halted          [killed]
package rollout

import (
	"errors"
	"fmt"
	"time"

	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

// State is one rollout: its execution (status, initiator, four-eyes,
// halt reason) and its waves with their counts.
type State struct {
	Exec  store.Execution
	Waves []store.Wave
}

// Failures counts a wave's targets that did not succeed and will not
// (a lost target's agent may still report, but the wave does not wait).
func Failures(c store.Counts) int {
	return c.Failed + c.TimedOut + c.Skipped + c.Expired + c.Killed + c.Lost
}

func threshold(s string, total int) (int, bool) {
	if s == "" {
		return 0, false
	}
	t, err := jobs.ParseThreshold(s)
	if err != nil {
		return 0, false
	}
	return t.Of(total), true
}

// canStart reports whether new waves may start.
func (st *State) canStart() bool {
	return st.Exec.Status == store.StatusRunning || st.Exec.Status == store.StatusAwaitingApproval
}

// setStatus changes the status of a rollout that may start waves; a
// halted or completed one keeps its status.
func (st *State) setStatus(s store.Status) {
	if st.canStart() {
		st.Exec.Status = s
	}
}

// Step advances the rollout to now. It returns the indexes of the waves
// that start (their commands must be published) and when Step should run
// again at the latest (zero: only when results arrive or someone acts).
// Waves already running keep being judged while the rollout is halted
// (or completed: its last targets ended); no new wave starts then. A
// killed rollout does not change.
func Step(st *State, now time.Time) (starts []int, wake time.Time) {
	if st.Exec.Status == store.StatusKilled {
		return nil, time.Time{}
	}
	for i := 0; i < len(st.Waves); i++ {
		w := &st.Waves[i]
		switch w.State {
		case store.WaveSucceeded, store.WaveFailed:
			continue // a failed wave is passed only after Resume (it halted the rollout)
		case store.WaveHalted:
			return starts, time.Time{}
		case store.WaveRunning:
			c := w.Counts
			fails := Failures(c)
			if max, ok := threshold(w.MaxFailures, w.TargetCount); ok && fails > max {
				st.fail(w, now, fmt.Sprintf("wave %s: %d of %d targets failed, more than max_failures %s", w.Name, fails, w.TargetCount, w.MaxFailures))
				return starts, time.Time{}
			}
			if c.Pending+c.Running > 0 {
				st.setStatus(store.StatusRunning)
				return starts, time.Time{}
			}
			if min, ok := threshold(w.MinSuccess, w.TargetCount); ok && c.Succeeded < min {
				st.fail(w, now, fmt.Sprintf("wave %s: %d of %d targets succeeded, fewer than min_success %s", w.Name, c.Succeeded, w.TargetCount, w.MinSuccess))
				return starts, time.Time{}
			}
			w.State, w.FinishedAt = store.WaveSucceeded, now
			continue
		case store.WaveWaiting, store.WaveAwaitingApproval:
			if !st.canStart() {
				return starts, time.Time{}
			}
			if w.ReadyAt.IsZero() {
				base := st.Exec.CreatedAt
				if i > 0 {
					base = st.Waves[i-1].FinishedAt
				}
				if base.IsZero() || base.Before(st.Exec.CreatedAt) {
					base = now
				}
				w.ReadyAt = base.Add(w.Delay)
			}
			if now.Before(w.ReadyAt) {
				st.Exec.Status = store.StatusRunning
				return starts, w.ReadyAt
			}
			if w.Approval && w.ApprovedBy == "" {
				w.State = store.WaveAwaitingApproval
				st.Exec.Status = store.StatusAwaitingApproval
				return starts, time.Time{}
			}
			w.State, w.StartedAt = store.WaveRunning, now
			if st.Exec.WaveDeadline > 0 {
				w.DeadlineAt = now.Add(st.Exec.WaveDeadline)
			}
			st.Exec.Status = store.StatusRunning
			starts = append(starts, i)
			i-- // judge it at once (an empty wave is done at once)
		}
	}
	// Every wave is done; the store completes the execution when its last
	// target is final.
	st.setStatus(store.StatusRunning)
	return starts, time.Time{}
}

func (st *State) fail(w *store.Wave, now time.Time, why string) {
	w.State, w.FinishedAt, w.Reason = store.WaveFailed, now, why
	if st.canStart() {
		st.Exec.Status, st.Exec.HaltReason = store.StatusHalted, "halted automatically: "+why
	}
}

// Errors of the operator actions.
var (
	// ErrState: the rollout or wave is not in a state that allows the action (409).
	ErrState = errors.New("not possible now")
	// ErrFourEyes: under four-eyes the initiator may not approve (403).
	ErrFourEyes = errors.New("four-eyes: whoever started a rollout cannot approve its waves")
)

// Caller is who acts on a rollout: the name that audit events and wave
// cards show, and the stable identity (auth.Principal.Subject; empty when
// unknown) that the four-eyes rule compares.
type Caller struct{ Name, Subject string }

// CanApprove is the four-eyes rule: under four-eyes whoever started a
// rollout may not approve its waves (ErrFourEyes), neither under the same
// name nor under another name with the same identity (a name changed at
// the identity provider, another token of the same user is another
// identity). Roles are checked by the caller; this is the only place the
// rule is written.
func CanApprove(e store.Execution, a Caller) error {
	if e.FourEyes && (a.Name == e.InitiatedBy || (a.Subject != "" && a.Subject == e.InitiatorSubject)) {
		return ErrFourEyes
	}
	return nil
}

// Approve releases wave idx for its start by actor.
func Approve(st *State, idx int, actor Caller, now time.Time) error {
	if idx < 0 || idx >= len(st.Waves) {
		return fmt.Errorf("%w: the rollout has no wave %d", ErrState, idx)
	}
	w := &st.Waves[idx]
	if w.State != store.WaveAwaitingApproval || st.Exec.Status != store.StatusAwaitingApproval {
		why := "is " + w.State
		if st.Exec.Status == store.StatusHalted {
			why = "belongs to a halted rollout; resume it first"
		}
		return fmt.Errorf("%w: wave %d (%s) is not awaiting approval: it %s", ErrState, idx, w.Name, why)
	}
	if err := CanApprove(st.Exec, actor); err != nil {
		return err
	}
	w.ApprovedBy, w.ApprovedAt = actor.Name, now
	return nil
}

// Halt stops new waves from starting; running targets keep running.
func Halt(st *State, reason string) error {
	if st.Exec.Status != store.StatusRunning && st.Exec.Status != store.StatusAwaitingApproval {
		return fmt.Errorf("%w: the rollout is %s", ErrState, st.Exec.Status)
	}
	st.Exec.Status, st.Exec.HaltReason = store.StatusHalted, reason
	return nil
}

// Resume continues a halted rollout: a wave that failed its threshold
// counts as done, and the next wave's delay runs from now.
func Resume(st *State, now time.Time) error {
	if st.Exec.Status != store.StatusHalted {
		return fmt.Errorf("%w: the rollout is %s, not halted", ErrState, st.Exec.Status)
	}
	st.Exec.Status, st.Exec.HaltReason = store.StatusRunning, ""
	for i := range st.Waves {
		w := &st.Waves[i]
		if w.State == store.WaveWaiting {
			if w.ReadyAt.IsZero() || w.ReadyAt.Before(now) {
				w.ReadyAt = now.Add(w.Delay)
			}
			break
		}
		if w.State == store.WaveAwaitingApproval || w.State == store.WaveRunning {
			break
		}
	}
	return nil
}

// Killed records a kill: the running wave fails and the waves that never
// started are halted.
func Killed(st *State, by string, now time.Time) {
	for i := range st.Waves {
		w := &st.Waves[i]
		switch w.State {
		case store.WaveRunning:
			w.State, w.FinishedAt, w.Reason = store.WaveFailed, now, "killed by "+by
		case store.WaveWaiting, store.WaveAwaitingApproval:
			w.State, w.Reason = store.WaveHalted, "the rollout was killed by "+by
		}
	}
}
