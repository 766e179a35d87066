//go:build !windows

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/config"
)

// sealAudit makes the AUDIT stream refuse every new event, with the
// server's own credential: re-provisioning cannot help (a sealed stream
// cannot be unsealed), so the audit log stays unavailable.
func sealAudit(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, wire.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.Sealed = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("seal AUDIT: %v", err)
	}
}

// An action whose audit event cannot be recorded is refused with 503
// audit_unavailable, and nothing changes: no execution is recorded, no
// command published, a kill leaves the execution and its pending command
// as they were.
func TestAudit_FailsClosed(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	a := startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")
	a.stop()
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "true"})
	js, err := jetstream.New(stolenServerConn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	execMsgs := func() uint64 {
		st, err := js.Stream(ctx, wire.StreamExec)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State.Msgs
	}
	before := execMsgs()
	sealAudit(t, js)

	var body apiErrorBody
	if code := s.post(t, "/api/run", map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "true"}, &body); code != http.StatusServiceUnavailable || body.Error.Code != "audit_unavailable" {
		t.Errorf("POST /api/run with the audit log unavailable = %d %q, want 503 audit_unavailable", code, body.Error.Code)
	}
	body = apiErrorBody{}
	if code := s.post(t, "/api/executions/"+e.ExecID+"/kill", nil, &body); code != http.StatusServiceUnavailable || body.Error.Code != "audit_unavailable" {
		t.Errorf("kill with the audit log unavailable = %d %q, want 503 audit_unavailable", code, body.Error.Code)
	}

	var list struct {
		Total int `json:"total"`
	}
	if s.get(t, "/api/executions", &list); list.Total != 1 {
		t.Errorf("%d executions, want 1 (the refused run recorded none)", list.Total)
	}
	if got := s.waitExec(t, e.ExecID, targetIn("pc1", "pending")); got.Status != "running" {
		t.Errorf("execution after the refused kill: %s, want running", got.Status)
	}
	if n := execMsgs(); n != before {
		t.Errorf("EXEC holds %d messages, want %d (nothing published)", n, before)
	}
	st, err := js.Stream(ctx, wire.StreamExec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, wire.CommandPCSubject("pc1", "adhoc-"+e.ExecID))
	if err != nil {
		t.Fatal(err)
	}
	var cmd wire.Command
	if m.Header.Get(wire.HeaderWithdrawn) != "" || json.Unmarshal(m.Data, &cmd) != nil || cmd.ExecID != e.ExecID {
		t.Errorf("the pending command was withdrawn by a refused kill: %q %s", m.Header, m.Data)
	}
}

// A scheduler fire is a deploy: when its audit event cannot be recorded it
// does not run, and the fire is recorded as failed with the reason.
func TestAudit_SchedulerFireFailsClosed(t *testing.T) {
	skipIfShort(t)
	dir := jobsDir(t)
	sched := "id: every-second\ncron: \"* * * * * *\"\njob_id: tick\n"
	if err := os.WriteFile(filepath.Join(dir, "every-second.yaml"), []byte(sched), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) { c.Server.JobsDir = dir })
	startAgent(t, s, "pc1", []string{"lab"}, "")
	s.waitOnline(t, "pc1")
	js, err := jetstream.New(stolenServerConn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	sealAudit(t, js)
	checkFor(t, 30*time.Second, func() error {
		for _, f := range s.fires(t, "every-second") {
			if f.Status == "failed" && strings.Contains(f.Reason, "audit") {
				if f.ExecID != "" {
					return fmt.Errorf("a failed fire has an execution: %+v", f)
				}
				return nil
			}
		}
		return fmt.Errorf("no fire failed for the audit log yet")
	})
}

// Streams deleted while the server runs come back: the next run
// re-provisions them (EXEC on publish, AUDIT on its event, the rest with
// them), runs, reports its result through a fresh RESULTS and its audit
// event through a fresh AUDIT.
func TestReprovision_StreamsDeletedWhileRunning(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")
	js, err := jetstream.New(stolenServerConn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{wire.StreamAudit, wire.StreamExec, wire.StreamResults} {
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "echo back"})
	if got := s.waitExec(t, e.ExecID, completed); got.Counts["succeeded"] != 1 {
		t.Errorf("run after the streams were deleted: %v", got.Counts)
	}
	checkFor(t, 30*time.Second, func() error {
		var got struct {
			Events []struct{ Action, Target string } `json:"events"`
		}
		s.get(t, "/api/audit?action=run", &got)
		for _, ev := range got.Events {
			if ev.Target == e.ExecID {
				return nil
			}
		}
		return fmt.Errorf("the run's audit event is not projected: %+v", got.Events)
	})
	for _, name := range []string{wire.StreamAudit, wire.StreamExec} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if cfg := st.CachedInfo().Config; !cfg.DenyPurge || !cfg.DenyDelete {
			t.Errorf("re-created %s allows purge or delete", name)
		}
	}
}
