package enroll

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	agentenroll "github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

type fixture struct {
	svc   *Service
	st    *store.Store
	b     *bus.Bus
	creds string
	file  agentenroll.EnrollmentFile
	log   *slog.Logger
}

func newFixture(t testing.TB, autoApprove bool) *fixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	st := storetest.New(t)
	b, err := bus.Open(context.Background(), bus.Options{DataDir: dir, Listen: "127.0.0.1:0", MaxPayload: 8 << 20, Logger: log,
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour,
			ExecMaxBytes: 16 << 20, ResultsMaxBytes: 16 << 20, OutputMaxBytes: 16 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	keys, err := sign.Load(filepath.Join(dir, "secrets", "command-keys"))
	if err != nil {
		t.Fatal(err)
	}
	svc := New(st, b, keys, events.New(), log)
	svc.RetryAfter = 50 * time.Millisecond
	path, err := svc.WriteAgentCredentials(context.Background(), dir, autoApprove, []string{"base"}, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("agent credentials %s: %v, mode %v; want 0600", path, err, st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	f, err := agentenroll.ParseEnrollmentFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Run subscribes asynchronously; wait until it answers an agent.
	probe, _ := bustest.Agent(t, b, "probe", nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := probe.Request(wire.RenewSubject("probe"), nil, 100*time.Millisecond); err == nil || time.Now().After(deadline) {
			break
		}
	}
	return &fixture{svc: svc, st: st, b: b, creds: path, file: f, log: log}
}

func (f *fixture) enroll(t *testing.T, ctx context.Context, pc string, kp nkeys.KeyPair, file agentenroll.EnrollmentFile) (agentenroll.Credential, error) {
	t.Helper()
	return agentenroll.Enroll(ctx, f.b.ClientURL(), file, kp, agentenroll.Request{PCID: pc, Hostname: pc, Groups: []string{"Lab"}}, f.log)
}

func TestEnroll_AutoApproveAndConnect(t *testing.T) {
	f := newFixture(t, true)
	kp, _ := nkeys.CreateUser()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := f.enroll(t, ctx, "pc1", kp, f.file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Groups, ",") != "base,lab" || time.Until(c.Expiry) < 29*24*time.Hour {
		t.Errorf("credential groups %v expiry %v", c.Groups, c.Expiry)
	}
	nc, err := nats.Connect(f.b.ClientURL(), nats.UserJWT(func() (string, error) { return c.JWT, nil }, kp.Sign),
		nats.CustomInboxPrefix(wire.AgentInboxPrefix("pc1")))
	if err != nil {
		t.Fatalf("connect with the issued credential: %v", err)
	}
	// Renewal over its own credential.
	msg, err := nc.Request("enroll.renew.pc1", []byte("{}"), 5*time.Second)
	nc.Close()
	if err != nil {
		t.Errorf("renewal: %v", err)
	} else if !strings.Contains(string(msg.Data), `"approved"`) {
		t.Errorf("renewal reply: %s", msg.Data)
	}
	k, err := f.st.AgentKey(ctx, "pc1")
	if err != nil || k.Status != store.KeyApproved {
		t.Errorf("binding = %+v, %v", k, err)
	}
}

// TestEnroll_Reenrollment: a known PC asking with a new key waits for an
// admin even with an auto-approving token; its bound key keeps working
// until the approval, which revokes it. A rejected key stays refused.
func TestEnroll_Reenrollment(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kp, _ := nkeys.CreateUser()
	oldPub, _ := kp.PublicKey()
	c, err := f.enroll(t, ctx, "pc1", kp, f.file)
	if err != nil {
		t.Fatal(err)
	}
	connects := func(c agentenroll.Credential, kp nkeys.KeyPair) error {
		nc, err := nats.Connect(f.b.ClientURL(), nats.UserJWT(func() (string, error) { return c.JWT, nil }, kp.Sign), nats.NoReconnect())
		if err == nil {
			nc.Close()
		}
		return err
	}
	waitFor := func(what string, cond func(store.AgentKey) bool) store.AgentKey {
		t.Helper()
		var k store.AgentKey
		eventually.Within(t, 10*time.Second, func() error {
			var err error
			if k, err = f.st.AgentKey(ctx, "pc1"); err != nil || !cond(k) {
				return fmt.Errorf("%s: binding %+v, %v", what, k, err)
			}
			return nil
		})
		return k
	}

	// A request with another key is rejected by the admin: that key stays refused.
	intruder, _ := nkeys.CreateUser()
	intruderPub, _ := intruder.PublicKey()
	got := make(chan error, 1)
	go func() { _, err := f.enroll(t, ctx, "pc1", intruder, f.file); got <- err }()
	waitFor("re-enrollment request", func(k store.AgentKey) bool { return k.Reenroll != nil && k.Reenroll.PublicKey == intruderPub })
	if k, _ := f.st.AgentKey(ctx, "pc1"); k.Status != store.KeyApproved || k.PublicKey != oldPub {
		t.Fatalf("the request changed the binding: %+v", k)
	}
	if err := connects(c, kp); err != nil {
		t.Fatalf("the bound key stopped working while a re-enrollment waits: %v", err)
	}
	if _, pending, _ := f.st.AgentKeys(ctx, store.KeyPending, 10, 0); pending != 1 {
		t.Fatalf("pending = %d, want the re-enrollment listed", pending)
	}
	if err := f.svc.Reject(ctx, "pc1", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("the rejected key's enrollment = %v, want refused as revoked", err)
	}
	if k := waitFor("binding after reject", func(store.AgentKey) bool { return true }); k.Reenroll != nil || k.PublicKey != oldPub {
		t.Fatalf("after reject: %+v", k)
	}

	// The reinstalled PC asks with its new key; the admin approves.
	fresh, _ := nkeys.CreateUser()
	freshPub, _ := fresh.PublicKey()
	type result struct {
		c   agentenroll.Credential
		err error
	}
	done := make(chan result, 1)
	go func() { c, err := f.enroll(t, ctx, "pc1", fresh, f.file); done <- result{c, err} }()
	waitFor("second request", func(k store.AgentKey) bool { return k.Reenroll != nil && k.Reenroll.PublicKey == freshPub })
	if err := f.svc.Approve(ctx, "pc1", "alice"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("re-enrollment after approval: %v", r.err)
	}
	k := waitFor("approved binding", func(k store.AgentKey) bool { return k.PublicKey == freshPub })
	if k.Status != store.KeyApproved || k.Reenroll != nil || strings.Join(k.Groups, ",") != strings.Join(c.Groups, ",") {
		t.Fatalf("binding after approval: %+v", k)
	}
	if revoked, _ := f.st.KeyRevoked(ctx, oldPub); !revoked {
		t.Fatal("the previous key was not revoked")
	}
	if err := connects(r.c, fresh); err != nil {
		t.Fatalf("the new credential cannot connect: %v", err)
	}
	eventually.Within(t, 10*time.Second, eventually.Holds("the previous key to be refused after the re-enrollment was approved",
		func() bool { return connects(c, kp) != nil }))
}

func TestEnroll_HeldForApproval(t *testing.T) {
	f := newFixture(t, false)
	kp, _ := nkeys.CreateUser()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() { _, err := f.enroll(t, ctx, "pc2", kp, f.file); got <- err }()
	eventually.Within(t, 10*time.Second, func() error {
		if k, err := f.st.AgentKey(ctx, "pc2"); err != nil || k.Status != store.KeyPending {
			return fmt.Errorf("no pending enrollment: %+v, %v", k, err)
		}
		return nil
	})
	select {
	case err := <-got:
		t.Fatalf("enrollment finished before approval: %v", err)
	default:
	}
	if err := f.svc.Approve(ctx, "pc2", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("after approval: %v", err)
	}
}

func TestEnroll_Refusals(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kp, _ := nkeys.CreateUser()
	bad := f.file
	bad.Token = "kanade-enroll-wrong"
	if _, err := f.enroll(t, ctx, "pc3", kp, bad); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("wrong token: %v", err)
	}
	// An expired token.
	if err := f.st.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "old", Name: "old", AutoApprove: true,
		ExpiresAt: time.Now().Add(-time.Minute), CreatedAt: time.Now()}, HashSecret("kanade-enroll-old")); err != nil {
		t.Fatal(err)
	}
	old := f.file
	old.Token = "kanade-enroll-old"
	if _, err := f.enroll(t, ctx, "pc3", kp, old); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	// A revoked agent cannot enroll again with its key, and a new key waits for an admin.
	if _, err := f.enroll(t, ctx, "pc4", kp, f.file); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Revoke(ctx, "pc4", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.enroll(t, ctx, "pc4", kp, f.file); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked key re-enrolled: %v", err)
	}
	fresh, _ := nkeys.CreateUser()
	sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer scancel()
	if _, err := f.enroll(t, sctx, "pc4", fresh, f.file); err == nil {
		t.Error("a new key for a revoked PC was approved without an admin")
	}
	if k, _ := f.st.AgentKey(ctx, "pc4"); k.Status != store.KeyPending {
		t.Errorf("pc4 after re-enrollment with a new key = %s, want pending", k.Status)
	}
}

// An agent renews its credential before it expires and stays connected
// past the first credential's expiry.
func TestKeeper_RenewsBeforeExpiry(t *testing.T) {
	f := newFixture(t, true)
	f.svc.Lifetime = 3 * time.Second
	kp, _ := nkeys.CreateUser()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	c, err := f.enroll(t, ctx, "pc5", kp, f.file)
	if err != nil {
		t.Fatal(err)
	}
	k := agentenroll.NewKeeper(kp, c, dir, "pc5", f.log)
	nc, err := nats.Connect(f.b.ClientURL(), k.Option(), nats.CustomInboxPrefix(wire.AgentInboxPrefix("pc5")), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	go k.Run(ctx, nc)
	first := c.Expiry
	eventually.Within(t, 10*time.Second, eventually.Holds("the credential to be renewed", func() bool { return k.Credential().Expiry.After(first) }))
	// Past the first credential's expiry the connection still works.
	for time.Now().Before(first.Add(500 * time.Millisecond)) {
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := nc.Request(wire.RenewSubject("pc5"), []byte("{}"), 5*time.Second); err != nil {
		t.Errorf("request after the first credential expired: %v", err)
	}
	if saved, ok := agentenroll.LoadCredential(dir, time.Now()); !ok || saved.JWT == c.JWT {
		t.Error("the renewed credential was not saved")
	}
}

// BenchmarkEnrollAndConnect measures the rate at which new agents enroll
// (key, signed request, token and binding checks, credential minting) and
// connect with their own credential, 16 at a time.
func BenchmarkEnrollAndConnect(b *testing.B) {
	f := newFixture(b, true)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			pc := fmt.Sprintf("bench-%d", n.Add(1))
			kp, _ := nkeys.CreateUser()
			c, err := agentenroll.Enroll(context.Background(), f.b.ClientURL(), f.file, kp, agentenroll.Request{PCID: pc}, f.log)
			if err != nil {
				b.Error(err)
				return
			}
			nc, err := nats.Connect(f.b.ClientURL(), nats.UserJWT(func() (string, error) { return c.JWT, nil }, kp.Sign))
			if err != nil {
				b.Error(err)
				return
			}
			nc.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "agents/s")
}
