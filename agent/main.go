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
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/agent/worker"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

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
			return runSwarm(args[1:], stdout, stderr)
		case "service":
			return runService(args[1:], stdout, stderr)
		case "status":
			return runStatus("kanade-agent status", args[1:], stdout, stderr)
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
	return runLogged(ctx, cfg, stderr, true)
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
	err = runAgent(ctx, cfg, log, rec)
	if err != nil {
		rec.Error(err)
		log.Error("kanade-agent stopped", "err", err)
	} else {
		log.Info("kanade-agent stopped")
	}
	rec.Stopped()
	return err
}

// runAgent sets up the agent's identity and runs its worker until ctx
// ends. base has no pc_id attribute: the worker adds its own.
func runAgent(ctx context.Context, cfg config, base *slog.Logger, rec *status.Recorder) error {
	log := base.With("pc_id", cfg.PCID)
	host, _ := os.Hostname()
	log.Info("kanade-agent starting", "version", version, "server", cfg.Server, "data", cfg.Data)
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
		if strings.Join(groups, ",") != strings.Join(id.Groups, ",") && len(groups) > 0 {
			log.Info("groups come from the server's credential, not from the configuration", "configured", strings.Join(groups, ","), "granted", strings.Join(id.Groups, ","))
		}
		groups, tasks = id.Groups, append(tasks, id.Renew)
	}
	wc := worker.Config{
		PCID: cfg.PCID, Hostname: host, Groups: groups, DataDir: cfg.Data,
		HeartbeatInterval: cfg.HeartbeatInterval.D(), OutputCap: int(cfg.OutputCap),
		AgentVersion: version, OSVersion: inventory.OSVersion(), Tasks: tasks, Trust: trust, Logger: base, Status: rec,
	}
	if cfg.InventoryInterval.D() > 0 {
		wc.Inventory, wc.InventoryInterval = inventory.Collect, cfg.InventoryInterval.D()
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
