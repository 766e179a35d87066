package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	kardianos "github.com/kardianos/service"
	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
)

// Exit codes the service reports to the Service Control Manager (as
// service-specific codes); any of them makes the recovery actions run.
const (
	exitFailed      = 1 // the agent stopped by itself with an error
	exitStopFailed  = 2 // the agent's stop ended with an error
	exitStopTimeout = 3 // the agent did not stop within StopTimeout
)

// Run runs the agent (fn) as the Windows service Name under the Service
// Control Manager: a stop or shutdown request cancels fn's context, and
// the manager hears "stop pending" with a fresh checkpoint every two
// seconds until fn returns, for at most StopTimeout. The service reports
// its start, stop and fatal errors to events (may be nil) too.
func Run(fn func(ctx context.Context) error, events Events) error {
	h := &handler{fn: fn, events: events}
	if err := svc.Run(Name, h); err != nil {
		if errors.Is(err, windows.ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
			return fmt.Errorf("`service run` is for the Service Control Manager; start the service with `kanade-agent service start`, or run the agent in this console without `service run`: %w", err)
		}
		return err
	}
	return h.err
}

// EventLog opens the Windows Event Log under the service's name (the
// source `service install` registered).
func EventLog() (Events, error) {
	s, err := kardianos.New(program{}, &kardianos.Config{Name: Name})
	if err != nil {
		return nil, err
	}
	return s.SystemLogger(nil)
}

type handler struct {
	fn          func(ctx context.Context) error
	events      Events
	stopTimeout time.Duration // 0: StopTimeout
	tick        time.Duration // 0: two seconds between stop-pending checkpoints
	err         error         // why the service stopped with an error
}

func (h *handler) info(msg string) {
	if h.events != nil {
		_ = h.events.Info(msg)
	}
}

func (h *handler) fail(err error) {
	h.err = err
	if h.events != nil {
		_ = h.events.Error(err.Error())
	}
}

func (h *handler) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.fn(ctx) }()
	running := svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	status <- running
	h.info(DisplayName + " started")
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("the agent stopped without being asked to")
			}
			h.fail(fmt.Errorf("%s stopped: %w", DisplayName, err))
			return true, exitFailed
		case r := <-requests:
			switch r.Cmd {
			case svc.Interrogate:
				status <- running
			case svc.Stop, svc.Shutdown:
				cancel()
				return h.stop(requests, status, done)
			}
		}
	}
}

// stop waits for the cancelled agent, keeping the manager informed.
func (h *handler) stop(requests <-chan svc.ChangeRequest, status chan<- svc.Status, done <-chan error) (bool, uint32) {
	tick, timeout := h.tick, h.stopTimeout
	if tick <= 0 {
		tick = 2 * time.Second
	}
	if timeout <= 0 {
		timeout = StopTimeout
	}
	pending := svc.Status{State: svc.StopPending, CheckPoint: 1, WaitHint: uint32((2 * tick).Milliseconds())}
	status <- pending
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				h.fail(fmt.Errorf("%s stopped with an error: %w", DisplayName, err))
				return true, exitStopFailed
			}
			h.info(DisplayName + " stopped")
			return false, 0
		case <-ticker.C:
			pending.CheckPoint++
			status <- pending
		case r := <-requests:
			if r.Cmd == svc.Interrogate {
				status <- pending
			}
		case <-deadline.C:
			h.fail(fmt.Errorf("%s did not stop within %s; its process ends now", DisplayName, timeout))
			return true, exitStopTimeout
		}
	}
}
