package main

import (
	"context"
	"testing"

	"github.com/kanadehq/kanade/agent/enroll"
)

// enrollPending has an agent ask to enroll as pc with the enrollment
// file creds (and wait for an admin, unless the token approves it) until
// the test ends: a PC an agent has had, which has never sent a heartbeat.
func enrollPending(t *testing.T, s *testServer, creds, pc string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir, log := t.TempDir(), testLogger(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = enroll.Setup(ctx, s.NATSURL, creds, dir, enroll.Request{PCID: pc, Hostname: pc + "-host"}, log)
	}()
	t.Cleanup(func() { cancel(); <-done })
}
