package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func TestEnrollmentTokens(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		tok := store.EnrollmentToken{ID: "t1", Name: "lab", DefaultGroups: []string{"lab", "x"}, MaxUses: 2, ExpiresAt: now.Add(time.Hour), CreatedAt: now}
		if err := s.CreateEnrollmentToken(ctx, tok, "hash1"); err != nil {
			t.Fatal(err)
		}
		got, err := s.EnrollmentTokenBySecret(ctx, "hash1")
		if err != nil || got.Name != "lab" || len(got.DefaultGroups) != 2 || got.Usable(now) != "" {
			t.Fatalf("token = %+v, %v", got, err)
		}
		for i := 0; i < 2; i++ {
			if err := s.CountTokenUse(ctx, "t1"); err != nil {
				t.Fatal(err)
			}
		}
		got, _ = s.EnrollmentToken(ctx, "t1")
		if got.Usable(now) == "" {
			t.Error("a used-up token is usable")
		}
		if got.Usable(now) == "" || (store.EnrollmentToken{ExpiresAt: now}).Usable(now.Add(time.Second)) == "" {
			t.Error("an expired token is usable")
		}
		if err := s.RevokeEnrollmentToken(ctx, "t1", "admin", now); err != nil {
			t.Fatal(err)
		}
		list, err := s.EnrollmentTokens(ctx)
		if err != nil || len(list) != 1 || list[0].RevokedAt.IsZero() {
			t.Errorf("tokens = %+v, %v", list, err)
		}
		if err := s.RevokeEnrollmentToken(ctx, "nope", "admin", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoke unknown = %v", err)
		}
		if _, err := s.EnrollmentTokenBySecret(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown secret = %v", err)
		}
	})
}

func TestAgentKeys_Revoke(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		k := store.AgentKey{PCID: "pc1", PublicKey: "UKEY1", Status: store.KeyPending, Groups: []string{"lab"}, RequestedAt: now}
		if err := s.PutAgentKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		pending, n, err := s.AgentKeys(ctx, store.KeyPending, 10, 0)
		if err != nil || n != 1 || pending[0].PCID != "pc1" || pending[0].Groups[0] != "lab" {
			t.Fatalf("pending = %+v %d %v", pending, n, err)
		}
		if _, err := s.RevokeAgentKey(ctx, "pc1", "alice", now); err != nil {
			t.Fatal(err)
		}
		if r, _ := s.KeyRevoked(ctx, "UKEY1"); !r {
			t.Error("key not revoked")
		}
		revs, err := s.RevokedKeys(ctx, now.Add(-time.Hour))
		if err != nil || len(revs) != 1 || revs[0].PCID != "pc1" {
			t.Errorf("revoked = %+v %v", revs, err)
		}
		if revs, _ := s.RevokedKeys(ctx, now.Add(time.Hour)); len(revs) != 0 {
			t.Errorf("revocations before since were returned: %+v", revs)
		}
		if _, err := s.RevokeAgentKey(ctx, "nope", "alice", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoke unknown = %v", err)
		}
	})
}

func TestAgentKeys_Reenrollment(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		k := store.AgentKey{PCID: "pc1", PublicKey: "UKEY1", Status: store.KeyApproved, TokenID: "tok-a", Groups: []string{"lab"}, RequestedAt: now}
		if err := s.PutAgentKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, n, _ := s.AgentKeys(ctx, store.KeyPending, 10, 0); n != 0 {
			t.Fatalf("pending = %d before the request", n)
		}
		re := &store.Reenrollment{PublicKey: "UKEY2", Hostname: "pc1-new", OS: "windows", Arch: "amd64", TokenID: "tok-b", RequestedAt: now.Add(time.Hour)}
		k.Reenroll = re
		if err := s.PutAgentKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		got, err := s.AgentKey(ctx, "pc1")
		if err != nil || got.Reenroll == nil || *got.Reenroll != *re || got.PublicKey != "UKEY1" || got.Status != store.KeyApproved {
			t.Fatalf("binding = %+v (%+v), %v", got, got.Reenroll, err)
		}
		if keys, n, err := s.AgentKeys(ctx, store.KeyPending, 10, 0); err != nil || n != 1 || keys[0].Reenroll == nil {
			t.Fatalf("pending = %+v %d %v, want the re-enrollment", keys, n, err)
		}
		for tok, want := range map[string]int{"tok-a": 0, "tok-b": 1} {
			if n, err := s.CountAgentKeys(ctx, store.KeyPending, tok); err != nil || n != want {
				t.Errorf("pending of %s = %d %v, want %d", tok, n, err, want)
			}
		}
		// One key is pending for at most one PC.
		other := store.AgentKey{PCID: "pc2", PublicKey: "UKEY3", Status: store.KeyApproved, RequestedAt: now, Reenroll: &store.Reenrollment{PublicKey: "UKEY2", RequestedAt: now}}
		if err := s.PutAgentKey(ctx, other); err == nil {
			t.Error("the same key was accepted as the re-enrollment of two PCs")
		}
		got.Reenroll = nil
		if err := s.PutAgentKey(ctx, got); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.AgentKey(ctx, "pc1"); got.Reenroll != nil {
			t.Fatalf("the request was not cleared: %+v", got.Reenroll)
		}
	})
}

func TestAuditEvents(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		evs := []store.AuditEvent{
			{Seq: 1, At: base, Actor: "alice", Action: "run", Target: "e1", Detail: []byte(`{"targets":3}`)},
			{Seq: 2, At: base.Add(time.Minute), Actor: "bob", Action: "kill", Target: "e1"},
			{Seq: 3, At: base.Add(2 * time.Minute), Actor: "alice", Action: "agent.revoke", Target: "pc1", Detail: []byte(`not json`)},
		}
		if err := s.AddAuditEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if err := s.AddAuditEvents(ctx, evs[:1]); err != nil { // a replay
			t.Fatal(err)
		}
		all, n, err := s.AuditEvents(ctx, store.AuditFilter{})
		if err != nil || n != 3 || all[0].Seq != 3 || string(all[0].Detail) != "{}" || string(all[2].Detail) != `{"targets":3}` {
			t.Fatalf("all = %+v %d %v", all, n, err)
		}
		for _, tc := range []struct {
			f    store.AuditFilter
			want int
		}{
			{store.AuditFilter{Actor: "alice"}, 2},
			{store.AuditFilter{Action: "kill"}, 1},
			{store.AuditFilter{Since: base.Add(time.Minute)}, 2},
			{store.AuditFilter{Until: base.Add(time.Minute)}, 1},
			{store.AuditFilter{Actor: "alice", Limit: 1, Offset: 1}, 2},
		} {
			got, n, err := s.AuditEvents(ctx, tc.f)
			if err != nil || n != tc.want {
				t.Errorf("AuditEvents(%+v) total = %d (%d rows), %v; want %d", tc.f, n, len(got), err, tc.want)
			}
		}
	})
}

func TestGrantedGroups(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		for _, k := range []store.AgentKey{
			{PCID: "pc1", PublicKey: "K1", Status: store.KeyApproved, Groups: []string{"a", "b"}, RequestedAt: now},
			{PCID: "pc2", PublicKey: "K2", Status: store.KeyPending, Groups: []string{"c"}, RequestedAt: now},
			{PCID: "pc3", PublicKey: "K3", Status: store.KeyApproved, RequestedAt: now},
		} {
			if err := s.PutAgentKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.GrantedGroups(ctx, []string{"pc1", "pc2", "pc3", "pc4"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || strings.Join(got["pc1"], ",") != "a,b" || len(got["pc3"]) != 0 {
			t.Errorf("GrantedGroups = %v, want pc1 [a b] and pc3 []", got)
		}
		if _, ok := got["pc3"]; !ok {
			t.Error("an approved agent without groups is missing (it must be forced to none)")
		}
	})
}
