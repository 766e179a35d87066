package runner

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CutMarker is the line that stands between the head and the tail of
// output that was over its cap, saying how many bytes were left out:
// "\n… 12,345 bytes cut …\n". The end of a script's output is where its
// error is, so both ends are kept.
func CutMarker(n int) string {
	return "\n… " + grouped(n) + " bytes cut …\n"
}

// cutMarkerRE finds a CutMarker and the number in it.
var cutMarkerRE = regexp.MustCompile("\n… ([0-9,]+) bytes cut …\n")

// grouped writes n with thousands separators: 12345 → "12,345".
func grouped(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// joinCut is head, a CutMarker for cut bytes, then tail; or head and
// tail as they are when nothing was cut.
func joinCut(head, tail []byte, cut int) string {
	if cut <= 0 {
		return string(head) + string(tail)
	}
	return string(head) + CutMarker(cut) + string(tail)
}

// KeepEnds returns s cut to at most limit bytes by leaving out its middle:
// the head and the tail of what is kept, with a CutMarker between them,
// never splitting a UTF-8 character. Text that already holds a
// CutMarker (cut once, by the runner's cap) is cut around it, and the
// marker then counts both cuts. When limit leaves no room for a marker
// beside some text, the head alone is kept.
func KeepEnds(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	limit = max(limit, 0)
	head, tail, cut := s, "", 0
	if loc := lastMarker(s); loc != nil {
		head, tail = s[:loc[0]], s[loc[1]:]
		cut, _ = strconv.Atoi(strings.ReplaceAll(s[loc[2]:loc[3]], ",", ""))
	} else {
		mid := len(s) / 2
		for mid > 0 && !utf8.RuneStart(s[mid]) {
			mid--
		}
		head, tail = s[:mid], s[mid:]
	}
	room := limit - len(CutMarker(cut+len(s))) // the longest marker this cut can need
	if room <= 0 {
		return runeHead(s, limit)
	}
	keepHead := min(len(head), room-room/2)
	keepTail := min(len(tail), room-keepHead)
	keepHead = min(len(head), room-keepTail) // a short tail leaves room to the head
	h := runeHead(head, keepHead)
	t := runeTail(tail, keepTail)
	cut += len(head) - len(h) + len(tail) - len(t)
	return h + CutMarker(cut) + t
}

// lastMarker is the index pairs of the last CutMarker in s and of its
// number (nil when there is none).
func lastMarker(s string) []int {
	all := cutMarkerRE.FindAllStringSubmatchIndex(s, -1)
	if len(all) == 0 {
		return nil
	}
	return all[len(all)-1]
}

// runeHead is the longest start of s of at most n bytes that ends at a
// character boundary.
func runeHead(s string, n int) string {
	if n >= len(s) {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// runeTail is the longest end of s of at most n bytes that starts at a
// character boundary.
func runeTail(s string, n int) string {
	if n >= len(s) {
		return s
	}
	i := len(s) - max(n, 0)
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}
