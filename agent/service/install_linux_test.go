package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	kardianos "github.com/kardianos/service"
)

// TestInstallNeedsSystemd: without systemd, install refuses with the
// reason instead of writing a System V script.
func TestInstallNeedsSystemd(t *testing.T) {
	if p := kardianos.Platform(); p == "linux-systemd" {
		t.Skip("systemd runs here; TestInstallSystemd covers it")
	}
	s := spec
	s.Executable = "/nonexistent/kanade-agent"
	_, err := Install(s)
	if err == nil || !strings.Contains(err.Error(), "systemd is not running here") || !strings.Contains(err.Error(), "under your own init system") {
		t.Fatalf("Install() without systemd = %v", err)
	}
	if err := Preflight(); err == nil || !strings.Contains(err.Error(), "systemd is not running here") {
		t.Fatalf("Preflight() without systemd = %v", err)
	}
	if st := State(); st != "unknown (systemd is not running here (kardianos found "+kardianos.Platform()+"))" {
		t.Errorf("State() without systemd = %q", st)
	}
}

// TestInstallSystemd installs the unit into the running systemd and
// removes it again (it never starts it). It needs root and systemd, and
// leaves a kanade-agent service that is already installed alone.
func TestInstallSystemd(t *testing.T) {
	switch {
	case kardianos.Platform() != "linux-systemd":
		t.Skipf("systemd is not running here (kardianos found %s)", kardianos.Platform())
	case os.Geteuid() != 0:
		t.Skip("installing a systemd unit needs root")
	case State() != "not installed":
		t.Skipf("a %s service is installed here (%s); not touching it", Name, State())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := Spec{Executable: exe, Args: []string{"service", "run", "--server", "nats://127.0.0.1:1", "--credentials", "/nonexistent", "--data", t.TempDir()}, DataDir: t.TempDir()}
	if notes, err := Install(s); err != nil || len(notes) > 0 {
		t.Fatalf("Install() = %v, %v", notes, err)
	}
	defer Uninstall()
	unitPath := filepath.Join("/etc/systemd/system", Name+".service")
	got, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := SystemdUnit(s)
	if string(got) != want {
		t.Errorf("%s differs from SystemdUnit():\n%s", unitPath, got)
	}
	if st := State(); st != "stopped" {
		t.Errorf("State() after install = %q, want stopped", st)
	}
	if _, err := Install(s); err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Errorf("a second Install() = %v, want already installed", err)
	}
	if err := Uninstall(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(unitPath); !os.IsNotExist(err) {
		t.Errorf("the unit is still there after Uninstall (%v)", err)
	}
	if st := State(); st != "not installed" {
		t.Errorf("State() after uninstall = %q", st)
	}
}
