//go:build !linux

package main

import (
	"errors"
	"os"
	"syscall"
)

// sysProcAttr: no process groups here; stop signals the child itself.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup interrupts (or kills) p itself.
func signalGroup(p *os.Process, kill bool) error {
	if kill {
		return p.Kill()
	}
	if err := p.Signal(os.Interrupt); err != nil {
		return p.Kill()
	}
	return nil
}

// readProc needs /proc: CPU and memory columns show "–" elsewhere.
func readProc(int) (procSample, error) { return procSample{}, errors.ErrUnsupported }

// raiseFDLimit is a no-op where there is no RLIMIT_NOFILE to raise.
func raiseFDLimit() (uint64, error) { return 0, errors.ErrUnsupported }

// stopProcess cannot stop a process here: interleaved rounds run with
// the other side idle but not stopped.
func stopProcess(int, bool) error { return nil }
