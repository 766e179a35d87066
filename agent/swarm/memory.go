package swarm

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kanadehq/kanade/agent/outbox"
)

// memLedger is an in-memory worker.Ledger.
type memLedger struct {
	mu      sync.Mutex
	claimed map[string]bool // exec → finished
	created time.Time
}

func newMemLedger() *memLedger { return &memLedger{claimed: map[string]bool{}, created: time.Now()} }

func (l *memLedger) Claim(execID string, _ time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.claimed[execID]; ok {
		return false, nil
	}
	l.claimed[execID] = false
	return true, nil
}

func (l *memLedger) Finish(execID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.claimed[execID]; ok {
		l.claimed[execID] = true
	}
	return nil
}

func (l *memLedger) Seen(execID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.claimed[execID]
	return ok
}

func (l *memLedger) Unfinished() []string { return nil } // nothing survives a swarm restart

func (l *memLedger) Created() time.Time { return l.created }

func (l *memLedger) Close() error { return nil }

// memOutbox is an in-memory worker.Outbox.
type memOutbox struct {
	mu     sync.Mutex
	seq    uint64
	items  map[string]outbox.Item
	notify chan struct{}
}

func newMemOutbox() *memOutbox {
	return &memOutbox{items: map[string]outbox.Item{}, notify: make(chan struct{}, 1)}
}

func (o *memOutbox) Put(subject string, data []byte) error {
	o.mu.Lock()
	o.seq++
	name := fmt.Sprintf("%020d", o.seq)
	o.items[name] = outbox.Item{Name: name, Subject: subject, Data: data}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return nil
}

func (o *memOutbox) Pending() ([]outbox.Item, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]outbox.Item, 0, len(o.items))
	for _, it := range o.items {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (o *memOutbox) Remove(it outbox.Item) error {
	o.mu.Lock()
	delete(o.items, it.Name)
	o.mu.Unlock()
	return nil
}

func (o *memOutbox) Notify() <-chan struct{} { return o.notify }
