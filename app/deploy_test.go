//go:build !windows

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/agent/worker"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/sign"
)

// deploy posts a YAML manifest to /api/deploy.
func (s *testServer) deploy(t *testing.T, yaml string, v any) int {
	t.Helper()
	resp, err := http.Post(s.URL+"/api/deploy", "application/yaml", bytes.NewReader([]byte(yaml)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		_ = jsonDecode(resp, v)
	}
	return resp.StatusCode
}

func manifest(id, version, target, script string) string {
	return fmt.Sprintf("id: %s\nversion: %q\ntarget:\n  %s\nexecute:\n  shell: sh\n  script: %s\n  timeout: 30s\n", id, version, target, shQuote(script))
}

// Layer 1: a PC offline during v1 and v2 of a job runs only v2 when it
// returns, once; ad-hoc runs never replace each other.
func TestStopTheBleed_Layer1_NewestCommandOnly(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	data := t.TempDir()
	a := startAgent(t, s, "pc1", nil, data)
	s.waitOnline(t, "pc1")
	a.stop()
	marker := filepath.Join(t.TempDir(), "runs")
	var v1, v2 execution
	if code := s.deploy(t, manifest("upd", "1", "pcs: [pc1]", "echo v1 >> "+marker), &v1); code != http.StatusAccepted {
		t.Fatalf("deploy v1 = %d %+v", code, v1)
	}
	if code := s.deploy(t, manifest("upd", "2", "pcs: [pc1]", "echo v2 >> "+marker), &v2); code != http.StatusAccepted {
		t.Fatalf("deploy v2 = %d", code)
	}
	a1 := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "echo adhoc1 >> " + marker})
	a2 := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "echo adhoc2 >> " + marker})
	startAgent(t, s, "pc1", nil, data)
	for _, id := range []string{v2.ExecID, a1.ExecID, a2.ExecID} {
		if got := s.waitExec(t, id, completed); got.Counts["succeeded"] != 1 {
			t.Errorf("execution %s: %v", id, got.Counts)
		}
	}
	runs := strings.Join(lines(t, marker), " ")
	if strings.Contains(runs, "v1") || strings.Count(runs, "v2") != 1 || !strings.Contains(runs, "adhoc1") || !strings.Contains(runs, "adhoc2") {
		t.Errorf("runs = %q, want v2 once, no v1, both ad-hoc runs", runs)
	}
}

// Layer 2: right before starting, the agent checks the pinned version and
// the revoked flag: a stale version or a revoked job is skipped with a reason.
func TestStopTheBleed_Layer2_PinnedVersionAndRevoke(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	data := t.TempDir()
	a := startAgent(t, s, "pc1", []string{"lab"}, data)
	s.waitOnline(t, "pc1")
	a.stop()
	marker := filepath.Join(t.TempDir(), "runs")
	// v1 on the group subject and v2 on the PC subject both stay in the
	// stream (different subjects); v2 is pinned before it is published.
	var v1, v2, r1 execution
	s.deploy(t, manifest("pin", "1", "groups: [lab]", "echo v1 >> "+marker), &v1)
	s.deploy(t, manifest("pin", "2", "pcs: [pc1]", "echo v2 >> "+marker), &v2)
	// A job revoked while the PC is away is skipped when it returns.
	s.deploy(t, manifest("rev", "1", "pcs: [pc1]", "echo revoked-ran >> "+marker), &r1)
	var st map[string]string
	if code := s.post(t, "/api/jobs/rev/revoke", nil, &st); code != http.StatusOK || st["status"] != "REVOKED" {
		t.Fatalf("revoke = %d %v", code, st)
	}
	startAgent(t, s, "pc1", []string{"lab"}, data)
	got := s.waitExec(t, v1.ExecID, completed)
	if tr := got.Targets[0]; tr.State != "skipped" || !strings.Contains(tr.Reason, "stale") {
		t.Errorf("v1 = %s %q, want skipped as stale", tr.State, tr.Reason)
	}
	if got := s.waitExec(t, v2.ExecID, completed); got.Counts["succeeded"] != 1 {
		t.Errorf("v2: %v", got.Counts)
	}
	got = s.waitExec(t, r1.ExecID, completed)
	if tr := got.Targets[0]; tr.State != "skipped" || !strings.Contains(tr.Reason, "revoked") {
		t.Errorf("revoked job = %s %q, want skipped as revoked", tr.State, tr.Reason)
	}
	if runs := strings.Join(lines(t, marker), " "); runs != "v2" {
		t.Errorf("runs = %q, want only v2", runs)
	}
	// A revoked job cannot be deployed until it is unrevoked.
	if code := s.deploy(t, manifest("rev", "2", "pcs: [pc1]", "true"), nil); code != http.StatusConflict {
		t.Errorf("deploy a revoked job = %d, want 409", code)
	}
	if code := s.post(t, "/api/jobs/rev/unrevoke", nil, &st); code != http.StatusOK || st["status"] != "ACTIVE" {
		t.Fatalf("unrevoke = %d %v", code, st)
	}
	var r2 execution
	if code := s.deploy(t, manifest("rev", "2", "pcs: [pc1]", "echo rev2 >> "+marker), &r2); code != http.StatusAccepted {
		t.Fatalf("deploy after unrevoke = %d", code)
	}
	if got := s.waitExec(t, r2.ExecID, completed); got.Counts["succeeded"] != 1 {
		t.Errorf("after unrevoke: %v", got.Counts)
	}
}

// A manifest with three mistakes gets three errors with their YAML lines.
func TestDeploy_ThreeMistakes(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	bad := "id: bad job\nversion: \"1\"\ntarget:\n  groups: [Lab]\nexecute:\n  shell: sh\n  script: echo\n  timeout: 10 minutes\n"
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Details []struct {
				Field string `json:"field"`
				Line  int    `json:"line"`
			} `json:"details"`
		} `json:"error"`
	}
	if code := s.deploy(t, bad, &body); code != http.StatusBadRequest || len(body.Error.Details) != 3 {
		t.Fatalf("deploy = %d %+v, want 400 with 3 problems", code, body)
	}
	for _, d := range body.Error.Details {
		if d.Line == 0 {
			t.Errorf("problem %s has no line", d.Field)
		}
	}
}

// The emergency stop kills what runs, makes the server refuse new work
// (423) and shows a banner; after it is lifted, a command issued before
// the stop never runs, even on a PC that was offline.
func TestEmergencyStop(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", nil, "")
	off := t.TempDir()
	a2 := startAgent(t, s, "pc2", nil, off)
	s.waitOnline(t, "pc1", "pc2")
	a2.stop()

	// A command issued before the stop that only pc2 will see, straight
	// into the stream (as if the server had never tracked it).
	keys, err := sign.Load(filepath.Join(s.data, bus.SecretsDir, "command-keys"))
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "old-command-ran")
	now := time.Now().UTC()
	oldID := dispatch.NewExecID(now)
	body, _ := json.Marshal(wire.Command{Protocol: 1, ExecID: oldID, JobID: "old", Shell: "sh", Script: "touch " + shQuote(marker),
		Timeout: wire.Duration(time.Minute), IssuedAt: now, DeadlineAt: now.Add(time.Hour)})
	js, _ := jetstream.New(stolenServerConn(t, s))
	if _, err := js.PublishMsg(t.Context(), keys.Msg(wire.CommandPCSubject("pc2", "old"), body, now)); err != nil {
		t.Fatal(err)
	}

	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "sleep 60"})
	s.waitExec(t, e.ExecID, targetIn("pc1", "running"))
	var es struct {
		Active bool   `json:"active"`
		By     string `json:"by"`
		Reason string `json:"reason"`
	}
	if code := s.post(t, "/api/emergency-stop", map[string]any{"reason": ""}, nil); code != http.StatusBadRequest {
		t.Errorf("stop without a reason = %d, want 400", code)
	}
	if code := s.post(t, "/api/emergency-stop", map[string]any{"reason": "bad script"}, &es); code != http.StatusOK || !es.Active || es.By != "dev" {
		t.Fatalf("emergency stop = %d %+v", code, es)
	}
	got := s.waitExec(t, e.ExecID, targetIn("pc1", "killed"))
	if got.Status != "killed" {
		t.Errorf("running execution after the stop: %s", got.Status)
	}
	if code := s.post(t, "/api/run", map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "true"}, nil); code != http.StatusLocked {
		t.Errorf("run during the stop = %d, want 423", code)
	}
	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `data-testid="emergency-banner"`) || !strings.Contains(string(page), "bad script") {
		t.Error("no emergency banner on the dashboard")
	}

	req, _ := http.NewRequest(http.MethodDelete, s.URL+"/api/emergency-stop", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("lift = %d", resp.StatusCode)
	}
	startAgent(t, s, "pc2", nil, off)
	r := waitResult(t, s, oldID, "pc2")
	if r.State != "skipped" || !strings.Contains(r.Reason, "before the emergency stop") {
		t.Errorf("old command after lifting = %s %q", r.State, r.Reason)
	}
	after := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1", "pc2"}}, "shell": "sh", "script": "echo back"})
	if got := s.waitExec(t, after.ExecID, completed); got.Counts["succeeded"] != 2 {
		t.Errorf("run after lifting: %v", got.Counts)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a command issued before the emergency stop ran")
	}
}

// Layer 3: kill also cancels targets still waiting in their jitter; they
// never start.
func TestStopTheBleed_KillCancelsJitter(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	waiting := make(chan struct{}, 1)
	startAgentWith(t, s, "pc1", nil, "", func(c *worker.Config) {
		c.Jitter = func(max time.Duration) time.Duration { waiting <- struct{}{}; return max } // wait the whole jitter
	})
	s.waitOnline(t, "pc1")
	marker := filepath.Join(t.TempDir(), "ran")
	m := manifest("slow-start", "1", "pcs: [pc1]", "touch "+marker) + "  jitter: 10m\ndeadline: 1h\n"
	var e execution
	if code := s.deploy(t, m, &e); code != http.StatusAccepted {
		t.Fatalf("deploy = %d", code)
	}
	<-waiting // the agent has the command and waits in its jitter
	if code := s.post(t, "/api/executions/"+e.ExecID+"/kill", nil, nil); code != http.StatusAccepted {
		t.Fatalf("kill = %d", code)
	}
	got := s.waitExec(t, e.ExecID, completed)
	tr := got.Targets[0]
	if tr.State != "killed" || !strings.Contains(tr.Reason, "before it started") {
		t.Errorf("target = %s %q, want killed before it started", tr.State, tr.Reason)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the killed command ran")
	}
}

// Layer 4: past its deadline a command is not run; a PC that sees it late
// reports it expired itself.
func TestStopTheBleed_DeadlineExpires(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	data := t.TempDir()
	a := startAgent(t, s, "pc1", nil, data)
	s.waitOnline(t, "pc1")
	a.stop()
	marker := filepath.Join(t.TempDir(), "ran")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "touch " + marker, "deadline": "1s"})
	deadline := time.Now().Add(1100 * time.Millisecond)
	checkFor(t, 5*time.Second, func() error {
		if time.Now().Before(deadline) {
			return fmt.Errorf("deadline not passed yet")
		}
		return nil
	})
	startAgent(t, s, "pc1", nil, data)
	s.waitExec(t, e.ExecID, func(e execution) error {
		if tr := e.Targets[0]; tr.State != "expired" || !strings.Contains(tr.Reason, "after its deadline") || e.Status != "completed" {
			return fmt.Errorf("execution %s, target %s %q", e.Status, tr.State, tr.Reason)
		}
		return nil
	})
	if _, err := os.Stat(marker); err == nil {
		t.Error("a command past its deadline ran")
	}
}
