package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// State is the state of one target (PC) of an execution.
type State string

// Target states. pending → running → succeeded | failed | timed_out |
// killed, or skipped / expired without running, or lost: the server ended
// a running target whose agent went silent (see StateLost).
const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateTimedOut  State = "timed_out"
	StateKilled    State = "killed"
	StateSkipped   State = "skipped"
	StateExpired   State = "expired"
	// StateLost is written by the server, never reported by an agent: the
	// target was running, its timeout and a grace have passed, and its
	// agent is offline or no longer lists it as running. The outcome is
	// unknown; a late report of the agent replaces it.
	StateLost State = "lost"
)

// States lists every target state in display order.
var States = []State{StatePending, StateRunning, StateSucceeded, StateFailed, StateTimedOut, StateKilled, StateSkipped, StateExpired, StateLost}

// Final reports whether s is an end state.
func (s State) Final() bool {
	switch s {
	case StateSucceeded, StateFailed, StateTimedOut, StateKilled, StateSkipped, StateExpired, StateLost:
		return true
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool { return s == StatePending || s == StateRunning || s.Final() }

// Shells an agent may be asked to run a script with.
const (
	ShellSh         = "sh"
	ShellCmd        = "cmd"
	ShellPowerShell = "powershell"
	ShellPwsh       = "pwsh"
)

// Shells lists the known shells.
var Shells = []string{ShellSh, ShellCmd, ShellPowerShell, ShellPwsh}

// ValidShell reports whether s names a known shell.
func ValidShell(s string) bool {
	for _, k := range Shells {
		if s == k {
			return true
		}
	}
	return false
}

// Duration is a time.Duration written as a Go duration string ("90s") in
// JSON. Reading also accepts a number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string (which needs no escaping).
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, time.Duration(d).String()), nil
}

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' && !slices.Contains(b, '\\') {
		s = string(b[1 : len(b)-1]) // a plain string: no second decoding pass
	} else if err := json.Unmarshal(b, &s); err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil {
			return fmt.Errorf("duration must be a string like \"30s\" or a number of seconds")
		}
		*d = Duration(f * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a Go duration such as \"30s\", \"10m\" or \"1h30m\"", s)
	}
	*d = Duration(v)
	return nil
}

// Command asks agents to run a script (or, with Kind KindUpdate, to
// update themselves: see UpdateCommand). It is published on a command
// subject (commands.all|group|pc…) into the EXEC stream.
type Command struct {
	Protocol int    `json:"protocol"`
	ExecID   string `json:"exec_id"`
	JobID    string `json:"job_id"`
	// Kind is KindScript (empty) or KindUpdate.
	Kind       string    `json:"kind,omitempty"`
	Version    string    `json:"version,omitempty"`
	Shell      string    `json:"shell"`
	Script     string    `json:"script"`
	Timeout    Duration  `json:"timeout"`
	Jitter     Duration  `json:"jitter,omitempty"`
	IssuedAt   time.Time `json:"issued_at"`
	DeadlineAt time.Time `json:"deadline_at"`
	// OutputCap is the most bytes kept per output stream; 0 means the
	// agent's default.
	OutputCap int `json:"output_cap,omitempty"`
}

// Validate checks a command before it is published.
func (c *Command) Validate() error {
	var errs []error
	if err := ValidateID("exec_id", c.ExecID); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateID("job_id", c.JobID); err != nil {
		errs = append(errs, err)
	}
	switch c.Kind {
	case KindScript:
		if !ValidShell(c.Shell) {
			errs = append(errs, fmt.Errorf("shell %q is not one of sh, cmd, powershell, pwsh", c.Shell))
		}
		if c.Script == "" {
			errs = append(errs, errors.New("script is empty"))
		}
	case KindUpdate:
		if c.Shell != "" || c.Script != "" {
			errs = append(errs, errors.New("an update command has no shell or script"))
		}
	default:
		errs = append(errs, fmt.Errorf("kind %q is not a known kind of command", c.Kind))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	if c.Jitter < 0 {
		errs = append(errs, errors.New("jitter must not be negative"))
	}
	if c.IssuedAt.IsZero() || c.DeadlineAt.IsZero() {
		errs = append(errs, errors.New("issued_at and deadline_at are required"))
	} else if !c.DeadlineAt.After(c.IssuedAt) {
		errs = append(errs, errors.New("deadline_at must be after issued_at"))
	}
	if c.OutputCap < 0 {
		errs = append(errs, errors.New("output_cap must not be negative"))
	}
	return errors.Join(errs...)
}

// Result reports the state of one target. Agents publish it on
// ResultSubject when a target starts running and when it ends; the server
// upserts it by (exec_id, pc_id), so repeats are harmless.
type Result struct {
	Protocol   int       `json:"protocol"`
	ExecID     string    `json:"exec_id"`
	PCID       string    `json:"pc_id"`
	State      State     `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	Stdout     string    `json:"stdout,omitempty"`
	Stderr     string    `json:"stderr,omitempty"`
	Truncated  bool      `json:"truncated,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Validate checks a result before it is published or stored.
func (r *Result) Validate() error {
	var errs []error
	if err := ValidateID("exec_id", r.ExecID); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateID("pc_id", r.PCID); err != nil {
		errs = append(errs, err)
	}
	if !r.State.Valid() || r.State == StatePending || r.State == StateLost {
		errs = append(errs, fmt.Errorf("state %q is not a reportable state", r.State))
	}
	return errors.Join(errs...)
}

// Output streams.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// The OUTPUT stream keeps, per PC, at most OutputChunksPerPC chunks of at
// most MaxOutputChunkBytes each (agents send at most 32 KiB of output a
// chunk; JSON escaping can grow it several times): one PC, hostile or
// chatty, cannot push the others' live output out of the stream.
const (
	MaxOutputChunkBytes = 256 << 10
	OutputChunksPerPC   = 1024
)

// OutputChunk is a piece of live output of one target, published on
// OutputSubject while the script runs.
type OutputChunk struct {
	ExecID string `json:"exec_id"`
	PCID   string `json:"pc_id"`
	Stream string `json:"stream"` // Stdout or Stderr
	Offset int64  `json:"offset"` // bytes of this stream before Data
	Data   string `json:"data"`
}

// Heartbeat tells the server an agent is alive and what it is.
type Heartbeat struct {
	Protocol     int       `json:"protocol"`
	PCID         string    `json:"pc_id"`
	Hostname     string    `json:"hostname"`
	OS           string    `json:"os"`
	OSVersion    string    `json:"os_version,omitempty"`
	Arch         string    `json:"arch"`
	AgentVersion string    `json:"agent_version"`
	Groups       []string  `json:"groups"`
	Interval     Duration  `json:"interval"`
	At           time.Time `json:"at"`
	Running      int       `json:"running"`
	// RunningExecs are the exec_ids of the targets the agent is running
	// (waiting for jitter included), sorted. It is complete when its
	// length is Running: an agent running more than MaxRunningExecs
	// leaves it out, and so do older agents, which the server then judges
	// by the heartbeat's arrival alone (see StateLost).
	RunningExecs []string `json:"running_execs,omitempty"`
	// Stopping is set in the last heartbeat of an agent that shuts down.
	Stopping bool `json:"stopping,omitempty"`
	// RSSBytes is the agent process's resident memory (0: unknown).
	RSSBytes int64 `json:"rss_bytes,omitempty"`
	// CPUPercent is the agent process's CPU use since its previous
	// heartbeat, 100 being one core busy (0: idle or unknown).
	CPUPercent float64 `json:"cpu_percent,omitempty"`
	// Pong answers a ControlPing: its nonce, sent at once.
	Pong string `json:"pong,omitempty"`
	// StopSince is the Since of the emergency stop the agent applies (zero
	// while the stop is off): its acknowledgement of the stop, sent at once
	// when the stop reaches it.
	StopSince time.Time `json:"stop_since,omitzero"`
	// User is who is logged on at the PC: its console's user
	// ("CORP\alice", "alice"), else a remote session's, marked
	// " (remote)"; empty when nobody is or the agent cannot tell. At most
	// MaxUserLen bytes of printable text.
	User string `json:"user,omitempty"`
}

// MaxUserLen bounds Heartbeat.User.
const MaxUserLen = 256

// MaxRunningExecs is the most exec_ids a heartbeat lists in RunningExecs.
const MaxRunningExecs = 256

// Validate checks a heartbeat.
func (h *Heartbeat) Validate() error {
	var errs []error
	if err := ValidateID("pc_id", h.PCID); err != nil {
		errs = append(errs, err)
	}
	for _, g := range h.Groups {
		if err := ValidateID("group", g); err != nil {
			errs = append(errs, err)
		}
	}
	if h.Interval <= 0 {
		errs = append(errs, errors.New("interval must be positive"))
	}
	if len(h.RunningExecs) > MaxRunningExecs {
		errs = append(errs, fmt.Errorf("running_execs lists %d executions; the limit is %d", len(h.RunningExecs), MaxRunningExecs))
	}
	for _, id := range h.RunningExecs {
		if err := ValidateID("running_execs", id); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if len(h.Pong) > 64 {
		errs = append(errs, errors.New("pong is longer than 64 bytes"))
	}
	if len(h.User) > MaxUserLen || !utf8.ValidString(h.User) || strings.ContainsFunc(h.User, unicode.IsControl) {
		errs = append(errs, fmt.Errorf("user must be at most %d bytes of printable UTF-8", MaxUserLen))
	}
	return errors.Join(errs...)
}

// Kill asks agents to kill the process trees of an execution and to drop
// its targets still waiting to start. It is published on KillSubject.
type Kill struct {
	ExecID string `json:"exec_id"`
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}
