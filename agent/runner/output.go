package runner

import (
	"strings"
	"unicode/utf8"
)

// capture keeps the first limit bytes of one output stream and counts the
// rest as truncated. It is written by one reader goroutine and read only
// after that goroutine has ended.
type capture struct {
	stream   string // wire.Stdout or wire.Stderr
	limit    int
	onOutput func(stream string, p []byte)

	buf       []byte
	truncated bool
	err       error // a read error other than EOF
}

// write keeps what still fits under the limit, hands the kept bytes to
// onOutput, and drops the rest (the pipe is still drained by the caller, so
// the child never blocks on a full pipe).
func (c *capture) write(p []byte) {
	keep := min(len(p), c.limit-len(c.buf))
	if keep < len(p) {
		c.truncated = true
	}
	if keep <= 0 {
		return
	}
	start := len(c.buf)
	c.buf = append(c.buf, p[:keep]...)
	if c.onOutput != nil {
		// A full slice expression: the callee may keep or append to it
		// without touching later output.
		c.onOutput(c.stream, c.buf[start:len(c.buf):len(c.buf)])
	}
}

// Decode turns captured bytes into valid UTF-8 (lossy): every byte that is
// not part of a valid UTF-8 sequence becomes U+FFFD, so output in another
// encoding (CP932 from a Japanese Windows) keeps its valid parts instead of
// spoiling the whole capture.
func Decode(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:size])
		}
		b = b[size:]
	}
	return sb.String()
}
