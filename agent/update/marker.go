package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// MaxStarts is how many times a new version may start without reaching
// the broker: the next start puts the previous binary back.
const MaxStarts = 3

// Marker is DATA/update/marker.json: an update in flight. The agent
// writes it before it swaps the binaries; every start of either version
// reads it (and the new version counts its starts in it) until the
// outcome is reported.
type Marker struct {
	ExecID string `json:"exec_id"`
	From   string `json:"from"` // the version that was running
	To     string `json:"to"`   // the version swapped in
	// Executable is the agent's binary; Previous is the binary of From,
	// kept beside it (same volume: a rename) until To is confirmed.
	Executable     string        `json:"executable"`
	Previous       string        `json:"previous"`
	PreviousSHA256 string        `json:"previous_sha256"`
	Window         wire.Duration `json:"window"`
	SwappedAt      time.Time     `json:"swapped_at"`
	// FirstStart is To's first start: its window runs from there, so a
	// restart delay of the service manager does not eat into it.
	FirstStart time.Time `json:"first_start,omitzero"`
	// Starts counts To's starts.
	Starts int `json:"starts"`
	// Outcome is why the update failed, set before the previous binary
	// is put back; the version that runs next reports it.
	Outcome string `json:"outcome,omitempty"`
}

// step is what a start does about a marker.
type step int

const (
	// stepWatch: the new version runs; it must connect before the
	// deadline.
	stepWatch step = iota + 1
	// stepRollBack: the new version runs but used up its starts or its
	// window (or a rollback was under way): put the previous one back.
	stepRollBack
	// stepReport: the previous version runs again (or the swap never
	// happened): report the failure once connected.
	stepReport
)

// decide says what a start of version running does about m (whose start
// is already counted in Starts), and why. reason is the failure to report
// (stepRollBack, stepReport).
func decide(m Marker, running string, now time.Time) (s step, reason string) {
	switch running {
	case m.To:
		switch {
		case m.Outcome != "":
			return stepRollBack, m.Outcome
		case m.Starts > MaxStarts:
			return stepRollBack, fmt.Sprintf("%s: version %s stopped %d times before it reached the broker", wire.UpdateRolledBack, m.To, m.Starts-1)
		case !m.FirstStart.IsZero() && now.After(m.FirstStart.Add(m.Window.D())):
			return stepRollBack, noConnection(m.Window.D())
		}
		return stepWatch, ""
	case m.From:
		switch {
		case m.Outcome != "":
			return stepReport, m.Outcome
		case m.Starts > 0:
			return stepReport, fmt.Sprintf("%s: version %s runs again, not %s (put back by hand?)", wire.UpdateRolledBack, m.From, m.To)
		}
		return stepReport, fmt.Sprintf("%s: the agent stopped before version %s was in place", wire.UpdateSwapFailed, m.To)
	}
	return stepReport, fmt.Sprintf("%s: version %s runs, neither %s nor %s (replaced by hand?)", wire.UpdateSwapFailed, running, m.From, m.To)
}

// noConnection is the reason of a rollback after the window ran out.
func noConnection(window time.Duration) string {
	return wire.UpdateRolledBack + ": no connection within " + shortDuration(window)
}

// shortDuration writes 2m instead of 2m0s.
func shortDuration(d time.Duration) string {
	switch {
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// markerPath is the marker's file in the update directory.
func markerPath(dir string) string { return filepath.Join(dir, "marker.json") }

// readMarker reads the marker; ok is false when there is none. A marker
// that cannot be read is an error: an update is in flight and nobody can
// tell which.
func readMarker(dir string) (m Marker, ok bool, err error) {
	b, err := os.ReadFile(markerPath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("update marker: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false, fmt.Errorf("update marker %s: %w", markerPath(dir), err)
	}
	if m.ExecID == "" || m.From == "" || m.To == "" || m.Executable == "" {
		return m, false, fmt.Errorf("update marker %s: incomplete", markerPath(dir))
	}
	return m, true, nil
}

// writeMarker stores the marker durably (a new file renamed over the old
// one, both synced).
func writeMarker(dir string, m Marker) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFileSync(markerPath(dir), b)
}

// removeMarker ends the update in flight.
func removeMarker(dir string) error {
	if err := os.Remove(markerPath(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("update marker: %w", err)
	}
	return syncDir(dir)
}

// writeFileSync writes b to path through a temporary file that is synced
// and renamed over it; the directory is synced too.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
