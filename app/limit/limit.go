// Package limit bounds how often one key — an agent, an enrollment token —
// may do something, each key with a token bucket of its own.
package limit

import (
	"sync"

	"golang.org/x/time/rate"
)

// Keyed holds one limiter per key. It is safe for concurrent use. Keys are
// never forgotten: use it for keys the broker already bounds (pc_ids pinned
// by credentials, token ids).
type Keyed struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	keys  map[string]*rate.Limiter
}

// NewKeyed allows each key r events a second, burst at once.
func NewKeyed(r rate.Limit, burst int) *Keyed {
	return &Keyed{rate: r, burst: burst, keys: map[string]*rate.Limiter{}}
}

// Allow reports whether key may have one more event now.
func (k *Keyed) Allow(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.keys[key]
	if l == nil {
		l = rate.NewLimiter(k.rate, k.burst)
		k.keys[key] = l
	}
	return l.Allow()
}
