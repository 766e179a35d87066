package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/windows/svc"
)

// events records what the service reported to the Event Log.
type events struct {
	mu   sync.Mutex
	info []string
	errs []string
}

func (e *events) Info(v ...any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.info = append(e.info, fmt.Sprint(v...))
	return nil
}

func (e *events) Error(v ...any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, fmt.Sprint(v...))
	return nil
}

// execute runs h.Execute as the Service Control Manager would, sending
// the requests from send, and returns its result and the states it
// reported.
func execute(t *testing.T, h *handler, send func(r chan<- svc.ChangeRequest, states <-chan svc.Status)) (bool, uint32) {
	t.Helper()
	requests := make(chan svc.ChangeRequest)
	states := make(chan svc.Status, 64)
	type result struct {
		specific bool
		code     uint32
	}
	done := make(chan result, 1)
	go func() {
		s, c := h.Execute(nil, requests, states)
		done <- result{s, c}
	}()
	want := func(state svc.State) {
		t.Helper()
		select {
		case got := <-states:
			if got.State != state {
				t.Fatalf("state %v, want %v", got.State, state)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no state reported, want %v", state)
		}
	}
	want(svc.StartPending)
	want(svc.Running)
	send(requests, states)
	select {
	case r := <-done:
		return r.specific, r.code
	case <-time.After(20 * time.Second):
		t.Fatal("Execute did not return")
	}
	return false, 0
}

// TestExecuteStop: a stop cancels the agent's context, the manager sees
// stop pending, and a clean return is a clean stop.
func TestExecuteStop(t *testing.T) {
	ev := &events{}
	h := &handler{events: ev, fn: func(ctx context.Context) error { <-ctx.Done(); return nil }}
	specific, code := execute(t, h, func(r chan<- svc.ChangeRequest, states <-chan svc.Status) {
		r <- svc.ChangeRequest{Cmd: svc.Interrogate}
		if s := <-states; s.State != svc.Running {
			t.Errorf("interrogate answered %v", s.State)
		}
		r <- svc.ChangeRequest{Cmd: svc.Stop}
		if s := <-states; s.State != svc.StopPending {
			t.Errorf("after stop: %v, want stop pending", s.State)
		}
	})
	if specific || code != 0 || h.err != nil {
		t.Errorf("Execute() = %v, %d (err %v); want a clean stop", specific, code, h.err)
	}
	if len(ev.info) != 2 || !strings.HasSuffix(ev.info[1], "stopped") || len(ev.errs) != 0 {
		t.Errorf("event log: info %q, errors %q", ev.info, ev.errs)
	}
}

// TestExecuteSlowStop: while the agent stops its scripts, the manager
// hears fresh checkpoints; an agent that does not stop in time fails.
func TestExecuteSlowStop(t *testing.T) {
	release := make(chan struct{})
	ev := &events{}
	h := &handler{events: ev, tick: 10 * time.Millisecond, stopTimeout: 300 * time.Millisecond,
		fn: func(ctx context.Context) error { <-ctx.Done(); <-release; return nil }}
	defer close(release)
	var checkpoints []uint32
	specific, code := execute(t, h, func(r chan<- svc.ChangeRequest, states <-chan svc.Status) {
		r <- svc.ChangeRequest{Cmd: svc.Shutdown}
		for len(checkpoints) < 3 {
			s := <-states
			if s.State != svc.StopPending {
				t.Fatalf("state %v during the stop", s.State)
			}
			checkpoints = append(checkpoints, s.CheckPoint)
		}
	})
	if checkpoints[0] >= checkpoints[1] || checkpoints[1] >= checkpoints[2] {
		t.Errorf("checkpoints %v do not advance", checkpoints)
	}
	if !specific || code != exitStopTimeout || len(ev.errs) != 1 || !strings.Contains(ev.errs[0], "did not stop within 300ms") {
		t.Errorf("Execute() = %v, %d; event log errors %q", specific, code, ev.errs)
	}
}

// TestExecuteAgentFails: an agent that ends by itself is a failure (so
// the recovery actions restart it), reported to the Event Log.
func TestExecuteAgentFails(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{errors.New("credentials: file not found"), "credentials: file not found"},
		{nil, "stopped without being asked to"},
	} {
		ev := &events{}
		h := &handler{events: ev, fn: func(context.Context) error { return tt.err }}
		specific, code := execute(t, h, func(chan<- svc.ChangeRequest, <-chan svc.Status) {})
		if !specific || code != exitFailed || h.err == nil || !strings.Contains(h.err.Error(), tt.want) {
			t.Errorf("Execute() = %v, %d, %v; want exit code %d with %q", specific, code, h.err, exitFailed, tt.want)
		}
		if len(ev.errs) != 1 || !strings.Contains(ev.errs[0], tt.want) {
			t.Errorf("event log errors %q, want %q", ev.errs, tt.want)
		}
	}
}
