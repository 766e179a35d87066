package status

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Exit codes of `kanade-agent status`.
const (
	ExitConnected    = 0 // the agent runs and is connected to the broker
	ExitNotConnected = 1 // the agent runs but is not connected
	ExitNotRunning   = 3 // no agent runs with this data directory (or its status cannot be read)
)

// Report is what `kanade-agent status` prints.
type Report struct {
	// Service is the installed service's state ("running", "stopped",
	// "not installed", "unknown (…)"); empty when it was not queried.
	Service string
	DataDir string
	// Status is the status file's content, or ReadErr why it could not be read.
	Status  Status
	ReadErr error
	Now     time.Time
	// Alive tells whether a pid exists (nil: ProcessAlive).
	Alive func(pid int) bool
}

// Write prints the report and returns the exit code.
func (r Report) Write(w io.Writer) int {
	line := func(k, v string) { fmt.Fprintf(w, "%-12s%s\n", k+":", v) }
	if r.Service != "" {
		line("service", r.Service)
	}
	if r.ReadErr != nil {
		line("agent", fmt.Sprintf("no status in %s (the agent never ran with this data directory, or it is not readable: %v)", r.DataDir, r.ReadErr))
		line("data", r.DataDir)
		return ExitNotRunning
	}
	s := r.Status
	code := ExitNotConnected
	if err := s.Live(r.Now, r.Alive); err != nil {
		line("agent", err.Error())
		line("connected", "no")
		code = ExitNotRunning
	} else {
		line("agent", fmt.Sprintf("%s (pid %d, status written %s)", s.Phase, s.PID, Stamp(s.UpdatedAt, r.Now)))
		if s.Connected {
			code = ExitConnected
			line("connected", fmt.Sprintf("yes, to %s since %s", orNone(s.URL), Stamp(s.Since, r.Now)))
		} else {
			line("connected", "no, since "+Stamp(s.Since, r.Now))
		}
	}
	if s.LastError != "" {
		line("last error", fmt.Sprintf("%s (%s)", s.LastError, Stamp(s.LastErrorAt, r.Now)))
	} else {
		line("last error", "none")
	}
	line("pc_id", s.PCID)
	line("groups", orNone(strings.Join(s.Groups, ",")))
	line("version", s.Version)
	line("server", s.Server)
	line("data", r.DataDir)
	return code
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
