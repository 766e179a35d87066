package projector

import (
	"context"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store/storetest"
)

// Heartbeats acknowledge the emergency stop their agent applies; each
// agent's acknowledgement of a stop is written once, however many
// heartbeats repeat it, and one of a new stop replaces it.
func TestStopAcks(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	stop1 := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
	stop2 := stop1.Add(time.Hour)
	a := newStopAcks()
	a.take(wire.Heartbeat{PCID: "pc1"}) // the stop is off
	a.take(wire.Heartbeat{PCID: "pc2", StopSince: stop1})
	a.take(wire.Heartbeat{PCID: "pc3", StopSince: stop1})
	if len(a.pending) != 2 {
		t.Fatalf("pending = %v, want pc2 and pc3", a.pending)
	}
	if err := a.flush(ctx, st, stop1.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	a.take(wire.Heartbeat{PCID: "pc2", StopSince: stop1})
	if len(a.pending) != 0 {
		t.Errorf("a repeated acknowledgement is pending again: %v", a.pending)
	}
	a.take(wire.Heartbeat{PCID: "pc3", StopSince: stop2})
	if err := a.flush(ctx, st, stop2.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		since time.Time
		want  int
	}{{stop1, 1}, {stop2, 1}} {
		got, err := st.EmergencyStopAcks(ctx, c.since, stop2)
		if err != nil || got.Acked != c.want {
			t.Errorf("acknowledgements of the stop of %v = %+v, %v; want %d", c.since, got, err, c.want)
		}
	}
}
