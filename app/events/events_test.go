package events

import "testing"

func TestBroker_CoalescesAndUnsubscribes(t *testing.T) {
	b := New()
	ch, cancel := b.Subscribe(Execution("x"))
	for i := 0; i < 1000; i++ {
		b.Publish(Execution("x"))
	}
	b.Publish(Execution("other"))
	<-ch
	select {
	case <-ch:
		t.Fatal("a burst produced more than one pending notification")
	default:
	}
	if got := b.Subscribers(); got != 1 {
		t.Errorf("Subscribers() = %d, want 1", got)
	}
	cancel()
	b.Publish(Execution("x"))
	select {
	case <-ch:
		t.Fatal("notified after cancel")
	default:
	}
	if got := b.Subscribers(); got != 0 {
		t.Errorf("Subscribers() after cancel = %d, want 0", got)
	}
}
