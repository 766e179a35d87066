package runner

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, ""},
		{"ascii", []byte("hello\r\n"), "hello\r\n"},
		{"utf-8", []byte("日本語"), "日本語"},
		{"cp932 日本", []byte{0x93, 0xfa, 0x96, 0x7b}, "\uFFFD\uFFFD\uFFFD{"},
		{"cp932 among ascii", []byte("a\x93\xfaz"), "a\uFFFD\uFFFDz"},
		{"utf-8 cut at the cap", []byte("ok\xe6\x97"), "ok\uFFFD\uFFFD"},
		{"literal U+FFFD kept", []byte("\uFFFD"), "\uFFFD"},
		{"nul kept", []byte("a\x00b"), "a\x00b"},
	}
	for _, tt := range tests {
		if got := Decode(tt.in); got != tt.want {
			t.Errorf("%s: Decode(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestCapture(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		limit         int
		writes        []string
		want          string
		wantCalls     []string // what OnOutput received, call by call
		wantTruncated bool
	}{
		{"under", 10, []string{"abc", "de"}, "abcde", []string{"abc", "de"}, false},
		{"exact", 5, []string{"abc", "de"}, "abcde", []string{"abc", "de"}, false},
		{"split write", 4, []string{"abc", "def"}, "abcd", []string{"abc", "d"}, true},
		{"after the cap", 3, []string{"abc", "def", "g"}, "abc", []string{"abc"}, true},
		{"first write over", 2, []string{"abcdef"}, "ab", []string{"ab"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls []string
			var kept [][]byte
			c := &capture{stream: wire.Stderr, limit: tt.limit, onOutput: func(stream string, p []byte) {
				if stream != wire.Stderr {
					t.Errorf("OnOutput stream = %q, want %q", stream, wire.Stderr)
				}
				calls = append(calls, string(p))
				kept = append(kept, p)
			}}
			for _, w := range tt.writes {
				buf := []byte(w)
				c.write(buf)
				for i := range buf {
					buf[i] = '!' // the reader reuses its buffer
				}
			}
			if got := string(c.buf); got != tt.want || c.truncated != tt.wantTruncated {
				t.Errorf("capture = %q, truncated %v; want %q, %v", got, c.truncated, tt.want, tt.wantTruncated)
			}
			if diff := cmp.Diff(tt.wantCalls, calls); diff != "" {
				t.Errorf("OnOutput calls mismatch (-want +got):\n%s", diff)
			}
			// Slices handed out stay valid after later writes and appends.
			for i, p := range kept {
				_ = append(p, 'X')
				if string(p) != tt.wantCalls[i] {
					t.Errorf("OnOutput slice %d changed to %q, want %q", i, p, tt.wantCalls[i])
				}
			}
			if string(c.buf) != tt.want {
				t.Errorf("capture changed by an append to an OnOutput slice: %q", c.buf)
			}
		})
	}
}
