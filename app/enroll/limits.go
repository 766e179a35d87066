package enroll

import "github.com/kanadehq/kanade/app/limit"

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
	requests, pending *limit.Keyed
}

func newTokenLimits() *tokenLimits {
	return &tokenLimits{requests: limit.NewKeyed(requestsPerSecond, requestBurst), pending: limit.NewKeyed(pendingPerSecond, pendingBurst)}
}

func (l *tokenLimits) allow(token string) bool        { return l.requests.Allow(token) }
func (l *tokenLimits) allowPending(token string) bool { return l.pending.Allow(token) }
