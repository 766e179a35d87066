package enroll

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	agentenroll "github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/store"
)

// issue creates a token and parses its bundle.
func (f *fixture) issue(t *testing.T, r TokenRequest) (Issued, agentenroll.EnrollmentFile) {
	t.Helper()
	is, err := f.svc.CreateToken(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	file, err := agentenroll.ParseEnrollmentFile(is.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	return is, file
}

// connects reports whether a bundle's broker user can connect.
func (f *fixture) connects(file agentenroll.EnrollmentFile) error {
	kp, err := nkeys.FromSeed(file.Seed)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(f.b.ClientURL(), nats.UserJWT(func() (string, error) { return file.JWT, nil }, kp.Sign), nats.NoReconnect())
	if err == nil {
		nc.Close()
	}
	return err
}

// Every token has a bundle user of its own: a token's secret in another
// token's bundle is refused, and revoking a token cuts its bundle off at
// the broker while the other bundles keep working.
func TestToken_BundlePerToken(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, a := f.issue(t, TokenRequest{Name: "a", AutoApprove: true, By: "alice"})
	isB, b := f.issue(t, TokenRequest{Name: "b", AutoApprove: true, By: "alice"})
	if a.JWT == b.JWT || a.JWT == f.file.JWT {
		t.Fatal("two tokens share a bundle user")
	}
	mixed := a
	mixed.Token = b.Token
	kp, _ := nkeys.CreateUser()
	if _, err := f.enroll(t, ctx, "pc1", kp, mixed); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("token b in bundle a: %v", err)
	}
	if _, err := f.enroll(t, ctx, "pc1", kp, b); err != nil {
		t.Fatalf("bundle b: %v", err)
	}
	if err := f.svc.RevokeToken(ctx, isB.Token.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := f.connects(b); err == nil {
		t.Error("the revoked token's bundle still connects")
	}
	for name, file := range map[string]agentenroll.EnrollmentFile{"a": a, "default": f.file} {
		if err := f.connects(file); err != nil {
			t.Errorf("bundle %s after revoking b: %v", name, err)
		}
	}
	// The revocation survives a broker restart: it is read from the store.
	revs, err := Revocations(ctx, f.st, time.Now().Add(2*bus.AgentJWTLifetime))
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || !revs[0].Forever {
		t.Errorf("revocations long after = %+v, want the bundle user's, kept", revs)
	}
}

// Rotating the default bundle kills the old file at the broker and writes
// a new one that enrolls.
func TestRotateDefault(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.svc.RotateDefault(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := f.connects(f.file); err == nil {
		t.Error("the old default bundle still connects")
	}
	raw, err := os.ReadFile(filepath.Join(f.svc.dataDir, "agent-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := agentenroll.ParseEnrollmentFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if file.Token == f.file.Token || file.JWT == f.file.JWT {
		t.Error("the new bundle has the old secret or user")
	}
	kp, _ := nkeys.CreateUser()
	if _, err := f.enroll(t, ctx, "pc1", kp, file); err != nil {
		t.Errorf("enroll with the new bundle: %v", err)
	}
}

// The groups a PC asks for are ignored unless its token allows them.
func TestEnroll_GroupsOnlyWhereTheTokenAllows(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name  string
		allow []string
		want  []string
	}{
		{"none allowed", nil, []string{"office"}},
		{"one allowed", []string{"lab"}, []string{"lab", "office"}},
		{"any", []string{"*"}, []string{"finance", "lab", "office"}},
	}
	for i, tt := range tests {
		_, file := f.issue(t, TokenRequest{Name: tt.name, DefaultGroups: []string{"office"}, AllowGroups: tt.allow, AutoApprove: true, By: "alice"})
		kp, _ := nkeys.CreateUser()
		pc := "grp" + string(rune('a'+i))
		c, err := agentenroll.Enroll(ctx, f.b.ClientURL(), file, kp, agentenroll.Request{PCID: pc, Groups: []string{"lab", "finance"}}, f.log)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, c.Groups); diff != "" {
			t.Errorf("%s: groups (-want +got):\n%s", tt.name, diff)
		}
	}
}

// A token does not approve a PC the server already knows: a leaked
// auto-approving token cannot take over the name of a PC that has not
// enrolled yet.
func TestEnroll_KnownPCNeedsAnAdmin(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	now := time.Now().UTC()
	if err := f.st.UpsertAgents(ctx, []store.Agent{{PCID: "ceo-laptop", Hostname: "ceo-laptop", Protocol: wire.ProtocolVersion,
		Interval: 30 * time.Second, LastSeen: now, OfflineAfter: now.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	kp, _ := nkeys.CreateUser()
	sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer scancel()
	if _, err := f.enroll(t, sctx, "ceo-laptop", kp, f.file); err == nil {
		t.Error("a known PC's name was approved by the token")
	}
	if k, err := f.st.AgentKey(ctx, "ceo-laptop"); err != nil || k.Status != store.KeyPending {
		t.Errorf("binding = %+v, %v; want pending", k, err)
	}
}

// Requests that wait for an admin are capped per token.
func TestEnroll_PendingCapped(t *testing.T) {
	f := newFixture(t, false)
	f.svc.MaxPending = 2
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, pc := range []string{"p1", "p2", "p3"} {
		kp, _ := nkeys.CreateUser()
		sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, _ = f.enroll(t, sctx, pc, kp, f.file)
		scancel()
	}
	if n, err := f.st.CountAgentKeys(ctx, store.KeyPending, DefaultTokenID); err != nil || n != 2 {
		t.Errorf("pending = %d, %v; want 2", n, err)
	}
	if _, err := f.st.AgentKey(ctx, "p3"); err == nil {
		t.Error("the third request was stored")
	}
}

// Renewal answers only the key the pc_id is bound to.
func TestRenew_OnlyTheBoundKey(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kp, _ := nkeys.CreateUser()
	if _, err := f.enroll(t, ctx, "pc1", kp, f.file); err != nil {
		t.Fatal(err)
	}
	// A credential for pc1 on another key (as a stolen signing key could mint).
	nc, _ := bustest.Agent(t, f.b, "pc1", nil)
	msg, err := nc.Request(wire.RenewSubject("pc1"), []byte("{}"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Data), `"rejected"`) {
		t.Errorf("renewal by another key: %s", msg.Data)
	}
}

// Every holder of the enrollment file can read the enrollment inbox; the
// reply to another PC's request is sealed to that request's key.
func TestEnroll_RepliesSealed(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kp, err := nkeys.FromSeed(f.file.Seed)
	if err != nil {
		t.Fatal(err)
	}
	spy, err := nats.Connect(f.b.ClientURL(), nats.UserJWT(func() (string, error) { return f.file.JWT, nil }, kp.Sign))
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	seen, err := spy.SubscribeSync(wire.EnrollInboxPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	agentKey, _ := nkeys.CreateUser()
	c, err := f.enroll(t, ctx, "pc1", agentKey, f.file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := seen.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("the spy saw no reply: %v", err)
	}
	if strings.Contains(string(m.Data), c.JWT) || strings.Contains(string(m.Data), `"approved"`) {
		t.Errorf("the reply to another PC's enrollment is readable: %.200s", m.Data)
	}
}
