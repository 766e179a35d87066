package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/app/config"
)

// TestServe_Ready: the ready callback comes once, after the banner, with
// the addresses the server really listens on (random ports), which are
// the ones the banner shows (syncBuffer: reenroll_test.go).
func TestServe_Ready(t *testing.T) {
	cfg := config.Default()
	cfg.Server.Data = t.TempDir()
	cfg.Server.HTTP, cfg.NATS.Listen, cfg.Metrics.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var banner syncBuffer
	ready := make(chan Listening, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, serveOptions{Stdout: &banner, Log: testLogger(t), Ready: func(l Listening) { ready <- l }})
	}()
	var l Listening
	select {
	case l = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve ended before it was ready: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if len(ready) != 0 {
			t.Errorf("ready was called again: %+v", <-ready)
		}
	}()

	for _, u := range []string{l.URL, l.NATS, l.Metrics} {
		if strings.HasSuffix(u, ":0") || !strings.Contains(u, "127.0.0.1:") {
			t.Errorf("address %q: want the bound loopback port", u)
		}
	}
	out := banner.String()
	if !strings.Contains(out, "kanade is running: open "+l.URL+"\n") ||
		!strings.Contains(out, "agents connect with: kanade-agent --server "+l.NATS+" --credentials "+l.Credentials+"\n") {
		t.Errorf("banner %q does not show %+v", out, l)
	}
	resp, err := http.Get(l.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s/healthz = %d", l.URL, resp.StatusCode)
	}
	resp, err = http.Get(l.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s = %d", l.Metrics, resp.StatusCode)
	}
	if fi, err := os.Stat(l.Credentials); err != nil || fi.Size() == 0 {
		t.Errorf("credentials %s: %v", l.Credentials, err)
	}
	// The broker answers on its address; without credentials it refuses
	// the connection, which proves something listens there.
	if nc, err := nats.Connect(l.NATS, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Errorf("the broker at %s accepted a client without credentials", l.NATS)
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("connecting to %s: %v, want an authorization error from the broker", l.NATS, err)
	}
}
