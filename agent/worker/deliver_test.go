package worker

import (
	"fmt"
	"testing"

	"github.com/kanadehq/kanade/agent/outbox"
)

func TestSuperseded(t *testing.T) {
	item := func(subject, exec, state string) outbox.Item {
		return outbox.Item{Subject: subject, Data: []byte(fmt.Sprintf(`{"exec_id":%q,"state":%q}`, exec, state))}
	}
	items := []outbox.Item{
		item("results.pc1", "e1", "running"),        // 0: its final is queued → superseded
		item("results.pc1", "e2", "running"),        // 1: still running → sent
		item("results.pc1", "e1", "succeeded"),      // 2: final → sent
		item("results.pc1", "e3", "failed"),         // 3: a final is never dropped,
		item("results.pc1", "e3", "failed"),         // 4: even when repeated
		item("inventory.pc1", "e4", "running"),      // 5: not a result
		item("inventory.pc1", "e4", "running"),      // 6
		item("results.e5.pc1", "e5", "running"),     // 7: queued by a protocol 1 agent before its upgrade
		item("results.pc1", "e5", "succeeded"),      // 8
		item("results.pc1", "", "running"),          // 9: no execution: sent as it is
		item("results.pc1", "", "succeeded"),        // 10
		{Subject: "results.pc1", Data: []byte("{")}, // 11: not JSON: sent as it is
		{Subject: "results.pc1", Data: []byte("{")}, // 12
	}
	got := superseded(items)
	if len(got) != 2 || !got[0] || !got[7] {
		t.Errorf("superseded = %v, want items 0 and 7", got)
	}
	if superseded(items[1:2]) != nil {
		t.Error("a lone running report was superseded")
	}
}
