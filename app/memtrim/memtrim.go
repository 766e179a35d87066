// Package memtrim hands the server's unused heap back to the operating
// system once the server is quiet.
//
// After a burst (a deploy to 10,000 agents allocates about 100 MB), the Go
// runtime keeps the freed heap mapped and returns it only slowly: the idle
// server at 10,000 agents kept 0.5 GiB it no longer used for minutes. When
// the server has allocated little over a whole interval and much free heap
// is still mapped, Run collects and returns it at once
// (debug.FreeOSMemory): one extra garbage collection after each busy spell.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults for Run.
const (
	Interval = 30 * time.Second
	MinFree  = 64 << 20
)

// Figures are the runtime's memory figures Run decides on.
type Figures struct {
	Allocs uint64 // bytes allocated since the process started
	Live   uint64 // heap marked live by the last collection
	Free   uint64 // free heap still mapped (not yet returned)
}

var samples = []metrics.Sample{
	{Name: "/gc/heap/allocs:bytes"},
	{Name: "/gc/heap/live:bytes"},
	{Name: "/memory/classes/heap/free:bytes"},
}

// Read reads the figures of this process.
func Read() Figures {
	s := make([]metrics.Sample, len(samples))
	copy(s, samples)
	metrics.Read(s)
	var f Figures
	for i, v := range []*uint64{&f.Allocs, &f.Live, &f.Free} {
		if s[i].Value.Kind() == metrics.KindUint64 {
			*v = s[i].Value.Uint64()
		}
	}
	return f
}

// Due reports whether to trim now, given the figures at the start of the
// interval and now: quiet (allocated less than a quarter of the live heap
// over the interval, so no burst is under way that would map the memory
// again at once) with at least a quarter of the live heap, and at least
// minFree, of free heap mapped. (An idle server's own garbage, collected
// every two minutes, stays under that: trimming is for after bursts, not a
// collection of its own every interval.)
func Due(before, now Figures, minFree uint64) bool {
	if now.Allocs < before.Allocs {
		return false
	}
	return now.Allocs-before.Allocs < now.Live/4 && now.Free >= max(minFree, now.Live/4)
}

// Run checks every interval until ctx is done.
func Run(ctx context.Context, interval time.Duration, minFree uint64, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	before := Read()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := Read()
		if Due(before, now, minFree) {
			start := time.Now()
			debug.FreeOSMemory()
			after := Read()
			log.Debug("returned free heap to the OS", "free_before_mib", now.Free>>20, "free_after_mib", after.Free>>20,
				"live_mib", after.Live>>20, "took", time.Since(start).Round(time.Millisecond))
			now = after
		}
		before = now
	}
}
