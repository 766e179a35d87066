package runner

import (
	"unicode/utf8"

	"golang.org/x/text/encoding"
)

// capture decodes one output stream to UTF-8 as it arrives (see
// streamDecoder) and keeps at most limit bytes of it: all of it when it
// fits, else its head (the first half of limit) and its tail (the last
// half), counting what is cut between them; the end is where a script's
// error is. It is written by one reader goroutine and read only after
// that goroutine has ended.
type capture struct {
	stream   string // wire.Stdout or wire.Stderr
	limit    int
	onOutput func(stream string, p []byte)
	dec      *streamDecoder

	buf       []byte // the head of the decoded output
	full      bool   // the head is full: later output goes to tail
	tail      []byte // the output after the head, trimmed now and then to its last tailLimit bytes
	after     int    // bytes of decoded output after the head, kept or not
	truncated bool   // more than limit bytes came: some are cut
	err       error  // a read error other than EOF
}

func newCapture(stream string, limit int, legacy encoding.Encoding, onOutput func(string, []byte)) *capture {
	return &capture{stream: stream, limit: limit, onOutput: onOutput, dec: newStreamDecoder(legacy)}
}

// headLimit and tailLimit split the limit between the two ends.
func (c *capture) headLimit() int { return c.limit - c.limit/2 }
func (c *capture) tailLimit() int { return c.limit / 2 }

// write decodes p and keeps it (the pipe is drained by the caller either
// way, so the child never blocks on a full pipe).
func (c *capture) write(p []byte) {
	c.keep(c.dec.write(nil, p))
}

// close decodes what the decoder held back (an incomplete character at
// the end of the stream).
func (c *capture) close() {
	c.keep(c.dec.flush(nil))
}

// keep adds text to the head until it is full, never splitting a
// character, then to the tail. onOutput gets the output as long as all of
// it fits under limit, then once liveCapNote.
func (c *capture) keep(text []byte) {
	if len(text) == 0 {
		return
	}
	if !c.full {
		n := min(len(text), c.headLimit()-len(c.buf))
		if n < len(text) {
			c.full = true
			n = runeStart(text, n)
		}
		if n > 0 {
			start := len(c.buf)
			c.buf = append(c.buf, text[:n]...)
			// A full slice expression: the callee may keep or append to
			// it without touching later output.
			c.live(c.buf[start:len(c.buf):len(c.buf)])
		}
		if text = text[n:]; len(text) == 0 {
			return
		}
	}
	if room := c.tailLimit() - c.after; !c.truncated {
		n := min(len(text), room)
		if n < len(text) {
			n = runeStart(text, n)
		}
		if n > 0 {
			c.live(append([]byte(nil), text[:n]...))
		}
		if n < len(text) {
			c.truncated = true
			c.live([]byte(liveCapNote))
		}
	}
	c.after += len(text)
	c.tail = append(c.tail, text...)
	if over := len(c.tail) - c.tailLimit(); over > 0 && len(c.tail) >= 2*c.tailLimit()+4096 {
		c.tail = append(c.tail[:0], c.tail[over:]...) // once it doubled: amortized
	}
}

func (c *capture) live(p []byte) {
	if c.onOutput != nil {
		c.onOutput(c.stream, p)
	}
}

// runeStart is the largest i <= n at the start of a character of p.
func runeStart(p []byte, n int) int {
	for n > 0 && n < len(p) && !utf8.RuneStart(p[n]) {
		n--
	}
	return n
}

// liveCapNote is what live viewers get when a stream goes over its cap.
const liveCapNote = "\n[kanade: the output is over its cap: its end is kept and shown when the script ends]\n"

// output is what is kept: all the output, or its head, a CutMarker and
// its tail.
func (c *capture) output() string {
	tail := c.tail
	if over := len(tail) - c.tailLimit(); over > 0 {
		tail = tail[over:]
	}
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail = tail[1:]
	}
	return joinCut(c.buf, tail, c.after-len(tail))
}
