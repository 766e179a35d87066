package worker

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// An agent acknowledges the emergency stop when it reaches it: a
// heartbeat at once, long before the next one is due, whose StopSince is
// the stop's; lifting the stop clears it.
func TestEmergencyStop_AcknowledgedAtOnce(t *testing.T) {
	s, js := runJetStream(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	putStop(t, js, priv, wire.EmergencyStop{})
	answerCatchups(t, s.ClientURL(), nothingToCatchUp)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	beats, err := nc.SubscribeSync(wire.HeartbeatSubject("pc1"))
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, s.ClientURL(), Config{HeartbeatInterval: time.Hour,
		Trust: fakeTrust{keys: []wire.CommandKey{{Kid: wire.KeyID(pub), Key: pub}}}})
	eventually.Within(t, 10*time.Second, eventually.Holds("the worker's subscriptions", func() bool { return w.CatchUps() > 0 }))
	// next is the next heartbeat's StopSince.
	next := func() time.Time {
		t.Helper()
		m, err := beats.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no heartbeat: %v", err)
		}
		var hb wire.Heartbeat
		if err := json.Unmarshal(m.Data, &hb); err != nil {
			t.Fatal(err)
		}
		return hb.StopSince
	}
	for { // the heartbeat of the start, if it came after the subscription
		if _, err := beats.NextMsg(200 * time.Millisecond); err != nil {
			break
		}
	}
	control := func(es wire.EmergencyStop) {
		t.Helper()
		body, _ := json.Marshal(wire.Control{Kind: wire.ControlEmergencyStop, Emergency: &es})
		m := nats.NewMsg(wire.ControlAll)
		m.Data = body
		for k, v := range wire.Sign(priv, m.Subject, body, time.Now()) {
			m.Header.Set(k, v)
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	since := time.Now().UTC().Truncate(time.Millisecond)
	control(wire.EmergencyStop{Active: true, Since: since, By: "alice", Reason: "drill", LastStopAt: since})
	if got := next(); !got.Equal(since) {
		t.Errorf("acknowledgement of the stop = %v, want %v", got, since)
	}
	control(wire.EmergencyStop{LastStopAt: since})
	if got := next(); !got.IsZero() {
		t.Errorf("after lifting, stop_since = %v, want none", got)
	}
}
