package worker

import (
	"sync"
	"time"
)

// cpuMeter turns the process's cumulative CPU time into a percentage of
// one core between two readings.
type cpuMeter struct {
	mu   sync.Mutex
	at   time.Time
	used time.Duration
}

// percent returns the CPU use since the previous call (100 = one core
// busy), or 0 on the first call and where CPU time is unknown.
func (m *cpuMeter) percent(now time.Time) float64 {
	used, ok := cpuTime()
	if !ok {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	prevAt, prevUsed := m.at, m.used
	m.at, m.used = now, used
	wall := now.Sub(prevAt)
	if prevAt.IsZero() || wall <= 0 || used < prevUsed {
		return 0
	}
	return 100 * float64(used-prevUsed) / float64(wall)
}

// rssCache holds the process's RSS for a second: the simulated agents of
// a swarm share one process, and 10,000 of them would otherwise read
// /proc 333 times a second for the same number.
var rssCache struct {
	mu sync.Mutex
	at time.Time
	v  int64
}

// processRSS is rssBytes, read at most once a second.
func processRSS(now time.Time) int64 {
	rssCache.mu.Lock()
	defer rssCache.mu.Unlock()
	if rssCache.at.IsZero() || now.Sub(rssCache.at) >= time.Second || now.Before(rssCache.at) {
		rssCache.v, rssCache.at = rssBytes(), now
	}
	return rssCache.v
}
