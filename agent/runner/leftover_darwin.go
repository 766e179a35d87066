package runner

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// pinThread is false: macOS has no parent-death signal.
const pinThread = false

func setDeathSignal(*syscall.SysProcAttr) {}

// bootID is empty: start times on macOS are wall-clock times, which a
// later boot does not repeat.
func bootID() string { return "" }

// sZomb is SZOMB (sys/proc.h): a process that exited and waits to be
// reaped.
const sZomb = 5

// startOf is a process's start time in microseconds since 1970.
func startOf(kp *unix.KinfoProc) uint64 {
	tv := kp.Proc.P_starttime
	return uint64(tv.Sec)*1e6 + uint64(tv.Usec)
}

// procInfo reads process pid; nil when there is no such process.
func procInfo(pid int) (*member, error) {
	kps, err := unix.SysctlKinfoProcSlice("kern.proc.pid", pid)
	if err != nil {
		return nil, err
	}
	for i := range kps {
		if int(kps[i].Proc.P_pid) == pid {
			return &member{pid: pid, start: startOf(&kps[i]), zombie: kps[i].Proc.P_stat == sZomb}, nil
		}
	}
	return nil, nil
}

// groupMembers lists the processes of process group pgid.
func groupMembers(pgid int) ([]member, error) {
	kps, err := unix.SysctlKinfoProcSlice("kern.proc.pgrp", pgid)
	if err != nil {
		return nil, err
	}
	out := make([]member, 0, len(kps))
	for i := range kps {
		out = append(out, member{pid: int(kps[i].Proc.P_pid), start: startOf(&kps[i]), zombie: kps[i].Proc.P_stat == sZomb})
	}
	return out, nil
}

// environOf reads the environment pid started with; nil when it cannot
// be read (another user's process).
func environOf(pid int) []string {
	b, err := unix.SysctlRaw("kern.procargs2", pid)
	if err != nil {
		return nil
	}
	return procArgsEnv(b)
}
