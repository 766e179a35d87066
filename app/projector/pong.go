package projector

import "sync"

// Pongs matches agents' ping answers (a heartbeat carrying the nonce) to
// the requests waiting for them.
type Pongs struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
}

// NewPongs returns an empty registry.
func NewPongs() *Pongs { return &Pongs{waiting: map[string]chan struct{}{}} }

// Wait registers nonce; the channel closes when its pong arrives. Call
// cancel when done waiting.
func (p *Pongs) Wait(nonce string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	p.mu.Lock()
	p.waiting[nonce] = ch
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		delete(p.waiting, nonce)
		p.mu.Unlock()
	}
}

// deliver wakes the request waiting for nonce, if any.
func (p *Pongs) deliver(nonce string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	ch, ok := p.waiting[nonce]
	delete(p.waiting, nonce)
	p.mu.Unlock()
	if ok {
		close(ch)
	}
}
