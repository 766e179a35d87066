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
var rssCache = cachedRSS{read: rssBytes}

// processRSS is rssBytes, read at most once a second.
func processRSS(now time.Time) int64 { return rssCache.get(now) }

// cachedRSS is a value of read, read again when it is a second old (or
// the clock went back).
type cachedRSS struct {
	read func() int64

	mu sync.Mutex
	at time.Time
	v  int64
}

func (c *cachedRSS) get(now time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || now.Sub(c.at) >= time.Second || now.Before(c.at) {
		c.v, c.at = c.read(), now
	}
	return c.v
}

// fileTimeSpan is a Windows FILETIME span (100-nanosecond units, split
// in two 32-bit halves) as a duration.
func fileTimeSpan(high, low uint32) time.Duration {
	return time.Duration(uint64(high)<<32|uint64(low)) * 100
}
