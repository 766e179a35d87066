package memtrim

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name        string
		before, now Figures
		want        bool
	}{
		{"quiet with much free heap", Figures{Allocs: 1000 * mib}, Figures{Allocs: 1010 * mib, Live: 400 * mib, Free: 300 * mib}, true},
		{"busy: allocated more than a quarter of live", Figures{Allocs: 1000 * mib}, Figures{Allocs: 1200 * mib, Live: 400 * mib, Free: 300 * mib}, false},
		{"quiet but little free heap", Figures{Allocs: 1000 * mib}, Figures{Allocs: 1001 * mib, Live: 400 * mib, Free: 10 * mib}, false},
		{"free under a quarter of live", Figures{Allocs: 1000 * mib}, Figures{Allocs: 1001 * mib, Live: 400 * mib, Free: 90 * mib}, false},
		{"small heap: the minimum counts", Figures{}, Figures{Live: 40 * mib, Free: MinFree}, true},
		{"small heap under the minimum", Figures{}, Figures{Live: 40 * mib, Free: MinFree - 1}, false},
		{"counter went back (cannot happen; no trim)", Figures{Allocs: 10 * mib}, Figures{Allocs: 5 * mib, Live: 400 * mib, Free: 300 * mib}, false},
	}
	for _, tt := range tests {
		if got := Due(tt.before, tt.now, MinFree); got != tt.want {
			t.Errorf("%s: Due = %v, want %v", tt.name, got, tt.want)
		}
	}
}

var sink [][]byte

// TestRun_ReturnsFreeHeap frees a large heap and lets Run return it.
func TestRun_ReturnsFreeHeap(t *testing.T) {
	// Keep a live heap so that "quiet" has something to compare with,
	// then make 256 MiB of garbage and collect it: free, still mapped.
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	for range 256 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	runtime.GC()
	if f := Read(); f.Free < MinFree {
		t.Skipf("the runtime already returned the free heap (%d MiB free): nothing to show", f.Free>>20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, 20*time.Millisecond, 16<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for Read().Free >= 16<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("free heap still %d MiB after 10s", Read().Free>>20)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	runtime.KeepAlive(live)
}
