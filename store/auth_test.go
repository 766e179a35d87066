package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestAPITokens(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a := store.APIToken{ID: "a", Name: "ci", Role: "operator", CreatedAt: t0, CreatedBy: "alice", ExpiresAt: t0.Add(time.Hour)}
		b := store.APIToken{ID: "b", Name: "cli", Role: "admin", CreatedAt: t0.Add(time.Second), CreatedBy: "cli:root@host", AuditPending: true}
		for _, tok := range []struct {
			t    store.APIToken
			hash string
		}{{a, "ha"}, {b, "hb"}} {
			if err := s.CreateAPIToken(ctx, tok.t, tok.hash); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateAPIToken(ctx, a, "other"); !errors.Is(err, store.ErrExists) {
			t.Errorf("duplicate id = %v, want ErrExists", err)
		}
		got, err := s.APITokenBySecret(ctx, "ha")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a, got); diff != "" {
			t.Errorf("by secret (-want +got):\n%s", diff)
		}
		if got.Usable(t0) != "" || got.Usable(t0.Add(time.Hour)) == "" {
			t.Errorf("usable: before expiry %q, at expiry %q", got.Usable(t0), got.Usable(t0.Add(time.Hour)))
		}
		if _, err := s.APITokenBySecret(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown secret = %v", err)
		}
		if err := s.TouchAPIToken(ctx, "a", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		rev, err := s.RevokeAPIToken(ctx, "a", "bob", t0.Add(2*time.Minute), true)
		if err != nil || rev.RevokedBy != "bob" || !rev.RevokedAt.Equal(t0.Add(2*time.Minute)) || !rev.LastUsedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("revoke = %+v, %v", rev, err)
		}
		if rev.Usable(t0) == "" {
			t.Error("a revoked token is usable")
		}
		again, err := s.RevokeAPIToken(ctx, "a", "carol", t0.Add(3*time.Minute), false)
		if err != nil || again.RevokedBy != "bob" {
			t.Errorf("second revoke = %+v, %v (first revocation must stay)", again, err)
		}
		if _, err := s.RevokeAPIToken(ctx, "zz", "bob", t0, false); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoke unknown = %v", err)
		}
		list, err := s.APITokens(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "b" {
			t.Errorf("list = %+v, %v (newest first)", list, err)
		}
		pending, err := s.APITokensAuditPending(ctx)
		if err != nil || len(pending) != 2 || !pending[0].RevokeAuditPending || pending[0].AuditPending || !pending[1].AuditPending {
			t.Fatalf("audit pending = %+v, %v (want a: revoke, b: create)", pending, err)
		}
		for _, id := range []string{"a", "b"} {
			if err := s.APITokenAudited(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if pending, _ := s.APITokensAuditPending(ctx); len(pending) != 0 {
			t.Errorf("still pending after audit: %+v", pending)
		}
	})
}

func TestSessions(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ss := store.Session{IDHash: "h1", Subject: "sub1", Name: "jane@example.com", Display: "Jane Doe", Email: "jane@example.com", Role: "operator",
			CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(8 * time.Hour)}
		old := store.Session{IDHash: "h2", Subject: "sub2", Name: "Old", Role: "viewer", CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour)}
		for _, x := range []store.Session{ss, old} {
			if err := s.CreateSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Session(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ss, got); diff != "" {
			t.Errorf("session (-want +got):\n%s", diff)
		}
		if err := s.TouchSession(ctx, "h1", t0.Add(50*time.Minute)); err != nil {
			t.Fatal(err)
		}
		// At t0+70m with a 30m idle timeout: h2 expired (and idle), h1 was seen 20m ago.
		n, err := s.DeleteSessionsBefore(ctx, t0.Add(70*time.Minute), t0.Add(40*time.Minute))
		if err != nil || n != 1 {
			t.Errorf("pruned %d, %v; want 1", n, err)
		}
		if _, err := s.Session(ctx, "h2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pruned session = %v", err)
		}
		if err := s.DeleteSession(ctx, "h1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSession(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete = %v", err)
		}
	})
}
