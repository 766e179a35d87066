package main

import (
	"testing"
	"time"
)

func TestNATSBytesOut(t *testing.T) {
	tests := []struct {
		name, text string
		want       float64
		ok         bool
	}{
		{"present", "# HELP x\nkanade_nats_bytes_total{direction=\"in\"} 5\nkanade_nats_bytes_total{direction=\"out\"} 1.5e+09\n", 1.5e9, true},
		{"missing", "kanade_nats_bytes_total{direction=\"in\"} 5\n", 0, false},
		{"garbage value", "kanade_nats_bytes_total{direction=\"out\"} lots\n", 0, false},
	}
	for _, tt := range tests {
		got, ok := natsBytesOut(tt.text)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: natsBytesOut() = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseUpdatePeak(t *testing.T) {
	tests := []struct {
		line string
		want int64
	}{
		{"swarm updates: 12 downloading, 200 peak, 300 downloaded, 250 updated, 3 failed", 200},
		{"swarm updates: nothing", -1},
		{"swarm ready: 10 agents", -1},
	}
	for _, tt := range tests {
		if got := parseUpdatePeak(tt.line); got != tt.want {
			t.Errorf("parseUpdatePeak(%q) = %d, want %d", tt.line, got, tt.want)
		}
	}
}

func TestPeakRate(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	tests := []struct {
		name        string
		at          []time.Time
		bytes       []float64
		peak, total float64
	}{
		{"one sample", at(0), []float64{5}, 0, 0},
		{"shorter than the window", at(0, 500), []float64{0, 100}, 0, 100},
		// 0→1000 ms: 100 B/s; 500→1500 ms: 1000 B/s; 1000→2000 ms: 950 B/s.
		{"a burst", at(0, 500, 1000, 1500, 2000), []float64{0, 50, 100, 1050, 1050}, 1000, 1050},
	}
	for _, tt := range tests {
		peak, total := peakRate(tt.at, tt.bytes, time.Second)
		if peak != tt.peak || total != tt.total {
			t.Errorf("%s: peakRate() = %v, %v; want %v, %v", tt.name, peak, total, tt.peak, tt.total)
		}
	}
}
