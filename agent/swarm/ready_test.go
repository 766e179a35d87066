package swarm

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/eventually"
)

// TestReadyWhenConnected runs simulated agents against an embedded
// broker (a static nkey credential, no enrollment): ready is called once
// every agent is connected, and Connected follows the broker going away
// and coming back.
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
	mu.Lock()
	defer mu.Unlock()
	if readyCalls != 1 {
		t.Errorf("ready was called %d times, want once", readyCalls)
	}
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
