//go:build !linux

package bustest

import "testing"

// Tmpfs skips the test: mounting a volume of its own needs Linux.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	t.Skip("mounting a tmpfs of its own needs Linux (and root)")
	return ""
}

// Fill is not reached: Tmpfs skips first.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	t.Skip("filling a volume needs a tmpfs of its own (Linux)")
	return ""
}
