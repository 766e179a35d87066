// Command kanade-agent is the kanade endpoint agent: it dials out to NATS,
// runs the commands addressed to its PC and reports the results. It never
// listens on a port.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/datadir"
	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/inventory"
	"github.com/kanadehq/kanade/agent/status"
	"github.com/kanadehq/kanade/agent/update"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/agent/worker"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// fault makes a test build fail right after it counted its start as a
// new version on probation (update rollback tests link it with
// -ldflags "-X main.fault=exit" or "=hang"); empty in every release.
var fault string

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var code exitCode
		if errors.As(err, &code) {
			os.Exit(int(code))
		}
		fmt.Fprintln(os.Stderr, "kanade-agent:", err)
		os.Exit(1)
	}
}

// exitCode ends the process with this code and no message.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "kanade-agent", version)
			return nil
		case "swarm":
			return runSwarm(stderr)
		case "service":
			return runService(args[1:], stdout, stderr)
		case "status":
			return runStatus("kanade-agent status", args[1:], stdout, stderr)
		case update.SelftestCommand:
			return runSelftest(args[1:], stdout, stderr)
		}
	}
	cfg, err := loadConfig("kanade-agent", args, os.Environ(), stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = runLogged(ctx, cfg, stderr, true)
	if r, ok := errors.AsType[*update.Restart](err); ok {
		stop()
		return r.Exec() // a plain process starts its binary again itself
	}
	return err
}

// runLogged prepares the data directory and the log, records the status
// and runs the agent until ctx ends. interactive: a console's run, which
// also logs to stderr.
func runLogged(ctx context.Context, cfg config, stderr io.Writer, interactive bool) error {
	changed, err := datadir.Prepare(cfg.Data)
	if err != nil {
		return err
	}
	log, closeLog, err := openLog(cfg.Data, cfg.LogLevel, stderr, interactive)
	if err != nil {
		return err
	}
	defer closeLog.Close()
	if cfg.dataNote != "" {
		log.Info(cfg.dataNote, "data", cfg.Data)
	}
	for _, c := range changed {
		log.Warn("data directory permissions tightened", "change", c)
	}
	rec := status.NewRecorder(cfg.Data, status.Status{PCID: cfg.PCID, Groups: cfg.Groups, Version: version, Server: cfg.Server,
		HeartbeatInterval: wire.Duration(cfg.HeartbeatInterval.D())}, nil, log)
	err = runAgent(ctx, cfg, log, rec, !interactive)
	if _, ok := errors.AsType[*update.Restart](err); ok {
		log.Info("kanade-agent restarting", "why", err)
	} else if err != nil {
		rec.Error(err)
		log.Error("kanade-agent stopped", "err", err)
	} else {
		log.Info("kanade-agent stopped")
	}
	rec.Stopped()
	return err
}

// runAgent sets up the agent's identity and runs its worker until ctx
// ends. base has no pc_id attribute: the worker adds its own. service: a
// service manager starts the agent again when it exits. It returns an
// *update.Restart when the agent must start again (an update or its
// rollback).
func runAgent(ctx context.Context, cfg config, base *slog.Logger, rec *status.Recorder, service bool) (err error) {
	log := base.With("pc_id", cfg.PCID)
	host, _ := os.Hostname()
	log.Info("kanade-agent starting", "version", version, "server", cfg.Server, "data", cfg.Data)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	up, err := update.Begin(update.Config{DataDir: cfg.Data, Executable: exe, Version: version, Args: cfg.args, Service: service,
		PCID: cfg.PCID, Logger: log})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-up.Restarting():
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		if r := up.Restart(); r != nil {
			err = r
		}
	}()
	switch fault {
	case "exit":
		os.Exit(3)
	case "hang":
		<-ctx.Done()
		return nil
	}
	rec.Phase(status.PhaseEnrolling)
	// Enrollment may wait long for an admin's approval: keep the status
	// fresh meanwhile, so that `status` does not call the agent dead.
	setupCtx, setupDone := context.WithCancel(ctx)
	go keepFresh(setupCtx, rec, cfg.HeartbeatInterval.D())
	id, err := enroll.Setup(ctx, cfg.Server, cfg.Credentials, cfg.Data,
		enroll.Request{PCID: cfg.PCID, Hostname: host, Groups: cfg.Groups}, log)
	setupDone()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	groups := cfg.Groups
	var tasks []func(context.Context, *nats.Conn)
	var trust worker.Trust
	if id.Enrolled {
		trust = id.Keeper
		up.SetTrust(id.Keeper.ReleaseKeys, id.Keeper.Refresh)
		if strings.Join(groups, ",") != strings.Join(id.Groups, ",") && len(groups) > 0 {
			log.Info("groups come from the server's credential, not from the configuration", "configured", strings.Join(groups, ","), "granted", strings.Join(id.Groups, ","))
		}
		groups, tasks = id.Groups, append(tasks, id.Renew)
	}
	wc := worker.Config{
		PCID: cfg.PCID, Hostname: host, Groups: groups, DataDir: cfg.Data,
		HeartbeatInterval: cfg.HeartbeatInterval.D(), OutputCap: int(cfg.OutputCap),
		AgentVersion: version, OSVersion: inventory.OSVersion(), Tasks: tasks, Trust: trust, Logger: base, Status: rec,
		Update: up,
	}
	if cfg.InventoryInterval.D() > 0 {
		wc.Inventory, wc.InventoryInterval = inventory.Collect, cfg.InventoryInterval.D()
		wc.User = inventory.User
	}
	w, err := worker.New(wc)
	if err != nil {
		return err
	}
	rec.Groups(groups)
	rec.Phase(status.PhaseRunning)
	log.Info("kanade-agent running", "groups", strings.Join(groups, ","), "own_identity", id.Enrolled)
	return w.Run(ctx, cfg.Server, id.Option)
}

// keepFresh rewrites the status every interval until ctx ends.
func keepFresh(ctx context.Context, rec *status.Recorder, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rec.Heartbeat()
		}
	}
}
