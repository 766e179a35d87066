package main

import (
	"math"
	"testing"
	"time"
)

// ms turns milliseconds into durations.
func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want spread
	}{
		{"empty", nil, spread{}},
		{"odd", ms(30, 10, 20), spread{Median: 20 * time.Millisecond, Min: 10 * time.Millisecond, Max: 30 * time.Millisecond, P95: 30 * time.Millisecond, N: 3}},
		{"even", ms(40, 10, 20, 30), spread{Median: 25 * time.Millisecond, Min: 10 * time.Millisecond, Max: 40 * time.Millisecond, P95: 40 * time.Millisecond, N: 4}},
		{"p95 of 20", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 100), spread{Median: 10500 * time.Microsecond, Min: time.Millisecond, Max: 100 * time.Millisecond, P95: 19 * time.Millisecond, N: 20}},
	}
	for _, tt := range tests {
		if got := summarize(tt.in); got != tt.want {
			t.Errorf("%s: summarize() = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{fmtDur(870 * time.Microsecond), "0.9 ms"},
		{fmtDur(42 * time.Millisecond), "42 ms"},
		{fmtDur(1234567 * time.Microsecond), "1,235 ms"},
		{fmtDur(12 * time.Second), "12.0 s"},
		{fmtSpread(spread{Median: 125 * time.Millisecond, Min: 74 * time.Millisecond, Max: 171 * time.Millisecond, N: 3}), "125 ms (74–171 ms)"},
		{fmtSpread(spread{Median: 9 * time.Millisecond, Min: 8 * time.Millisecond, Max: 12 * time.Millisecond, N: 3}), "9.0 ms (8.0–12 ms)"},
		{fmtSpread(spread{}), "–"},
		{fmtLatency(spread{Median: 3 * time.Millisecond, P95: 7 * time.Millisecond, N: 20}), "3.0 ms (p95 7.0 ms)"},
		{group(0), "0"},
		{group(999), "999"},
		{group(10000), "10,000"},
		{group(-1234567), "-1,234,567"},
		{fmtMiB(123 << 20), "123 MiB"},
		{fmtRatio(300*time.Millisecond, 125*time.Millisecond), "2.40×"},
		{fmtRatio(1171*time.Millisecond, 779*time.Millisecond), "1.50×"},
		{fmtRatio(1506*time.Millisecond, 1000*time.Millisecond), "1.51×"},
		{fmtRatio(time.Second, 0), "–"},
		{fmtRate(1000, 250*time.Millisecond), "4,000/s"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestTable(t *testing.T) {
	tb := &table{header: []string{"N", "1,000", "5,000"}}
	tb.add("round trip", "125 ms")
	tb.add("a|b", "1", "2", "extra")
	want := "| N | 1,000 | 5,000 |\n|---|---|---|\n| round trip | 125 ms | – |\n| a\\|b | 1 | 2 |\n"
	if got := tb.String(); got != want {
		t.Errorf("table =\n%s\nwant\n%s", got, want)
	}
}

func TestPairedRatios(t *testing.T) {
	tests := []struct {
		name   string
		a, b   []time.Duration
		want   ratios
		wantOK bool
	}{
		{"none", nil, ms(10), ratios{}, false},
		{"a zero is no pair", ms(0), ms(10), ratios{}, false},
		// Pairs by index, not by rank: 300/100, 100/200 and 200/100.
		{"odd", ms(300, 100, 200), ms(100, 200, 100), ratios{median: 2, min: 0.5, max: 3, n: 3}, true},
		{"even, extra rounds of one side ignored", ms(150, 120, 999), ms(100, 100), ratios{median: 1.35, min: 1.2, max: 1.5, n: 2}, true},
	}
	for _, tt := range tests {
		got, ok := pairedRatios(tt.a, tt.b)
		if ok != tt.wantOK || math.Abs(got.median-tt.want.median) > 1e-9 || got.min != tt.want.min || got.max != tt.want.max || got.n != tt.want.n {
			t.Errorf("%s: pairedRatios() = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
	if got := fmtFactor(1.4751); got != "1.48×" {
		t.Errorf("fmtFactor(1.4751) = %q", got)
	}
}
