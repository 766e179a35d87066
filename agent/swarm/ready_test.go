package swarm

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// TestReadyWhenConnected runs simulated agents against an embedded
// broker (a static nkey credential, no enrollment): ready is called once
// every agent is connected, Connected follows the broker going away and
// coming back, and CaughtUp counts the agents whose catch-up after their
// latest connection was answered.
func TestReadyWhenConnected(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	creds := filepath.Join(t.TempDir(), "agent.nk")
	if err := os.WriteFile(creds, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}}}
	s := startBroker(t, opts)
	url, port := s.ClientURL(), s.Addr().(*net.TCPAddr).Port
	// What the server provides for a catch-up: the fleet bucket (the
	// emergency stop is read first) and answers to catch-up requests,
	// held back while answering is false.
	var answering atomic.Bool
	answering.Store(true)
	server := answerCatchups(t, url, kp, &answering)

	const n = 4
	var stats Stats
	var mu sync.Mutex
	readyCalls, connectedAtReady := 0, int64(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Server: url, Credentials: creds, Count: n, Seed: 1, DataDir: t.TempDir(),
			HeartbeatInterval: time.Second}, &stats, func() {
			mu.Lock()
			defer mu.Unlock()
			readyCalls++
			connectedAtReady = stats.Connected.Load()
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	eventually.Within(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if readyCalls == 0 {
			return fmt.Errorf("not ready: %d of %d connected", stats.Connected.Load(), n)
		}
		return nil
	})
	mu.Lock()
	if connectedAtReady != n {
		t.Errorf("ready was called with %d of %d agents connected", connectedAtReady, n)
	}
	mu.Unlock()
	caughtUp := func(want int64) func() error {
		return func() error {
			if c := stats.CaughtUp.Load(); c != want {
				return fmt.Errorf("%d of %d agents caught up, want %d", c, n, want)
			}
			return nil
		}
	}
	eventually.Within(t, 20*time.Second, caughtUp(n))

	answering.Store(false)
	server.Close()
	s.Shutdown()
	eventually.Within(t, 20*time.Second, func() error {
		if c := stats.Connected.Load(); c != 0 {
			return fmt.Errorf("%d agents still counted as connected after the broker stopped", c)
		}
		return nil
	})

	// The broker comes back: the agents reconnect, and ready is not
	// called again.
	opts.Port = port
	startBroker(t, opts)
	eventually.Within(t, 20*time.Second, func() error {
		if c := stats.Connected.Load(); c != n {
			return fmt.Errorf("%d of %d agents connected again", c, n)
		}
		return nil
	})
	// Connected again but not answered yet: not caught up.
	eventually.Within(t, 20*time.Second, caughtUp(0))
	if errs := stats.ConnErrors.Load(); errs == 0 {
		t.Error("no connection error counted while the broker was away")
	}
	answering.Store(true)
	answerCatchups(t, url, kp, &answering)
	eventually.Within(t, 30*time.Second, caughtUp(n))
	mu.Lock()
	defer mu.Unlock()
	if readyCalls != 1 {
		t.Errorf("ready was called %d times, want once", readyCalls)
	}
}

// answerCatchups creates the fleet bucket if it is missing and answers
// catch-up requests with no commands while answering is true.
func answerCatchups(t *testing.T, url string, kp nkeys.KeyPair, answering *atomic.Bool) *nats.Conn {
	t.Helper()
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(url, nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: wire.KVFleet}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(wire.CatchupWildcard, func(m *nats.Msg) {
		if !answering.Load() {
			return
		}
		end := nats.NewMsg(m.Reply)
		end.Header.Set(wire.HeaderCatchupEnd, "0")
		_ = nc.PublishMsg(end)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return nc
}

func startBroker(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the broker did not start")
	}
	return s
}
