package runner

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"

	"github.com/kanadehq/kanade/agent/wire"
)

// Output as Windows programs print it (bytes taken from the programs'
// output on Windows and under Wine, see reference fixtures in the names).
var (
	// `dir /b` of a folder holding 日本語.txt and ümlaut.txt on a Japanese
	// Windows (OEM code page 932).
	dirCP932 = []byte("\x93\xfa\x96\x7b\x8c\xea.txt\r\n\x81\x40\x81\x40umlaut.txt\r\n")
	// `tree C:\` in code page 437.
	treeCP437 = []byte("C:.\r\n\xc3\xc4\xc4\xc4Program Files\r\n\xb3   \xc0\xc4\xc4\xc4Common Files\r\n\xc0\xc4\xc4\xc4Windows\r\n")
	// `dir` in code page 850 (German Windows): "Größe" and "Verzeichnis von C:\Übung".
	dirCP850 = []byte("Gr\x94\xe1e\r\nVerzeichnis von C:\\\x9abung\r\n")
	// PowerShell with [Console]::OutputEncoding = [Text.Encoding]::Unicode:
	// UTF-16LE with a byte order mark.
	psUTF16BOM = []byte("\xff\xfe\xe5\x65\x2c\x67\x9e\x8a.\x00t\x00x\x00t\x00\r\x00\n\x00")
	// `cmd /u /c echo hello & echo 日本` and wmic: UTF-16LE without a mark.
	cmdUTF16 = []byte("h\x00e\x00l\x00l\x00o\x00\r\x00\n\x00\xe5\x65\x2c\x67\r\x00\n\x00")
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		legacy encoding.Encoding // the system's code page (see codePage); nil off Windows
		in     []byte
		want   string
	}{
		{"empty", nil, nil, ""},
		{"ascii", nil, []byte("hello\r\n"), "hello\r\n"},
		{"utf-8", nil, []byte("日本語"), "日本語"},
		{"cp932 without a code page", nil, []byte{0x93, 0xfa, 0x96, 0x7b}, "\uFFFD\uFFFD\uFFFD{"},
		{"cp932 among ascii without a code page", nil, []byte("a\x93\xfaz"), "a\uFFFD\uFFFDz"},
		{"utf-8 cut at the end", nil, []byte("ok\xe6\x97"), "ok\uFFFD\uFFFD"},
		{"literal U+FFFD kept", nil, []byte("\uFFFD"), "\uFFFD"},
		{"nul kept", nil, []byte("a\x00b"), "a\x00b"},

		{"dir /b in cp932", japanese.ShiftJIS, dirCP932, "日本語.txt\r\n\u3000\u3000umlaut.txt\r\n"},
		{"utf-8 stays utf-8 with a code page", japanese.ShiftJIS, []byte("日本語 UTF8 file\n"), "日本語 UTF8 file\n"},
		{"a utf-8 line and a cp932 line", japanese.ShiftJIS, []byte("日本語 UTF8\r\n\x93\xfa\x96\x7b\x8c\xea SJIS\r\n"), "日本語 UTF8\r\n日本語 SJIS\r\n"},
		{"half-width katakana in cp932", japanese.ShiftJIS, []byte("\xba\xdd\xcb\xdf\xad\xb0\xc0\n"), "ｺﾝﾋﾟｭｰﾀ\n"},
		{"invalid cp932 is lossy", japanese.ShiftJIS, []byte("a\x93\n\xa0b\n"), "a\uFFFD\n\uFFFDb\n"},
		{"cp932 lead byte cut at the end", japanese.ShiftJIS, []byte("ok \x93"), "ok \uFFFD"},
		{"tree in cp437", charmap.CodePage437, treeCP437, "C:.\r\n├───Program Files\r\n│   └───Common Files\r\n└───Windows\r\n"},
		{"a box in cp437", charmap.CodePage437, []byte("\xda\xc4\xc4\xbf\r\n"), "┌──┐\r\n"},
		// A line that happens to be valid UTF-8 is read as UTF-8: ─┐ in
		// CP437 is the UTF-8 of U+013F.
		{"cp437 that is valid utf-8", charmap.CodePage437, []byte("\xc4\xbf\r\n"), "\u013f\r\n"},
		{"dir in cp850", charmap.CodePage850, dirCP850, "Größe\r\nVerzeichnis von C:\\Übung\r\n"},
		{"windows-1252", charmap.Windows1252, []byte("caf\xe9 \x80 5\r\n"), "café € 5\r\n"},

		{"utf-16le with a mark", nil, psUTF16BOM, "日本語.txt\r\n"},
		{"utf-16le without a mark", japanese.ShiftJIS, cmdUTF16, "hello\r\n日本\r\n"},
		{"utf-16be with a mark", nil, []byte("\xfe\xff\x65\xe5\x00h\x00i"), "日hi"},
		{"utf-16 odd byte at the end", nil, []byte("\xff\xfeh\x00i"), "h\uFFFD"},
		{"utf-16 unpaired surrogate", nil, []byte("\xff\xfe\x3d\xd8h\x00"), "\uFFFDh"},
		{"utf-16 astral", nil, []byte("\xff\xfe\x3d\xd8\x00\xde!\x00"), "😀!"},
		{"a single nul-padded character is not utf-16", nil, []byte("a\x00"), "a\x00"},
	}
	for _, tt := range tests {
		if got := decode(tt.in, tt.legacy); got != tt.want {
			t.Errorf("%s: decode(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
		if tt.legacy == nil && systemLegacy() == nil {
			if got := Decode(tt.in); got != tt.want {
				t.Errorf("%s: Decode(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
			}
		}
	}
}

// TestStreamDecoder_Split: output cut into two pieces at any byte decodes
// as the whole does (live output is read in chunks of any size), and no
// piece ends inside a character.
func TestStreamDecoder_Split(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		legacy encoding.Encoding
		in     []byte
		// from is the shortest first piece: a UTF-16 writer writes whole
		// strings, so its first output is never a lone byte.
		from int
	}{
		{"dir /b in cp932", japanese.ShiftJIS, dirCP932, 1},
		{"utf-8 then cp932", japanese.ShiftJIS, []byte("日本語 UTF8\r\n\x93\xfa\x96\x7b\x8c\xea SJIS\r\n"), 1},
		{"tree in cp437", charmap.CodePage437, treeCP437, 1},
		{"dir in cp850", charmap.CodePage850, dirCP850, 1},
		{"utf-8 without a code page", nil, []byte("日本語\nü é 😀\n"), 1},
		{"invalid utf-8 without a code page", nil, []byte("a\x93\xfaz\xe6\x97\n"), 1},
		{"utf-16le with a mark", nil, psUTF16BOM, 1},
		{"utf-16le without a mark", japanese.ShiftJIS, cmdUTF16, 2},
	}
	for _, tt := range tests {
		want := decode(tt.in, tt.legacy)
		for cut := tt.from; cut < len(tt.in); cut++ {
			d := newStreamDecoder(tt.legacy)
			first := d.write(nil, tt.in[:cut])
			second := d.write(nil, tt.in[cut:])
			last := d.flush(nil)
			if got := string(first) + string(second) + string(last); got != want {
				t.Errorf("%s cut at %d: %q + %q + %q, want %q", tt.name, cut, first, second, last, want)
			}
			for i, piece := range [][]byte{first, second, last} {
				if len(piece) > 0 && (incompleteUTF8(piece) != 0 || !validStart(piece)) {
					t.Errorf("%s cut at %d: piece %d %q splits a character", tt.name, cut, i, piece)
				}
			}
		}
	}
}

// validStart reports whether p starts at the start of a UTF-8 character.
func validStart(p []byte) bool { return len(p) == 0 || p[0] < 0x80 || p[0] >= 0xC0 }

func TestCapture(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		legacy        encoding.Encoding
		limit         int
		writes        []string
		want          string
		wantCalls     []string // what OnOutput received, call by call
		wantTruncated bool
	}{
		{"under", nil, 10, []string{"abc", "de"}, "abcde", []string{"abc", "de"}, false},
		{"exact", nil, 5, []string{"abc", "de"}, "abcde", []string{"abc", "de"}, false},
		{"exact in one write", nil, 5, []string{"abcde"}, "abcde", []string{"abc", "de"}, false},
		{"split write", nil, 4, []string{"abc", "def"}, "ab" + CutMarker(2) + "ef", []string{"ab", "c", "d", liveCapNote}, true},
		{"after the cap", nil, 3, []string{"abc", "def", "g"}, "ab" + CutMarker(4) + "g", []string{"ab", "c", liveCapNote}, true},
		{"first write over", nil, 2, []string{"abcdef"}, "a" + CutMarker(4) + "f", []string{"a", "b", liveCapNote}, true},
		{"head and tail", nil, 6, []string{"12345678", "9abc"}, "123" + CutMarker(6) + "abc", []string{"123", "456", liveCapNote}, true},
		{"utf-8 split between writes", nil, 100, []string{"a\xe6\x97", "\xa5b"}, "a日b", []string{"a", "日b"}, false},
		{"the cap does not split a character", nil, 5, []string{"ab日本"}, "ab" + CutMarker(6), []string{"ab", liveCapNote}, true},
		{"the tail starts at a character", nil, 8, []string{"abcd日本語"}, "abcd" + CutMarker(6) + "語", []string{"abcd", "日", liveCapNote}, true},
		{"the cap counts decoded bytes", japanese.ShiftJIS, 6, []string{"\x93\xfa\x96\x7b\x8c\xea"}, "日" + CutMarker(3) + "語", []string{"日", "本", liveCapNote}, true},
		{"cp932 split between writes", japanese.ShiftJIS, 100, []string{"x\x93", "\xfa\r\n"}, "x日\r\n", []string{"x", "日\r\n"}, false},
		{"incomplete at the end", nil, 100, []string{"ok\xe6\x97"}, "ok\uFFFD\uFFFD", []string{"ok", "\uFFFD\uFFFD"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls []string
			var kept [][]byte
			c := newCapture(wire.Stderr, tt.limit, tt.legacy, func(stream string, p []byte) {
				if stream != wire.Stderr {
					t.Errorf("OnOutput stream = %q, want %q", stream, wire.Stderr)
				}
				calls = append(calls, string(p))
				kept = append(kept, p)
			})
			for _, w := range tt.writes {
				buf := []byte(w)
				c.write(buf)
				for i := range buf {
					buf[i] = '!' // the reader reuses its buffer
				}
			}
			c.close()
			if got := c.output(); got != tt.want || c.truncated != tt.wantTruncated {
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
			if got := c.output(); got != tt.want {
				t.Errorf("capture changed by an append to an OnOutput slice: %q", got)
			}
		})
	}
}

// TestCapture_Long: a long stream in small writes keeps exactly its first
// and its last half of the limit, and the marker counts the rest.
func TestCapture_Long(t *testing.T) {
	t.Parallel()
	var all []byte
	for i := range 5000 {
		all = append(all, fmt.Sprintf("line %d\n", i)...)
	}
	for _, limit := range []int{1, 2, 100, 101, 4096, 9000} {
		var live []byte
		c := newCapture(wire.Stdout, limit, nil, func(_ string, p []byte) { live = append(live, p...) })
		for rest := all; len(rest) > 0; {
			n := min(7, len(rest))
			c.write(rest[:n])
			rest = rest[n:]
		}
		c.close()
		head, tail := limit-limit/2, limit/2
		want := string(all[:head]) + CutMarker(len(all)-head-tail) + string(all[len(all)-tail:])
		if got := c.output(); got != want || !c.truncated {
			t.Errorf("limit %d: output %d bytes (truncated %v), want %d bytes with %d cut", limit, len(got), c.truncated, len(want), len(all)-limit)
		}
		if wantLive := string(all[:limit]) + liveCapNote; string(live) != wantLive {
			t.Errorf("limit %d: streamed %d bytes, want the first %d and the note", limit, len(live), limit)
		}
		if cap(c.tail) > 2*tail+4096+64<<10 {
			t.Errorf("limit %d: the tail holds %d bytes of memory", limit, cap(c.tail))
		}
	}
}
