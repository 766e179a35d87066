package swarm

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
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

// sigMemo is a signature check shared by the simulated agents of a swarm:
// all of them receive the same signed broadcast, and checking it once per
// agent would spend the CPU that a real fleet spends on its own machines
// on the machine the swarm shares with the server. The answer for the
// same key, message and signature is the same, so it is remembered (up to
// sigMemoMax answers; then it starts over).
type sigMemo struct {
	mu   sync.Mutex
	seen map[[sha256.Size]byte]bool
}

const sigMemoMax = 4096

func newSigMemo() *sigMemo { return &sigMemo{seen: map[[sha256.Size]byte]bool{}} }

func (m *sigMemo) check(pub ed25519.PublicKey, msg, sig []byte) bool {
	h := sha256.New()
	for _, b := range [][]byte{pub, sig, msg} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	m.mu.Lock()
	ok, hit := m.seen[k]
	m.mu.Unlock()
	if hit {
		return ok
	}
	ok = ed25519.Verify(pub, msg, sig)
	m.mu.Lock()
	if len(m.seen) >= sigMemoMax {
		clear(m.seen)
	}
	m.seen[k] = ok
	m.mu.Unlock()
	return ok
}
