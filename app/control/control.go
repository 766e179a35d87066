// Package control sends the control messages the server tells agents
// (wire.Control, on wire.ControlAll and wire.ControlPCSubject): ping,
// inventory refresh, the command and release keys to trust, a pushed
// credential and the emergency stop. Every message is signed by the
// command keyring (app/sign), the keys agents trust for control messages;
// docs/ARCHITECTURE.md has the wire table. Commands and kills are
// app/dispatch's.
package control

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/sign"
)

// Sender builds, signs and publishes control messages. It holds no state
// of its own and is safe for concurrent use.
type Sender struct {
	nc   *nats.Conn
	keys *sign.Keyring
	now  func() time.Time
}

// New returns a sender that publishes on nc (the bus's connection for
// what goes to agents) and signs with keys at the time now returns (nil:
// the real clock in UTC).
func New(nc *nats.Conn, keys *sign.Keyring, now func() time.Time) *Sender {
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	return &Sender{nc: nc, keys: keys, now: now}
}

// Ping asks agent pc to answer with nonce (in its next heartbeat, at once).
func (s *Sender) Ping(pc, nonce string) error {
	if err := s.toPC(pc, wire.Control{Kind: wire.ControlPing, Nonce: nonce}); err != nil {
		return fmt.Errorf("ping %s: %w", pc, err)
	}
	return nil
}

// Inventory asks agent pc to collect and report its inventory now.
func (s *Sender) Inventory(pc string) error {
	if err := s.toPC(pc, wire.Control{Kind: wire.ControlInventory}); err != nil {
		return fmt.Errorf("ask %s for its inventory: %w", pc, err)
	}
	return nil
}

// Credential pushes agent pc its new credential (rep, approved), which it
// reconnects with.
func (s *Sender) Credential(pc string, rep wire.EnrollReply) error {
	if err := s.toPC(pc, wire.Control{Kind: wire.ControlCredential, Credential: &rep}); err != nil {
		return fmt.Errorf("push the new credential: %w", err)
	}
	return nil
}

// EmergencyStop tells every agent the emergency stop es (on: kill what
// runs and refuse new work; off: work again).
func (s *Sender) EmergencyStop(es wire.EmergencyStop) error {
	if err := s.toAll(s.keys, wire.Control{Kind: wire.ControlEmergencyStop, Emergency: &es}); err != nil {
		return fmt.Errorf("announce the emergency stop: %w", err)
	}
	return nil
}

// CommandKeys tells every agent the command keys to trust (newest last)
// after a rotation, signed by prev, the key the rotation replaced
// (sign.Keyring.RotateFrom): agents trust that one already. Agents that
// miss it fetch the keys when they next see an unknown key id.
func (s *Sender) CommandKeys(prev sign.Signer, trusted []wire.CommandKey) error {
	if err := s.toAll(prev, wire.Control{Kind: wire.ControlCommandKeys, CommandKeys: trusted}); err != nil {
		return fmt.Errorf("announce new command key: %w", err)
	}
	return nil
}

// ReleaseKeys tells every agent the release keys to trust (release, a
// release keyring, sign.LoadRelease). Send it after rotating them;
// enrollment and renewal replies carry the same list
// (wire.EnrollReply.ReleaseKeys) for agents that were away.
func (s *Sender) ReleaseKeys(release *sign.Keyring) error {
	if err := s.toAll(s.keys, wire.Control{Kind: wire.ControlReleaseKeys, ReleaseKeys: release.Trusted()}); err != nil {
		return fmt.Errorf("announce the release keys: %w", err)
	}
	return nil
}

// toPC sends c to one agent. A pc that is not an id is refused: it
// would address other subjects.
func (s *Sender) toPC(pc string, c wire.Control) error {
	if err := wire.ValidateID("pc_id", pc); err != nil {
		return err
	}
	return s.publish(s.keys, wire.ControlPCSubject(pc), c)
}

func (s *Sender) toAll(by signer, c wire.Control) error {
	return s.publish(by, wire.ControlAll, c)
}

// signer is a key (sign.Signer) or a ring's current key (*sign.Keyring).
type signer interface {
	Msg(subject string, body []byte, now time.Time) *nats.Msg
}

func (s *Sender) publish(by signer, subject string, c wire.Control) error {
	body, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.nc.PublishMsg(by.Msg(subject, body, s.now()))
}
