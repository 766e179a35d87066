package rollout

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// rollout builds a rollout started at t0 by alice.
func rollout(fourEyes bool, waves ...store.Wave) *State {
	for i := range waves {
		waves[i].Index = i
		if waves[i].State == "" {
			waves[i].State = store.WaveWaiting
		}
		waves[i].Counts = store.Counts{Pending: waves[i].TargetCount} // every target is pending at first
	}
	return &State{Exec: store.Execution{ExecID: "x", Status: store.StatusRunning, InitiatedBy: "alice", CreatedAt: t0,
		FourEyes: fourEyes, WaveDeadline: time.Hour}, Waves: waves}
}

func wave(name string, targets int, mods ...func(*store.Wave)) store.Wave {
	w := store.Wave{Name: name, TargetCount: targets, MaxFailures: "0"}
	for _, m := range mods {
		m(&w)
	}
	return w
}

func delay(d time.Duration) func(*store.Wave) { return func(w *store.Wave) { w.Delay = d } }
func approval(w *store.Wave)                  { w.Approval = true }
func maxFail(s string) func(*store.Wave)      { return func(w *store.Wave) { w.MaxFailures = s } }
func minSuccess(s string) func(*store.Wave)   { return func(w *store.Wave) { w.MinSuccess = s } }
func pending(n int) store.Counts              { return store.Counts{Pending: n} }
func done(ok, failed int) store.Counts        { return store.Counts{Succeeded: ok, Failed: failed} }
func mixed(ok, failed, running int) store.Counts {
	return store.Counts{Succeeded: ok, Failed: failed, Running: running}
}

// step is one event of a scenario: at time at, the waves' counts become
// counts (nil keeps them), act runs (an operator action), then Step.
type step struct {
	at     time.Duration
	counts []store.Counts
	act    func(*State, time.Time) error
	// expectations after the step
	starts  []int
	wake    time.Duration // 0: none
	status  store.Status
	states  []string
	reason  string // substring of the halt reason
	wantErr error
}

func TestStep(t *testing.T) {
	W, A, R, S, F, H := store.WaveWaiting, store.WaveAwaitingApproval, store.WaveRunning, store.WaveSucceeded, store.WaveFailed, store.WaveHalted
	approve := func(idx int, who string) func(*State, time.Time) error {
		return func(st *State, now time.Time) error { return Approve(st, idx, Caller{Name: who}, now) }
	}
	halt := func(st *State, _ time.Time) error { return Halt(st, "by bob") }
	resume := func(st *State, now time.Time) error { return Resume(st, now) }
	tests := []struct {
		name  string
		st    *State
		steps []step
	}{
		{"canary then delay then the rest", rollout(false, wave("canary", 2), wave("rest", 8, delay(5*time.Minute))), []step{
			{at: 0, starts: []int{0}, status: "running", states: []string{R, W}},
			{at: time.Minute, counts: []store.Counts{mixed(1, 0, 1), pending(8)}, status: "running", states: []string{R, W}},
			{at: 2 * time.Minute, counts: []store.Counts{done(2, 0), pending(8)}, wake: 7 * time.Minute, status: "running", states: []string{S, W}},
			{at: 6 * time.Minute, wake: 7 * time.Minute, states: []string{S, W}},
			{at: 7 * time.Minute, starts: []int{1}, status: "running", states: []string{S, R}},
			{at: 8 * time.Minute, counts: []store.Counts{done(2, 0), done(8, 0)}, status: "running", states: []string{S, S}},
		}},
		{"approval gate and four-eyes", rollout(true, wave("canary", 1), wave("all", 9, approval)), []step{
			{at: 0, starts: []int{0}, states: []string{R, W}},
			{at: time.Minute, counts: []store.Counts{done(1, 0), pending(9)}, status: "awaiting_approval", states: []string{S, A}},
			{at: 2 * time.Minute, act: approve(1, "alice"), wantErr: ErrFourEyes, status: "awaiting_approval", states: []string{S, A}},
			{at: 2 * time.Minute, act: approve(0, "carol"), wantErr: ErrState, status: "awaiting_approval"},
			{at: 3 * time.Minute, act: approve(1, "carol"), starts: []int{1}, status: "running", states: []string{S, R}},
			{at: 4 * time.Minute, act: approve(1, "carol"), wantErr: ErrState},
		}},
		{"without four-eyes the initiator approves", rollout(false, wave("a", 1, approval)), []step{
			{at: 0, status: "awaiting_approval", states: []string{A}},
			{at: time.Second, act: approve(0, "alice"), starts: []int{0}, status: "running", states: []string{R}},
		}},
		{"canary failure halts; wave 2 never starts", rollout(false, wave("canary", 4), wave("rest", 96)), []step{
			{at: 0, starts: []int{0}},
			{at: time.Minute, counts: []store.Counts{mixed(1, 1, 2), pending(96)}, status: "halted", states: []string{F, W}, reason: "1 of 4 targets failed, more than max_failures 0"},
			{at: 2 * time.Minute, counts: []store.Counts{done(3, 1), pending(96)}, status: "halted", states: []string{F, W}},
			{at: time.Hour, status: "halted", states: []string{F, W}},
			{at: time.Hour, act: resume, starts: []int{1}, status: "running", states: []string{F, R}},
		}},
		{"percent threshold tolerates some failures", rollout(false, wave("a", 20, maxFail("10%")), wave("b", 10)), []step{
			{at: 0, starts: []int{0}},
			{at: time.Minute, counts: []store.Counts{done(18, 2), pending(10)}, starts: []int{1}, states: []string{S, R}},
		}},
		{"percent threshold exceeded", rollout(false, wave("a", 20, maxFail("10%")), wave("b", 10)), []step{
			{at: 0, starts: []int{0}},
			{at: time.Minute, counts: []store.Counts{mixed(0, 3, 17), pending(10)}, status: "halted", states: []string{F, W}, reason: "3 of 20"},
		}},
		{"a lost target is a failure: within max_failures the next wave starts", rollout(false, wave("a", 4, maxFail("1")), wave("b", 4)), []step{
			{at: 0, starts: []int{0}},
			{at: time.Minute, counts: []store.Counts{{Succeeded: 3, Running: 1}, pending(4)}, status: "running", states: []string{R, W}},
			{at: 20 * time.Minute, counts: []store.Counts{{Succeeded: 3, Lost: 1}, pending(4)}, starts: []int{1}, status: "running", states: []string{S, R}},
		}},
		{"lost targets past max_failures halt", rollout(false, wave("a", 4, maxFail("1")), wave("b", 4)), []step{
			{at: 0, starts: []int{0}},
			{at: 20 * time.Minute, counts: []store.Counts{{Succeeded: 2, Lost: 2}, pending(4)}, status: "halted", states: []string{F, W}, reason: "2 of 4 targets failed"},
		}},
		{"min_success not reached", rollout(false, wave("a", 10, maxFail("100%"), minSuccess("90%")), wave("b", 5)), []step{
			{at: 0, starts: []int{0}},
			{at: time.Minute, counts: []store.Counts{mixed(8, 1, 1), pending(5)}, status: "running", states: []string{R, W}},
			{at: 2 * time.Minute, counts: []store.Counts{done(8, 2), pending(5)}, status: "halted", states: []string{F, W}, reason: "fewer than min_success 90%"},
		}},
		{"manual halt during a delay, resume restarts it", rollout(false, wave("a", 1), wave("b", 1, delay(10*time.Minute))), []step{
			{at: 0, starts: []int{0}},
			{at: time.Minute, counts: []store.Counts{done(1, 0), pending(1)}, wake: 11 * time.Minute},
			{at: 2 * time.Minute, act: halt, status: "halted", states: []string{S, W}},
			{at: 20 * time.Minute, status: "halted", states: []string{S, W}},
			{at: 20 * time.Minute, act: resume, wake: 30 * time.Minute, status: "running", states: []string{S, W}},
			{at: 30 * time.Minute, starts: []int{1}, states: []string{S, R}},
		}},
		{"halt while a wave runs: it finishes, the next does not start", rollout(false, wave("a", 2), wave("b", 2)), []step{
			{at: 0, starts: []int{0}},
			{at: time.Second, act: halt, status: "halted", states: []string{R, W}},
			{at: time.Minute, counts: []store.Counts{done(2, 0), pending(2)}, status: "halted", states: []string{S, W}},
			{at: time.Minute, act: halt, wantErr: ErrState},
		}},
		{"empty wave passes at once", rollout(false, wave("nobody", 0), wave("b", 3)), []step{
			{at: 0, starts: []int{0, 1}, states: []string{S, R}},
		}},
		{"first wave's delay counts from the start", rollout(false, wave("a", 1, delay(time.Minute))), []step{
			{at: 0, wake: time.Minute, states: []string{W}},
			{at: time.Minute, starts: []int{0}, states: []string{R}},
		}},
		{"approval on a halted rollout is refused", rollout(false, wave("a", 1, approval)), []step{
			{at: 0, status: "awaiting_approval"},
			{at: time.Second, act: halt, status: "halted"},
			{at: time.Second, act: approve(0, "carol"), wantErr: ErrState, status: "halted"},
			{at: 2 * time.Second, act: resume, status: "awaiting_approval", states: []string{A}},
		}},
		{"kill fails the running wave and halts the rest", rollout(false, wave("a", 1), wave("b", 1)), []step{
			{at: 0, starts: []int{0}},
			{at: time.Second, act: func(st *State, now time.Time) error {
				st.Exec.Status = store.StatusKilled
				Killed(st, "bob", now)
				return nil
			}, status: "killed", states: []string{F, H}},
			{at: time.Hour, status: "killed", states: []string{F, H}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				for j, c := range s.counts {
					st.Waves[j].Counts = c
				}
				if s.act != nil {
					if err := s.act(st, now); !errors.Is(err, s.wantErr) {
						t.Fatalf("step %d: action error %v, want %v", i, err, s.wantErr)
					}
				}
				starts, wake := Step(st, now)
				if !equalInts(starts, s.starts) {
					t.Errorf("step %d: starts %v, want %v", i, starts, s.starts)
				}
				var wantWake time.Time
				if s.wake > 0 {
					wantWake = t0.Add(s.wake)
				}
				if !wake.Equal(wantWake) {
					t.Errorf("step %d: wake %v, want %v", i, wake, wantWake)
				}
				if s.status != "" && st.Exec.Status != s.status {
					t.Errorf("step %d: status %s, want %s", i, st.Exec.Status, s.status)
				}
				for j, want := range s.states {
					if got := st.Waves[j].State; got != want {
						t.Errorf("step %d: wave %d is %s, want %s", i, j, got, want)
					}
				}
				if s.reason != "" && !strings.Contains(st.Exec.HaltReason, s.reason) {
					t.Errorf("step %d: halt reason %q lacks %q", i, st.Exec.HaltReason, s.reason)
				}
				for _, j := range starts {
					if w := st.Waves[j]; !w.StartedAt.Equal(now) || !w.DeadlineAt.Equal(now.Add(time.Hour)) {
						t.Errorf("step %d: wave %d started %v deadline %v", i, j, w.StartedAt, w.DeadlineAt)
					}
				}
			}
		})
	}
}

// TestStep_RestartInEveryState: the state is all in the waves and the
// execution, so a server that reloads it in any state (a copy here) makes
// the same decision, and a wave that already started never starts again.
func TestStep_RestartInEveryState(t *testing.T) {
	st := rollout(false, wave("canary", 1), wave("b", 2, delay(5*time.Minute), approval), wave("c", 3))
	started := map[int]int{}
	events := []struct {
		at     time.Duration
		counts []store.Counts
		act    func(*State, time.Time) error
	}{
		{0, nil, nil},
		{time.Minute, []store.Counts{done(1, 0), pending(2), pending(3)}, nil},
		{3 * time.Minute, nil, nil},
		{6 * time.Minute, nil, nil},
		{7 * time.Minute, nil, func(st *State, now time.Time) error { return Approve(st, 1, Caller{Name: "carol"}, now) }},
		{8 * time.Minute, []store.Counts{done(1, 0), done(2, 0), pending(3)}, nil},
		{9 * time.Minute, []store.Counts{done(1, 0), done(2, 0), done(3, 0)}, nil},
	}
	for i, ev := range events {
		now := t0.Add(ev.at)
		for j, c := range ev.counts {
			st.Waves[j].Counts = c
		}
		if ev.act != nil {
			if err := ev.act(st, now); err != nil {
				t.Fatal(err)
			}
		}
		// "Restart": a fresh copy stepped twice must agree with itself and
		// never start a wave twice.
		for r := 0; r < 2; r++ {
			cp := &State{Exec: st.Exec, Waves: append([]store.Wave(nil), st.Waves...)}
			starts, _ := Step(cp, now)
			for _, j := range starts {
				started[j]++
			}
			st = cp
		}
		_ = i
	}
	for j := 0; j < 3; j++ {
		if started[j] != 1 {
			t.Errorf("wave %d started %d times, want once", j, started[j])
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAssign(t *testing.T) {
	pcs := []string{"a1", "a2", "b1", "b2", "b3", "c1", "c2", "c3", "c4", "c5"}
	groups := map[string][]string{"canary": {"a1", "a2", "zz-not-in-target"}, "b": {"a2", "b1", "b2", "b3"}}
	waves := []jobs.Wave{{Name: "canary", Group: "Canary"}, {Name: "b", Group: "b"}, {Name: "pick", PCs: []string{"c1", "a1"}}, {Name: "half", Percent: 50}}
	got, rest := Assign("x1", pcs, waves, groups)
	if fmt.Sprint(got[:3]) != "[[a1 a2] [b1 b2 b3] [c1]]" {
		t.Errorf("named waves = %v (a PC belongs to its first wave only; PCs outside the target are ignored)", got[:3])
	}
	// 50% of 10 is 5, but only 4 are left; nothing remains for a rest wave.
	if len(got[3]) != 4 || rest || len(got) != 4 {
		t.Errorf("half wave = %v, rest %v", got, rest)
	}
	seen := map[string]int{}
	for _, w := range got {
		for _, p := range w {
			seen[p]++
		}
	}
	if len(seen) != len(pcs) {
		t.Errorf("waves cover %d PCs, want %d", len(seen), len(pcs))
	}
	for p, n := range seen {
		if n != 1 {
			t.Errorf("%s is in %d waves", p, n)
		}
	}
	// Reproducible for one execution, different for another.
	again, _ := Assign("x1", pcs, []jobs.Wave{{Name: "c", Count: 3}}, nil)
	other, _ := Assign("x2", pcs, []jobs.Wave{{Name: "c", Count: 3}}, nil)
	same, _ := Assign("x1", pcs, []jobs.Wave{{Name: "c", Count: 3}}, nil)
	if fmt.Sprint(again) != fmt.Sprint(same) || len(again[0]) != 3 {
		t.Errorf("not reproducible: %v vs %v", again, same)
	}
	if fmt.Sprint(other) == fmt.Sprint(again) {
		t.Logf("two executions picked the same canaries (possible, unlikely): %v", other)
	}
	// Everything named: no rest wave.
	if _, rest := Assign("x", []string{"a1"}, []jobs.Wave{{Name: "all", Percent: 100}}, nil); rest {
		t.Error("a rest wave was added though every PC has a wave")
	}
}

// TestCanApprove_SameIdentityAnotherName: four eyes holds when the
// initiator comes back under another name (renamed at the identity
// provider); the initiator's name alone still refuses.
func TestCanApprove_SameIdentityAnotherName(t *testing.T) {
	e := store.Execution{FourEyes: true, InitiatedBy: "alice", InitiatorSubject: "user:8a1f"}
	for _, tt := range []struct {
		name string
		who  Caller
		want error
	}{
		{"the initiator", Caller{Name: "alice", Subject: "user:8a1f"}, ErrFourEyes},
		{"the initiator renamed", Caller{Name: "alice.w", Subject: "user:8a1f"}, ErrFourEyes},
		{"the initiator's name, no identity known", Caller{Name: "alice"}, ErrFourEyes},
		{"someone else", Caller{Name: "bob", Subject: "user:77c0"}, nil},
		{"someone else, no identity known", Caller{Name: "bob"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := CanApprove(e, tt.who); !errors.Is(err, tt.want) {
				t.Errorf("CanApprove(%+v) = %v; want %v", tt.who, err, tt.want)
			}
		})
	}
	old := store.Execution{FourEyes: true, InitiatedBy: "alice"} // started before identities were kept
	if err := CanApprove(old, Caller{Name: "bob", Subject: "user:77c0"}); err != nil {
		t.Errorf("an execution without an initiator identity: %v", err)
	}
}
