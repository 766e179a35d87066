package enroll

import (
	"crypto/ed25519"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/wire"
)

// TestKeeper_ReleaseKeys: the release keys travel like the command keys:
// kept in the stored credential, replaced by a signed announcement, and a
// renewal from a server that sends none keeps the ones the agent has.
func TestKeeper_ReleaseKeys(t *testing.T) {
	key := func() wire.CommandKey {
		pub, _, _ := ed25519.GenerateKey(nil)
		return wire.CommandKey{Kid: wire.KeyID(pub), Key: pub}
	}
	cmd, rel1, rel2 := []wire.CommandKey{key()}, []wire.CommandKey{key()}, []wire.CommandKey{key(), key()}
	dir := t.TempDir()
	kp, _ := nkeys.CreateUser()
	expiry := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	k := NewKeeper(kp, Credential{JWT: "jwt1", Expiry: expiry, CommandKeys: cmd, ReleaseKeys: rel1}, dir, "pc1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	stored := func() []wire.CommandKey {
		c, ok := LoadCredential(dir, time.Now())
		if !ok {
			t.Fatal("no stored credential")
		}
		return c.ReleaseKeys
	}
	if err := k.SetReleaseKeys(rel2); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rel2, stored()); diff != "" || !cmp.Equal(rel2, k.ReleaseKeys()) {
		t.Errorf("after SetReleaseKeys (-want +stored):\n%s", diff)
	}
	if err := k.SetCredential(wire.EnrollReply{Status: wire.EnrollApproved, JWT: "jwt2", Expiry: expiry}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rel2, stored()); diff != "" {
		t.Errorf("a renewal without release keys dropped them (-want +stored):\n%s", diff)
	}
	if err := k.SetCredential(wire.EnrollReply{Status: wire.EnrollApproved, JWT: "jwt3", Expiry: expiry, ReleaseKeys: rel1}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rel1, stored()); diff != "" || k.Credential().JWT != "jwt3" {
		t.Errorf("a renewal with release keys (-want +stored):\n%s", diff)
	}
}
