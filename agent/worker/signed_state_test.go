package worker

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/runner"
	"github.com/kanadehq/kanade/agent/wire"
)

// The emergency stop, a job's pin and its revoked flag are signed by the
// server; an agent that cannot verify one does not run the job (fail
// closed), whoever wrote the value.
func TestSignedState_FailsClosed(t *testing.T) {
	_, other, _ := ed25519.GenerateKey(nil)
	stop := func(es wire.EmergencyStop) []byte { b, _ := json.Marshal(es); return b }
	type put struct {
		bucket, key string
		value       []byte
		// signer: "server", "none" or "other" (a key the agent does not trust)
		signer string
		// as: sign for another key than the one stored (a value moved)
		as string
	}
	ok := []put{
		{bucket: wire.KVFleet, key: wire.KeyEmergencyStop, value: stop(wire.EmergencyStop{}), signer: "server"},
		{bucket: wire.KVScriptCurrent, key: "job", value: []byte("v1"), signer: "server"},
	}
	with := func(ps ...put) []put {
		out := append([]put(nil), ok...)
		return append(out, ps...)
	}
	tests := []struct {
		name   string
		puts   []put
		want   wire.State
		reason string
	}{
		{"all signed", ok, wire.StateSucceeded, ""},
		{"signed revoked flag ACTIVE", with(put{bucket: wire.KVScriptStatus, key: "job", value: []byte(wire.StatusActive), signer: "server"}), wire.StateSucceeded, ""},
		{"signed revoked", with(put{bucket: wire.KVScriptStatus, key: "job", value: []byte(wire.StatusRevoked), signer: "server"}), wire.StateSkipped, "revoked"},
		{"no emergency stop value", ok[1:], wire.StateSkipped, "emergency stop"},
		{"unsigned emergency stop", with(put{bucket: wire.KVFleet, key: wire.KeyEmergencyStop, value: stop(wire.EmergencyStop{}), signer: "none"}), wire.StateSkipped, "emergency stop"},
		{"emergency stop by another key", with(put{bucket: wire.KVFleet, key: wire.KeyEmergencyStop, value: stop(wire.EmergencyStop{}), signer: "other"}), wire.StateSkipped, "emergency stop"},
		{"signed emergency stop on", with(put{bucket: wire.KVFleet, key: wire.KeyEmergencyStop, value: stop(wire.EmergencyStop{Active: true, By: "alice", Reason: "bad job"}), signer: "server"}), wire.StateSkipped, "bad job"},
		{"no pin", ok[:1], wire.StateSkipped, "pinned version"},
		{"unsigned pin", with(put{bucket: wire.KVScriptCurrent, key: "job", value: []byte("v1"), signer: "none"}), wire.StateSkipped, "pinned version"},
		{"pin moved from another job", with(put{bucket: wire.KVScriptCurrent, key: "job", value: []byte("v1"), signer: "server", as: "other-job"}), wire.StateSkipped, "pinned version"},
		{"unsigned revoked flag", with(put{bucket: wire.KVScriptStatus, key: "job", value: []byte(wire.StatusActive), signer: "none"}), wire.StateSkipped, "not revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, js := runJetStream(t)
			pub, priv, _ := ed25519.GenerateKey(nil)
			for _, p := range tt.puts {
				m := nats.NewMsg(wire.KVSubject(p.bucket, p.key))
				m.Data = p.value
				signFor := wire.KVSubject(p.bucket, p.key)
				if p.as != "" {
					signFor = wire.KVSubject(p.bucket, p.as)
				}
				switch p.signer {
				case "server":
					for k, v := range wire.Sign(priv, signFor, p.value, time.Now()) {
						m.Header.Set(k, v)
					}
				case "other":
					for k, v := range wire.Sign(other, signFor, p.value, time.Now()) {
						m.Header.Set(k, v)
					}
				}
				if _, err := js.PublishMsg(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			answerCatchups(t, s.ClientURL(), nothingToCatchUp)
			w := startWorker(t, s.ClientURL(), Config{Trust: fakeTrust{keys: []wire.CommandKey{{Kid: wire.KeyID(pub), Key: pub}}},
				Exec: func(ctx context.Context, sp runner.Spec) runner.Outcome {
					code := 0
					return runner.Outcome{State: wire.StateSucceeded, ExitCode: &code, StartedAt: time.Now(), FinishedAt: time.Now()}
				}})
			eventually.Within(t, 10*time.Second, eventually.Holds("the first catch-up", func() bool { return w.CatchUps() > 0 }))
			sendSigned(t, s.ClientURL(), priv, wire.CommandPCSubject("pc1", "job"),
				wire.Command{Protocol: wire.ProtocolVersion, ExecID: "e1", JobID: "job", Version: "v1", Shell: "sh", Script: "true",
					Timeout: wire.Duration(time.Minute), IssuedAt: time.Now().UTC(), DeadlineAt: time.Now().Add(time.Hour).UTC()})
			r := finalResult(t, w, "e1")
			if r.State != tt.want || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("e1 = %s (%q), want %s with a reason containing %q", r.State, r.Reason, tt.want, tt.reason)
			}
		})
	}
}

// sendSigned publishes a command signed by priv.
func sendSigned(t *testing.T, url string, priv ed25519.PrivateKey, subject string, cmd wire.Command) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body, _ := json.Marshal(cmd)
	m := nats.NewMsg(subject)
	m.Data = body
	for k, v := range wire.Sign(priv, subject, body, time.Now()) {
		m.Header.Set(k, v)
	}
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// finalResult waits for the final result of an execution in the outbox
// (these tests have no RESULTS stream).
func finalResult(t *testing.T, w *Worker, execID string) wire.Result {
	t.Helper()
	var r wire.Result
	eventually.Within(t, 10*time.Second, eventually.Holds("the final result of "+execID, func() bool {
		items, err := w.outbox.Pending()
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if json.Unmarshal(it.Data, &r) == nil && r.ExecID == execID && r.State.Final() {
				return true
			}
		}
		return false
	}))
	return r
}
