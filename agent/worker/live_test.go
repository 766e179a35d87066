package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/runner"
	"github.com/kanadehq/kanade/agent/wire"
)

// syncBuffer is a log destination tests read while the worker writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Commands that arrive live follow the catch-up rule: one for everyone (or
// a group) issued before this agent existed is refused and reported as
// skipped (a replay of a stored command); one addressed to this PC runs.
// A withdrawal (a killed command's place holder) is ignored quietly.
func TestLiveCommands_IssuedBeforeTheAgentExisted(t *testing.T) {
	s, _ := runJetStream(t)
	answerCatchups(t, s.ClientURL(), nothingToCatchUp)
	var ranMu sync.Mutex
	var ran []string
	logs := &syncBuffer{}
	cfg := Config{Exec: func(ctx context.Context, sp runner.Spec) runner.Outcome {
		ranMu.Lock()
		ran = append(ran, sp.Script)
		ranMu.Unlock()
		code := 0
		return runner.Outcome{State: wire.StateSucceeded, ExitCode: &code, StartedAt: time.Now(), FinishedAt: time.Now()}
	}}
	cfg.PCID, cfg.DataDir, cfg.Logger = "pc1", t.TempDir(), slog.New(slog.NewTextHandler(logs, nil))
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, s.ClientURL()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	eventually.Within(t, 30*time.Second, eventually.Holds("the first catch-up", func() bool { return w.CatchUps() >= 1 }))

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	created := w.ledger.Created()
	send := func(subject, execID string, issued time.Time) {
		t.Helper()
		body, _ := json.Marshal(wire.Command{Protocol: wire.ProtocolVersion, ExecID: execID, JobID: "job", Shell: "sh", Script: execID,
			Timeout: wire.Duration(time.Minute), IssuedAt: issued.UTC(), DeadlineAt: time.Now().Add(time.Hour).UTC()})
		if err := nc.Publish(subject, body); err != nil {
			t.Fatal(err)
		}
	}
	withdrawal := nats.NewMsg(wire.CommandAllSubject("job"))
	withdrawal.Header.Set(wire.HeaderWithdrawn, "killed1")
	if err := nc.PublishMsg(withdrawal); err != nil {
		t.Fatal(err)
	}
	send(wire.CommandAllSubject("old"), "old-all", created.Add(-time.Hour))
	send(wire.CommandPCSubject("pc1", "own"), "old-own", created.Add(-time.Hour))
	send(wire.CommandAllSubject("new"), "new-all", time.Now())
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	finals := func() map[string]wire.Result {
		items, err := w.outbox.Pending()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]wire.Result{}
		for _, it := range items {
			var r wire.Result
			if json.Unmarshal(it.Data, &r) == nil && r.State.Final() {
				out[r.ExecID] = r
			}
		}
		return out
	}
	eventually.Within(t, 10*time.Second, eventually.Holds("three final results", func() bool { return len(finals()) == 3 }))
	got := map[string]wire.State{}
	for id, r := range finals() {
		got[id] = r.State
	}
	want := map[string]wire.State{"old-all": wire.StateSkipped, "old-own": wire.StateSucceeded, "new-all": wire.StateSucceeded}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("final states (-want +got):\n%s", diff)
	}
	if r := finals()["old-all"]; !strings.Contains(r.Reason, "before this agent existed") {
		t.Errorf("reason of the refused command = %q, want it to say it was issued before this agent existed", r.Reason)
	}
	ranMu.Lock()
	defer ranMu.Unlock()
	for _, script := range ran {
		if script == "old-all" {
			t.Error("the command issued before the agent existed ran")
		}
	}
	if l := logs.String(); strings.Contains(l, "undecodable") {
		t.Errorf("the withdrawal was treated as a command:\n%s", l)
	}
}
