package inventory

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/kanadehq/kanade/agent/wire"
)

// TestOSVersion: the heartbeat's OS name is this system's, read the
// system's own way (os-release on Linux only).
func TestOSVersion(t *testing.T) {
	got := OSVersion()
	switch runtime.GOOS {
	case "linux":
		b, err := os.ReadFile("/etc/os-release")
		if err != nil {
			t.Skipf("no /etc/os-release here: %v", err)
		}
		want := text(parseOSRelease(string(b))["PRETTY_NAME"])
		if want != "" && got != want {
			t.Errorf("OSVersion() = %q, want os-release's PRETTY_NAME %q", got, want)
		}
	case "windows":
		if !strings.Contains(got, "Windows") || strings.Contains(got, "Linux") {
			t.Errorf("OSVersion() = %q, want a Windows version (never the host's os-release under Wine)", got)
		}
	case "darwin":
		if !strings.HasPrefix(got, "macOS ") {
			t.Errorf("OSVersion() = %q, want macOS and its version", got)
		}
	}
}

// TestFallbackNote: a section filled from its fallback keeps the main
// source's error as a note, and is not a failed section.
func TestFallbackNote(t *testing.T) {
	note := fallbackNote(wire.SectionOS, "the registry", errors.New("Win32_OperatingSystem: error 0x80041010"))
	if want := "os (from the registry): Win32_OperatingSystem: error 0x80041010"; note != want {
		t.Errorf("fallbackNote = %q, want %q", note, want)
	}
	inv := wire.Inventory{Errors: []string{note, "hardware: Win32_BIOS: timeout"}}
	if inv.Failed(wire.SectionOS) || !inv.Failed(wire.SectionHardware) {
		t.Errorf("Failed(os) = %v, Failed(hardware) = %v; want false, true", inv.Failed(wire.SectionOS), inv.Failed(wire.SectionHardware))
	}
}
