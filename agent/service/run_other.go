//go:build !windows

package service

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Run runs the agent (fn) as the service: systemd and launchd stop it with
// SIGTERM, which cancels fn's context.
func Run(fn func(ctx context.Context) error, _ Events) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return fn(ctx)
}

// EventLog returns nil: systemd and launchd keep the agent's stderr.
func EventLog() (Events, error) { return nil, nil }
