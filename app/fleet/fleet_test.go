package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/fleet"
	"github.com/kanadehq/kanade/app/projector"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// fixture is the service over a real store, broker and heartbeat
// projector, with the agent pc1 known and connected in its own account.
type fixture struct {
	svc     *fleet.Service
	keys    *sign.Keyring
	b       *bus.Bus
	agent   *nats.Conn
	control *nats.Subscription // the agent's control.pc.pc1
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st := storetest.New(t)
	b := bustest.Open(t)
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertAgents(t.Context(), []store.Agent{{PCID: "pc1", LastSeen: time.Now(), Interval: 30 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	pongs := projector.NewPongs()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = projector.Heartbeats(ctx, b.NC, st, events.New(), log, time.Second, pongs)
	}()
	t.Cleanup(func() { cancel(); <-done })
	agent, _ := bustest.Agent(t, b, "pc1", nil)
	sub, err := agent.SubscribeSync(wire.ControlPCSubject("pc1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: fleet.New(st, control.New(b.CmdNC, keys, nil), pongs, log), keys: keys, b: b, agent: agent, control: sub}
}

// next is the next control message pc1 receives, verified as the agent
// verifies it.
func (f *fixture) next(t *testing.T) wire.Control {
	t.Helper()
	m, err := f.control.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("pc1 received nothing: %v", err)
	}
	if _, err := wire.Verify(f.keys.Trusted(), m.Subject, m.Header.Get, m.Data, time.Now(), wire.MaxControlAge); err != nil {
		t.Fatalf("unsigned control message: %v", err)
	}
	var c wire.Control
	if err := json.Unmarshal(m.Data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// Ping returns once the agent's heartbeat carries the ping's nonce back.
func TestService_PingAnswered(t *testing.T) {
	f := newFixture(t)
	go func() {
		m, err := f.control.NextMsg(10 * time.Second)
		if err != nil {
			return
		}
		var c wire.Control
		if json.Unmarshal(m.Data, &c) != nil || c.Kind != wire.ControlPing {
			return
		}
		hb := wire.Heartbeat{Protocol: wire.ProtocolVersion, PCID: "pc1", Hostname: "pc1", OS: runtime.GOOS, Arch: runtime.GOARCH, AgentVersion: "test",
			Groups: []string{}, Interval: wire.Duration(30 * time.Second), At: time.Now().UTC(), Pong: c.Nonce}
		b, _ := json.Marshal(hb)
		_ = f.agent.Publish(wire.HeartbeatSubject("pc1"), b)
	}()
	rtt, err := f.svc.Ping(t.Context(), "pc1")
	if err != nil || rtt <= 0 {
		t.Fatalf("Ping = %v, %v; want a round trip", rtt, err)
	}
}

// A ping or a refresh for an agent never seen is not found, and sends
// nothing.
func TestService_UnknownAgent(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.Ping(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Ping(nope) = %v, want not found", err)
	}
	if err := f.svc.RefreshInventory(t.Context(), "nope", "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RefreshInventory(nope) = %v, want not found", err)
	}
	if err := f.svc.RefreshInventory(t.Context(), "pc1", "alice"); err != nil {
		t.Fatal(err)
	}
	if c := f.next(t); c.Kind != wire.ControlInventory {
		t.Errorf("pc1 received %+v first, want the inventory request", c)
	}
}

// A ping whose request ends stops waiting.
func TestService_PingRequestEnds(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		_, _ = f.control.NextMsg(10 * time.Second) // the ping arrived; nobody answers
		cancel()
	}()
	if _, err := f.svc.Ping(ctx, "pc1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping = %v, want the request's end", err)
	}
}
