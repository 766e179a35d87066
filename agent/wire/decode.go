package wire

import (
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeResult decodes a result as json.Unmarshal into a zero Result
// does (FuzzDecodeResult compares them), reading the plain objects agents
// write without reflection and handing anything else to encoding/json.
// The server decodes a result per target per execution: at 10,000 agents
// json.Unmarshal was 5 µs of each, about 50 ms of CPU per deploy.
func DecodeResult(data []byte) (Result, error) { return decode(data, decodeResultFast) }

// DecodeCommand decodes a command as json.Unmarshal into a zero Command
// does (FuzzDecodeCommand compares them), the same way as DecodeResult.
// Every agent decodes every command; in the swarm simulator, which holds
// 10,000 agents on the server's machine, json.Unmarshal was a twentieth
// of the CPU of a deploy round.
func DecodeCommand(data []byte) (Command, error) { return decode(data, decodeCommandFast) }

// decode tries fast, and json.Unmarshal into a zero T where fast gives up.
func decode[T any](data []byte, fast func([]byte, *T) bool) (T, error) {
	var v T
	if fast(data, &v) {
		return v, nil
	}
	var zero T
	err := json.Unmarshal(data, &zero)
	return zero, err
}

// decodeCommandFast is decodeResultFast for a command.
func decodeCommandFast(data []byte, c *Command) bool {
	s := scanner{b: data}
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "protocol":
			return s.int(&c.Protocol)
		case "exec_id":
			return s.str(&c.ExecID)
		case "job_id":
			return s.str(&c.JobID)
		case "kind":
			return s.str(&c.Kind)
		case "version":
			return s.str(&c.Version)
		case "shell":
			return s.str(&c.Shell)
		case "script":
			return s.str(&c.Script)
		case "timeout":
			return s.unmarshal(&c.Timeout)
		case "jitter":
			return s.unmarshal(&c.Jitter)
		case "issued_at":
			return s.unmarshal(&c.IssuedAt)
		case "deadline_at":
			return s.unmarshal(&c.DeadlineAt)
		case "output_cap":
			return s.int(&c.OutputCap)
		}
		return false
	})
}

// decodeResultFast decodes a flat object of Result's own (lower-case,
// unescaped) keys; it reports false, leaving r undefined, for anything
// else (other keys, nulls, numbers that are not plain integers, surrogate
// escapes, invalid UTF-8, malformed JSON), which encoding/json decodes or
// rejects with its own error.
func decodeResultFast(data []byte, r *Result) bool {
	s := scanner{b: data}
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "protocol":
			return s.int(&r.Protocol)
		case "exec_id":
			return s.str(&r.ExecID)
		case "pc_id":
			return s.str(&r.PCID)
		case "state":
			return s.str((*string)(&r.State))
		case "reason":
			return s.str(&r.Reason)
		case "exit_code":
			r.ExitCode = new(int)
			return s.int(r.ExitCode)
		case "stdout":
			return s.str(&r.Stdout)
		case "stderr":
			return s.str(&r.Stderr)
		case "truncated":
			return s.boolean(&r.Truncated)
		case "started_at":
			return s.unmarshal(&r.StartedAt)
		case "finished_at":
			return s.unmarshal(&r.FinishedAt)
		}
		return false
	})
}

// scanner reads one flat JSON object. Its methods report false for what
// they do not read exactly as encoding/json would; the caller then gives
// up on the fast path.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next consumes c after optional white space.
func (s *scanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads {"key": value, …} and nothing after it but white space;
// value reads the value of each key.
func (s *scanner) object(value func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if !s.next('}') {
		for {
			key, ok := s.rawString()
			if !ok || !s.next(':') || !value(key) {
				return false
			}
			if s.next(',') {
				continue
			}
			if !s.next('}') {
				return false
			}
			break
		}
	}
	s.space()
	return s.i == len(s.b)
}

// rawString reads a string without escapes and returns its bytes (no
// copy).
func (s *scanner) rawString() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// str reads a string into v: valid UTF-8, with the escapes of RFC 8259
// except surrogate pairs.
func (s *scanner) str(v *string) bool {
	if !s.next('"') {
		return false
	}
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(raw) {
				return false // encoding/json replaces what is invalid
			}
			*v = string(raw)
			return true
		case c == '\\':
			return s.escaped(v, start)
		case c < 0x20:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		s.i++
	}
	return false
}

// escaped finishes a string that has an escape at s.i, begun at start.
func (s *scanner) escaped(v *string, start int) bool {
	out := make([]byte, 0, len(s.b)-start)
	out = append(out, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				return false
			}
			*v = string(out)
			return true
		case c < 0x20:
			return false
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			return false
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if s.i+4 > len(s.b) {
				return false
			}
			n, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 16)
			if err != nil || utf16.IsSurrogate(rune(n)) {
				return false
			}
			s.i += 4
			out = utf8.AppendRune(out, rune(n))
		default:
			return false
		}
	}
	return false
}

// int reads into v an integer as JSON writes one (no fraction, exponent
// or leading zero) that fits an int.
func (s *scanner) int(v *int) bool {
	s.space()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	switch {
	case s.i == digits, s.b[digits] == '0' && s.i > digits+1:
		return false
	case s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E'):
		return false
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, strconv.IntSize)
	*v = int(n)
	return err == nil
}

func (s *scanner) boolean(v *bool) bool {
	s.space()
	switch {
	case len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "true":
		*v, s.i = true, s.i+4
	case len(s.b)-s.i >= 5 && string(s.b[s.i:s.i+5]) == "false":
		*v, s.i = false, s.i+5
	default:
		return false
	}
	return true
}

// unmarshal reads a string without escapes with v's own UnmarshalJSON,
// as encoding/json would call it (a time, a Duration).
func (s *scanner) unmarshal(v json.Unmarshaler) bool {
	s.space()
	start := s.i
	if _, ok := s.rawString(); !ok {
		return false
	}
	return v.UnmarshalJSON(s.b[start:s.i]) == nil
}
