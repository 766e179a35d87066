package inventory

import "golang.org/x/sys/unix"

// OSVersion names the running OS for the heartbeat: "macOS 14.1
// (23B74)", from sysctl (macOS 10.13.4 and later), or "" when unknown.
func OSVersion() string {
	v, err := unix.Sysctl("kern.osproductversion")
	if err != nil || text(v) == "" {
		return ""
	}
	s := "macOS " + text(v)
	if b, err := unix.Sysctl("kern.osversion"); err == nil && text(b) != "" {
		s += " (" + text(b) + ")"
	}
	return s
}
