package projector

import "sync"

// Pongs matches agents' ping answers (a heartbeat carrying the nonce) to
// the requests waiting for them.
type Pongs struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
	kick    chan struct{} // a ping started
}

// NewPongs returns an empty registry.
func NewPongs() *Pongs {
	return &Pongs{waiters: map[string]chan struct{}{}, kick: make(chan struct{}, 1)}
}

// Wait registers nonce; the channel closes when its pong arrives. Call
// cancel when done waiting.
func (p *Pongs) Wait(nonce string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	p.mu.Lock()
	p.waiters[nonce] = ch
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return ch, func() {
		p.mu.Lock()
		delete(p.waiters, nonce)
		p.mu.Unlock()
	}
}

// waiting reports whether a ping waits for its answer.
func (p *Pongs) waiting() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters) > 0
}

// started is signalled when a ping starts waiting (nil for a nil Pongs).
func (p *Pongs) started() <-chan struct{} {
	if p == nil {
		return nil
	}
	return p.kick
}

// deliver wakes the request waiting for nonce, if any.
func (p *Pongs) deliver(nonce string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	ch, ok := p.waiters[nonce]
	delete(p.waiters, nonce)
	p.mu.Unlock()
	if ok {
		close(ch)
	}
}
