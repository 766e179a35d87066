package commandkeys_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/commandkeys"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/store/storetest"
)

// A rotation is recorded, announced to agents with the key it replaces,
// and leaves the stored emergency stop signed by the new key.
func TestRotate(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st := storetest.New(t)
	b := bustest.Open(t)
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	disp := dispatch.New(st, b.CmdNC, b.CmdJS, keys, events.New(), dispatch.Limits{
		DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultDeadline: time.Hour}, log)
	if err := disp.EnsureEmergencyStop(ctx); err != nil {
		t.Fatal(err)
	}
	svc := commandkeys.New(keys, control.New(b.CmdNC, keys, nil), disp, audit.New(b.JS, log), nil, log)
	agent, _ := bustest.Agent(t, b, "pc1", nil)
	sub, err := agent.SubscribeSync(wire.ControlAll)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}

	before := svc.Trusted()
	trusted, err := svc.Rotate(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(keys.Trusted(), trusted); diff != "" || len(trusted) != len(before)+1 {
		t.Fatalf("Rotate returned %v, want the %d keys from before and a new one (-ring +returned):\n%s", trusted, len(before), diff)
	}
	newest := trusted[len(trusted)-1:]

	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no announcement: %v", err)
	}
	if _, err := wire.Verify(before, m.Subject, m.Header.Get, m.Data, time.Now(), wire.MaxControlAge); err != nil {
		t.Errorf("the announcement does not verify with the keys agents trust before it: %v", err)
	}
	var c wire.Control
	if err := json.Unmarshal(m.Data, &c); err != nil || c.Kind != wire.ControlCommandKeys || !cmp.Equal(c.CommandKeys, trusted) {
		t.Errorf("announcement %s, want the trusted keys", m.Data)
	}

	s, err := b.JS.Stream(ctx, "KV_"+wire.KVFleet)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, wire.KVSubject(wire.KVFleet, wire.KeyEmergencyStop))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.Verify(newest, raw.Subject, raw.Header.Get, raw.Data, time.Now(), 0); err != nil {
		t.Errorf("the stored emergency stop is not signed by the new key: %v", err)
	}

	as, err := b.JS.Stream(ctx, wire.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	am, err := as.GetLastMsgForSubject(ctx, wire.AuditSubject(audit.CommandKeysRotate))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatal("the rotation was not recorded")
	}
	if err != nil {
		t.Fatal(err)
	}
	var ev audit.Event
	if err := json.Unmarshal(am.Data, &ev); err != nil || ev.Actor != "alice" || ev.Target != before[len(before)-1].Kid {
		t.Errorf("audit event %s, want alice replacing %s", am.Data, before[len(before)-1].Kid)
	}
}
