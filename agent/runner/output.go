package runner

import (
	"unicode/utf8"

	"golang.org/x/text/encoding"
)

// capture decodes one output stream to UTF-8 as it arrives (see
// streamDecoder) and keeps the first limit bytes of the result, counting
// the rest as truncated. It is written by one reader goroutine and read
// only after that goroutine has ended.
type capture struct {
	stream   string // wire.Stdout or wire.Stderr
	limit    int
	onOutput func(stream string, p []byte)
	dec      *streamDecoder

	buf       []byte // the decoded output kept
	full      bool   // the limit was reached: later output is dropped
	truncated bool
	err       error // a read error other than EOF
}

func newCapture(stream string, limit int, legacy encoding.Encoding, onOutput func(string, []byte)) *capture {
	return &capture{stream: stream, limit: limit, onOutput: onOutput, dec: newStreamDecoder(legacy)}
}

// write decodes p and keeps what still fits under the limit. Once the
// limit is reached the rest is dropped undecoded (the pipe is still
// drained by the caller, so the child never blocks on a full pipe).
func (c *capture) write(p []byte) {
	if c.full {
		c.truncated = c.truncated || len(p) > 0
		return
	}
	c.keep(c.dec.write(nil, p))
}

// close decodes what the decoder held back (an incomplete character at
// the end of the stream).
func (c *capture) close() {
	if !c.full {
		c.keep(c.dec.flush(nil))
	}
}

// keep appends what fits of text to buf, never splitting a character, and
// hands the kept part to onOutput.
func (c *capture) keep(text []byte) {
	if len(text) == 0 {
		return
	}
	n := min(len(text), c.limit-len(c.buf))
	if n < len(text) {
		c.truncated, c.full = true, true
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
	}
	if n <= 0 {
		return
	}
	start := len(c.buf)
	c.buf = append(c.buf, text[:n]...)
	if c.onOutput != nil {
		// A full slice expression: the callee may keep or append to it
		// without touching later output.
		c.onOutput(c.stream, c.buf[start:len(c.buf):len(c.buf)])
	}
}
