package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/swarm"
)

// TestSwarm_EnrollsAndAnswers runs simulated agents against a real server:
// they enroll, come online and answer a fleet-wide run through the real
// worker code, with the model's outcome.
func TestSwarm_EnrollsAndAnswers(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	const n = 60
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stats swarm.Stats
	go func() {
		done <- swarm.Run(ctx, swarm.Config{Server: s.NATSURL, Credentials: s.Creds, Count: n, Seed: 7, Groups: []string{"canary", "wave1"},
			DataDir: t.TempDir(), HeartbeatInterval: time.Second, Model: swarm.Model{Latency: 20 * time.Millisecond, FailRate: 0.2, OutputBytes: 64},
			Logger: testLogger(t)}, &stats, nil)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("swarm: %v", err)
		}
	})
	checkFor(t, 60*time.Second, func() error {
		var list struct {
			Total int `json:"total"`
		}
		s.get(t, "/api/agents?status=online&limit=1", &list)
		if list.Total != n {
			return fmt.Errorf("%d of %d online", list.Total, n)
		}
		return nil
	})
	var canary struct {
		Total int `json:"total"`
	}
	if s.get(t, "/api/agents?group=canary&limit=1", &canary); canary.Total != n/2 {
		t.Errorf("canary members = %d, want %d", canary.Total, n/2)
	}
	e := s.run(t, map[string]any{"target": map[string]any{"all": true}, "shell": "sh", "script": "echo swarm"})
	got := s.waitExec(t, e.ExecID, completed)
	if got.TargetCount != n || got.Counts["succeeded"]+got.Counts["failed"] != n || got.Counts["failed"] == 0 || got.Counts["failed"] > n/2 {
		t.Errorf("swarm run: %d targets, counts %v (want all answered, ~20%% failed)", got.TargetCount, got.Counts)
	}
	again := s.run(t, map[string]any{"target": map[string]any{"all": true}, "shell": "sh", "script": "echo swarm"})
	if got2 := s.waitExec(t, again.ExecID, completed); got2.Counts["failed"] != got.Counts["failed"] {
		t.Errorf("same seed and script gave %d then %d failures", got.Counts["failed"], got2.Counts["failed"])
	}
}
