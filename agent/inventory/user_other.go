//go:build !windows && !linux && !darwin

package inventory

// loggedOnUser is not known on other systems.
func loggedOnUser() string { return "" }
