package bus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
)

func openTestBus(t *testing.T) *Bus {
	t.Helper()
	b, err := Open(context.Background(), Options{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Streams: StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour,
			ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// violations collects the permission errors the server reports.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err.Error())
	v.mu.Unlock()
}

func (v *violations) has(s string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.errs {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEmbedded_RefusesAnonymous(t *testing.T) {
	b := openTestBus(t)
	nc, err := nats.Connect(b.ClientURL(), nats.NoReconnect())
	if err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("anonymous connect error = %v, want an authorization violation", err)
	}
}

// TestAgentCredential_Permissions tries what the shared agent credential
// must be able to do and what it must never do.
func TestAgentCredential_Permissions(t *testing.T) {
	b := openTestBus(t)
	v := &violations{}
	opt, err := CredentialsOption(b.AgentCredentials)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.ClientURL(), opt, nats.ErrorHandler(v.handler), nats.CustomInboxPrefix(wire.AgentInboxPrefix("pc1")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()

	// Denied: publishing commands, kills and control messages.
	for _, subj := range []string{wire.CommandAllSubject("evil"), wire.KillSubject("e1"), wire.ControlAll} {
		if err := nc.Publish(subj, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		waitFor(t, "violation for publish "+subj, func() bool { return v.has(`Publish to "` + subj + `"`) })
	}
	// Denied: reading results, output and heartbeats of other agents, and the server's inbox.
	for _, subj := range []string{"results.>", "output.>", "heartbeat.*", "_INBOX.>", ">"} {
		if _, err := nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		waitFor(t, "violation for subscribe "+subj, func() bool { return v.has(`Subscription to "` + subj + `"`) })
	}
	st, err := b.JS.Stream(ctx, wire.StreamExec)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(ctx); info.State.Msgs != 0 {
		t.Errorf("EXEC holds %d messages after a denied publish", info.State.Msgs)
	}

	// Allowed: commands arrive, results are acknowledged by JetStream.
	sub, err := nc.SubscribeSync(wire.CommandPCWildcard("pc1"))
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	if _, err := b.JS.Publish(ctx, wire.CommandPCSubject("pc1", "j"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Errorf("agent did not receive its command: %v", err)
	}
	ajs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := ajs.Publish(pctx, wire.ResultSubject("e1", "pc1"), []byte(`{}`)); err != nil {
		t.Errorf("agent result publish: %v", err)
	}
	// Allowed: a single-filter catch-up consumer on EXEC.
	cons, err := ajs.CreateConsumer(pctx, wire.StreamExec, jetstream.ConsumerConfig{
		FilterSubject: wire.CommandPCWildcard("pc1"), DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatalf("catch-up consumer: %v", err)
	}
	if n := cons.CachedInfo().NumPending; n != 1 {
		t.Errorf("catch-up pending = %d, want 1", n)
	}
}

func TestProvision_Idempotent(t *testing.T) {
	b := openTestBus(t)
	ctx := context.Background()
	if err := b.provision(ctx, StreamLimits{ExecMaxAge: 2 * time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour,
		ExecMaxBytes: 32 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20}); err != nil {
		t.Fatalf("second provision: %v", err)
	}
	st, err := b.JS.Stream(ctx, wire.StreamExec)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxAge != 2*time.Hour || cfg.MaxBytes != 32<<20 || cfg.MaxMsgsPerSubject != 1 || !cfg.AllowDirect {
		t.Errorf("EXEC config after update = age %v bytes %d per-subject %d direct %v", cfg.MaxAge, cfg.MaxBytes, cfg.MaxMsgsPerSubject, cfg.AllowDirect)
	}
	if err := b.Healthy(ctx); err != nil {
		t.Errorf("Healthy: %v", err)
	}
	if _, err := CredentialsOption(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing credentials file accepted")
	}
}
