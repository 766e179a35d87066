package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// sysProcAttr puts a child in its own process group (stopped as a whole)
// and kills it if the bench dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends SIGTERM (or SIGKILL) to p's process group, and
// SIGCONT after SIGTERM: a process stopped for the other side's rounds
// (stopProcess) would not act on SIGTERM until continued.
func signalGroup(p *os.Process, kill bool) error {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		return fmt.Errorf("signal process group %d: %w", p.Pid, err)
	}
	if !kill {
		_ = syscall.Kill(-p.Pid, syscall.SIGCONT)
	}
	return nil
}

// readProc reads a process's CPU time and RSS from /proc.
func readProc(pid int) (procSample, error) {
	at := time.Now()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read proc stat: %w", err)
	}
	ticks, err := parseStatTicks(string(stat))
	if err != nil {
		return procSample{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read proc status: %w", err)
	}
	rss, err := parseVmRSS(string(status))
	if err != nil {
		return procSample{}, err
	}
	hwm, _ := parseStatusKB(string(status), "VmHWM") // optional
	return procSample{At: at, CPU: time.Duration(ticks) * time.Second / clockTicks, RSS: rss, HWM: hwm}, nil
}

// raiseFDLimit raises the soft limit on open files to the hard limit; the
// children inherit it. It returns the new limit.
func raiseFDLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return l.Cur, nil
}

// stopProcess stops (SIGSTOP) or continues (SIGCONT) a process: while one
// side of an interleaved comparison measures, the other side's processes
// are stopped.
func stopProcess(pid int, stop bool) error {
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %v to %d: %w", sig, pid, err)
	}
	return nil
}
