package runner

import (
	"bytes"
	"errors"
	"slices"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// Output decoding. A child may print UTF-8 (sh, cmd after chcp 65001,
// PowerShell through its launcher), text in the system's legacy code page
// (a Windows program that writes its OEM or ANSI code page: CP932 on a
// Japanese Windows, CP437 or CP850 elsewhere; `type` of such a file), or
// UTF-16 (wmic, `cmd /u`, PowerShell with a Unicode output encoding). The
// stream decoder turns each into UTF-8 as the output arrives, lossily:
// bytes that mean nothing in the chosen encoding become U+FFFD, nothing is
// ever refused.
//
//   - The encoding of a whole stream is UTF-16 when its first bytes say so
//     (a byte order mark, or text whose every other byte is NUL); the
//     decision is taken on the first output, as UTF-16 writers write whole
//     strings (a first output of a single code unit waits for more).
//   - Otherwise each line is decoded on its own: a line that is valid UTF-8
//     stays as it is; a line that is not is decoded with the legacy code
//     page, where there is one (Windows), else each invalid byte becomes
//     U+FFFD. Output from different programs usually differs by line, and
//     '\n' never occurs inside a character of these code pages.
//   - A character is never split: an incomplete one at the end of what has
//     arrived is held back until the rest comes or the stream ends.
//
// A line is judged on what has arrived of it: once part of a line was
// passed on as UTF-8, later bytes of the same line that are not UTF-8 are
// decoded with the code page from there on.

// Decode turns a whole output into valid UTF-8 the way a run's output is
// decoded (see streamDecoder), with this system's legacy code page.
func Decode(b []byte) string {
	return decode(b, systemLegacy())
}

// decode turns b into UTF-8 with legacy as the code page of lines that are
// not UTF-8 (nil: none).
func decode(b []byte, legacy encoding.Encoding) string {
	d := newStreamDecoder(legacy)
	out := d.write(nil, b)
	return string(d.flush(out))
}

// stream encodings
const (
	undecided = iota
	byLine    // UTF-8, and the legacy code page for lines that are not
	utf16
)

// streamDecoder decodes one output stream, written in pieces as they
// arrive. It is not safe for concurrent use.
type streamDecoder struct {
	legacy encoding.Encoding // nil: lines that are not UTF-8 get U+FFFD
	mode   int
	held   []byte // an incomplete character (or the start of the stream) not decoded yet

	wide       transform.Transformer // the UTF-16 decoder, in mode utf16
	lineLegacy bool                  // the current line is decoded with legacy
	lineDec    *encoding.Decoder     // legacy's decoder, for the current line
}

func newStreamDecoder(legacy encoding.Encoding) *streamDecoder {
	return &streamDecoder{legacy: legacy}
}

// write appends the UTF-8 of p (and of what was held) to dst and returns
// it; an incomplete character at the end is held for the next write.
func (d *streamDecoder) write(dst, p []byte) []byte {
	src := p
	if len(d.held) > 0 {
		src = append(d.held, p...)
		d.held = nil
	}
	if len(src) == 0 {
		return dst
	}
	if d.mode == undecided {
		if tooShortToTell(src) {
			d.held = append(d.held[:0:0], src...)
			return dst
		}
		d.decide(src)
	}
	var rest []byte
	if d.mode == utf16 {
		dst, rest = transformSome(dst, d.wide, src, false)
	} else {
		dst, rest = d.lines(dst, src)
	}
	d.held = append(d.held[:0:0], rest...)
	return dst
}

// flush appends the UTF-8 of whatever is held (the stream ended) to dst.
func (d *streamDecoder) flush(dst []byte) []byte {
	src := d.held
	d.held = nil
	if len(src) == 0 {
		return dst
	}
	if d.mode == undecided {
		d.decide(src)
	}
	if d.mode == utf16 {
		dst, _ = transformSome(dst, d.wide, src, true)
		return dst
	}
	return d.segment(dst, src)
}

// decide picks the stream's encoding from its first bytes.
func (d *streamDecoder) decide(b []byte) {
	d.mode = byLine
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		d.mode, d.wide = utf16, unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewDecoder()
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		d.mode, d.wide = utf16, unicode.UTF16(unicode.BigEndian, unicode.UseBOM).NewDecoder()
	case looksUTF16LE(b):
		d.mode, d.wide = utf16, unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM).NewDecoder()
	}
}

// tooShortToTell reports whether the first bytes of a stream could be
// the start of UTF-16 that they are too short to tell: half a byte order
// mark, or a single code unit below U+0100. Anything else is decided at
// once, so that a short first line is passed on without delay.
func tooShortToTell(b []byte) bool {
	switch len(b) {
	case 1:
		return b[0] == 0xFF || b[0] == 0xFE
	case 2, 3:
		return b[0] != 0 && b[1] == 0
	}
	return false
}

// looksUTF16LE reports whether b looks like UTF-16LE text without a byte
// order mark: it starts with a character below U+0100, at least two and at
// least half of its code units are below U+0100 (a NUL in the odd byte),
// and few have a NUL in the even byte. Text in the other encodings has no
// NULs.
func looksUTF16LE(b []byte) bool {
	b = b[:min(len(b), 512)]
	pairs := len(b) / 2
	if pairs < 2 || b[0] == 0 || b[1] != 0 {
		return false
	}
	var oddNUL, evenNUL int
	for i := 0; i+1 < len(b); i += 2 {
		if b[i] == 0 {
			evenNUL++
		}
		if b[i+1] == 0 {
			oddNUL++
		}
	}
	return 2*oddNUL >= pairs && 8*evenNUL <= pairs
}

// lines decodes complete lines of src and what can be decoded of its last,
// unfinished line; it returns the bytes to hold.
func (d *streamDecoder) lines(dst, src []byte) (out, rest []byte) {
	for {
		i := bytes.IndexByte(src, '\n')
		if i < 0 {
			break
		}
		dst = d.segment(dst, src[:i+1])
		src = src[i+1:]
	}
	if len(src) == 0 {
		return dst, nil
	}
	if !d.lineLegacy {
		tail := incompleteUTF8(src)
		if utf8.Valid(src[:len(src)-tail]) {
			return append(dst, src[:len(src)-tail]...), src[len(src)-tail:]
		}
		if d.legacy == nil {
			dst = lossyUTF8(dst, src[:len(src)-tail])
			return dst, src[len(src)-tail:]
		}
		d.startLegacy()
	}
	return transformSome(dst, d.lineDec, src, false)
}

// segment decodes the rest of a line that is complete (ended by '\n' or
// by the stream): nothing of it is held.
func (d *streamDecoder) segment(dst, seg []byte) []byte {
	if !d.lineLegacy {
		switch {
		case utf8.Valid(seg):
			dst = append(dst, seg...)
		case d.legacy == nil:
			dst = lossyUTF8(dst, seg)
		default:
			d.startLegacy()
		}
	}
	if d.lineLegacy {
		dst, _ = transformSome(dst, d.lineDec, seg, true)
	}
	d.lineLegacy = false
	return dst
}

// startLegacy decodes the current line with the legacy code page from
// here on.
func (d *streamDecoder) startLegacy() {
	d.lineLegacy = true
	if d.lineDec == nil {
		d.lineDec = d.legacy.NewDecoder()
	}
	d.lineDec.Reset()
}

// transformSome appends what t makes of src to dst. Unless atEOF, bytes
// that t needs more input for are returned as rest.
func transformSome(dst []byte, t transform.Transformer, src []byte, atEOF bool) (out, rest []byte) {
	for len(src) > 0 {
		// Room for the longest result: 3 bytes of UTF-8 for each byte of
		// src (a single-byte code page above 0x7F), 4 for a character
		// made of several bytes.
		dst = slices.Grow(dst, 3*len(src)+utf8.UTFMax)
		nDst, nSrc, err := t.Transform(dst[len(dst):cap(dst)], src, atEOF)
		dst, src = dst[:len(dst)+nDst], src[nSrc:]
		switch {
		case err == nil:
			return dst, nil
		case errors.Is(err, transform.ErrShortDst) && (nDst > 0 || nSrc > 0):
			// More room is made at the top of the loop.
		case errors.Is(err, transform.ErrShortSrc) && !atEOF:
			return dst, src
		default:
			// The decoders replace what they cannot read; should one give
			// up anyway, its next byte is lost and decoding goes on.
			dst = utf8.AppendRune(dst, utf8.RuneError)
			src = src[1:]
		}
	}
	return dst, nil
}

// lossyUTF8 appends b to dst with every byte that is not part of a valid
// UTF-8 sequence replaced by U+FFFD.
func lossyUTF8(dst, b []byte) []byte {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}

// incompleteUTF8 is the length of a UTF-8 sequence cut off at the end of
// b: a start byte followed by fewer continuation bytes than it needs.
func incompleteUTF8(b []byte) int {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if utf8.RuneStart(c) {
			if c >= 0xC0 && !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}
