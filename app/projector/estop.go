package projector

import (
	"context"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
)

// stopAcks collects the agents' acknowledgements of the emergency stop
// (wire.Heartbeat.StopSince) and writes each agent's new one once: while
// a stop lasts, every heartbeat repeats it.
type stopAcks struct {
	written map[string]time.Time // pc_id → the since last written
	pending map[string]time.Time
}

func newStopAcks() *stopAcks {
	return &stopAcks{written: map[string]time.Time{}, pending: map[string]time.Time{}}
}

// take notes the acknowledgement a heartbeat carries, if it is new.
func (a *stopAcks) take(hb wire.Heartbeat) {
	if hb.StopSince.IsZero() || a.written[hb.PCID].Equal(hb.StopSince) {
		return
	}
	a.pending[hb.PCID] = hb.StopSince
}

// flush writes the new acknowledgements; they stay pending when the
// write fails.
func (a *stopAcks) flush(ctx context.Context, st *store.Store, now time.Time) error {
	if len(a.pending) == 0 {
		return nil
	}
	if err := st.AckEmergencyStops(ctx, a.pending, now); err != nil {
		return err
	}
	for pc, since := range a.pending {
		a.written[pc] = since
	}
	clear(a.pending)
	return nil
}
