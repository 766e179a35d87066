package runner

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCutMarker(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "\n… 0 bytes cut …\n", 999: "\n… 999 bytes cut …\n", 12345: "\n… 12,345 bytes cut …\n", 1234567: "\n… 1,234,567 bytes cut …\n"} {
		if got := CutMarker(n); got != want {
			t.Errorf("CutMarker(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestKeepEnds(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 50) + strings.Repeat("z", 50)
	tests := []struct {
		name  string
		s     string
		limit int
		want  string
	}{
		{"fits", "hello", 5, "hello"},
		{"empty", "", 0, ""},
		{"middle cut", long, 60, strings.Repeat("a", 19) + CutMarker(63) + strings.Repeat("z", 18)},
		{"no room for a marker", long, 10, strings.Repeat("a", 10)},
		{"never splits a character", strings.Repeat("日", 40), 60, strings.Repeat("日", 6) + CutMarker(84) + strings.Repeat("日", 6)},
		// Cut again around the runner's marker: the marker counts both cuts.
		{"around a marker", strings.Repeat("h", 40) + CutMarker(1000) + strings.Repeat("t", 40), 60,
			strings.Repeat("h", 18) + CutMarker(1045) + strings.Repeat("t", 17)},
		{"short tail gives room to the head", strings.Repeat("h", 80) + CutMarker(7) + "end", 60,
			strings.Repeat("h", 34) + CutMarker(53) + "end"},
	}
	for _, tt := range tests {
		got := KeepEnds(tt.s, tt.limit)
		if got != tt.want {
			t.Errorf("%s: KeepEnds(%d bytes, %d) = %q, want %q", tt.name, len(tt.s), tt.limit, got, tt.want)
		}
		if len(got) > max(tt.limit, 0) || !utf8.ValidString(got) {
			t.Errorf("%s: %d bytes for a limit of %d, valid UTF-8 %v", tt.name, len(got), tt.limit, utf8.ValidString(got))
		}
	}
}
