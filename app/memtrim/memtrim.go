// Package memtrim hands the server's unused heap back to the operating
// system once the server is quiet.
//
// After a burst (a deploy to 10,000 agents allocates about 100 MB), the Go
// runtime holds on to what the burst left: garbage until the next
// collection (which the default GOGC=100 lets grow as large as the live
// heap and the goroutine stacks together), then freed heap it returns
// only slowly. The idle server at 10,000 agents held 0.4–0.6 GiB that way
// for minutes. When the server has allocated little over a whole interval
// and that much is reclaimable, Run collects and returns it at once
// (debug.FreeOSMemory): two garbage collections once after each busy spell
// (the first shrinks the goroutine stacks the burst grew); then none of
// its own until the next spell.
package memtrim

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"time"
)

// Defaults for Run.
const (
	Interval = 30 * time.Second
	MinFree  = 64 << 20
)

// Figures are the runtime's memory figures Run decides on.
type Figures struct {
	Allocs  uint64 // bytes allocated since the process started
	Live    uint64 // heap marked live by the last collection
	Objects uint64 // heap in objects now: live, and garbage not yet collected
	Free    uint64 // free heap still mapped (not yet returned)
}

// Reclaimable is what a collection and a return to the OS would give back
// now: the free heap, and what was allocated since the last collection
// (garbage, when the server is quiet).
func (f Figures) Reclaimable() uint64 {
	r := f.Free
	if f.Objects > f.Live {
		r += f.Objects - f.Live
	}
	return r
}

var samples = []metrics.Sample{
	{Name: "/gc/heap/allocs:bytes"},
	{Name: "/gc/heap/live:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/free:bytes"},
}

// Read reads the figures of this process.
func Read() Figures {
	s := make([]metrics.Sample, len(samples))
	copy(s, samples)
	metrics.Read(s)
	var f Figures
	for i, v := range []*uint64{&f.Allocs, &f.Live, &f.Objects, &f.Free} {
		if s[i].Value.Kind() == metrics.KindUint64 {
			*v = s[i].Value.Uint64()
		}
	}
	return f
}

// Due reports whether to trim now, given the figures at the start of the
// interval and now: quiet (allocated less than a quarter of the live heap
// over the interval, so no burst is under way that would take the memory
// again at once) with at least a quarter of the live heap, and at least
// minFree, reclaimable. (What an idle server allocates between the
// runtime's own collections stays under that: trimming is for after
// bursts, not a collection of its own every interval.)
func Due(before, now Figures, minFree uint64) bool {
	if now.Allocs < before.Allocs {
		return false
	}
	return now.Allocs-before.Allocs < now.Live/4 && now.Reclaimable() >= max(minFree, now.Live/4)
}

// Busy reports whether the interval from before to now was a busy one:
// the server allocated a quarter of its live heap or more.
func Busy(before, now Figures) bool {
	return now.Allocs >= before.Allocs && now.Allocs-before.Allocs >= now.Live/4
}

// policy decides, interval by interval, when to trim: once after each
// busy spell, when Due. Starting counts as a spell (agents connecting).
// Without the spell, the garbage a quiet server makes between
// collections (about 2 MB/s at 10,000 agents: heartbeats) reached the
// threshold every minute or so, and each trim's two collections cost the
// idle server more than they gave back.
type policy struct {
	spell bool // a busy interval came since the last trim
}

func newPolicy() *policy { return &policy{spell: true} }

// trim is given the figures at the start and at the end of an interval.
func (p *policy) trim(before, now Figures, minFree uint64) bool {
	if Busy(before, now) {
		p.spell = true
	}
	if p.spell && Due(before, now, minFree) {
		p.spell = false
		return true
	}
	return false
}

// GCPercent is the server's GOGC unless the environment sets one. The
// collector then runs half as often as with Go's default of 100: at
// 10,000 agents the live heap is about 400 MB (the broker's per-agent
// connection state), each collection marks all of it, and with GOGC=100 a
// collection came every third deploy and took about 1 CPU-s of the 2 a
// deploy round costs. The price is a larger heap during bursts (up to
// three times the live heap instead of two); Run hands it back once the
// server is quiet.
const GCPercent = 200

// TuneGC sets GOGC to GCPercent unless getenv("GOGC") is set, and returns
// the setting in effect as GOGC spells it.
func TuneGC(getenv func(string) string) string {
	if v := getenv("GOGC"); v != "" {
		return v
	}
	debug.SetGCPercent(GCPercent)
	return strconv.Itoa(GCPercent)
}

// Counter counts trims (a prometheus.Counter satisfies it).
type Counter interface{ Inc() }

// Run checks every interval until ctx is done, counting each trim in
// trims (which may be nil).
func Run(ctx context.Context, interval time.Duration, minFree uint64, trims Counter, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	before := Read()
	p := newPolicy()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := Read()
		if p.trim(before, now, minFree) {
			start := time.Now()
			// Two collections: each halves the stacks of goroutines that use
			// less than a quarter of theirs (the broker's two per connection
			// grow theirs in a burst: 240 MiB of stacks at 10,000 agents
			// after 50 deploys), and stack memory goes back to the heap at
			// the end of a collection, so the second one, in FreeOSMemory,
			// returns it to the OS.
			runtime.GC()
			debug.FreeOSMemory()
			if trims != nil {
				trims.Inc()
			}
			after := Read()
			log.Debug("returned free heap to the OS", "reclaimable_mib", now.Reclaimable()>>20, "free_after_mib", after.Free>>20,
				"live_mib", after.Live>>20, "took", time.Since(start).Round(time.Millisecond))
			now = after
		}
		before = now
	}
}
