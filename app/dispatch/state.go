package dispatch

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
)

// The values agents act on right before they run something — the
// emergency stop, each job's pinned version and revoked flag — are signed
// by the command key over their bucket and key (wire.KVSubject), like
// commands. The server checks them too when it reads them: a value that
// does not verify counts as the safe one (stopped; revoked; no pin).

// putSigned stores value under bucket/key, signed by the current command key.
func (d *Dispatcher) putSigned(ctx context.Context, bucket, key string, value []byte, opts ...jetstream.PublishOpt) error {
	if _, err := d.js.PublishMsg(ctx, d.keys.Msg(wire.KVSubject(bucket, key), value, d.now()), opts...); err != nil {
		return fmt.Errorf("bucket %s: put %s: %w", bucket, key, err)
	}
	return nil
}

// getSigned reads the newest value of bucket/key and verifies it:
// wire.ErrKVNotFound when there is none, wire.ErrKVUnverified when its
// signature does not check out.
func (d *Dispatcher) getSigned(ctx context.Context, bucket, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := d.nc.RequestWithContext(ctx, wire.KVDirectGetSubject(bucket, key), nil)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: get %s: %w", bucket, key, err)
	}
	v, err := wire.KVValue(m.Header.Get, m.Data)
	if err != nil {
		return nil, err
	}
	if err := wire.VerifyKV(ed25519.Verify, d.keys.Trusted(), bucket, key, m.Header.Get, v, d.now()); err != nil {
		return nil, err
	}
	return v, nil
}

// EmergencyStop returns the current switch (from the broker, so several
// server replicas agree). A stored value that is missing (the server
// writes one at start) or does not verify reads as on, with the reason.
func (d *Dispatcher) EmergencyStop(ctx context.Context) (wire.EmergencyStop, error) {
	var es wire.EmergencyStop
	v, err := d.getSigned(ctx, wire.KVFleet, wire.KeyEmergencyStop)
	switch {
	case errors.Is(err, wire.ErrKVNotFound), errors.Is(err, wire.ErrKVUnverified):
		return unverifiedStop(err, d.now()), nil
	case err != nil:
		return es, fmt.Errorf("emergency stop: %w", err)
	}
	if err := json.Unmarshal(v, &es); err != nil {
		return unverifiedStop(err, d.now()), nil
	}
	return es, nil
}

// unverifiedStop is how the server reads a stop value it cannot trust:
// on, until an admin sets or lifts it (which writes a signed value).
func unverifiedStop(why error, now time.Time) wire.EmergencyStop {
	return wire.EmergencyStop{Active: true, Since: now, By: "kanade", Reason: "the stored emergency stop cannot be verified (" + why.Error() +
		"); agents treat it as on: set or lift the stop to write a signed value"}
}

// EnsureEmergencyStop writes a signed "off" switch unless one is stored;
// the server calls it at start, as agents and the server read a missing
// switch as on. (Only at start: a switch that disappears while the server
// runs stays on until an admin lifts it.)
func (d *Dispatcher) EnsureEmergencyStop(ctx context.Context) error {
	body, _ := json.Marshal(wire.EmergencyStop{})
	err := d.putSigned(ctx, wire.KVFleet, wire.KeyEmergencyStop, body, jetstream.WithExpectLastSequencePerSubject(0))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return nil // written meanwhile
	}
	return err
}

// ResignState signs every stored security value again with the current
// command key, so that values stay verifiable after the keys they were
// signed with are no longer trusted (key rotation). Values that do not
// verify now are left alone: a rotation must not bless them.
func (d *Dispatcher) ResignState(ctx context.Context) error {
	for _, bucket := range []string{wire.KVFleet, wire.KVScriptCurrent, wire.KVScriptStatus} {
		kv, err := d.kv(ctx, bucket)
		if err != nil {
			return err
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", bucket, err)
		}
		for key := range keys.Keys() {
			v, err := d.getSigned(ctx, bucket, key)
			if errors.Is(err, wire.ErrKVNotFound) || errors.Is(err, wire.ErrKVUnverified) {
				continue
			}
			if err != nil {
				return err
			}
			if err := d.putSigned(ctx, bucket, key, v); err != nil {
				return err
			}
		}
	}
	return nil
}
