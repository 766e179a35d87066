package swarm

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/update"
	"github.com/kanadehq/kanade/agent/wire"
)

// TestSimUpdaterApply: a simulated agent's update asks for a permit,
// reads the release through direct gets of the embedded broker's release
// stream, checks the signature and the SHA-256, fails the trial at the
// model's rate, and on success restarts as the new version, which reports
// "updated from A to B" once connected.
func TestSimUpdaterApply(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the broker did not start")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.ReleaseBucket})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	keys := []wire.CommandKey{{Kid: wire.KeyID(pub), Key: pub}}
	bin := make([]byte, 500<<10+7)
	_, _ = rand.Read(bin)
	sum := sha256.Sum256(bin)
	release := func(version, goos string, stored []byte, key ed25519.PrivateKey) wire.SignedRelease {
		t.Helper()
		rel := wire.Release{Version: version, OS: goos, Arch: "amd64", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(bin)),
			Object: wire.ReleaseObject(version, goos, "amd64")}
		if stored != nil {
			if _, err := obs.PutBytes(ctx, rel.Object, stored); err != nil {
				t.Fatal(err)
			}
		}
		sr, err := wire.SignRelease(key, rel, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return sr
	}
	tampered := append([]byte{bin[0] ^ 1}, bin[1:]...)
	// The server's permit answers: granted, except for version "v9",
	// refused; every permit given back is counted.
	var given, returned atomic.Int64
	sub, err := nc.Subscribe(wire.UpdatePermitSubject("*"), func(m *nats.Msg) {
		var r wire.PermitRequest
		_ = json.Unmarshal(m.Data, &r)
		if r.Done {
			returned.Add(1)
			return
		}
		rep := wire.PermitReply{Granted: true}
		if r.Version == "v9" {
			rep = wire.PermitReply{Reason: "the rollout ended"}
		} else {
			given.Add(1)
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	tests := []struct {
		name      string
		rel       wire.SignedRelease
		failRate  float64
		noKeys    bool
		state     wire.State
		reason    string // prefix
		downloads int64
	}{
		{"updated", release("v2", "linux", bin, priv), 0, false, wire.StateSucceeded, "", 1},
		{"trial fails", release("v3", "linux", bin, priv), 1, false, wire.StateFailed, "trial run failed: exit status 3", 1},
		{"tampered object", release("v4", "linux", tampered, priv), 0, false, wire.StateFailed, "hash mismatch: ", 1},
		{"missing object", release("v5", "linux", nil, priv), 0, false, wire.StateFailed, "download failed: ", 1},
		{"unknown key", release("v6", "linux", bin, otherPriv), 0, false, wire.StateFailed, "signature invalid: ", 0},
		{"static credential", release("v7", "linux", bin, priv), 0, true, wire.StateFailed, "signature invalid: ", 0},
		{"same version", release("v1", "linux", bin, priv), 0, false, wire.StateSkipped, "already runs version v1", 0},
		{"other OS", release("v8", "windows", bin, priv), 0, false, wire.StateSkipped, "the release is for windows/amd64", 0},
		{"permit refused", release("v9", "linux", bin, priv), 0, false, wire.StateSkipped, "the server refused the download: the rollout ended", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stats := &Stats{}
			restarts := 0
			u := &simUpdater{pc: "pc-1", os: "linux", arch: "amd64", seed: 1, failRate: tt.failRate, stats: stats,
				sigCheck: ed25519.Verify, log: slog.New(slog.DiscardHandler), version: "v1", restart: func() { restarts++ }}
			if !tt.noKeys {
				u.setTrust(func() []wire.CommandKey { return keys }, nil)
			}
			given.Store(0)
			returned.Store(0)
			r, restart := u.Apply(ctx, nc, update.Request{ExecID: "e-" + tt.name, IssuedAt: time.Now(), Timeout: time.Minute,
				Update: wire.Update{Release: tt.rel}})
			if got := stats.Downloaded.Load(); tt.state == wire.StateSucceeded && got != 1 {
				t.Errorf("%d downloads passed the check, want 1", got)
			}
			// The permit goes back with a publish: wait for it (and for
			// no more), so that the next case counts its own.
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			eventually.Within(t, 10*time.Second, func() error {
				if g, ret := given.Load(), returned.Load(); g != tt.downloads || ret != tt.downloads {
					return fmt.Errorf("%d permits given and %d given back, want %d", g, ret, tt.downloads)
				}
				return nil
			})
			if stats.Downloading.Load() != 0 || stats.DownloadPeak.Load() != tt.downloads {
				t.Errorf("downloading %d, peak %d; want 0 and %d", stats.Downloading.Load(), stats.DownloadPeak.Load(), tt.downloads)
			}
			if tt.state != wire.StateSucceeded {
				if restart || restarts != 0 || r.State != tt.state || !strings.HasPrefix(r.Reason, tt.reason) {
					t.Fatalf("Apply() = %q %q (restart %v), want %q %q…", r.State, r.Reason, restart, tt.state, tt.reason)
				}
				if u.Version() != "v1" {
					t.Errorf("runs %s after a refused update", u.Version())
				}
				return
			}
			if !restart || restarts != 1 || u.Version() != tt.rel.Version {
				t.Fatalf("Apply(): restart %v, %d restarts, version %s; want a restart as %s", restart, restarts, u.Version(), tt.rel.Version)
			}
			// Another update before the result is reported is skipped.
			if r, _ := u.Apply(ctx, nc, update.Request{ExecID: "e-other", Timeout: time.Minute, Update: wire.Update{Release: tt.rel}}); r.State != wire.StateSkipped {
				t.Errorf("a second update while the first is not settled: %q %q", r.State, r.Reason)
			}
			got, ok := u.Connected(ctx, nc)
			if !ok || got.ExecID != "e-"+tt.name || got.State != wire.StateSucceeded || got.Stdout != "updated from v1 to "+tt.rel.Version {
				t.Fatalf("Connected() = %+v, %v; want the success of the update", got, ok)
			}
			if _, ok := u.Connected(ctx, nc); ok {
				t.Error("Connected() handed the result over twice")
			}
			u.Reported(got.ExecID)
			if stats.Updated.Load() != 1 {
				t.Errorf("Updated = %d, want 1", stats.Updated.Load())
			}
			if _, ok := u.Connected(ctx, nc); ok {
				t.Error("Connected() after Reported handed a result over")
			}
		})
	}
}
