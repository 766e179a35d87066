package status

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

// clock is an injected clock the tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)} }

func TestRecorder(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	start := c.t
	r := NewRecorder(dir, Status{PCID: "pc1", Groups: []string{"canary"}, Version: "v1", Server: "tls://broker:4222",
		HeartbeatInterval: wire.Duration(30 * time.Second)}, c.now, nil)
	read := func() Status {
		t.Helper()
		s, err := Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r.Snapshot(), s); diff != "" {
			t.Fatalf("the file differs from the recorder (-recorder +file):\n%s", diff)
		}
		return s
	}
	s := read()
	if s.PID != os.Getpid() || s.Phase != PhaseStarting || s.Connected || !s.StartedAt.Equal(start) || !s.Since.Equal(start) {
		t.Fatalf("first status = %+v", s)
	}

	c.advance(time.Second)
	r.Phase(PhaseRunning)
	c.advance(time.Second)
	r.Connected("tls://broker:4222")
	connectedAt := c.t
	c.advance(time.Second)
	r.Connected("tls://broker:4222") // a second connect keeps the first time
	if s = read(); !s.Connected || !s.Since.Equal(connectedAt) || s.URL != "tls://broker:4222" || s.Phase != PhaseRunning {
		t.Fatalf("after connecting: %+v", s)
	}

	c.advance(time.Minute)
	r.Heartbeat()
	if s = read(); !s.UpdatedAt.Equal(c.t) || !s.Since.Equal(connectedAt) {
		t.Fatalf("a heartbeat wrote updated_at %v since %v, want %v and %v", s.UpdatedAt, s.Since, c.t, connectedAt)
	}

	c.advance(time.Second)
	r.Disconnected(errors.New("read tcp: connection reset by peer"))
	lostAt := c.t
	c.advance(time.Second)
	r.Error(errors.New("nats: authorization violation"))
	r.Error(nil) // nothing
	if s = read(); s.Connected || !s.Since.Equal(lostAt) || s.URL != "" || s.LastError != "nats: authorization violation" || !s.LastErrorAt.Equal(c.t) {
		t.Fatalf("after losing the connection: %+v", s)
	}

	r.Groups([]string{"canary", "wave1"})
	if s = read(); strings.Join(s.Groups, ",") != "canary,wave1" {
		t.Fatalf("groups = %v", s.Groups)
	}

	r.Stopped()
	if s = read(); s.Phase != PhaseStopped || s.Connected {
		t.Fatalf("after stopping: %+v", s)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(matches) > 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(filepath.Join(dir, FileName)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("status file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
		}
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	r.Phase(PhaseRunning)
	r.Connected("nats://x")
	r.Disconnected(errors.New("x"))
	r.Error(errors.New("x"))
	r.Groups(nil)
	r.Heartbeat()
	r.Stopped()
}

// TestRecorderUnwritable: a status file that cannot be written does not
// stop the agent; writes succeed again once the directory is back.
func TestRecorderUnwritable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	r := NewRecorder(dir, Status{PCID: "pc1"}, newClock().now, nil)
	if _, err := Read(dir); err == nil {
		t.Fatal("a status file appeared in a directory that does not exist")
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r.Heartbeat()
	if s, err := Read(dir); err != nil || s.PCID != "pc1" {
		t.Fatalf("Read after the directory came back = %+v, %v", s, err)
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name, content string
		wantErr       bool
	}{
		{"good", `{"pid": 7, "updated_at": "2026-12-01T09:00:00Z", "pc_id": "pc1", "heartbeat_interval": "10s"}`, false},
		{"not json", `{"pid": 7,`, true},
		{"no updated_at", `{"pid": 7}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Read(dir)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Read() = %+v, %v; want error %v", s, err, tt.wantErr)
			}
			if err == nil && (s.PID != 7 || s.HeartbeatInterval.D() != 10*time.Second) {
				t.Errorf("Read() = %+v", s)
			}
		})
	}
	if _, err := Read(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read() of an empty directory = %v, want ErrNotExist", err)
	}
}

func TestLive(t *testing.T) {
	now := newClock().t
	alive := func(pid int) bool { return pid == 100 }
	base := Status{PID: 100, Phase: PhaseRunning, UpdatedAt: now.Add(-40 * time.Second), HeartbeatInterval: wire.Duration(30 * time.Second)}
	tests := []struct {
		name   string
		change func(*Status)
		want   string // "" = live
	}{
		{"fresh", func(*Status) {}, ""},
		{"just within two heartbeats and the slack", func(s *Status) { s.UpdatedAt = now.Add(-70 * time.Second) }, ""},
		{"stale", func(s *Status) { s.UpdatedAt = now.Add(-71 * time.Second) }, "status last written 2026-12-01T08:58:49Z (1m11s ago), more than two heartbeats of 30s ago"},
		{"stale, default heartbeat", func(s *Status) { s.HeartbeatInterval = 0; s.UpdatedAt = now.Add(-2 * time.Minute) }, "more than two heartbeats of 30s ago"},
		{"short heartbeat", func(s *Status) { s.HeartbeatInterval = wire.Duration(5 * time.Second) }, "more than two heartbeats of 5s ago"},
		{"process gone", func(s *Status) { s.PID = 101 }, "process 101 is gone"},
		{"no pid", func(s *Status) { s.PID = 0 }, "process 0 is gone"},
		{"stopped", func(s *Status) { s.Phase = PhaseStopped }, "it stopped at 2026-12-01T08:59:20Z (40s ago)"},
		{"enrolling", func(s *Status) { s.Phase = PhaseEnrolling }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.change(&s)
			err := s.Live(now, alive)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Live() = %v, want live", err)
				}
				return
			}
			if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "agent not running (") {
				t.Fatalf("Live() = %v, want agent not running (… %s …)", err, tt.want)
			}
		})
	}
}

func TestProcessAlive(t *testing.T) {
	if !ProcessAlive(os.Getpid()) {
		t.Error("ProcessAlive(own pid) = false")
	}
	if ProcessAlive(0x7ffffff0) {
		t.Error("ProcessAlive(a pid that cannot exist) = true")
	}
}

func TestReportWrite(t *testing.T) {
	now := newClock().t
	alive := func(pid int) bool { return pid == 100 }
	running := Status{PID: 100, Phase: PhaseRunning, UpdatedAt: now.Add(-5 * time.Second), Connected: true,
		Since: now.Add(-3 * time.Hour), URL: "tls://broker:4222", PCID: "pc1", Groups: []string{"canary", "wave1"},
		Version: "v1.2.0", Server: "tls://broker:4222", HeartbeatInterval: wire.Duration(30 * time.Second)}
	tests := []struct {
		name     string
		report   Report
		wantCode int
		want     string
	}{
		{"connected", Report{Service: "running", Status: running}, ExitConnected, `service:    running
agent:      running (pid 100, status written 2026-12-01T08:59:55Z (5s ago))
connected:  yes, to tls://broker:4222 since 2026-12-01T06:00:00Z (3h0m0s ago)
last error: none
pc_id:      pc1
groups:     canary,wave1
version:    v1.2.0
server:     tls://broker:4222
data:       /var/lib/kanade
`},
		{"not connected, with an error", Report{Status: func() Status {
			s := running
			s.Connected, s.URL, s.Since = false, "", now.Add(-10*time.Minute)
			s.LastError, s.LastErrorAt = "nats: authorization violation", now.Add(-20*time.Second)
			return s
		}()}, ExitNotConnected, `agent:      running (pid 100, status written 2026-12-01T08:59:55Z (5s ago))
connected:  no, since 2026-12-01T08:50:00Z (10m0s ago)
last error: nats: authorization violation (2026-12-01T08:59:40Z (20s ago))
pc_id:      pc1
groups:     canary,wave1
version:    v1.2.0
server:     tls://broker:4222
data:       /var/lib/kanade
`},
		{"stale", Report{Service: "stopped", Status: func() Status { s := running; s.UpdatedAt = now.Add(-2 * time.Hour); return s }()}, ExitNotRunning, `service:    stopped
agent:      agent not running (status last written 2026-12-01T07:00:00Z (2h0m0s ago), more than two heartbeats of 30s ago)
connected:  no
last error: none
pc_id:      pc1
groups:     canary,wave1
version:    v1.2.0
server:     tls://broker:4222
data:       /var/lib/kanade
`},
		{"no status file", Report{Service: "not installed", ReadErr: os.ErrNotExist}, ExitNotRunning, `service:    not installed
agent:      no status in /var/lib/kanade (the agent never ran with this data directory, or it is not readable: file does not exist)
data:       /var/lib/kanade
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			r := tt.report
			r.Now, r.Alive, r.DataDir = now, alive, "/var/lib/kanade"
			if code := r.Write(&b); code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}
