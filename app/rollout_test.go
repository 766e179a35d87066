//go:build !windows

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/kanadehq/kanade/app/config"
)

// rolloutClock is the real clock moved forward by what the test adds
// with Advance: the server's timers keep real time, and what its
// rollout engine finds when it looks (a wave's delay over) follows the
// moves. It counts the engine's looks at a rollout, so that a test can
// wait for the engine to have looked again instead of sleeping.
type rolloutClock struct {
	clockwork.Clock
	mu     sync.Mutex
	offset time.Duration
	looks  int
}

func newRolloutClock() *rolloutClock { return &rolloutClock{Clock: clockwork.NewRealClock()} }

// engineStep is the function of the rollout engine that reads the clock
// once per look at a rollout.
const engineStep = "github.com/kanadehq/kanade/app/rollout.(*Engine).act"

func (c *rolloutClock) Now() time.Time {
	pcs := make([]uintptr, 8)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		f, more := frames.Next()
		if f.Function == engineStep {
			c.looks++
			break
		}
		if !more {
			break
		}
	}
	return c.Clock.Now().Add(c.offset)
}

func (c *rolloutClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *rolloutClock) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

// Advance moves the clock forward by d.
func (c *rolloutClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func (c *rolloutClock) engineLooks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.looks
}

// waitEngineLooks waits until the engine has begun two more looks at a
// rollout, so that one whole look happened after the call (the engine
// looks at one rollout at a time).
func (c *rolloutClock) waitEngineLooks(t *testing.T) {
	t.Helper()
	from := c.engineLooks()
	checkFor(t, 30*time.Second, func() error {
		if n := c.engineLooks() - from; n < 2 {
			return fmt.Errorf("the rollout engine looked %d times, waiting for 2", n)
		}
		return nil
	})
}

type rolloutExec struct {
	execution
	HaltReason string `json:"halt_reason"`
	Waves      []struct {
		Index       int            `json:"index"`
		Name        string         `json:"name"`
		State       string         `json:"state"`
		TargetCount int            `json:"target_count"`
		Counts      map[string]int `json:"counts"`
		ApprovedBy  string         `json:"approved_by"`
	} `json:"waves"`
}

func (s *testServer) rollout(t *testing.T, id string) rolloutExec {
	t.Helper()
	var r rolloutExec
	if code := s.get(t, "/api/executions/"+id, &r); code != 200 {
		t.Fatalf("GET execution %s: %d", id, code)
	}
	return r
}

func (s *testServer) waitRollout(t *testing.T, id string, what string, cond func(r rolloutExec) bool) rolloutExec {
	t.Helper()
	var r rolloutExec
	checkFor(t, 60*time.Second, func() error {
		r = s.rollout(t, id)
		if !cond(r) {
			return fmt.Errorf("waiting for %s: status %s, waves %+v", what, r.Status, r.Waves)
		}
		return nil
	})
	return r
}

// call sends a JSON request with a bearer token ("" for none).
func (s *testServer) call(t *testing.T, method, path, token string, body any, v any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		_ = json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

func (s *testServer) deployAs(t *testing.T, token, yaml string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/deploy", strings.NewReader(yaml))
	req.Header.Set("Content-Type", "application/yaml")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		_ = json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

func waveManifest(id, script, waves string) string {
	return fmt.Sprintf("id: %s\nversion: \"1\"\ntarget:\n  groups: [canary, fleet]\nexecute:\n  shell: sh\n  script: %s\n  timeout: 30s\nrollout:\n  waves:\n%s", id, shQuote(script), waves)
}

// The canary's failures halt the rollout on their own, and wave 2 never
// runs; the auto-halt is audited.
func TestRollout_CanaryFailureHalts(t *testing.T) {
	skipIfShort(t)
	clock := newRolloutClock()
	s := startServerOpts(t, t.TempDir(), "", nil, serveOptions{Clock: clock})
	marker := filepath.Join(t.TempDir(), "ran")
	for _, a := range []struct{ pc, group string }{{"c1", "canary"}, {"c2", "canary"}, {"f1", "fleet"}, {"f2", "fleet"}} {
		startAgent(t, s, a.pc, []string{a.group}, "")
	}
	s.waitOnline(t, "c1", "c2", "f1", "f2")
	// c1 fails; the default max_failures is 0.
	script := `echo "$KANADE_PC_ID" >> ` + marker + `; [ "$KANADE_PC_ID" != c1 ]`
	var e execution
	if code := s.deploy(t, waveManifest("canary-fail", script, "    - name: canary\n      group: canary\n    - name: fleet\n      group: fleet\n"), &e); code != http.StatusAccepted {
		t.Fatalf("deploy: %d %+v", code, e)
	}
	r := s.waitRollout(t, e.ExecID, "the canary to halt the rollout", func(r rolloutExec) bool {
		return r.Status == "halted" && len(r.Waves) == 2 && r.Waves[0].State == "failed" && r.Waves[0].Counts["running"]+r.Waves[0].Counts["pending"] == 0
	})
	if !strings.Contains(r.HaltReason, "1 of 2 targets failed") || r.Waves[1].State != "waiting" || r.Waves[1].Counts["pending"] != 2 {
		t.Errorf("halted rollout: reason %q, waves %+v", r.HaltReason, r.Waves)
	}
	if r.TargetCount != 4 {
		t.Errorf("target_count %d, want 4", r.TargetCount)
	}
	// A wrong engine would start wave 2 at its next look; an hour on, no
	// delay could hold it back either.
	clock.Advance(time.Hour)
	clock.waitEngineLooks(t)
	ran := lines(t, marker)
	sort.Strings(ran)
	if strings.Join(ran, " ") != "c1 c2" {
		t.Errorf("ran on %v, want the canaries only", ran)
	}
	if r := s.rollout(t, e.ExecID); r.Waves[1].State != "waiting" || r.Status != "halted" {
		t.Errorf("wave 2 moved: %+v", r.Waves[1])
	}
	var audit struct {
		Events []struct{ Actor, Action, Target string } `json:"events"`
	}
	s.get(t, "/api/audit?action=rollout.auto_halt", &audit)
	if len(audit.Events) != 1 || audit.Events[0].Target != e.ExecID {
		t.Errorf("auto-halt audit = %+v", audit.Events)
	}
	// Resume (operator decision): the failed canary counts as done, wave 2 runs.
	if code := s.call(t, http.MethodPost, "/api/executions/"+e.ExecID+"/resume", "", nil, nil); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	s.waitRollout(t, e.ExecID, "wave 2 to finish after resume", func(r rolloutExec) bool {
		return r.Waves[1].State == "succeeded" && r.Status == "completed"
	})
	if code := s.call(t, http.MethodPost, "/api/executions/"+e.ExecID+"/resume", "", nil, nil); code != 409 {
		t.Errorf("resume a completed rollout: %d, want 409", code)
	}
}

// Approval gates under four-eyes: the initiator gets 403, another approver
// releases the wave, an operator cannot approve, and a wave that is not
// awaiting approval answers 409.
func TestRollout_ApprovalFourEyes(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	for _, a := range []struct{ pc, group string }{{"c1", "canary"}, {"f1", "fleet"}, {"f2", "fleet"}} {
		startAgent(t, s, a.pc, []string{a.group}, "")
	}
	s.waitOnline(t, "c1", "f1", "f2")
	alice, carol, op := cliToken(t, s, "approver", "alice"), cliToken(t, s, "approver", "carol"), cliToken(t, s, "operator", "olga")
	var e execution
	m := waveManifest("gated", "echo ok", "    - name: canary\n      group: canary\n    - name: fleet\n      group: fleet\n      approval: true\nfour_eyes: true\n")
	if code := s.deployAs(t, alice, m, &e); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	s.waitRollout(t, e.ExecID, "wave 2 to await approval", func(r rolloutExec) bool {
		return r.Status == "awaiting_approval" && r.Waves[0].State == "succeeded" && r.Waves[1].State == "awaiting_approval"
	})
	path := "/api/executions/" + e.ExecID + "/waves/1/approve"
	var errBody struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := s.call(t, http.MethodPost, path, alice, nil, &errBody); code != 403 || errBody.Error.Code != "four_eyes" {
		t.Errorf("initiator approves: %d %+v, want 403 four_eyes", code, errBody)
	}
	if code := s.call(t, http.MethodPost, path, op, nil, nil); code != 403 {
		t.Errorf("operator approves: %d, want 403", code)
	}
	if code := s.call(t, http.MethodPost, "/api/executions/"+e.ExecID+"/waves/0/approve", carol, nil, nil); code != 409 {
		t.Errorf("approve a finished wave: %d, want 409", code)
	}
	if code := s.call(t, http.MethodPost, path, carol, nil, nil); code != 200 {
		t.Fatalf("carol approves: %d", code)
	}
	r := s.waitRollout(t, e.ExecID, "wave 2 to run", func(r rolloutExec) bool { return r.Status == "completed" })
	if r.Waves[1].ApprovedBy != "carol" || r.Waves[1].Counts["succeeded"] != 2 {
		t.Errorf("wave 2 = %+v", r.Waves[1])
	}
	if code := s.call(t, http.MethodPost, path, carol, nil, nil); code != 409 {
		t.Errorf("approve twice: %d, want 409", code)
	}
	var audit struct {
		Events []struct{ Actor, Target string } `json:"events"`
	}
	checkFor(t, 10*time.Second, func() error {
		s.get(t, "/api/audit?action=wave.approve", &audit)
		if len(audit.Events) != 1 || audit.Events[0].Actor != "carol" {
			return fmt.Errorf("approval audit = %+v", audit.Events)
		}
		return nil
	})
}

// A server restart while a wave's delay runs resumes it: the next wave
// starts when the delay ends, and no wave runs twice.
func TestRollout_RestartDuringDelay(t *testing.T) {
	skipIfShort(t)
	data, natsAddr := t.TempDir(), freeAddr(t)
	clock := newRolloutClock()
	s := startServerOpts(t, data, natsAddr, nil, serveOptions{Clock: clock})
	marker := filepath.Join(t.TempDir(), "ran")
	var agents []*testAgent
	for _, a := range []struct{ pc, group string }{{"c1", "canary"}, {"f1", "fleet"}} {
		agents = append(agents, startAgent(t, s, a.pc, []string{a.group}, ""))
	}
	s.waitOnline(t, "c1", "f1")
	var e execution
	m := waveManifest("delayed", `echo "$KANADE_PC_ID" >> `+marker, "    - name: canary\n      group: canary\n    - name: fleet\n      group: fleet\n      delay: 1h\n")
	if code := s.deploy(t, m, &e); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	s.waitRollout(t, e.ExecID, "the canary to finish", func(r rolloutExec) bool { return r.Waves[0].State == "succeeded" })
	s.stop()
	clock.Advance(40 * time.Minute) // part of the delay passes while the server is down
	s2 := startServerOpts(t, data, natsAddr, nil, serveOptions{Clock: clock})
	// The agents stop before s2 (cleanups run last first): an agent whose
	// broker is gone waits to deliver its results.
	t.Cleanup(func() {
		for _, a := range agents {
			a.stop()
		}
	})
	clock.waitEngineLooks(t)
	r := s2.rollout(t, e.ExecID)
	if r.Waves[1].State != "waiting" {
		t.Fatalf("after restart, 20 minutes before the delay ends, wave 2 is %s", r.Waves[1].State)
	}
	clock.Advance(20 * time.Minute)
	s2.waitRollout(t, e.ExecID, "wave 2 after the delay", func(r rolloutExec) bool { return r.Status == "completed" })
	ran := lines(t, marker)
	sort.Strings(ran)
	if strings.Join(ran, " ") != "c1 f1" {
		t.Errorf("ran %v, want each PC once", ran)
	}
}

// TestRollout_FourEyesFollowsTheIdentity: under four eyes, the person who
// started a rollout cannot approve it after a rename at the identity
// provider (same subject, another preferred_username); someone else can.
func TestRollout_FourEyesFollowsTheIdentity(t *testing.T) {
	skipIfShort(t)
	s, m := startOIDCServer(t, func(c *config.Config) { c.Rollout.FourEyes = true })
	s.token = cliToken(t, s, "admin", "ops")
	approveAgents(t, s, s.token)
	startAgent(t, s, "fe1", []string{"canary"}, "")
	s.waitOnline(t, "fe1")

	carol := newUserAgent(t, s.URL)
	if code, _ := carol.login(m, &mockoidc.MockUser{Subject: "u-carol", PreferredUsername: "carol", Groups: []string{"managers"}}, "/"); code != http.StatusOK {
		t.Fatalf("carol signs in: %d", code)
	}
	manifest := waveManifest("fe-own", "echo ok", "    - name: canary\n      group: canary\n      approval: true\n")
	code, body := carol.do(http.MethodPost, "/api/deploy", manifest, map[string]string{"Content-Type": "application/yaml", "X-CSRF-Token": carol.csrf()})
	var e execution
	if err := json.Unmarshal([]byte(body), &e); code != http.StatusAccepted || err != nil {
		t.Fatalf("carol deploys: %d %s", code, body)
	}
	s.waitRollout(t, e.ExecID, "carol's rollout to await approval", func(r rolloutExec) bool { return r.Status == "awaiting_approval" })

	renamed := newUserAgent(t, s.URL)
	if code, _ := renamed.login(m, &mockoidc.MockUser{Subject: "u-carol", PreferredUsername: "carol.w", Groups: []string{"managers"}}, "/"); code != http.StatusOK {
		t.Fatalf("carol, renamed, signs in: %d", code)
	}
	approve := "/api/executions/" + e.ExecID + "/waves/0/approve"
	if code, body := renamed.do(http.MethodPost, approve, "", map[string]string{"X-CSRF-Token": renamed.csrf()}); code == http.StatusOK || !strings.Contains(body, "four-eyes") {
		t.Fatalf("carol renamed approves her own rollout: %d %s; want a four-eyes refusal", code, body)
	}
	if r := s.rollout(t, e.ExecID); r.Status != "awaiting_approval" {
		t.Fatalf("after the refused approval: %s, want still awaiting approval", r.Status)
	}
	dan := newUserAgent(t, s.URL)
	if code, _ := dan.login(m, &mockoidc.MockUser{Subject: "u-dan", PreferredUsername: "dan", Groups: []string{"managers"}}, "/"); code != http.StatusOK {
		t.Fatalf("dan signs in: %d", code)
	}
	if code, body := dan.do(http.MethodPost, approve, "", map[string]string{"X-CSRF-Token": dan.csrf()}); code != http.StatusOK {
		t.Fatalf("dan approves: %d %s", code, body)
	}
}
