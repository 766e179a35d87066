//go:build !windows

package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/sign"
)

// stolenServerConn connects with the server's own broker credential, as
// an attacker who stole it from the data directory would.
func stolenServerConn(t *testing.T, s *testServer) *nats.Conn {
	t.Helper()
	id, err := bus.LoadIdentity(filepath.Join(s.data, bus.SecretsDir))
	if err != nil {
		t.Fatal(err)
	}
	j, err := id.ServerUserJWT()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.NATSURL, nats.UserJWT(func() (string, error) { return j, nil }, id.ServerUser.Sign))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func waitResult(t *testing.T, s *testServer, execID, pc string) targetResult {
	t.Helper()
	var got targetResult
	checkFor(t, 20*time.Second, func() error {
		var rs struct {
			Results []targetResult `json:"results"`
		}
		s.get(t, "/api/results?exec_id="+execID+"&pc_id="+pc, &rs)
		if len(rs.Results) == 0 || !wire.State(rs.Results[0].State).Final() {
			return fmt.Errorf("no final result for %s yet", execID)
		}
		got = rs.Results[0]
		return nil
	})
	return got
}

// TestSigning_StolenBrokerCredentialCannotRunCode: commands that are
// unsigned, signed with an unknown key, or moved to another subject are
// refused by the agent and reported as skipped with the reason.
func TestSigning_StolenBrokerCredentialCannotRunCode(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", nil, "")
	s.waitOnline(t, "pc1")
	nc := stolenServerConn(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "pwned")
	now := time.Now().UTC()
	command := func(execID string) []byte {
		b, _ := json.Marshal(wire.Command{Protocol: 1, ExecID: execID, JobID: "evil", Shell: "sh", Script: "touch " + shQuote(marker),
			Timeout: wire.Duration(time.Minute), IssuedAt: now, DeadlineAt: now.Add(time.Hour)})
		return b
	}
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name, want string
		msg        func(execID string) *nats.Msg
	}{
		{"unsigned", "not signed", func(id string) *nats.Msg {
			m := nats.NewMsg(wire.CommandPCSubject("pc1", "evil-"+id))
			m.Data = command(id)
			return m
		}},
		{"unknown key", "does not trust", func(id string) *nats.Msg {
			subj := wire.CommandPCSubject("pc1", "evil-"+id)
			m := nats.NewMsg(subj)
			m.Data = command(id)
			for k, v := range wire.Sign(forger, subj, m.Data, time.Now()) {
				m.Header.Set(k, v)
			}
			return m
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := dispatch.NewExecID(time.Now())
			if _, err := js.PublishMsg(t.Context(), tc.msg(id)); err != nil {
				t.Fatal(err)
			}
			r := waitResult(t, s, id, "pc1")
			if r.State != "skipped" || !strings.Contains(r.Reason, tc.want) {
				t.Errorf("result = %s %q, want skipped with %q", r.State, r.Reason, tc.want)
			}
		})
	}

	// A genuine signed command, captured and republished to every agent:
	// the signature covers the subject, so it is refused.
	sub, err := nc.SubscribeSync(wire.CommandPCWildcard("pc1"))
	if err != nil {
		t.Fatal(err)
	}
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "echo genuine"})
	captured, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.waitExec(t, e.ExecID, completed)
	var cmd wire.Command
	_ = json.Unmarshal(captured.Data, &cmd)
	moved := nats.NewMsg(wire.CommandAllSubject("replayed"))
	moved.Data, moved.Header = captured.Data, captured.Header
	// Same exec_id: deduplicated by the ledger; a fresh exec_id in the body breaks the signature.
	cmd.ExecID = dispatch.NewExecID(time.Now())
	moved.Data, _ = json.Marshal(cmd)
	if _, err := js.PublishMsg(t.Context(), moved); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, s, cmd.ExecID, "pc1"); r.State != "skipped" || !strings.Contains(r.Reason, "does not match") {
		t.Errorf("replayed command = %s %q, want skipped: does not match", r.State, r.Reason)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command from a stolen broker credential ran on the agent")
	}
}

// TestSigning_KeyRotation: after a rotation, an online agent takes the new
// key from the signed announcement, and an agent that was offline fetches
// it when it first sees the new key id; both keep running commands.
func TestSigning_KeyRotation(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", nil, "")
	offData := t.TempDir()
	off := startAgent(t, s, "pc2", nil, offData)
	s.waitOnline(t, "pc1", "pc2")
	off.stop()

	var keys struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if code := s.post(t, "/api/command-keys/rotate", nil, &keys); code != http.StatusOK || len(keys.Keys) != 2 {
		t.Fatalf("rotate = %d %+v", code, keys)
	}
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1", "pc2"}}, "shell": "sh", "script": "echo rotated"})
	s.waitExec(t, e.ExecID, targetIn("pc1", "succeeded"))
	startAgent(t, s, "pc2", nil, offData)
	got := s.waitExec(t, e.ExecID, completed)
	for _, tr := range got.Targets {
		if tr.State != "succeeded" {
			t.Errorf("after rotation %s = %s %q", tr.PCID, tr.State, tr.Reason)
		}
	}
}

// Changing an agent's groups re-mints its credential and pushes it: the
// agent follows at once — it runs its new group's commands and cannot even
// receive its old group's.
func TestGroups_ChangeFollowsLive(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc1", []string{"alpha"}, "")
	s.waitOnline(t, "pc1")
	type agent struct {
		Groups []string `json:"groups"`
	}
	var a agent
	req := map[string]any{"groups": []string{"Beta", "gamma"}}
	b, _ := json.Marshal(req)
	r, _ := http.NewRequest(http.MethodPut, s.URL+"/api/agents/pc1/groups", strings.NewReader(string(b)))
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Join(a.Groups, ",") != "beta,gamma" {
		t.Fatalf("PUT groups = %d %+v", resp.StatusCode, a)
	}
	// The agent applies the new credential and reports its new groups.
	checkFor(t, 20*time.Second, func() error {
		var got agent
		s.get(t, "/api/agents/pc1", &got)
		if strings.Join(got.Groups, ",") != "beta,gamma" {
			return fmt.Errorf("groups %v", got.Groups)
		}
		return nil
	})
	e := s.run(t, map[string]any{"target": map[string]any{"groups": []string{"beta"}}, "shell": "sh", "script": "echo new group"})
	if got := s.waitExec(t, e.ExecID, completed); got.Counts["succeeded"] != 1 {
		t.Fatalf("run on the new group: %+v", got)
	}
	var ve struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := s.post(t, "/api/run", map[string]any{"target": map[string]any{"groups": []string{"alpha"}}, "shell": "sh", "script": "echo old"}, &ve); code != http.StatusBadRequest {
		t.Errorf("run on the old group = %d, want 400 (matches no agent)", code)
	}
	// Even a correctly signed command for the old group never reaches it.
	keys, err := sign.Load(filepath.Join(s.data, bus.SecretsDir, "command-keys"))
	if err != nil {
		t.Fatal(err)
	}
	nc := stolenServerConn(t, s)
	marker := filepath.Join(t.TempDir(), "old-group-ran")
	now := time.Now().UTC()
	id := dispatch.NewExecID(now)
	body, _ := json.Marshal(wire.Command{Protocol: 1, ExecID: id, JobID: "old", Shell: "sh", Script: "touch " + shQuote(marker),
		Timeout: wire.Duration(time.Minute), IssuedAt: now, DeadlineAt: now.Add(time.Hour)})
	js, _ := jetstream.New(nc)
	if _, err := js.PublishMsg(t.Context(), keys.Msg(wire.CommandGroupSubject("alpha", "old"), body, now)); err != nil {
		t.Fatal(err)
	}
	barrier := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"pc1"}}, "shell": "sh", "script": "true"})
	s.waitExec(t, barrier.ExecID, completed)
	if _, err := os.Stat(marker); err == nil {
		t.Error("the agent ran a command of a group it left")
	}
}

// An agent cannot join groups by claiming them in its heartbeat: the
// server lists the groups its credential carries.
func TestGroups_HeartbeatCannotClaimGroups(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	data := t.TempDir()
	a := startAgent(t, s, "pc1", []string{"lab"}, data)
	s.waitOnline(t, "pc1")
	a.stop() // only the forged heartbeats from here on
	kp, err := enroll.LoadOrCreateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cred, ok := enroll.LoadCredential(data, time.Now())
	if !ok {
		t.Fatal("no credential")
	}
	nc, err := nats.Connect(s.NATSURL, nats.UserJWT(func() (string, error) { return cred.JWT, nil }, kp.Sign),
		nats.CustomInboxPrefix(wire.AgentInboxPrefix("pc1")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	lie, _ := json.Marshal(wire.Heartbeat{Protocol: 1, PCID: "pc1", Hostname: "pc1", OS: "linux", Arch: "amd64", AgentVersion: "evil",
		Groups: []string{"finance", "lab"}, Interval: wire.Duration(time.Second), At: time.Now()})
	if err := nc.Publish(wire.HeartbeatSubject("pc1"), lie); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	checkFor(t, 10*time.Second, func() error {
		var a struct {
			AgentVersion string   `json:"agent_version"`
			Groups       []string `json:"groups"`
		}
		s.get(t, "/api/agents/pc1", &a)
		if a.AgentVersion != "evil" {
			return fmt.Errorf("the forged heartbeat has not been projected yet")
		}
		if strings.Join(a.Groups, ",") != "lab" {
			t.Fatalf("groups after a heartbeat claiming finance = %v, want [lab]", a.Groups)
		}
		return nil
	})
}
