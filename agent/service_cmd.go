package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/kanadehq/kanade/agent/datadir"
	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/service"
)

// Files `service install` copies into the data directory, so that the
// service reads them from a place only it and administrators can read.
const (
	bundleFile = "enrollment-bundle"
	configFile = "agent.toml"
)

const serviceUsage = `usage: kanade-agent service install [flags of a run: --server URL --credentials FILE
                                   [--groups g1,g2] [--data DIR] [--pc-id ID] [--log-level L] [--config FILE]]
       kanade-agent service uninstall|start|stop
       kanade-agent service status [--data DIR]

install registers kanade-agent as the system service "kanade-agent" (Windows: LocalSystem, automatic
delayed start, restarted 10 s after a failure; Linux: a systemd unit; macOS: a launchd daemon). It copies
the credentials file (the enrollment bundle) and the config file into the data directory, readable by
the service only, and the service runs with them. It does not start the service: run
"kanade-agent service start". Run it as root or from an elevated prompt; install from a directory only
administrators can write to (the service runs this very file).
uninstall stops and removes the service; the data directory (the PC's identity, logs) stays.
status prints what "kanade-agent status" prints.
`

// runService is `kanade-agent service …`.
func runService(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, serviceUsage)
		return errors.New("service: missing command")
	}
	cmd, rest := args[0], args[1:]
	noArgs := func() error {
		if len(rest) > 0 {
			return fmt.Errorf("service %s: unexpected argument %q", cmd, rest[0])
		}
		return needAdmin(cmd)
	}
	switch cmd {
	case "install":
		return serviceInstall(rest, stdout, stderr)
	case "uninstall":
		if err := noArgs(); err != nil {
			return err
		}
		if err := service.Uninstall(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "uninstalled the service %s (its data directory is kept)\n", service.Name)
		return nil
	case "start":
		if err := noArgs(); err != nil {
			return err
		}
		if err := service.Start(); errors.Is(err, service.ErrRunning) {
			fmt.Fprintf(stdout, "the service %s is already running\n", service.Name)
			return nil
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "started the service %s; \"kanade-agent status\" shows when it is connected\n", service.Name)
		return nil
	case "stop":
		if err := noArgs(); err != nil {
			return err
		}
		if err := service.Stop(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stopped the service %s\n", service.Name)
		return nil
	case "status":
		return runStatus("kanade-agent service status", rest, stdout, stderr)
	case "run":
		return serviceRun(rest, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, serviceUsage)
		return nil
	}
	fmt.Fprint(stderr, serviceUsage)
	return fmt.Errorf("service: unknown command %q", cmd)
}

// needAdmin refuses early where the answer is known: a system service
// needs root outside Windows (there the service manager says so).
func needAdmin(cmd string) error {
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		return fmt.Errorf("service %s needs root: run it with sudo", cmd)
	}
	return nil
}

// serviceRun is how the service manager starts the agent (the installed
// command line): the agent without a console, logging to its file.
func serviceRun(args []string, stderr io.Writer) error {
	events, err := service.EventLog()
	if err != nil {
		events = nil // the agent's own log file still has everything
	}
	return service.Run(func(ctx context.Context) error {
		cfg, err := loadConfig("kanade-agent service run", args, os.Environ(), stderr)
		if err != nil {
			return err
		}
		return runLogged(ctx, cfg, stderr, false)
	}, events)
}

// installPlan is what `service install` does: the files it copies into
// the data directory and the service's command line.
type installPlan struct {
	Data        string
	Credentials string // absolute path of the given file, copied to DATA/enrollment-bundle
	Config      string // absolute path of the given config file ("" for none), copied to DATA/agent.toml
	Spec        service.Spec
}

// planInstall turns a run's configuration into the installed service:
// absolute paths, and a command line of `service run` with the flags of
// a foreground run pointing at the copies in the data directory. Values
// at their default stay out of it.
func planInstall(cfg config, exe, cwd string) (installPlan, error) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(cwd, p)
	}
	p := installPlan{Data: abs(cfg.Data), Credentials: abs(cfg.Credentials)}
	if cfg.configPath != "" {
		p.Config = abs(cfg.configPath)
	}
	args := slices.Clone(service.RunCommand)
	args = append(args, "--server", cfg.Server, "--credentials", filepath.Join(p.Data, bundleFile), "--data", p.Data)
	if p.Config != "" {
		args = append(args, "--config", filepath.Join(p.Data, configFile))
	}
	if len(cfg.Groups) > 0 {
		args = append(args, "--groups", strings.Join(cfg.Groups, ","))
	}
	if cfg.pcIDSet {
		args = append(args, "--pc-id", cfg.PCID)
	}
	def := defaultConfig()
	if cfg.LogLevel != def.LogLevel {
		args = append(args, "--log-level", cfg.LogLevel)
	}
	if cfg.HeartbeatInterval != def.HeartbeatInterval {
		args = append(args, "--heartbeat", cfg.HeartbeatInterval.D().String())
	}
	p.Spec = service.Spec{Executable: abs(exe), Args: args, DataDir: p.Data}
	return p, p.Spec.Validate()
}

func serviceInstall(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("kanade-agent service install", args, os.Environ(), stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := needAdmin("install"); err != nil {
		return err
	}
	// Refuse a broken bundle before anything is written.
	bundle, err := os.ReadFile(cfg.Credentials)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if enroll.IsEnrollmentFile(bundle) {
		if _, err := enroll.ParseEnrollmentFile(bundle); err != nil {
			return fmt.Errorf("credentials %s: %w", cfg.Credentials, err)
		}
	}
	var conf []byte
	if cfg.configPath != "" {
		if conf, err = os.ReadFile(cfg.configPath); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if err := service.Preflight(); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	if err := service.CheckExecutable(exe); err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	plan, err := planInstall(cfg, exe, cwd)
	if err != nil {
		return err
	}
	changed, err := datadir.Prepare(plan.Data)
	if err != nil {
		return err
	}
	for _, c := range changed {
		fmt.Fprintln(stdout, "tightened:", c)
	}
	// launchd opens the agent's stderr file there before the agent runs.
	if err := os.MkdirAll(filepath.Join(plan.Data, logDir), 0o700); err != nil {
		return err
	}
	if err := copyPrivate(filepath.Join(plan.Data, bundleFile), bundle); err != nil {
		return fmt.Errorf("copy the credentials: %w", err)
	}
	if conf != nil {
		if err := copyPrivate(filepath.Join(plan.Data, configFile), conf); err != nil {
			return fmt.Errorf("copy the config: %w", err)
		}
	}
	start := time.Now()
	notes, err := service.Install(plan.Spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "installed the service %s in %s:\n  %s\n", service.Name, time.Since(start).Round(time.Millisecond),
		strings.Join(append([]string{plan.Spec.Executable}, plan.Spec.Args...), " "))
	for _, n := range notes {
		fmt.Fprintln(stdout, "note:", n)
	}
	fmt.Fprintf(stdout, "credentials copied to %s\nstart it with: kanade-agent service start\n", filepath.Join(plan.Data, bundleFile))
	return nil
}

// copyPrivate writes b to path, readable by the agent's user only (on
// Windows the data directory's ACL applies), replacing it atomically.
func copyPrivate(path string, b []byte) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, b) {
		return os.Chmod(path, 0o600)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
