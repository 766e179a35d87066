package projector

import (
	"log/slog"

	"golang.org/x/time/rate"

	"github.com/kanadehq/kanade/app/limit"
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

// pcLimits bounds each PC's results and the warnings about dropped ones.
type pcLimits struct {
	pcs  *limit.Keyed
	warn *rate.Limiter
}

func newPCLimits(perSecond rate.Limit, burst int) *pcLimits {
	return &pcLimits{pcs: limit.NewKeyed(perSecond, burst), warn: rate.NewLimiter(1, 5)}
}

// allow reports whether pc may have one more result now.
func (l *pcLimits) allow(pc string) bool { return l.pcs.Allow(pc) }

// warnf logs at most one warning a second.
func (l *pcLimits) warnf(log *slog.Logger, msg string, args ...any) {
	if l.warn.Allow() {
		log.Warn(msg, args...)
	}
}
