package wire

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends r's JSON encoding to b: byte for byte what
// json.Marshal(r) writes, or fails where it fails (TestResult_AppendJSON
// and FuzzResult_AppendJSON compare them), without
// reflection and without the validation pass json.Marshal gives a
// time.Time's own encoding. Every agent encodes a result per target per
// execution; in the swarm simulator json.Marshal was a sixth of the CPU of
// a deploy round at 10,000 agents.
func (r *Result) AppendJSON(b []byte) ([]byte, error) {
	if !jsonTime(r.StartedAt) || !jsonTime(r.FinishedAt) {
		// Outside what RFC 3339 can write: json.Marshal's error.
		out, err := json.Marshal(r)
		return append(b, out...), err
	}
	b = slices.Grow(b, 160+len(r.ExecID)+len(r.PCID)+len(r.Reason)+len(r.Stdout)+len(r.Stderr))
	b = append(b, `{"protocol":`...)
	b = strconv.AppendInt(b, int64(r.Protocol), 10)
	b = append(b, `,"exec_id":`...)
	b = appendJSONString(b, r.ExecID)
	b = append(b, `,"pc_id":`...)
	b = appendJSONString(b, r.PCID)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, string(r.State))
	if r.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, r.Reason)
	}
	if r.ExitCode != nil {
		b = append(b, `,"exit_code":`...)
		b = strconv.AppendInt(b, int64(*r.ExitCode), 10)
	}
	if r.Stdout != "" {
		b = append(b, `,"stdout":`...)
		b = appendJSONString(b, r.Stdout)
	}
	if r.Stderr != "" {
		b = append(b, `,"stderr":`...)
		b = appendJSONString(b, r.Stderr)
	}
	if r.Truncated {
		b = append(b, `,"truncated":true`...)
	}
	if !r.StartedAt.IsZero() {
		b = append(b, `,"started_at":"`...)
		b = r.StartedAt.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if !r.FinishedAt.IsZero() {
		b = append(b, `,"finished_at":"`...)
		b = r.FinishedAt.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

// jsonTime reports whether t is zero or encodes as RFC 3339 (what
// time.Time.MarshalJSON accepts: a four-digit year and a zone offset
// within a day).
func jsonTime(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*3600 && off < 24*3600
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it (its appendString, HTML escaping on): \b \f \n \r \t and \"
// \\ as such, other control characters and < > & as \u00XX, invalid
// UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
