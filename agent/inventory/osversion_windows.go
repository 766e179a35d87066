package inventory

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// OSVersion names the running OS for the heartbeat from the registry's
// CurrentVersion key: "Windows 11 Pro 23H2 (build 22631.2715)"; when the
// key cannot be read, from RtlGetVersion: "Windows 10.0.22631".
func OSVersion() string {
	if cv, err := readCurrentVersion(); err == nil {
		if v := windowsVersion(cv); v != "" {
			return v
		}
	}
	v := windows.RtlGetVersion()
	if v == nil || v.MajorVersion == 0 {
		return ""
	}
	return fmt.Sprintf("Windows %d.%d.%d", v.MajorVersion, v.MinorVersion, v.BuildNumber)
}
