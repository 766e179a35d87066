// Package service installs and controls kanade-agent as an operating
// system service (the Windows Service Control Manager, a systemd unit, a
// launchd daemon) through github.com/kardianos/service, and runs the
// agent under the Windows service manager. The systemd unit and the
// launchd plist are rendered here (pure and tested) and handed to
// kardianos as its custom templates; kardianos writes them, enables and
// controls the service.
package service

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	kardianos "github.com/kardianos/service"
)

// The service's names.
const (
	Name        = "kanade-agent"
	DisplayName = "kanade agent"
	Description = "kanade endpoint agent: runs the scripts kanade sends to this PC and reports their results."
)

// RunCommand are the first arguments of the installed service's command
// line: they make kanade-agent run as the service whatever it detects
// (under Wine a Windows service cannot tell it is one).
var RunCommand = []string{"service", "run"}

// Timings the service managers are given.
const (
	// RestartDelay is how long a service manager waits before it starts
	// a failed agent again.
	RestartDelay = 10 * time.Second
	// StopTimeout bounds a stop: the agent stops its running scripts,
	// reports them and sends what its outbox holds in less; after it the
	// service manager kills what is left.
	StopTimeout = 30 * time.Second
)

// Spec is the installed service's command line.
type Spec struct {
	// Executable is the absolute path of kanade-agent.
	Executable string
	// Args follow the executable (RunCommand, then the flags of a run).
	Args []string
	// DataDir is the agent's data directory (launchd writes the agent's
	// stderr below it).
	DataDir string
}

// Validate refuses a command line a service manager would mangle.
func (s Spec) Validate() error {
	if !filepath.IsAbs(s.Executable) {
		return fmt.Errorf("executable %q: not an absolute path", s.Executable)
	}
	if !filepath.IsAbs(s.DataDir) {
		return fmt.Errorf("data directory %q: not an absolute path", s.DataDir)
	}
	for _, a := range append([]string{s.Executable, s.DataDir}, s.Args...) {
		switch {
		case strings.ContainsAny(a, "\x00\r\n"):
			return fmt.Errorf("argument %q: contains a line break or NUL", a)
		case strings.Contains(a, "{{") || strings.Contains(a, "}}"):
			// kardianos renders the unit and the plist as templates.
			return fmt.Errorf("argument %q: contains {{ or }}", a)
		}
	}
	return nil
}

// platformError says this system has no service manager kanade-agent
// installs into, with a hint for install.
type platformError struct{ msg, hint string }

func (e *platformError) Error() string { return e.msg }

// withHint adds a platformError's hint to err.
func withHint(err error) error {
	var pe *platformError
	if errors.As(err, &pe) {
		return fmt.Errorf("%w: %s", err, pe.hint)
	}
	return err
}

// ErrNotInstalled says the service is not installed.
var ErrNotInstalled = kardianos.ErrNotInstalled

// program is the kardianos.Interface of a service this process only
// installs or controls (the agent runs through Run, not kardianos).
type program struct{}

func (program) Start(kardianos.Service) error { return nil }
func (program) Stop(kardianos.Service) error  { return nil }

// open returns the kardianos service; spec is needed to install only.
func open(spec *Spec) (kardianos.Service, error) {
	if err := checkPlatform(); err != nil {
		return nil, err
	}
	c := &kardianos.Config{Name: Name, DisplayName: DisplayName, Description: Description, Option: kardianos.KeyValue{}}
	if spec != nil {
		if err := spec.Validate(); err != nil {
			return nil, err
		}
		c.Executable, c.Arguments = spec.Executable, spec.Args
		if err := configure(c, *spec); err != nil {
			return nil, err
		}
	}
	return kardianos.New(program{}, c)
}

// Preflight checks that the service can be installed here and is not
// installed yet (Install checks again).
func Preflight() error {
	s, err := open(nil)
	if err != nil {
		return withHint(err)
	}
	return notInstalled(s)
}

func notInstalled(s kardianos.Service) error {
	switch st, err := s.Status(); {
	case errors.Is(err, kardianos.ErrNotInstalled):
		return nil
	case err != nil:
		return fmt.Errorf("query the service %s: %w", Name, explain(err))
	default:
		return fmt.Errorf("the service %s is already installed (%s): run `kanade-agent service uninstall` first", Name, describe(st, nil))
	}
}

// Install registers the service (it does not start it); notes say what
// this service manager could not set. An installed service is refused:
// uninstall it first.
func Install(spec Spec) (notes []string, err error) {
	s, err := open(&spec)
	if err != nil {
		return nil, withHint(err)
	}
	if err := notInstalled(s); err != nil {
		return nil, err
	}
	if err := s.Install(); err != nil {
		return nil, fmt.Errorf("install the service %s: %w", Name, explain(err))
	}
	notes, err = afterInstall()
	if err != nil {
		_ = s.Uninstall()
		return notes, fmt.Errorf("install the service %s: %w", Name, explain(err))
	}
	return notes, nil
}

// Uninstall stops the service if it runs and removes it.
func Uninstall() error {
	s, err := open(nil)
	if err != nil {
		return err
	}
	st, err := s.Status()
	if errors.Is(err, kardianos.ErrNotInstalled) {
		return fmt.Errorf("the service %s is not installed", Name)
	}
	if st == kardianos.StatusRunning {
		if err := stop(s); err != nil {
			return err
		}
	}
	if err := s.Uninstall(); err != nil {
		return fmt.Errorf("uninstall the service %s: %w", Name, explain(err))
	}
	return nil
}

// ErrRunning is Start's answer when the service already runs.
var ErrRunning = errors.New("the service is already running")

// Start starts the installed service.
func Start() error {
	s, err := open(nil)
	if err != nil {
		return err
	}
	switch st, err := s.Status(); {
	case errors.Is(err, kardianos.ErrNotInstalled):
		return fmt.Errorf("the service %s is not installed: run `kanade-agent service install` first", Name)
	case err == nil && st == kardianos.StatusRunning:
		return ErrRunning
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("start the service %s: %w", Name, explain(err))
	}
	return nil
}

// Stop stops the service and waits (at most StopTimeout and a little)
// until it has.
func Stop() error {
	s, err := open(nil)
	if err != nil {
		return err
	}
	if _, err := s.Status(); errors.Is(err, kardianos.ErrNotInstalled) {
		return fmt.Errorf("the service %s is not installed", Name)
	}
	return stop(s)
}

func stop(s kardianos.Service) error {
	done := make(chan error, 1)
	go func() { done <- s.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("stop the service %s: %w", Name, explain(err))
		}
		return nil
	case <-time.After(StopTimeout + 15*time.Second):
		return fmt.Errorf("stop the service %s: it did not stop within %s", Name, StopTimeout+15*time.Second)
	}
}

// State describes the service's state: "running", "stopped", "not
// installed", or "unknown (why)".
func State() string {
	s, err := open(nil)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return describe(s.Status())
}

func describe(st kardianos.Status, err error) string {
	switch {
	case errors.Is(err, kardianos.ErrNotInstalled):
		return "not installed"
	case err != nil:
		return "unknown (" + explain(err).Error() + ")"
	case st == kardianos.StatusRunning:
		return "running"
	case st == kardianos.StatusStopped:
		return "stopped"
	}
	return "unknown"
}
