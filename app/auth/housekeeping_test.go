package auth

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/store/storetest"
)

// API tokens made and revoked with the CLI reach the audit trail once:
// each pending event is recorded, then marked audited, and a second pass
// records nothing.
func TestAuditCLITokens(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := bus.Open(ctx, bus.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 1 << 20, Logger: log,
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ExecMaxBytes: 16 << 20, ResultsMaxBytes: 16 << 20, OutputMaxBytes: 16 << 20, AuditMaxBytes: 16 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	rec := audit.New(b.JS, log)
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

	if _, _, err := CreateToken(ctx, st, NewTokenRequest{Name: "nightly", Role: Viewer, By: "root@host", FromCLI: true}, now); err != nil {
		t.Fatal(err)
	}
	gone, _, err := CreateToken(ctx, st, NewTokenRequest{Name: "old", Role: Admin, By: "root@host", FromCLI: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeAPIToken(ctx, gone.ID, "root@host", now, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CreateToken(ctx, st, NewTokenRequest{Name: "from the gui", Role: Viewer, By: "alice"}, now); err != nil {
		t.Fatal(err)
	}

	for pass := 1; pass <= 2; pass++ {
		if err := auditCLITokens(ctx, st, rec); err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
	}
	s, err := b.JS.Stream(ctx, wire.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// kept: create; gone: create + revoke; the GUI's token is audited by its handler.
	if info.State.Msgs != 3 {
		t.Errorf("audit events = %d, want 3 (two creations and one revocation, once each)", info.State.Msgs)
	}
	left, err := st.APITokensAuditPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("tokens still pending audit: %+v", left)
	}
}
