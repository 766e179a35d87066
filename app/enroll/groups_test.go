package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
)

// AddToGroup adds the group to each agent's own; an enrolled one is
// pushed its new credential, signed. An invalid group changes nothing; an
// unknown agent stops the change there.
func TestAddToGroup(t *testing.T) {
	f := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kp, _ := nkeys.CreateUser()
	if _, err := f.enroll(t, ctx, "pc1", kp, f.file); err != nil {
		t.Fatal(err)
	}
	if err := f.st.UpsertAgents(ctx, []store.Agent{
		{PCID: "pc1", Groups: []string{"base", "lab"}, LastSeen: time.Now(), Interval: 30 * time.Second},
		{PCID: "pc2", LastSeen: time.Now(), Interval: 30 * time.Second},
	}); err != nil {
		t.Fatal(err)
	}
	pushed, err := f.b.NC.SubscribeSync(wire.ControlPCSubject("pc1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	groups := func(pc string) []string {
		t.Helper()
		a, err := f.st.Agent(ctx, pc)
		if err != nil {
			t.Fatal(err)
		}
		return a.Groups
	}

	if err := f.svc.AddToGroup(ctx, "night shift", []string{"pc1", "pc2"}, "alice"); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddToGroup(night shift) = %v, want invalid", err)
	}
	if err := f.svc.AddToGroup(ctx, "night", []string{"pc1", "pc2"}, "alice"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"base", "lab", "night"}, groups("pc1")); diff != "" {
		t.Errorf("pc1 groups (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"night"}, groups("pc2")); diff != "" {
		t.Errorf("pc2 groups (-want +got):\n%s", diff)
	}
	m, err := pushed.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no credential pushed to pc1: %v", err)
	}
	if _, err := wire.Verify(f.svc.keys.Trusted(), m.Subject, m.Header.Get, m.Data, time.Now(), wire.MaxControlAge); err != nil {
		t.Errorf("the pushed credential is not signed: %v", err)
	}
	var c wire.Control
	if err := json.Unmarshal(m.Data, &c); err != nil || c.Kind != wire.ControlCredential || c.Credential == nil ||
		!cmp.Equal(c.Credential.Groups, []string{"base", "lab", "night"}) {
		t.Errorf("pushed %s, want a credential for base, lab and night", m.Data)
	}

	if err := f.svc.AddToGroup(ctx, "late", []string{"pc2", "nope", "pc1"}, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddToGroup with an unknown agent = %v, want not found", err)
	}
	if diff := cmp.Diff([]string{"late", "night"}, groups("pc2")); diff != "" {
		t.Errorf("pc2, before the unknown agent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"base", "lab", "night"}, groups("pc1")); diff != "" {
		t.Errorf("pc1, after the unknown agent (-want +got):\n%s", diff)
	}
}
