package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// spread summarises repeated measurements.
type spread struct {
	Median, Min, Max, P95 time.Duration
	N                     int
}

// summarize returns the median, min, max and nearest-rank p95 of ds.
func summarize(ds []time.Duration) spread {
	if len(ds) == 0 {
		return spread{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	rank := int(math.Ceil(0.95*float64(n))) - 1
	return spread{Median: med, Min: s[0], Max: s[n-1], P95: s[max(rank, 0)], N: n}
}

// fmtDur prints a latency the way the tables in reference/limits.md do:
// "0.8 ms", "42 ms", "1,234 ms", and seconds from 10 s on.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d <= 0:
		return "0 ms"
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	case d < 10*time.Second:
		return group(int64(math.Round(ms))) + " ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
}

// fmtSpread prints "median (min–max)".
func fmtSpread(s spread) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 {
		return fmtDur(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtDur(s.Median), trimUnit(fmtDur(s.Min), fmtDur(s.Max)), fmtDur(s.Max))
}

// fmtLatency prints "median (p95 x)".
func fmtLatency(s spread) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (p95 %s)", fmtDur(s.Median), fmtDur(s.P95))
}

// trimUnit drops a's unit when b has the same one: "74–171 ms".
func trimUnit(a, b string) string {
	ai, bi := strings.LastIndexByte(a, ' '), strings.LastIndexByte(b, ' ')
	if ai > 0 && bi > 0 && a[ai:] == b[bi:] {
		return a[:ai]
	}
	return a
}

// group writes an integer with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtMiB prints a byte count in MiB.
func fmtMiB(b int64) string {
	if b <= 0 {
		return "–"
	}
	return group(int64(math.Round(float64(b)/(1<<20)))) + " MiB"
}

// fmtRatio prints a/b as "2.40×": two decimals, so that a ratio near the
// 1.5× target reads as near it (1.47 and 1.503 both printed as "1.5×").
func fmtRatio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(a)/float64(b), 'f', 2, 64) + "×"
}

// fmtFactor prints a ratio as fmtRatio does.
func fmtFactor(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) + "×" }

// ratios summarizes the ratios of paired figures.
type ratios struct {
	median, min, max float64
	n                int
}

// pairedRatios divides each of a by the b of the same index (the pairs
// that both have); ok is false when there is no pair.
func pairedRatios(a, b []time.Duration) (r ratios, ok bool) {
	var fs []float64
	for i := range min(len(a), len(b)) {
		if a[i] > 0 && b[i] > 0 {
			fs = append(fs, float64(a[i])/float64(b[i]))
		}
	}
	if len(fs) == 0 {
		return r, false
	}
	slices.Sort(fs)
	n := len(fs)
	r = ratios{median: fs[n/2], min: fs[0], max: fs[n-1], n: n}
	if n%2 == 0 {
		r.median = (fs[n/2-1] + fs[n/2]) / 2
	}
	return r, true
}

// fmtRate prints n per d as "8,123/s".
func fmtRate(n int, d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return group(int64(math.Round(float64(n)/d.Seconds()))) + "/s"
}

// table is a markdown table: a header row and data rows of equal width.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// String renders the table; missing cells print as "–" and "|" in a cell
// is escaped.
func (t *table) String() string {
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i := range t.header {
			c := "–"
			if i < len(cells) && cells[i] != "" {
				c = strings.ReplaceAll(cells[i], "|", `\|`)
			}
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
	}
	line(t.header)
	b.WriteString("|")
	for range t.header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		line(r)
	}
	return b.String()
}
