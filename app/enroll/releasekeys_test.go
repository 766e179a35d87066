package enroll

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/sign"
)

// Enrollment and renewal replies carry the release keys beside the
// command keys, so that agents can check release records.
func TestEnroll_ReleaseKeysInReplies(t *testing.T) {
	f := newFixture(t, true)
	rel, err := sign.LoadRelease(filepath.Join(t.TempDir(), "release-keys"))
	if err != nil {
		t.Fatal(err)
	}
	f.svc.ReleaseKeys = rel
	kp, _ := nkeys.CreateUser()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := f.enroll(t, ctx, "pc7", kp, f.file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rel.Trusted(), c.ReleaseKeys); diff != "" {
		t.Errorf("enrollment reply's release keys (-want +got):\n%s", diff)
	}
	nc, err := nats.Connect(f.b.ClientURL(), nats.UserJWT(func() (string, error) { return c.JWT, nil }, kp.Sign),
		nats.CustomInboxPrefix(wire.AgentInboxPrefix("pc7")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := rel.Rotate(time.Now()); err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(wire.RenewSubject("pc7"), []byte("{}"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep wire.EnrollReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		t.Fatalf("renewal reply %s: %v", msg.Data, err)
	}
	if rep.Status != wire.EnrollApproved || !cmp.Equal(rel.Trusted(), rep.ReleaseKeys) || len(rep.ReleaseKeys) != 2 {
		t.Errorf("renewal reply: status %s, release keys %v; want the two trusted keys", rep.Status, rep.ReleaseKeys)
	}
}
