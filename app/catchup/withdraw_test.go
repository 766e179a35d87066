package catchup_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus/bustest"
)

// A killed command is replaced by a withdrawal on its subject; catch-up
// sends nothing for it (and counts only what it sent).
func TestServe_SkipsWithdrawals(t *testing.T) {
	b := serve(t)
	nc, _ := bustest.Agent(t, b, "pc1", nil)
	w := nats.NewMsg(wire.CommandPCSubject("pc1", "a"))
	w.Header.Set(wire.HeaderWithdrawn, "e1")
	if _, err := b.JS.PublishMsg(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	got, end := ask(t, nc, "pc1", wire.AgentInboxPrefix("pc1")+".c1", 10*time.Second)
	want := []string{wire.CommandAllSubject("b"), wire.CommandGroupSubject("lab", "c")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if end != "2" {
		t.Errorf("end marker %q, want 2", end)
	}
}
