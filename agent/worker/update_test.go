package worker

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// TestUpdateCommand_Refused: what the worker does with update commands
// before any binary is touched. One that does not validate fails with the
// reason, a worker without an updater (the swarm) skips it, and neither
// kind of command borrows the other's fields. (agent/update_test.go runs
// real updates.)
func TestUpdateCommand_Refused(t *testing.T) {
	s, js := runJetStream(t)
	pub, priv, _ := ed25519.GenerateKey(nil)
	putStop(t, js, priv, wire.EmergencyStop{})
	answerCatchups(t, s.ClientURL(), nothingToCatchUp)
	w := startWorker(t, s.ClientURL(), Config{Trust: fakeTrust{keys: []wire.CommandKey{{Kid: wire.KeyID(pub), Key: pub}}}})
	eventually.Within(t, 10*time.Second, eventually.Holds("the first catch-up", func() bool { return w.CatchUps() > 0 }))

	_, relPriv, _ := ed25519.GenerateKey(nil)
	signed, err := wire.SignRelease(relPriv, wire.Release{Version: "v2", OS: "linux", Arch: "amd64", SHA256: strings.Repeat("0", 64), Size: 1,
		Object: wire.ReleaseObject("v2", "linux", "amd64")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	update := func(change func(*wire.UpdateCommand)) any {
		now := time.Now().UTC()
		uc := wire.UpdateCommand{Command: wire.Command{Protocol: wire.ProtocolVersion, JobID: wire.UpdateJobID, Kind: wire.KindUpdate,
			Timeout: wire.Duration(time.Minute), IssuedAt: now, DeadlineAt: now.Add(time.Hour)}, Update: wire.Update{Release: signed}}
		change(&uc)
		return &uc
	}
	tests := []struct {
		name   string
		body   func(execID string) any
		state  wire.State
		reason string
	}{
		{"a valid update, no updater", func(id string) any { return update(func(c *wire.UpdateCommand) { c.ExecID = id }) },
			wire.StateSkipped, "this agent does not update itself"},
		{"an unsigned release", func(id string) any {
			return update(func(c *wire.UpdateCommand) { c.ExecID, c.Update.Release.Sig = id, nil })
		}, wire.StateFailed, "invalid update command: release: not signed"},
		{"a window too long", func(id string) any {
			return update(func(c *wire.UpdateCommand) { c.ExecID, c.Update.RollbackWindow = id, wire.Duration(time.Hour) })
		}, wire.StateFailed, "invalid update command: rollback_window 1h0m0s is not between 1s and 30m0s"},
		{"an update with a script", func(id string) any {
			return update(func(c *wire.UpdateCommand) { c.ExecID, c.Shell, c.Script = id, wire.ShellSh, "reboot" })
		}, wire.StateFailed, "invalid command: an update command has no shell or script"},
		{"an unknown kind", func(id string) any {
			now := time.Now().UTC()
			return wire.Command{Protocol: wire.ProtocolVersion, ExecID: id, JobID: "job", Kind: "reboot", Shell: wire.ShellSh, Script: "true",
				Timeout: wire.Duration(time.Minute), IssuedAt: now, DeadlineAt: now.Add(time.Hour)}
		}, wire.StateFailed, `invalid command: kind "reboot" is not a known kind of command`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("up-%d", i)
			body, _ := json.Marshal(tt.body(id))
			publishSigned(t, s.ClientURL(), priv, wire.CommandPCSubject("pc1", wire.UpdateJobID), body)
			r := finalResult(t, w, id)
			if r.State != tt.state || r.Reason != tt.reason {
				t.Errorf("result %s %q, want %s %q", r.State, r.Reason, tt.state, tt.reason)
			}
		})
	}
}

// publishSigned publishes body on subject, signed by priv.
func publishSigned(t *testing.T, url string, priv ed25519.PrivateKey, subject string, body []byte) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
