//go:build !windows

package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// stubReason reports interpreters that exist but cannot run scripts; there
// are none known on Unix.
func stubReason(shell, prog string) string { return "" }

// prepare puts the child in a new process group (pgid = its pid), so that
// the group holds the whole tree unless a process leaves it on purpose.
// cmdLine is a Windows-only setting.
func prepare(cmd *exec.Cmd, cmdLine string) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// tree is the process group of one run.
type tree struct {
	pgid int
	proc *os.Process
}

// startTree starts cmd as the leader of a new process group.
func startTree(cmd *exec.Cmd) (*tree, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &tree{pgid: cmd.Process.Pid, proc: cmd.Process}, nil
}

// kill sends SIGKILL to every process in the group. A group that is
// already empty is not an error.
func (t *tree) kill() error {
	err := syscall.Kill(-t.pgid, syscall.SIGKILL)
	if err == nil || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	// At least the main process must go, or Wait would never return.
	if kerr := t.proc.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
		err = errors.Join(err, kerr)
	}
	return fmt.Errorf("kill process group %d: %w", t.pgid, err)
}

// close kills what is left of the group; the group needs no other release.
func (t *tree) close() error { return t.kill() }
