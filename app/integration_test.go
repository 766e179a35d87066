//go:build !windows

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestIntegration_RunReachesResultRow(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")

	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh",
		"script": "echo hello; echo oops >&2; exit 3", "timeout": "30s"})
	if e.TargetCount != 1 || e.JobID != "adhoc" {
		t.Fatalf("execution = %+v, want 1 target of job adhoc", e)
	}
	// /wait answers once the execution is over, with its counts.
	var waited execution
	if code := s.get(t, "/api/executions/"+e.ExecID+"/wait?timeout=60s", &waited); code != http.StatusOK ||
		waited.Status != "completed" || waited.Counts["failed"] != 1 || waited.Targets != nil {
		t.Errorf("GET …/wait = %d %+v, want 200, completed with 1 failed and no targets", code, waited)
	}
	got := s.waitExec(t, e.ExecID, completed)
	tr := got.Targets[0]
	if tr.State != "failed" || tr.ExitCode == nil || *tr.ExitCode != 3 || tr.Stdout != "hello\n" || tr.Stderr != "oops\n" {
		t.Errorf("target = %+v, want failed, exit 3, stdout hello, stderr oops", tr)
	}
	var rs struct {
		Results []targetResult `json:"results"`
		Total   int            `json:"total"`
	}
	if code := s.get(t, "/api/results?exec_id="+e.ExecID, &rs); code != http.StatusOK || rs.Total != 1 || rs.Results[0].PCID != "pc1" {
		t.Errorf("GET /api/results = %d %+v", code, rs)
	}
}

// A PC matched by all, a group and its own pc subject runs the execution
// exactly once (DESIGN §4 rule 1).
func TestIntegration_OverlappingTargetsRunOnce(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", []string{"canary"}, "")
	startAgent(t, s, "pc2", nil, "")
	s.waitOnline(t, "pc1", "pc2")
	marker := filepath.Join(t.TempDir(), "runs")

	e := s.run(t, map[string]any{
		"target": map[string]any{"all": true, "groups": []string{"canary"}, "pcs": []string{"pc1"}},
		"shell":  "sh", "script": "echo \"$KANADE_PC_ID\" >> " + shQuote(marker)})
	if e.TargetCount != 2 {
		t.Errorf("target_count = %d, want 2 (PCs, not subjects)", e.TargetCount)
	}
	got := s.waitExec(t, e.ExecID, completed)
	if got.Counts["succeeded"] != 2 {
		t.Fatalf("counts = %v, want 2 succeeded", got.Counts)
	}
	runs := lines(t, marker)
	if strings.Count(strings.Join(runs, " "), "pc1") != 1 || len(runs) != 2 {
		t.Errorf("runs = %v, want pc1 and pc2 once each", runs)
	}
}

// An agent that restarts replays the EXEC stream but never runs an
// execution it already ran.
func TestIntegration_AgentRestartDoesNotRerun(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	data := t.TempDir()
	a := startAgent(t, s, "pc1", []string{"g1"}, data)
	s.waitOnline(t, "pc1")
	marker := filepath.Join(t.TempDir(), "runs")
	var ids []string
	for _, target := range []map[string]any{{"pcs": []string{"pc1"}}, {"groups": []string{"g1"}}, {"all": true}} {
		e := s.run(t, map[string]any{"target": target, "shell": "sh", "script": "echo run >> " + shQuote(marker)})
		s.waitExec(t, e.ExecID, completed)
		ids = append(ids, e.ExecID)
	}
	a.stop()

	b := startAgent(t, s, "pc1", []string{"g1"}, data)
	checkFor(t, 20*time.Second, func() error {
		if b.W.CatchUps() < 1 {
			return fmt.Errorf("no catch-up pass yet")
		}
		return nil
	})
	if runs := lines(t, marker); len(runs) != 3 {
		t.Errorf("marker has %d runs after restart and catch-up, want 3", len(runs))
	}
	for _, id := range ids {
		if got := s.waitExec(t, id, completed); got.Counts["succeeded"] != 1 {
			t.Errorf("execution %s counts = %v", id, got.Counts)
		}
	}
}

// An offline PC catches up when it comes back (before the deadline).
func TestIntegration_OfflineAgentCatchesUp(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	data := t.TempDir()
	a := startAgent(t, s, "pc1", []string{"g1"}, data)
	s.waitOnline(t, "pc1")
	a.stop()

	e := s.run(t, map[string]any{"target": map[string]any{"groups": []string{"g1"}}, "shell": "sh", "script": "echo caught up"})
	if got := s.waitExec(t, e.ExecID, func(e execution) error { return nil }); got.Counts["pending"] != 1 {
		t.Fatalf("counts = %v, want 1 pending while the PC is offline", got.Counts)
	}
	startAgent(t, s, "pc1", []string{"g1"}, data)
	got := s.waitExec(t, e.ExecID, completed)
	if got.Targets[0].State != "succeeded" || got.Targets[0].Stdout != "caught up\n" {
		t.Errorf("target = %+v", got.Targets[0])
	}
}

// Kill stops the whole process tree (a grandchild too) and the target
// shows killed; a second kill is a conflict.
func TestIntegration_KillKillsTree(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")
	pidFile := filepath.Join(t.TempDir(), "pid")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh",
		"script": "sleep 300 & echo $! > " + shQuote(pidFile) + "; wait", "timeout": "10m"})
	s.waitExec(t, e.ExecID, targetIn("pc1", "running"))
	var pid int
	checkFor(t, 10*time.Second, func() error {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})

	// While it runs, /wait gives up after its timeout and says so by the status.
	var still execution
	if code := s.get(t, "/api/executions/"+e.ExecID+"/wait?timeout=200ms", &still); code != http.StatusOK || still.Status != "running" {
		t.Errorf("GET …/wait?timeout=200ms = %d %+v, want 200 running", code, still)
	}
	var bad apiErrorBody
	if code := s.get(t, "/api/executions/"+e.ExecID+"/wait?timeout=1h", &bad); code != http.StatusBadRequest ||
		len(bad.Error.Details) != 1 || bad.Error.Details[0].Field != "timeout" {
		t.Errorf("GET …/wait?timeout=1h = %d %+v, want 400 naming timeout", code, bad)
	}
	if code := s.get(t, "/api/executions/nope-nope/wait", nil); code != http.StatusNotFound {
		t.Errorf("GET /api/executions/nope-nope/wait = %d, want 404", code)
	}

	var resp map[string]any
	if code := s.post(t, "/api/executions/"+e.ExecID+"/kill", nil, &resp); code != http.StatusAccepted || resp["killed_requested"] != true {
		t.Fatalf("kill = %d %v", code, resp)
	}
	got := s.waitExec(t, e.ExecID, targetIn("pc1", "killed"))
	if got.Status != "killed" || !strings.Contains(got.Targets[0].Reason, "killed by dev") {
		t.Errorf("execution = %s, target = %+v; want killed by dev", got.Status, got.Targets[0])
	}
	checkFor(t, 10*time.Second, func() error {
		if err := syscall.Kill(pid, 0); err == nil {
			return fmt.Errorf("grandchild %d still alive", pid)
		}
		return nil
	})
}

// Kill cancels a PC that has not started: it is offline, and when it
// returns it does not run the killed execution.
func TestIntegration_KillCancelsPendingOfflinePC(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	data := t.TempDir()
	a := startAgent(t, s, "pc1", nil, data)
	s.waitOnline(t, "pc1")
	a.stop()
	marker := filepath.Join(t.TempDir(), "ran")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "touch " + shQuote(marker)})
	if code := s.post(t, "/api/executions/"+e.ExecID+"/kill", nil, nil); code != http.StatusAccepted {
		t.Fatalf("kill = %d", code)
	}
	got := s.waitExec(t, e.ExecID, targetIn("pc1", "killed"))
	if got.Status != "killed" {
		t.Errorf("status = %s, want killed", got.Status)
	}
	b := startAgent(t, s, "pc1", nil, data)
	checkFor(t, 20*time.Second, func() error {
		if b.W.CatchUps() < 1 {
			return fmt.Errorf("no catch-up yet")
		}
		return nil
	})
	if _, err := os.Stat(marker); err == nil {
		t.Error("the killed execution ran after the PC came back")
	}
}

// A result produced while the broker is down is kept by the agent and
// lands in the database once the broker is back.
func TestIntegration_BrokerRestartLosesNoResult(t *testing.T) {
	skipIfShort(t)
	dir := t.TempDir()
	natsAddr := freeAddr(t)
	s := startServer(t, dir, natsAddr)
	startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")
	gate := filepath.Join(t.TempDir(), "gate")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh",
		"script": "while [ ! -f " + shQuote(gate) + " ]; do sleep 0.05; done; echo finished", "timeout": "5m"})
	s.waitExec(t, e.ExecID, targetIn("pc1", "running"))

	s.stop()
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, dir, natsAddr)
	got := s2.waitExec(t, e.ExecID, completed)
	if tr := got.Targets[0]; tr.State != "succeeded" || tr.Stdout != "finished\n" {
		t.Errorf("target after broker restart = %+v", tr)
	}
}

func TestIntegration_APIValidation(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	var body apiErrorBody
	code := s.post(t, "/api/run", map[string]any{"target": map[string]any{"pcs": []string{"bad.pc"}}, "shell": "bash", "script": " ", "timeout": "0s"}, &body)
	var fields []string
	for _, d := range body.Error.Details {
		fields = append(fields, d.Field)
	}
	if code != http.StatusBadRequest || body.Error.Code != "validation_failed" || strings.Join(fields, ",") != "target.pcs,shell,script,timeout" {
		t.Errorf("POST /api/run = %d %s %v, want 400 validation_failed on target.pcs,shell,script,timeout", code, body.Error.Code, fields)
	}
	code = s.post(t, "/api/run", map[string]any{"target": map[string]any{"pcs": []string{"p"}}, "shel": "sh"}, &body)
	if code != http.StatusBadRequest || len(body.Error.Details) == 0 || body.Error.Details[0].Field != "shel" {
		t.Errorf("unknown field: %d %+v", code, body)
	}
	if code := s.get(t, "/api/executions/nope", nil); code != http.StatusNotFound {
		t.Errorf("GET unknown execution = %d, want 404", code)
	}
	resp, err := http.Post(s.URL+"/api/run", "text/plain", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body = %d, want 415", resp.StatusCode)
	}
	var h map[string]string
	if code := s.get(t, "/healthz", &h); code != http.StatusOK || h["nats"] != "ok" || h["db"] != "ok" {
		t.Errorf("/healthz = %d %v", code, h)
	}
}

// Revoking an agent cuts it off: it can no longer publish heartbeats (so
// it goes offline), it runs nothing, and its key can never come back.
func TestIntegration_RevokeAgent(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", []string{"lab"}, "")
	s.waitOnline(t, "pc1")
	var k struct {
		PCID   string   `json:"pc_id"`
		Status string   `json:"status"`
		Groups []string `json:"groups"`
	}
	start := time.Now()
	if code := s.post(t, "/api/agents/pc1/revoke", nil, &k); code != http.StatusOK || k.Status != "revoked" {
		t.Fatalf("revoke = %d %+v", code, k)
	}
	checkFor(t, 20*time.Second, func() error {
		var a struct {
			Online bool `json:"online"`
		}
		s.get(t, "/api/agents/pc1", &a)
		if a.Online {
			return fmt.Errorf("pc1 still online")
		}
		return nil
	})
	t.Logf("revoked agent offline (no heartbeat for 3 intervals) after %v", time.Since(start).Round(time.Millisecond))
	marker := filepath.Join(t.TempDir(), "ran")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "touch " + shQuote(marker), "deadline": "2s"})
	got := s.waitExec(t, e.ExecID, targetIn("pc1", "expired"))
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("a revoked agent ran a command: %+v", got.Targets)
	}
	var list struct {
		Enrollments []struct {
			PCID string `json:"pc_id"`
		} `json:"enrollments"`
		Total int `json:"total"`
	}
	if code := s.get(t, "/api/enrollments?status=revoked", &list); code != http.StatusOK || list.Total != 1 || list.Enrollments[0].PCID != "pc1" {
		t.Errorf("GET /api/enrollments?status=revoked = %d %+v", code, list)
	}
	if code := s.post(t, "/api/enrollments/pc1/reject", nil, nil); code != http.StatusConflict {
		t.Errorf("reject a revoked agent = %d, want 409", code)
	}
}

// An admin creates a token that holds agents for approval; an agent
// enrolling with it waits on the Pending list until it is approved, then
// runs commands of the token's default groups.
func TestIntegration_EnrollmentTokenWithApproval(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	var created struct {
		Token struct {
			ID string `json:"id"`
		} `json:"token"`
		Secret      string `json:"secret"`
		Credentials string `json:"agent_credentials"`
	}
	if code := s.post(t, "/api/enrollment-tokens", map[string]any{"name": "lab PCs", "default_groups": []string{"Lab"}, "expires_in": "24h", "max_uses": 5}, &created); code != http.StatusCreated || created.Secret == "" {
		t.Fatalf("create token = %d %+v", code, created)
	}
	var bad struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := s.post(t, "/api/enrollment-tokens", map[string]any{"name": " ", "default_groups": []string{"a.b"}}, &bad); code != http.StatusBadRequest {
		t.Errorf("invalid token request = %d %+v", code, bad)
	}
	creds := filepath.Join(t.TempDir(), "agent-credentials")
	if err := os.WriteFile(creds, []byte(created.Credentials), 0o600); err != nil {
		t.Fatal(err)
	}
	held := *s
	held.Creds = creds
	started := make(chan *testAgent, 1)
	go func() { started <- startAgent(t, &held, "held1", nil, "") }()

	checkFor(t, 20*time.Second, func() error {
		var list struct {
			Enrollments []struct {
				PCID   string   `json:"pc_id"`
				Groups []string `json:"groups"`
			} `json:"enrollments"`
		}
		s.get(t, "/api/enrollments", &list)
		if len(list.Enrollments) != 1 || list.Enrollments[0].PCID != "held1" || strings.Join(list.Enrollments[0].Groups, ",") != "lab" {
			return fmt.Errorf("pending = %+v", list.Enrollments)
		}
		return nil
	})
	if code := s.post(t, "/api/enrollments/held1/approve", nil, nil); code != http.StatusOK {
		t.Fatalf("approve = %d", code)
	}
	<-started
	s.waitOnline(t, "held1")
	e := s.run(t, map[string]any{"target": map[string]any{"groups": []string{"LAB"}}, "shell": "sh", "script": "echo approved"})
	if got := s.waitExec(t, e.ExecID, completed); got.Counts["succeeded"] != 1 {
		t.Errorf("run on the approved agent's group: %+v", got)
	}
	if code := s.post(t, "/api/enrollment-tokens/"+created.Token.ID+"/revoke", nil, nil); code != http.StatusOK {
		t.Errorf("revoke token = %d", code)
	}
}

// Every state-changing action lands in the audit log with its actor, in
// the API and as CSV.
func TestIntegration_AuditLog(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "sleep 30"})
	s.waitExec(t, e.ExecID, targetIn("pc1", "running"))
	if code := s.post(t, "/api/executions/"+e.ExecID+"/kill", nil, nil); code != http.StatusAccepted {
		t.Fatalf("kill = %d", code)
	}
	if code := s.post(t, "/api/agents/pc1/revoke", nil, nil); code != http.StatusOK {
		t.Fatalf("revoke = %d", code)
	}
	type event struct {
		Actor, Action, Target string
		Detail                map[string]any
	}
	var got struct {
		Events []event `json:"events"`
		Total  int     `json:"total"`
	}
	checkFor(t, 20*time.Second, func() error {
		s.get(t, "/api/audit", &got)
		if got.Total < 3 {
			return fmt.Errorf("%d events", got.Total)
		}
		return nil
	})
	want := []string{"agent.revoke pc1", "kill " + e.ExecID, "run " + e.ExecID}
	for i, w := range want {
		if ev := got.Events[i]; ev.Action+" "+ev.Target != w || ev.Actor != "dev" {
			t.Errorf("event %d = %+v, want %s by dev", i, ev, w)
		}
	}
	if got.Events[2].Detail["script"] != "sleep 30" {
		t.Errorf("run detail = %v", got.Events[2].Detail)
	}
	var kills struct{ Total int }
	if s.get(t, "/api/audit?action=kill&since=1h", &kills); kills.Total != 1 {
		t.Errorf("filtered total = %d, want 1", kills.Total)
	}
	resp, err := http.Get(s.URL + "/audit/export.csv?actor=dev")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(body), "id,at,actor,action,target,detail\n") || strings.Count(string(body), "\n") != 4 {
		t.Errorf("CSV export:\n%s", body)
	}
}

// An agent publishes the live output of all its executions on one
// subject; a target's log stream shows only its own execution's output.
func TestIntegration_LiveOutputPerExecution(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")
	gate := filepath.Join(t.TempDir(), "gate")
	wait := "while [ ! -f " + shQuote(gate) + " ]; do sleep 0.05; done"
	ea := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh",
		"script": "echo alpha; " + wait + "; echo omega", "timeout": "5m"})
	eb := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh",
		"script": "echo beta; " + wait + "; echo beta-end", "timeout": "5m"})
	s.waitExec(t, ea.ExecID, targetIn("pc1", "running"))
	s.waitExec(t, eb.ExecID, targetIn("pc1", "running"))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp := s.open(t, ctx, "/executions/"+ea.ExecID+"/log/pc1/stream")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("log stream = %d", resp.StatusCode)
	}
	var got strings.Builder
	sc := bufio.NewScanner(resp.Body)
	released := false
	for sc.Scan() {
		got.WriteString(sc.Text() + "\n")
		if !released && strings.Contains(got.String(), "alpha") {
			released = true
			if err := os.WriteFile(gate, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if sc.Text() == "event: done" {
			break
		}
	}
	if !released {
		t.Fatalf("the stream ended (%v) before alpha arrived:\n%s", sc.Err(), got.String())
	}
	if strings.Contains(got.String(), "beta") {
		t.Errorf("the log stream of %s shows another execution's output:\n%s", ea.ExecID, got.String())
	}
	s.waitExec(t, eb.ExecID, completed)
}
