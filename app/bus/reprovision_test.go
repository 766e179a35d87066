package bus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// Nothing may take messages out of AUDIT (the record) or EXEC (pending
// commands) but their age and size limits: purges and deletes are refused,
// whole or by subject, and the message stays.
func TestProvision_AuditAndExecDenyPurgeAndDelete(t *testing.T) {
	b := openTestBus(t)
	ctx := context.Background()
	for _, tt := range []struct{ stream, subject string }{
		{wire.StreamAudit, wire.AuditSubject("run")},
		{wire.StreamExec, wire.CommandPCSubject("pc1", "job")},
	} {
		t.Run(tt.stream, func(t *testing.T) {
			ack, err := b.JS.Publish(ctx, tt.subject, []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			st, err := b.JS.Stream(ctx, tt.stream)
			if err != nil {
				t.Fatal(err)
			}
			attempts := []struct {
				name string
				do   func() error
			}{
				{"purge", func() error { return st.Purge(ctx) }},
				{"purge subject", func() error { return st.Purge(ctx, jetstream.WithPurgeSubject(tt.subject)) }},
				{"purge keep 0", func() error { return st.Purge(ctx, jetstream.WithPurgeKeep(0)) }},
				{"delete", func() error { return st.DeleteMsg(ctx, ack.Sequence) }},
				{"secure delete", func() error { return st.SecureDeleteMsg(ctx, ack.Sequence) }},
			}
			for _, a := range attempts {
				if err := a.do(); err == nil {
					t.Errorf("%s of %s succeeded, want refused", a.name, tt.stream)
				}
			}
			// A raw purge request with a body that is not JSON purged
			// everything before.
			if m, err := b.NC.Request("$JS.API.STREAM.PURGE."+tt.stream, []byte("x"), 5*time.Second); err != nil {
				t.Fatal(err)
			} else if !strings.Contains(string(m.Data), `"error"`) {
				t.Errorf("raw purge answered %s, want an error", m.Data)
			}
			if _, err := st.GetMsg(ctx, ack.Sequence); err != nil {
				t.Errorf("message %d after the attempts: %v", ack.Sequence, err)
			}
		})
	}
}

// An installation whose AUDIT and EXEC were created before they denied
// purge and delete gets the flags when the server starts (provisioning is
// create-or-update), and keeps its messages.
func TestProvision_UpdateAddsDenyFlags(t *testing.T) {
	b := openTestBus(t)
	ctx := context.Background()
	limits := StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour,
		ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20}
	for _, cfg := range StreamConfigs(limits) {
		if cfg.Name != wire.StreamAudit && cfg.Name != wire.StreamExec {
			continue
		}
		if err := b.JS.DeleteStream(ctx, cfg.Name); err != nil {
			t.Fatal(err)
		}
		old := cfg
		old.DenyDelete, old.DenyPurge = false, false
		if _, err := b.JS.CreateStream(ctx, old); err != nil {
			t.Fatalf("create %s as it was: %v", cfg.Name, err)
		}
	}
	if _, err := b.JS.Publish(ctx, wire.AuditSubject("run"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.provision(ctx, limits); err != nil {
		t.Fatalf("provision over the old streams: %v", err)
	}
	for _, name := range []string{wire.StreamAudit, wire.StreamExec} {
		st, err := b.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		if !cfg.DenyDelete || !cfg.DenyPurge {
			t.Errorf("%s after provisioning: deny_delete %v deny_purge %v, want both", name, cfg.DenyDelete, cfg.DenyPurge)
		}
		if err := st.Purge(ctx); err == nil {
			t.Errorf("%s: purge succeeded after provisioning", name)
		}
	}
	st, _ := b.JS.Stream(ctx, wire.StreamAudit)
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("AUDIT holds %d messages after provisioning, want 1", n)
	}
}

// A stream or bucket deleted while the server runs comes back: the next
// write that finds it missing re-provisions and succeeds (Retry).
func TestProvisioner_RetryRecreatesMissing(t *testing.T) {
	b := openTestBus(t)
	ctx := context.Background()
	p := NewProvisioner(b.JS, StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour,
		ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, tt := range []struct{ stream, subject string }{
		{wire.StreamAudit, wire.AuditSubject("run")},
		{wire.StreamExec, wire.CommandPCSubject("pc1", "job")},
		{wire.StreamResults, wire.ResultSubject("pc1")},
		{wire.StreamOutput, wire.OutputSubject("pc1")},
		{wire.StreamInventory, wire.InventorySubject("pc1")},
	} {
		t.Run(tt.stream, func(t *testing.T) {
			if err := b.JS.DeleteStream(ctx, tt.stream); err != nil {
				t.Fatal(err)
			}
			publish := func() error { _, err := b.JS.Publish(ctx, tt.subject, []byte(`{}`)); return err }
			if err := publish(); !Missing(err) {
				t.Fatalf("publish with %s deleted: %v, want a missing-stream error", tt.stream, err)
			}
			if err := p.Retry(ctx, publish); err != nil {
				t.Fatalf("Retry: %v", err)
			}
			st, err := b.JS.Stream(ctx, tt.stream)
			if err != nil {
				t.Fatal(err)
			}
			if n := st.CachedInfo().State.Msgs; n != 1 {
				t.Errorf("%s holds %d messages, want 1", tt.stream, n)
			}
			want := map[string]bool{wire.StreamAudit: true, wire.StreamExec: true}[tt.stream]
			if cfg := st.CachedInfo().Config; cfg.DenyPurge != want || cfg.DenyDelete != want {
				t.Errorf("re-created %s: deny_purge %v deny_delete %v, want %v", tt.stream, cfg.DenyPurge, cfg.DenyDelete, want)
			}
		})
	}
	// An error that is not about a missing stream is not retried.
	calls := 0
	boom := errors.New("boom")
	if err := p.Retry(ctx, func() error { calls++; return boom }); !errors.Is(err, boom) || calls != 1 {
		t.Errorf("Retry(other error) = %v after %d calls, want boom after 1", err, calls)
	}
}

// Run re-creates what nobody writes to, on its own, every interval.
func TestProvisioner_RunRecreatesMissing(t *testing.T) {
	b := openTestBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := NewProvisioner(b.JS, StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour,
		ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := b.JS.DeleteKeyValue(ctx, wire.KVFleet); err != nil {
		t.Fatal(err)
	}
	if err := b.JS.DeleteStream(ctx, wire.StreamOutput); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Run(ctx, 10*time.Millisecond); close(done) }()
	eventually.Within(t, 10*time.Second, eventually.Holds("the bucket and the stream to come back", func() bool {
		_, kerr := b.JS.KeyValue(ctx, wire.KVFleet)
		_, serr := b.JS.Stream(ctx, wire.StreamOutput)
		return kerr == nil && serr == nil
	}))
	cancel()
	<-done
	if created, err := p.Ensure(context.Background()); err != nil || len(created) != 0 {
		t.Errorf("Ensure with everything in place = %v, %v; want nothing created", created, err)
	}
}
