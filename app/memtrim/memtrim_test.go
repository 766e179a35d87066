package memtrim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/eventually"
)

func TestDue(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name        string
		before, now Figures
		want        bool
	}{
		{"quiet with much free heap", Figures{Allocs: 1000 * mib}, Figures{Allocs: 1010 * mib, Live: 400 * mib, Objects: 400 * mib, Free: 300 * mib}, true},
		{"quiet with much garbage", Figures{Allocs: 1000 * mib}, Figures{Allocs: 1010 * mib, Live: 400 * mib, Objects: 700 * mib, Free: 10 * mib}, true},
		{"busy: allocated more than a quarter of live", Figures{Allocs: 1000 * mib}, Figures{Allocs: 1200 * mib, Live: 400 * mib, Objects: 700 * mib, Free: 300 * mib}, false},
		{"quiet but little to reclaim", Figures{Allocs: 1000 * mib}, Figures{Allocs: 1001 * mib, Live: 400 * mib, Objects: 410 * mib, Free: 10 * mib}, false},
		{"reclaimable under a quarter of live", Figures{Allocs: 1000 * mib}, Figures{Allocs: 1001 * mib, Live: 400 * mib, Objects: 440 * mib, Free: 50 * mib}, false},
		{"small heap: the minimum counts", Figures{}, Figures{Live: 40 * mib, Objects: 40 * mib, Free: MinFree}, true},
		{"small heap under the minimum", Figures{}, Figures{Live: 40 * mib, Objects: 40 * mib, Free: MinFree - 1}, false},
		{"counter went back (cannot happen; no trim)", Figures{Allocs: 10 * mib}, Figures{Allocs: 5 * mib, Live: 400 * mib, Free: 300 * mib}, false},
	}
	for _, tt := range tests {
		if got := Due(tt.before, tt.now, MinFree); got != tt.want {
			t.Errorf("%s: Due = %v, want %v", tt.name, got, tt.want)
		}
	}
}

var sink [][]byte

// TestRun_ReturnsGarbageAndFreeHeap leaves a large heap of garbage behind
// and lets Run collect it and return it to the OS.
func TestRun_ReturnsGarbageAndFreeHeap(t *testing.T) {
	// Keep a live heap so that "quiet" has something to compare with,
	// then make 256 MiB of garbage (no collection: the test runs with the
	// collector off, as if GOGC let the heap grow that far).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	for range 256 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	// Parked goroutines whose stacks grew in a burst, like the broker's
	// connection goroutines.
	release := make(chan struct{})
	defer close(release)
	var parked sync.WaitGroup
	for range 500 {
		parked.Add(1)
		go func() {
			deepStack(100) // about 100 KiB of stack, then back to a few frames
			parked.Done()
			<-release
		}()
	}
	parked.Wait()
	stacksBefore := stackBytes()
	if r := Read().Reclaimable(); r < 200<<20 {
		t.Fatalf("only %d MiB reclaimable after making 256 MiB of garbage", r>>20)
	}
	var trims count
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, 20*time.Millisecond, 16<<20, &trims, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	eventually.Within(t, 10*time.Second, func() error {
		if r := Read().Reclaimable(); r >= 16<<20 {
			return fmt.Errorf("still %d MiB reclaimable", r>>20)
		}
		return nil
	})
	cancel()
	<-done
	if trims.n.Load() == 0 {
		t.Error("no trim counted")
	}
	// Two collections halve an idle stack twice: 128 KiB → 32 KiB.
	if after := stackBytes(); after > stacksBefore/3 {
		t.Errorf("goroutine stacks %d KiB before the trim, %d KiB after; want at most a third", stacksBefore>>10, after>>10)
	}
	runtime.KeepAlive(live)
}

// deepStack recurses with 1 KiB frames n deep.
//
//go:noinline
func deepStack(n int) byte {
	var buf [1024]byte
	buf[n%len(buf)] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deepStack(n-1) + buf[n%len(buf)]
}

// stackBytes is the memory in goroutine stacks.
func stackBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

type count struct{ n atomic.Int64 }

func (c *count) Inc() { c.n.Add(1) }

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got := TuneGC(getenv); got != "200" {
		t.Errorf("TuneGC without GOGC = %q, want 200", got)
	}
	if was := debug.SetGCPercent(100); was != GCPercent {
		t.Errorf("GOGC after TuneGC = %d, want %d", was, GCPercent)
	}
	env["GOGC"] = "50"
	if got := TuneGC(getenv); got != "50" {
		t.Errorf("TuneGC with GOGC=50 = %q, want 50", got)
	}
	if was := debug.SetGCPercent(100); was != 100 {
		t.Errorf("TuneGC changed GOGC=%d set by the environment (runtime reads it at start)", was)
	}
}

// A quiet server trims once after each busy spell, not again for the
// garbage its own quiet work makes between collections.
func TestPolicy_OncePerSpell(t *testing.T) {
	const mib = 1 << 20
	// Each step is one interval: how much it allocated, and the garbage
	// and free heap at its end (live heap 400 MiB throughout).
	steps := []struct {
		name           string
		alloc, garbage uint64
		free           uint64
		want           bool
	}{
		{"starting: quiet, much free heap", 10 * mib, 0, 300 * mib, true},
		{"quiet, garbage builds up", 60 * mib, 60 * mib, 5 * mib, false},
		{"quiet, garbage over the threshold", 60 * mib, 120 * mib, 5 * mib, false},
		{"still quiet", 60 * mib, 180 * mib, 5 * mib, false},
		{"a deploy: busy", 300 * mib, 480 * mib, 5 * mib, false},
		{"quiet after it", 10 * mib, 490 * mib, 5 * mib, true},
		{"quiet again", 10 * mib, 10 * mib, 5 * mib, false},
	}
	p := newPolicy()
	var allocs uint64 = 1000 * mib
	for _, s := range steps {
		before := Figures{Allocs: allocs}
		allocs += s.alloc
		now := Figures{Allocs: allocs, Live: 400 * mib, Objects: 400*mib + s.garbage, Free: s.free}
		if got := p.trim(before, now, MinFree); got != s.want {
			t.Errorf("%s: trim = %v, want %v", s.name, got, s.want)
		}
	}
}
