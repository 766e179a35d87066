package dispatch

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/store/storetest"
)

func newStateDispatcher(t *testing.T) *Dispatcher {
	t.Helper()
	b := bustest.Open(t)
	keys, err := sign.Load(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return New(storetest.New(t), b.NC, b.JS, keys, events.New(), Limits{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// putRaw stores a value without a signature, as anything but the server
// would.
func putRaw(t *testing.T, d *Dispatcher, bucket, key string, v []byte) {
	t.Helper()
	m := nats.NewMsg(wire.KVSubject(bucket, key))
	m.Data = v
	if _, err := d.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// The server reads its security values as agents do: a value that does
// not verify is the safe one.
func TestSignedState_ServerFailsClosed(t *testing.T) {
	ctx := context.Background()
	d := newStateDispatcher(t)
	// No value: on, until the server writes a signed "off" at start.
	if es, err := d.EmergencyStop(ctx); err != nil || !es.Active {
		t.Fatalf("missing emergency stop = %+v, %v; want on", es, err)
	}
	if err := d.EnsureEmergencyStop(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := d.EmergencyStop(ctx)
	if err != nil || es.Active {
		t.Fatalf("after EnsureEmergencyStop = %+v, %v; want off", es, err)
	}
	if _, err := d.getSigned(ctx, wire.KVFleet, wire.KeyEmergencyStop); err != nil {
		t.Fatalf("the written switch does not verify: %v", err)
	}
	off, _ := json.Marshal(wire.EmergencyStop{})
	putRaw(t, d, wire.KVFleet, wire.KeyEmergencyStop, off)
	if es, err := d.EmergencyStop(ctx); err != nil || !es.Active || !strings.Contains(es.Reason, "cannot be verified") {
		t.Errorf("unsigned off switch = %+v, %v; want on, unverifiable", es, err)
	}
	if err := d.checkNotStopped(ctx); err == nil {
		t.Error("new work allowed under an unverifiable switch")
	}
	// Lifting writes a signed value again.
	if _, err := d.SetEmergencyStop(ctx, false, "", "alice"); err != nil {
		t.Fatal(err)
	}
	if es, err := d.EmergencyStop(ctx); err != nil || es.Active {
		t.Errorf("after lifting = %+v, %v; want off", es, err)
	}

	putRaw(t, d, wire.KVScriptStatus, "job", []byte(wire.StatusActive))
	if s, err := d.JobStatus(ctx, "job"); err != nil || s != wire.StatusRevoked {
		t.Errorf("unsigned ACTIVE flag = %q, %v; want REVOKED", s, err)
	}
	putRaw(t, d, wire.KVScriptCurrent, "job", []byte("v1"))
	if v, err := d.PinnedVersion(ctx, "job"); err == nil {
		t.Errorf("unsigned pin = %q, want an error", v)
	}
}

// After the command key rotates past the keys agents trust, the stored
// values still verify: rotation signs them again.
func TestResignState(t *testing.T) {
	ctx := context.Background()
	d := newStateDispatcher(t)
	if err := d.kvPut(ctx, wire.KVScriptCurrent, "job", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := d.kvPut(ctx, wire.KVScriptStatus, "job", wire.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	if err := d.EnsureEmergencyStop(ctx); err != nil {
		t.Fatal(err)
	}
	putRaw(t, d, wire.KVScriptCurrent, "forged", []byte("v9"))
	for i := 0; i < sign.Keep; i++ {
		if _, err := d.keys.Rotate(time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := d.ResignState(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := d.PinnedVersion(ctx, "job"); err != nil || v != "v1" {
		t.Errorf("pin after rotations = %q, %v", v, err)
	}
	if s, err := d.JobStatus(ctx, "job"); err != nil || s != wire.StatusRevoked {
		t.Errorf("status after rotations = %q, %v", s, err)
	}
	if es, err := d.EmergencyStop(ctx); err != nil || es.Active {
		t.Errorf("switch after rotations = %+v, %v", es, err)
	}
	if _, err := d.PinnedVersion(ctx, "forged"); err == nil {
		t.Error("rotation blessed an unsigned value")
	}
}
