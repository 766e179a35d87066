package worker

import (
	"runtime"
	"testing"
	"time"
)

func TestRSSBytes(t *testing.T) {
	// Any Go process holds more than a megabyte and less than a terabyte.
	if got := rssBytes(); got < 1<<20 || got > 1<<40 {
		t.Errorf("rssBytes() = %d, want a plausible size", got)
	}
}

func TestProcessRSS(t *testing.T) {
	t0 := time.Now()
	first := processRSS(t0)
	if first < 1<<20 {
		t.Fatalf("processRSS = %d, want a plausible size", first)
	}
	rssCache.mu.Lock()
	rssCache.v = 42 // what a read within the second returns
	rssCache.mu.Unlock()
	if got := processRSS(t0.Add(500 * time.Millisecond)); got != 42 {
		t.Errorf("within the second: %d, want the cached 42", got)
	}
	if got := processRSS(t0.Add(1100 * time.Millisecond)); got == 42 || got < 1<<20 {
		t.Errorf("after a second: %d, want a fresh read", got)
	}
}

func TestCPUMeter(t *testing.T) {
	var m cpuMeter
	start := time.Now()
	if got := m.percent(start); got != 0 {
		t.Errorf("first percent = %v, want 0", got)
	}
	before, ok := cpuTime()
	if !ok {
		if runtime.GOOS != "windows" && runtime.GOOS != "plan9" && runtime.GOOS != "js" && runtime.GOOS != "wasip1" {
			t.Fatal("cpuTime unknown on a Unix")
		}
		return
	}
	// Burn CPU until the process has used at least 20 ms more.
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		if used, _ := cpuTime(); used-before >= 20*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the CPU time did not advance")
		}
	}
	_ = x
	// The busy loop used one core, so somewhere above 0 and (with the
	// race detector's helpers) not much more than the machine's cores.
	got := m.percent(time.Now())
	if got <= 0 || got > 100*float64(runtime.NumCPU())+50 {
		t.Errorf("percent after busy work = %v, want in (0, %d]", got, 100*runtime.NumCPU())
	}
	if got := m.percent(time.Time{}.Add(time.Nanosecond)); got != 0 {
		t.Errorf("percent with the clock going backwards = %v, want 0", got)
	}
}
