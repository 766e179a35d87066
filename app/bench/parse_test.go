package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStatTicks(t *testing.T) {
	tests := []struct {
		name, stat string
		want       uint64
		wantErr    bool
	}{
		{"plain", "4242 (kanade) S 1 4242 4242 0 -1 4194560 9040 0 0 0 150 37 0 0 20 0 12 0 1234 1000 200 18446744073709551615", 187, false},
		{"name with spaces and parens", "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1", 11, false},
		{"no name", "77 a R 1", 0, true},
		{"short", "77 (x) R 1 2 3", 0, true},
		{"not a number", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 x 6 0 0", 0, true},
	}
	for _, tt := range tests {
		got, err := parseStatTicks(tt.stat)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: parseStatTicks() = %d, %v; want %d, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tkanade\nVmPeak:\t  999 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	if got, err := parseVmRSS(status); err != nil || got != 12345*1024 {
		t.Errorf("parseVmRSS() = %d, %v; want %d", got, err, 12345*1024)
	}
	if got, err := parseStatusKB(status, "VmHWM"); err != nil || got != 23456*1024 {
		t.Errorf("parseStatusKB(VmHWM) = %d, %v; want %d", got, err, 23456*1024)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseVmRSS(bad); err == nil {
			t.Errorf("parseVmRSS(%q) succeeded, want an error", bad)
		}
	}
}

func TestPromValue(t *testing.T) {
	text := `# HELP kanade_results_ingested_total Results committed.
# TYPE kanade_results_ingested_total counter
kanade_results_ingested_total 2002
kanade_results_ingested_total_extra 7
kanade_projector_pending_messages{consumer="audit-projector"} 3
kanade_projector_pending_messages{consumer="results-projector"} 1.5e+03
`
	tests := []struct {
		name   string
		labels []string
		want   float64
		wantOK bool
	}{
		{"kanade_results_ingested_total", nil, 2002, true},
		{"kanade_projector_pending_messages", []string{`consumer="results-projector"`}, 1500, true},
		{"kanade_projector_pending_messages", nil, 3, true},
		{"kanade_projector_pending_messages", []string{`consumer="nope"`}, 0, false},
		{"kanade_results", nil, 0, false},
	}
	for _, tt := range tests {
		got, ok := promValue(text, tt.name, tt.labels...)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("promValue(%s, %v) = %v, %v; want %v, %v", tt.name, tt.labels, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestReadServerMem(t *testing.T) {
	text := `go_goroutines 20031
go_memstats_heap_idle_bytes 3e+08
go_memstats_heap_inuse_bytes 4.5e+08
go_memstats_heap_released_bytes 2e+08
go_memstats_next_gc_bytes 8.8e+08
go_memstats_stack_inuse_bytes 4.2e+08
kanade_memory_trims_total 3
`
	want := serverMem{HeapInuse: 4.5e8, NextGC: 8.8e8, Stacks: 4.2e8, Retained: 1e8, Goroutines: 20031, Trims: 3, OK: true}
	if got := readServerMem(text); got != want {
		t.Errorf("readServerMem = %+v, want %+v", got, want)
	}
	if got := readServerMem("go_goroutines 3\n"); got.OK {
		t.Errorf("readServerMem of a scrape without memory figures = %+v, want OK false", got)
	}
}

func TestReadSSE(t *testing.T) {
	stream := ": ping\n\nevent: changed\ndata: 1\n\nevent: chunk\r\ndata: <p>x</p>\r\n\r\ndata: bare\n\n: only a comment\n\n"
	var names []string
	err := readSSE(strings.NewReader(stream), time.Now, func(e sseEvent) { names = append(names, e.Name) })
	if want := []string{"changed", "chunk", "message"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("readSSE() events = %v, %v; want %v", names, err, want)
	}
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{fn: func(s string) { got = append(got, s) }}
	for _, p := range []string{"swarm re", "ady: 10 agents\r\nsecond\n", "third (no newline yet)"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if want := []string{"swarm ready: 10 agents", "second"}; !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

func TestParseCounts(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"1000", []int{1000}, false},
		{"1000,5000, 10000", []int{1000, 5000, 10000}, false},
		{"1k,5K,10_000", []int{1000, 5000, 10000}, false},
		{"", nil, true},
		{"0", nil, true},
		{"ten", nil, true},
	}
	for _, tt := range tests {
		got, err := parseCounts(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("parseCounts(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
