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
// the group holds the whole tree unless a process leaves it on purpose,
// and sets its parent-death signal where there is one (Linux).
// cmdLine is a Windows-only setting.
func prepare(cmd *exec.Cmd, cmdLine string) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
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

// identity is what finds the group again after an agent restart. The
// leader cannot have been reaped yet (only Wait reaps it), so its start
// time is its own.
func (t *tree) identity(token string) Tree {
	id := Tree{PGID: t.pgid, Boot: bootID(), Token: token}
	if m, err := procInfo(t.pgid); err == nil && m != nil {
		id.Start = m.start
	}
	return id
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

// KillLeftover kills what is left of the tree t of a run whose agent died
// (see Tree): the processes of its group, once it is sure the group is
// still that tree (see ownsGroup). It returns how many live processes
// the group held; 0 with a nil error means nothing of the tree was left
// running (or its processes could not be told apart from others, which
// are then left alone).
func KillLeftover(t Tree) (int, error) {
	if t.Empty() {
		return 0, nil
	}
	if t.Boot != "" && t.Boot != bootID() {
		return 0, nil // the machine restarted since: the tree is gone
	}
	leader, err := procInfo(t.PGID)
	if err != nil {
		return 0, fmt.Errorf("leftover of process group %d: %w", t.PGID, err)
	}
	members, err := groupMembers(t.PGID)
	if err != nil {
		return 0, fmt.Errorf("leftover of process group %d: %w", t.PGID, err)
	}
	live := liveCount(members)
	if live == 0 || !ownsGroup(t, leader, members, environOf) {
		return 0, nil
	}
	if err := syscall.Kill(-t.PGID, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return 0, nil
		}
		return 0, fmt.Errorf("kill process group %d: %w", t.PGID, err)
	}
	return live, nil
}
