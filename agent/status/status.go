// Package status keeps the running agent's state in DATA/status.json for
// `kanade-agent status`: connected or not and since when, the last error,
// the agent's identity, groups, version and server. The agent rewrites the
// file atomically on every change and heartbeat; a reader tells from
// updated_at and the pid whether the agent still runs.
package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// FileName is the status file in the agent's data directory.
const FileName = "status.json"

// Phases of a running agent.
const (
	PhaseStarting  = "starting"  // reading its configuration and identity
	PhaseEnrolling = "enrolling" // asking the server for a credential (or waiting for approval)
	PhaseRunning   = "running"   // the worker runs (connected or not)
	PhaseStopped   = "stopped"   // the agent stopped cleanly
)

// Status is the content of the status file.
type Status struct {
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Phase     string    `json:"phase"`
	Connected bool      `json:"connected"`
	// Since is when Connected last changed (the start, while never connected).
	Since time.Time `json:"since"`
	// URL is the broker the agent is connected to (of Server's list).
	URL         string    `json:"url,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	PCID        string    `json:"pc_id"`
	Groups      []string  `json:"groups"`
	Version     string    `json:"version"`
	Server      string    `json:"server"`
	// HeartbeatInterval is how often the file is rewritten while the agent runs.
	HeartbeatInterval wire.Duration `json:"heartbeat_interval"`
}

// Recorder writes a running agent's status file. Its methods may be
// called from any goroutine, and on a nil *Recorder (they do nothing).
type Recorder struct {
	path string
	now  func() time.Time
	log  *slog.Logger

	mu      sync.Mutex
	st      Status
	failing bool // the last write failed (logged once until one succeeds)
}

// NewRecorder returns a recorder for dataDir/status.json, starting from
// st (identity, version, server, heartbeat interval). It fills in the pid
// and the start time and writes the file at once. now is the clock (nil:
// time.Now).
func NewRecorder(dataDir string, st Status, now func() time.Time, log *slog.Logger) *Recorder {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := now().UTC()
	st.PID, st.StartedAt, st.Since = os.Getpid(), t, t
	if st.Phase == "" {
		st.Phase = PhaseStarting
	}
	st.Groups = slices.Clone(st.Groups)
	r := &Recorder{path: filepath.Join(dataDir, FileName), now: now, log: log, st: st}
	r.update(func(*Status) {})
	return r
}

// Phase records what the agent is doing.
func (r *Recorder) Phase(p string) { r.update(func(s *Status) { s.Phase = p }) }

// Connected records a (re)connection to url.
func (r *Recorder) Connected(url string) {
	r.update(func(s *Status) {
		if !s.Connected {
			s.Connected, s.Since = true, r.now().UTC()
		}
		s.URL = url
	})
}

// Disconnected records a lost connection; err (may be nil) is why.
func (r *Recorder) Disconnected(err error) {
	r.update(func(s *Status) {
		if s.Connected {
			s.Connected, s.Since = false, r.now().UTC()
		}
		s.URL = ""
		if err != nil {
			s.LastError, s.LastErrorAt = err.Error(), r.now().UTC()
		}
	})
}

// Error records the agent's last error (a refused credential, a failed
// reconnect, an enrollment refusal); nil does nothing.
func (r *Recorder) Error(err error) {
	if err == nil {
		return
	}
	r.update(func(s *Status) { s.LastError, s.LastErrorAt = err.Error(), r.now().UTC() })
}

// Groups records the agent's current groups.
func (r *Recorder) Groups(groups []string) {
	r.update(func(s *Status) { s.Groups = slices.Clone(groups) })
}

// Heartbeat records that the agent is alive.
func (r *Recorder) Heartbeat() { r.update(func(*Status) {}) }

// Stopped records a clean stop.
func (r *Recorder) Stopped() {
	r.update(func(s *Status) {
		if s.Connected {
			s.Connected, s.Since = false, r.now().UTC()
		}
		s.Phase, s.URL = PhaseStopped, ""
	})
}

// Snapshot returns the status as last recorded.
func (r *Recorder) Snapshot() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.st
	s.Groups = slices.Clone(s.Groups)
	return s
}

func (r *Recorder) update(change func(*Status)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	change(&r.st)
	r.st.UpdatedAt = r.now().UTC()
	err := writeAtomic(r.path, r.st)
	switch {
	case err != nil && !r.failing:
		r.failing = true
		r.log.Warn("cannot write the status file; `kanade-agent status` will show it stale", "path", r.path, "err", err)
	case err == nil && r.failing:
		r.failing = false
		r.log.Info("the status file is written again", "path", r.path)
	}
}

// writeAtomic replaces path with st's JSON, readable by the agent's user
// only: a reader sees the old or the new file, never half of one.
func writeAtomic(path string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), FileName+".*.tmp")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o600)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
	}
	return werr
}

// Read reads the status file in dataDir.
func Read(dataDir string) (Status, error) {
	path := filepath.Join(dataDir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return Status{}, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return Status{}, fmt.Errorf("%s: %w", path, err)
	}
	if s.UpdatedAt.IsZero() {
		return Status{}, fmt.Errorf("%s: no updated_at", path)
	}
	return s, nil
}

// DefaultHeartbeat is assumed for a status file without an interval.
const DefaultHeartbeat = 30 * time.Second

// staleSlack is added to two heartbeat intervals before a status counts
// as stale: a heartbeat waits up to 10 % longer than the interval, and
// a busy machine may write late.
const staleSlack = 10 * time.Second

// ErrNotRunning is wrapped by Live's error.
var ErrNotRunning = errors.New("agent not running")

// Live reports whether s comes from an agent that still runs at now: it
// did not stop, its process exists (alive; nil means ProcessAlive) and it
// wrote the file within about two heartbeat intervals. The error says
// why not ("agent not running (status last written …)").
func (s Status) Live(now time.Time, alive func(pid int) bool) error {
	if alive == nil {
		alive = ProcessAlive
	}
	hb := s.HeartbeatInterval.D()
	if hb <= 0 {
		hb = DefaultHeartbeat
	}
	written := Stamp(s.UpdatedAt, now)
	switch {
	case s.Phase == PhaseStopped:
		return fmt.Errorf("%w (it stopped at %s)", ErrNotRunning, written)
	case s.PID <= 0 || !alive(s.PID):
		return fmt.Errorf("%w (status last written %s; process %d is gone)", ErrNotRunning, written, s.PID)
	case now.Sub(s.UpdatedAt) > 2*hb+staleSlack:
		return fmt.Errorf("%w (status last written %s, more than two heartbeats of %s ago)", ErrNotRunning, written, hb)
	}
	return nil
}

// Stamp formats t with how long before now it was.
func Stamp(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return t.Format(time.RFC3339) + " (ahead of this clock)"
	case d < time.Second:
		return t.Format(time.RFC3339) + " (just now)"
	case d < time.Hour:
		return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), d.Round(time.Second))
	}
	return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), d.Round(time.Minute))
}
