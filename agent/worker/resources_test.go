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
	if got := processRSS(time.Now()); got < 1<<20 {
		t.Errorf("processRSS = %d, want a plausible size", got)
	}
	// The cache on its own read function: other tests' heartbeats fill
	// the process's cache at times of their own.
	reads := int64(0)
	c := cachedRSS{read: func() int64 { reads++; return reads }}
	t0 := time.Now()
	tests := []struct {
		name string
		at   time.Time
		want int64
	}{
		{"first", t0, 1},
		{"within the second", t0.Add(500 * time.Millisecond), 1},
		{"a second later", t0.Add(1100 * time.Millisecond), 2},
		{"right after", t0.Add(1200 * time.Millisecond), 2},
		{"the clock went back", t0, 3},
	}
	for _, tt := range tests {
		if got := c.get(tt.at); got != tt.want {
			t.Errorf("%s: get = %d, want read %d", tt.name, got, tt.want)
		}
	}
}

func TestFileTimeSpan(t *testing.T) {
	tests := []struct {
		high, low uint32
		want      time.Duration
	}{
		{0, 0, 0},
		{0, 10_000_000, time.Second},
		{1, 0, (1 << 32) * 100 * time.Nanosecond},
		{0, 15, 1500 * time.Nanosecond},
	}
	for _, tt := range tests {
		if got := fileTimeSpan(tt.high, tt.low); got != tt.want {
			t.Errorf("fileTimeSpan(%d, %d) = %v, want %v", tt.high, tt.low, got, tt.want)
		}
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
		if runtime.GOOS != "plan9" && runtime.GOOS != "js" && runtime.GOOS != "wasip1" {
			t.Fatal("cpuTime unknown on " + runtime.GOOS)
		}
		return
	}
	// Burn CPU until the process has used at least 200 ms more: long
	// enough that a clock counting CPU time in coarse ticks (15.6 ms on
	// Windows) cannot push the figure past the machine's cores.
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		if used, _ := cpuTime(); used-before >= 200*time.Millisecond {
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
