// Package components holds the small, model-independent building blocks of
// kanade's pages: state badges, status dots, relative times, progress bars,
// pagers and empty states. They take plain values so that the views package
// can use them with its own models.
package components

import (
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/kanadehq/kanade/agent/wire"
)

// TargetStates lists every target state in display order: wire.States as
// strings.
var TargetStates = func() []string {
	s := make([]string, len(wire.States))
	for i, st := range wire.States {
		s[i] = string(st)
	}
	return s
}()

// Label returns the display word of a state or status: "timed_out" becomes
// "timed out", and an empty state "unknown".
func Label(state string) string {
	if state == "" {
		return "unknown"
	}
	return strings.ReplaceAll(state, "_", " ")
}

// ClockUTC formats an RFC 3339 time as "2026-12-07 14:02 UTC": what a
// LocalTime reads until the page's script shows it in the viewer's time
// zone. An unparsable value is returned as is.
func ClockUTC(abs string) string {
	t, err := time.Parse(time.RFC3339, abs)
	if err != nil {
		return abs
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// Number formats n with thousands separators: 1240 becomes "1,240".
func Number(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Segment is one state's share of a progress bar.
type Segment struct {
	State string
	N     int
}

// PagerProps describes a pager. Attrs are added to both links, e.g. the
// hx-target and hx-swap of the table the pager belongs to.
type PagerProps struct {
	Total, From, To  int
	PrevURL, NextURL string
	Attrs            templ.Attributes
}

// rect is one drawn segment of a progress bar, in a 0..1000 wide viewBox.
type rect struct {
	State    string
	X, Width string
}

// total returns the sum of the segments.
func total(segs []Segment) int {
	n := 0
	for _, s := range segs {
		n += s.N
	}
	return n
}

// rects lays out the non-empty segments side by side.
func rects(segs []Segment) []rect {
	t := total(segs)
	if t <= 0 {
		return nil
	}
	var out []rect
	cum := 0
	for _, s := range segs {
		if s.N <= 0 {
			continue
		}
		x := float64(cum) * 1000 / float64(t)
		w := float64(s.N) * 1000 / float64(t)
		out = append(out, rect{State: s.State, X: strconv.FormatFloat(x, 'f', 2, 64), Width: strconv.FormatFloat(w, 'f', 2, 64)})
		cum += s.N
	}
	return out
}

// summary is the text equivalent of a progress bar: "12 succeeded, 3
// failed of 15", or "no targets".
func summary(segs []Segment) string {
	var parts []string
	for _, s := range segs {
		if s.N > 0 {
			parts = append(parts, Number(s.N)+" "+Label(s.State))
		}
	}
	if len(parts) == 0 {
		return "no targets"
	}
	return strings.Join(parts, ", ") + " of " + Number(total(segs))
}

// orDash returns s, or "—" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
