package swarm

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
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

// memOutbox is an in-memory worker.Outbox: its items in the order they
// were put (a simulated agent has one or two queued at a time).
type memOutbox struct {
	mu    sync.Mutex
	seq   uint64
	items []outbox.Item
}

func newMemOutbox() *memOutbox { return &memOutbox{} }

func (o *memOutbox) Put(subject string, data []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	o.items = append(o.items, outbox.Item{Name: fmt.Sprintf("%020d", o.seq), Subject: subject, Data: data})
	return nil
}

func (o *memOutbox) Pending() ([]outbox.Item, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.items), nil
}

func (o *memOutbox) Remove(it outbox.Item) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.items = slices.DeleteFunc(o.items, func(x outbox.Item) bool { return x.Name == it.Name })
	if len(o.items) == 0 {
		o.items = nil // let a burst's backing array go
	}
	return nil
}

// sigMemo is a signature check shared by the simulated agents of a swarm:
// all of them receive the same signed broadcast, and checking it once per
// agent would spend the CPU that a real fleet spends on its own machines
// on the machine the swarm shares with the server. The answer for the
// same key, message and signature is the same, so it is remembered by
// signature, with the key and the message it was given for, which a hit
// compares byte for byte (up to sigMemoMax answers; then it starts over).
type sigMemo struct {
	mu   sync.Mutex
	seen map[string]sigAnswer // by signature
}

type sigAnswer struct {
	pub, msg []byte
	ok       bool
}

const sigMemoMax = 4096

func newSigMemo() *sigMemo { return &sigMemo{seen: map[string]sigAnswer{}} }

func (m *sigMemo) check(pub ed25519.PublicKey, msg, sig []byte) bool {
	m.mu.Lock()
	a, hit := m.seen[string(sig)]
	m.mu.Unlock()
	if hit && bytes.Equal(a.pub, pub) && bytes.Equal(a.msg, msg) {
		return a.ok
	}
	ok := ed25519.Verify(pub, msg, sig)
	m.mu.Lock()
	if len(m.seen) >= sigMemoMax {
		clear(m.seen)
	}
	m.seen[string(sig)] = sigAnswer{pub: slices.Clone(pub), msg: slices.Clone(msg), ok: ok}
	m.mu.Unlock()
	return ok
}
