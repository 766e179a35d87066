package projector

import (
	"log/slog"
	"sync"

	"golang.org/x/time/rate"
)

// Per-PC bounds on the results an agent's subject may carry: an agent
// reports running and a final state for each target, so even a PC in
// dozens of executions at once stays far below them. Results beyond them
// are dropped (terminated in the stream) so that one hostile agent's
// flood cannot fill the database or delay the fleet's results.
const (
	ResultsPerPCPerSecond = 100
	ResultsPerPCBurst     = 1000
)

// pcLimits holds one limiter per PC and a limiter for the warnings about
// dropped messages.
type pcLimits struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	pcs   map[string]*rate.Limiter
	warn  *rate.Limiter
}

func newPCLimits(perSecond rate.Limit, burst int) *pcLimits {
	return &pcLimits{every: perSecond, burst: burst, pcs: map[string]*rate.Limiter{}, warn: rate.NewLimiter(1, 5)}
}

// allow reports whether pc may have one more message now.
func (l *pcLimits) allow(pc string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.pcs[pc]
	if lim == nil {
		lim = rate.NewLimiter(l.every, l.burst)
		l.pcs[pc] = lim
	}
	return lim.Allow()
}

// warnf logs at most one warning a second.
func (l *pcLimits) warnf(log *slog.Logger, msg string, args ...any) {
	if l.warn.Allow() {
		log.Warn(msg, args...)
	}
}
