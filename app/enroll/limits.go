package enroll

import (
	"sync"

	"golang.org/x/time/rate"
)

// Per-token rate limits. Every request of a token draws on the first; a
// request that would make a new binding wait for an admin also draws on
// the second. An auto-approving token enrolls a swarm of thousands of PCs
// in well under a minute within them.
const (
	requestsPerSecond = 1000
	requestBurst      = 5000
	pendingPerSecond  = 10
	pendingBurst      = 100
)

// tokenLimits holds the limiters of each token.
type tokenLimits struct {
	mu       sync.Mutex
	requests map[string]*rate.Limiter
	pending  map[string]*rate.Limiter
}

func newTokenLimits() *tokenLimits {
	return &tokenLimits{requests: map[string]*rate.Limiter{}, pending: map[string]*rate.Limiter{}}
}

func (l *tokenLimits) allow(token string) bool {
	return l.get(l.requests, token, requestsPerSecond, requestBurst).Allow()
}

func (l *tokenLimits) allowPending(token string) bool {
	return l.get(l.pending, token, pendingPerSecond, pendingBurst).Allow()
}

func (l *tokenLimits) get(m map[string]*rate.Limiter, token string, r rate.Limit, burst int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := m[token]
	if lim == nil {
		lim = rate.NewLimiter(r, burst)
		m[token] = lim
	}
	return lim
}
