package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// parseStatTicks returns utime+stime (clock ticks) from the contents of
// /proc/PID/stat. The command name (field 2) is in parentheses and may
// itself contain spaces and parentheses, so fields are counted from the
// last ')'.
func parseStatTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat stime: %w", err)
	}
	return utime + stime, nil
}

// parseVmRSS reads the resident set size (VmRSS) in bytes from a
// /proc/PID/status text.
func parseVmRSS(status string) (int64, error) { return parseStatusKB(status, "VmRSS") }

// parseStatusKB reads a "Name:   123 kB" line of a /proc/PID/status text,
// in bytes.
func parseStatusKB(status, name string) (int64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: odd %s line %q", name, strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc status %s: %w", name, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("proc status: no %s line", name)
}

// promValue returns the value of the first sample of metric name in a
// Prometheus text exposition whose labels include every label in want
// (`key="value"` pairs, as written in the exposition).
func promValue(text, name string, want ...string) (float64, bool) {
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		labels := ""
		if rest[0] == '{' {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		match := true
		for _, w := range want {
			if !slices.Contains(strings.Split(labels, ","), w) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		return v, true
	}
	return 0, false
}

// sseEvent is one server-sent event as it arrived.
type sseEvent struct {
	Name string
	At   time.Time
}

// readSSE calls fn for every event in an event stream until r ends;
// comments and data lines are skipped, an event without a name is
// "message".
func readSSE(r io.Reader, now func() time.Time, fn func(sseEvent)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	name, seen := "", false
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case line == "":
			if seen {
				if name == "" {
					name = "message"
				}
				fn(sseEvent{Name: name, At: now()})
			}
			name, seen = "", false
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			name, seen = strings.TrimSpace(strings.TrimPrefix(line, "event:")), true
		default:
			seen = true
		}
	}
	return sc.Err()
}

// lineWriter calls fn with every complete line written to it (without the
// newline); a child's stdout goes through it.
type lineWriter struct {
	fn  func(string)
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := slices.Index(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(strings.TrimSuffix(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
}

// parseCounts parses the -n flag: "1000", "1000,5000,10000" or "1k,5k,10k".
func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		mult := 1
		if rest, ok := strings.CutSuffix(strings.ToLower(f), "k"); ok {
			f, mult = rest, 1000
		}
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("agent count %q: want a positive number such as 1000 or 5k", f)
		}
		out = append(out, n*mult)
	}
	if len(out) == 0 {
		return nil, errors.New("no agent count given")
	}
	return out, nil
}
