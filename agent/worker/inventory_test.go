package worker

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// runJetStream starts an embedded NATS server with JetStream and the
// INVENTORY stream, as the kanade server provisions it.
func runJetStream(t *testing.T) (*server.Server, jetstream.JetStream) {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: wire.StreamInventory, Subjects: []string{wire.StreamInventorySubjects}, MaxMsgsPerSubject: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{wire.KVFleet, wire.KVScriptCurrent, wire.KVScriptStatus} {
		if _, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: b}); err != nil {
			t.Fatal(err)
		}
	}
	return s, js
}

// putSigned stores a KV value as the server does: signed by priv over its
// bucket and key (priv nil: unsigned).
func putSigned(t *testing.T, js jetstream.JetStream, priv ed25519.PrivateKey, bucket, key string, value []byte) {
	t.Helper()
	m := nats.NewMsg(wire.KVSubject(bucket, key))
	m.Data = value
	if priv != nil {
		for k, v := range wire.Sign(priv, m.Subject, value, time.Now()) {
			m.Header.Set(k, v)
		}
	}
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// putStop stores the emergency stop, signed by priv.
func putStop(t *testing.T, js jetstream.JetStream, priv ed25519.PrivateKey, es wire.EmergencyStop) {
	t.Helper()
	b, _ := json.Marshal(es)
	putSigned(t, js, priv, wire.KVFleet, wire.KeyEmergencyStop, b)
}

// fakeTrust trusts one key and has nothing to refresh.
type fakeTrust struct{ keys []wire.CommandKey }

func (f fakeTrust) Keys() []wire.CommandKey                   { return f.keys }
func (f fakeTrust) Refresh(context.Context, *nats.Conn) error { return nil }
func (f fakeTrust) SetKeys([]wire.CommandKey) error           { return nil }
func (f fakeTrust) SetCredential(wire.EnrollReply) error      { return nil }
func (f fakeTrust) Groups() []string                          { return nil }

// startWorker runs a worker against url until the test ends.
func startWorker(t *testing.T, url string, cfg Config) *Worker {
	t.Helper()
	cfg.PCID, cfg.Hostname, cfg.DataDir = "pc1", "pc1.example", t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, url) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w
}

// fakeInventory counts its calls; the worker fills in protocol and pc_id.
func fakeInventory(calls *atomic.Int32) func(context.Context) (wire.Inventory, error) {
	return func(context.Context) (wire.Inventory, error) {
		n := calls.Add(1)
		return wire.Inventory{
			CollectedAt: time.Now().UTC(), OS: wire.OSInfo{Name: "TestOS"},
			Software: []wire.Package{{Name: "pkg", Version: string(rune('0' + n))}},
			Errors:   []string{"hotfixes: not on this OS"},
		}, nil
	}
}

// lastInventory reads the INVENTORY stream's report of pc1.
func lastInventory(t *testing.T, js jetstream.JetStream) (wire.Inventory, bool) {
	t.Helper()
	st, err := js.Stream(context.Background(), wire.StreamInventory)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), wire.InventorySubject("pc1"))
	if err != nil {
		return wire.Inventory{}, false
	}
	var inv wire.Inventory
	if err := json.Unmarshal(m.Data, &inv); err != nil {
		t.Fatalf("undecodable inventory: %v", err)
	}
	return inv, true
}

func TestInventory_SentAtStartAndEveryInterval(t *testing.T) {
	s, js := runJetStream(t)
	var calls atomic.Int32
	startWorker(t, s.ClientURL(), Config{
		Inventory: fakeInventory(&calls), InventoryInterval: 300 * time.Millisecond,
		Jitter: func(time.Duration) time.Duration { return 0 },
	})
	eventually.Within(t, 10*time.Second, eventually.Holds("the first report", func() bool { _, ok := lastInventory(t, js); return ok }))
	inv, _ := lastInventory(t, js)
	if inv.PCID != "pc1" || inv.Protocol != wire.ProtocolVersion || inv.Hostname != "pc1.example" || inv.OS.Name != "TestOS" ||
		!inv.Failed(wire.SectionHotfixes) {
		t.Errorf("report = %+v", inv)
	}
	eventually.Within(t, 10*time.Second, eventually.Holds("a report on schedule", func() bool {
		inv, _ := lastInventory(t, js)
		return calls.Load() >= 2 && len(inv.Software) == 1 && inv.Software[0].Version != "1"
	}))
}

func TestInventory_SentWhenTheServerAsks(t *testing.T) {
	s, js := runJetStream(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	putStop(t, js, priv, wire.EmergencyStop{})
	answerCatchups(t, s.ClientURL(), nothingToCatchUp)
	w := startWorker(t, s.ClientURL(), Config{
		Inventory: fakeInventory(&calls), InventoryInterval: time.Hour,
		// The first report would wait the longest start delay.
		Jitter: func(max time.Duration) time.Duration { return max - 1 },
		Trust:  fakeTrust{keys: []wire.CommandKey{{Kid: wire.KeyID(pub), Key: pub}}},
	})
	eventually.Within(t, 10*time.Second, eventually.Holds("the worker's subscriptions", func() bool { return w.CatchUps() > 0 }))
	if calls.Load() != 0 {
		t.Fatalf("collected %d times before anyone asked", calls.Load())
	}

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	publish := func(priv ed25519.PrivateKey) {
		t.Helper()
		body, _ := json.Marshal(wire.Control{Kind: wire.ControlInventory})
		m := nats.NewMsg(wire.ControlPCSubject("pc1"))
		m.Data = body
		for k, v := range wire.Sign(priv, m.Subject, body, time.Now()) {
			m.Header.Set(k, v)
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	publish(priv)
	eventually.Within(t, 10*time.Second, eventually.Holds("the requested report", func() bool { _, ok := lastInventory(t, js); return ok }))
	if n := calls.Load(); n != 1 {
		t.Errorf("collected %d times, want 1", n)
	}
}
