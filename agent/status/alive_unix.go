//go:build !windows

package status

import (
	"errors"
	"syscall"
)

// ProcessAlive reports whether a process with this pid exists (signal 0:
// EPERM means it exists but belongs to another user).
func ProcessAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
