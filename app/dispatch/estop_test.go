package dispatch

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
)

// The emergency stop kills the running executions saying why — in the
// reason of the targets it cancels and in the kill the agents receive —
// and records what it did, which lifting keeps.
func TestEmergencyStop_SaysWhyAndRecordsWhatItDid(t *testing.T) {
	d, b, st := testDispatcher(t)
	ctx := context.Background()
	e, err := d.Run(ctx, RunRequest{Target: store.Target{PCs: []string{"pc1", "pc2"}}, Shell: "sh", Script: "sleep 60", Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	kills, err := b.CmdNC.SubscribeSync(wire.KillSubject(e.ExecID))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CmdNC.Flush(); err != nil {
		t.Fatal(err)
	}
	es, err := d.SetEmergencyStop(ctx, true, "  bad script in finance ", "alice")
	if err != nil {
		t.Fatal(err)
	}
	const why = "emergency stop: bad script in finance"
	m, err := kills.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no kill published: %v", err)
	}
	var k wire.Kill
	if err := json.Unmarshal(m.Data, &k); err != nil || k.By != "alice" || k.Reason != why {
		t.Errorf("kill = %+v, %v; want by alice, reason %q", k, err, why)
	}
	for _, pc := range []string{"pc1", "pc2"} {
		r, err := st.Result(ctx, e.ExecID, pc)
		if err != nil || r.State != wire.StateKilled || r.Reason != store.ReasonKilledBeforeStart+": "+why {
			t.Errorf("target %s = %s %q, %v; want killed, %q", pc, r.State, r.Reason, err, store.ReasonKilledBeforeStart+": "+why)
		}
	}
	want := store.EmergencyStop{Since: es.Since.Truncate(time.Millisecond), By: "alice", Reason: "bad script in finance", Killed: []string{e.ExecID}}
	got, err := st.EmergencyStopRecord(ctx, es.Since)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	// Lifting keeps the record of the last stop (LastStopAt).
	off, err := d.SetEmergencyStop(ctx, false, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.EmergencyStopRecord(ctx, off.LastStopAt); err != nil || !cmp.Equal(want, got) {
		t.Errorf("after lifting: record of the last stop = %+v, %v", got, err)
	}
}
