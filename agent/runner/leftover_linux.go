package runner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// pinThread: the parent-death signal is tied to the thread that started
// the child (see execute).
const pinThread = true

// setDeathSignal makes the kernel kill the child when the agent dies, so
// that a script does not run on unattended; what the child started is
// killed by the next agent (KillLeftover).
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// bootID identifies the current boot; start times count from it.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// procInfo reads process pid; nil when there is no such process.
func procInfo(pid int) (*member, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	state, _, start, err := parseProcStat(b)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	return &member{pid: pid, start: start, zombie: exited(state)}, nil
}

// groupMembers lists the processes of process group pgid.
func groupMembers(pgid int) ([]member, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var out []member
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // it ended meanwhile
		}
		state, pgrp, start, err := parseProcStat(b)
		if err == nil && pgrp == pgid {
			out = append(out, member{pid: pid, start: start, zombie: exited(state)})
		}
	}
	return out, nil
}

// exited reports whether a process in state (of /proc/PID/stat) has
// exited: a zombie, or dead.
func exited(state byte) bool { return state == 'Z' || state == 'X' }

// environOf reads the environment pid started with; nil when it cannot
// be read (another user's process, a zombie).
func environOf(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil
	}
	return splitEnviron(b)
}
