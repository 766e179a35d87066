package worker

import (
	"fmt"
	"testing"

	"github.com/kanadehq/kanade/agent/outbox"
)

func TestSuperseded(t *testing.T) {
	item := func(subject, state string) outbox.Item {
		return outbox.Item{Subject: subject, Data: []byte(fmt.Sprintf(`{"exec_id":"x","state":%q}`, state))}
	}
	items := []outbox.Item{
		item("results.e1.pc1", "running"),   // 0: its final is queued → superseded
		item("results.e2.pc1", "running"),   // 1: still running → sent
		item("results.e1.pc1", "succeeded"), // 2: final → sent
		item("results.e3.pc1", "failed"),    // 3: a final is never dropped,
		item("results.e3.pc1", "failed"),    // 4: even when repeated
		item("inventory.pc1", "running"),    // 5: not a result
		item("inventory.pc1", "running"),    // 6
	}
	got := superseded(items)
	if len(got) != 1 || !got[0] {
		t.Errorf("superseded = %v, want only item 0", got)
	}
	if superseded(items[1:2]) != nil {
		t.Error("a lone running report was superseded")
	}
}
