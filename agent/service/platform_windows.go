package service

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	kardianos "github.com/kardianos/service"
	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc/mgr"
)

// resetPeriod is how long the service must run without failing before
// the Service Control Manager counts its failures from zero again.
const resetPeriod = 24 * time.Hour

// Recovery are the recovery actions of the service: restart after
// RestartDelay on the first, second and every later failure.
var Recovery = []mgr.RecoveryAction{
	{Type: mgr.ServiceRestart, Delay: RestartDelay},
	{Type: mgr.ServiceRestart, Delay: RestartDelay},
	{Type: mgr.ServiceRestart, Delay: RestartDelay},
}

func checkPlatform() error { return nil }

// configure: LocalSystem (no user name), started automatically at boot.
// The delayed start and the recovery actions are set by afterInstall.
func configure(c *kardianos.Config, _ Spec) error {
	c.Option["StartType"] = kardianos.ServiceStartAutomatic
	return nil
}

// afterInstall makes the start delayed (after the other automatic
// services), sets the three recovery actions (kardianos sets one at
// most) and makes them apply also when the agent reports a stop with an
// error rather than crashing. A service manager that does not know one
// of these settings (Wine's answers ERROR_INVALID_LEVEL) gets a note
// instead of a failed install; Windows knows them all.
func afterInstall() ([]string, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, err
	}
	defer m.Disconnect()
	s, err := m.OpenService(Name)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var notes []string
	unsupported := func(what string, err error) error {
		if errors.Is(err, windows.ERROR_INVALID_LEVEL) {
			notes = append(notes, "this service manager does not support "+what+"; left out")
			return nil
		}
		if err != nil {
			return fmt.Errorf("set %s: %w", what, err)
		}
		return nil
	}
	delayed := windows.SERVICE_DELAYED_AUTO_START_INFO{IsDelayedAutoStartUp: 1}
	if err := unsupported("a delayed automatic start", windows.ChangeServiceConfig2(s.Handle,
		windows.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, (*byte)(unsafe.Pointer(&delayed)))); err != nil {
		return notes, err
	}
	if err := unsupported("recovery actions", s.SetRecoveryActions(Recovery, uint32(resetPeriod.Seconds()))); err != nil {
		return notes, err
	}
	if err := unsupported("recovery actions on a stop with an error", s.SetRecoveryActionsOnNonCrashFailures(true)); err != nil {
		return notes, err
	}
	return notes, nil
}

// explain adds what to do about a refused service manager call.
func explain(err error) error {
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return fmt.Errorf("%w (run it from an elevated prompt: Run as Administrator)", err)
	}
	return err
}
