package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
)

// t0 is the base time of the tests; times are stored with millisecond
// precision, so tests use whole milliseconds.
var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func agent(pc string, lastSeen time.Time, groups ...string) store.Agent {
	return store.Agent{
		PCID:         pc,
		Hostname:     pc + ".corp.example",
		OS:           "windows",
		OSVersion:    "10.0.22631",
		Arch:         "amd64",
		AgentVersion: "1.0.0",
		Protocol:     wire.ProtocolVersion,
		Groups:       groups,
		Interval:     30 * time.Second,
		LastSeen:     lastSeen,
		OfflineAfter: lastSeen.Add(90 * time.Second),
	}
}

func execution(id string, created time.Time) store.Execution {
	return store.Execution{
		ExecID:           id,
		JobID:            "job-" + id,
		Version:          "1",
		Shell:            wire.ShellPowerShell,
		Script:           "Get-Date",
		Timeout:          time.Minute,
		Jitter:           5 * time.Second,
		Target:           store.Target{Groups: []string{"canary"}, PCs: []string{"pc1"}},
		InitiatedBy:      "alice",
		InitiatorSubject: "user:8a1f",
		CreatedAt:        created,
		DeadlineAt:       created.Add(time.Hour),
	}
}

func pcs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("pc%05d", i)
	}
	return out
}

func exit(c int) *int { return &c }

func mustUpsert(t testing.TB, s *store.Store, as ...store.Agent) {
	t.Helper()
	if err := s.UpsertAgents(context.Background(), as); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
}

func mustCreate(t testing.TB, s *store.Store, e store.Execution, pcIDs ...string) {
	t.Helper()
	if err := s.CreateExecution(context.Background(), e, pcIDs); err != nil {
		t.Fatalf("CreateExecution(%s): %v", e.ExecID, err)
	}
}

func mustApply(t testing.TB, s *store.Store, now time.Time, rs ...wire.Result) []string {
	t.Helper()
	ids, err := s.ApplyResults(context.Background(), rs, now)
	if err != nil {
		t.Fatalf("ApplyResults: %v", err)
	}
	return ids
}

func mustExecution(t testing.TB, s *store.Store, id string) store.Execution {
	t.Helper()
	e, err := s.Execution(context.Background(), id)
	if err != nil {
		t.Fatalf("Execution(%s): %v", id, err)
	}
	return e
}

func mustResult(t testing.TB, s *store.Store, execID, pc string) store.Result {
	t.Helper()
	r, err := s.Result(context.Background(), execID, pc)
	if err != nil {
		t.Fatalf("Result(%s, %s): %v", execID, pc, err)
	}
	return r
}
