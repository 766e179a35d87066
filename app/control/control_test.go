package control_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/sign"
)

// received is a control message as an agent takes it: verified with the
// keys it trusts, then decoded.
func received(t *testing.T, sub *nats.Subscription, trusted []wire.CommandKey, now time.Time) (string, wire.Control) {
	t.Helper()
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no control message: %v", err)
	}
	if _, err := wire.Verify(trusted, m.Subject, m.Header.Get, m.Data, now, wire.MaxControlAge); err != nil {
		t.Fatalf("the message on %s does not verify with the keys agents trust: %v", m.Subject, err)
	}
	var c wire.Control
	if err := json.Unmarshal(m.Data, &c); err != nil {
		t.Fatalf("body %s: %v", m.Data, err)
	}
	return m.Subject, c
}

// Every control message reaches an agent through its own account, on the
// subject wire names, signed with a key it trusts.
func TestSender_EveryKindReachesTheAgent(t *testing.T) {
	b := bustest.Open(t)
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	release, err := sign.LoadRelease(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	s := control.New(b.CmdNC, keys, func() time.Time { return now })
	agent, _ := bustest.Agent(t, b, "pc1", nil)
	sub, err := agent.SubscribeSync(wire.ControlPCSubject("pc1"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := agent.SubscribeSync(wire.ControlAll)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	es := wire.EmergencyStop{Active: true, Since: now, By: "alice", Reason: "drill", LastStopAt: now}
	rep := wire.EnrollReply{Status: wire.EnrollApproved, JWT: "jwt", Groups: []string{"lab"}}
	tests := []struct {
		name string
		send func() error
		sub  *nats.Subscription
		subj string
		want wire.Control
	}{
		{"ping", func() error { return s.Ping("pc1", "n0nce") }, sub, wire.ControlPCSubject("pc1"), wire.Control{Kind: wire.ControlPing, Nonce: "n0nce"}},
		{"inventory", func() error { return s.Inventory("pc1") }, sub, wire.ControlPCSubject("pc1"), wire.Control{Kind: wire.ControlInventory}},
		{"credential", func() error { return s.Credential("pc1", rep) }, sub, wire.ControlPCSubject("pc1"), wire.Control{Kind: wire.ControlCredential, Credential: &rep}},
		{"emergency stop", func() error { return s.EmergencyStop(es) }, all, wire.ControlAll, wire.Control{Kind: wire.ControlEmergencyStop, Emergency: &es}},
		{"release keys", func() error { return s.ReleaseKeys(release) }, all, wire.ControlAll, wire.Control{Kind: wire.ControlReleaseKeys, ReleaseKeys: release.Trusted()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			subj, got := received(t, tt.sub, keys.Trusted(), now)
			if subj != tt.subj {
				t.Errorf("subject %q, want %q", subj, tt.subj)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("control message (-want +got):\n%s", diff)
			}
		})
	}

	// A rotation is announced with the key it replaces: the agent knows
	// only the keys from before it.
	before := keys.Trusted()
	prev, err := keys.RotateFrom(now)
	if err != nil {
		t.Fatal(err)
	}
	trusted := keys.Trusted()
	if err := s.CommandKeys(prev, trusted); err != nil {
		t.Fatal(err)
	}
	if len(trusted) != len(before)+1 || trusted[len(trusted)-1].Kid == before[len(before)-1].Kid {
		t.Fatalf("trusted after the rotation %v, want a new key after %v", trusted, before)
	}
	subj, got := received(t, all, before, now)
	if subj != wire.ControlAll || got.Kind != wire.ControlCommandKeys {
		t.Fatalf("announcement %s %+v", subj, got)
	}
	if diff := cmp.Diff(trusted, got.CommandKeys); diff != "" {
		t.Errorf("announced keys (-want +got):\n%s", diff)
	}
	// What follows is signed with the new key.
	if err := s.Ping("pc1", "after"); err != nil {
		t.Fatal(err)
	}
	if _, c := received(t, sub, trusted[len(trusted)-1:], now); c.Nonce != "after" {
		t.Errorf("ping after the rotation: %+v", c)
	}
}

// A pc that is not an id would address other subjects: refused, and
// nothing is sent.
func TestSender_RefusesHostilePC(t *testing.T) {
	b := bustest.Open(t)
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := control.New(b.CmdNC, keys, nil)
	spy, err := b.NC.SubscribeSync(wire.ControlWildcard)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, pc := range []string{"", "*", ">", "pc1.x", "pc1 x", "pc1.>"} {
		errPing, errInv := s.Ping(pc, "n"), s.Inventory(pc)
		errCred := s.Credential(pc, wire.EnrollReply{Status: wire.EnrollApproved})
		if errPing == nil || errInv == nil || errCred == nil {
			t.Errorf("pc %q: Ping %v, Inventory %v, Credential %v; want every one refused", pc, errPing, errInv, errCred)
		}
	}
	// The first message the spy sees is the one sent after the refusals
	// (one connection keeps its order).
	if err := s.Ping("pc1", "end"); err != nil {
		t.Fatal(err)
	}
	m, err := spy.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var c wire.Control
	if err := json.Unmarshal(m.Data, &c); err != nil || m.Subject != wire.ControlPCSubject("pc1") || c.Nonce != "end" {
		t.Errorf("first message sent: %s %s, want the ping of pc1 after the refusals", m.Subject, m.Data)
	}
}
