//go:build !windows && !linux && !darwin

package inventory

// OSVersion is "" here: the heartbeat's os field names the system.
func OSVersion() string { return "" }
