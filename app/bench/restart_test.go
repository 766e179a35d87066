package main

import (
	"strconv"
	"testing"
	"time"
)

func TestParseRunsLine(t *testing.T) {
	script := "# swarm: latency=5s jitter=5s\necho bench restart"
	tests := []struct {
		line       string
		wantN      int64
		wantScript string
		ok         bool
	}{
		{"swarm runs: 10000 " + strconv.Quote(script), 10000, script, true},
		{`swarm runs: 3 "echo a b"`, 3, "echo a b", true},
		{`swarm runs: x "echo"`, 0, "", false},
		{`swarm runs: 3 echo`, 0, "", false},
		{`swarm ready: 3 agents connected`, 0, "", false},
	}
	for _, tt := range tests {
		n, s, ok := parseRunsLine(tt.line)
		if n != tt.wantN || s != tt.wantScript || ok != tt.ok {
			t.Errorf("parseRunsLine(%q) = %d, %q, %v; want %d, %q, %v", tt.line, n, s, ok, tt.wantN, tt.wantScript, tt.ok)
		}
	}
}

func TestConnErrors(t *testing.T) {
	for line, want := range map[string]int64{
		"swarm reconnected: 3000 agents connected again 27.3s after the first loss (16122 connection errors meanwhile)": 16122,
		"swarm reconnected: no count": -1,
	} {
		if got := connErrors(line); got != want {
			t.Errorf("connErrors(%q) = %d, want %d", line, got, want)
		}
	}
}

// The lines the bench follows are found by prefix, after a moment, and
// the runs of a script among them.
func TestSwarmLines(t *testing.T) {
	var l swarmLines
	t0 := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	l.addAt(t0, "swarm reconnected: early")
	l.addAt(t0.Add(2*time.Second), "swarm reconnected: late")
	l.addAt(t0.Add(3*time.Second), `swarm runs: 7 "echo x"`)
	if got, ok := l.after(t0.Add(time.Second), "swarm reconnected"); !ok || got.text != "swarm reconnected: late" {
		t.Errorf("after(t0+1s) = %q, %v; want the late line", got.text, ok)
	}
	if _, ok := l.after(t0.Add(2*time.Second), "swarm reconnected"); ok {
		t.Error("after(t0+2s) found a line: only lines after the moment count")
	}
	if n, ok := l.modelRuns("echo x"); !ok || n != 7 {
		t.Errorf("modelRuns = %d, %v; want 7", n, ok)
	}
	if _, ok := l.modelRuns("echo y"); ok {
		t.Error("modelRuns found a script that never ran")
	}
}
