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

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/inventory"
	"github.com/kanadehq/kanade/agent/worker"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kanade-agent:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintln(stdout, "kanade-agent", version)
		return nil
	}
	if len(args) > 0 && args[0] == "swarm" {
		return runSwarm(args[1:], stdout, stderr)
	}
	cfg, err := loadConfig(args, os.Environ(), stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log := newLogger(stderr, cfg.LogLevel).With("pc_id", cfg.PCID)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	host, _ := os.Hostname()
	log.Info("kanade-agent starting", "version", version, "server", cfg.Server, "data", cfg.Data)
	id, err := enroll.Setup(ctx, cfg.Server, cfg.Credentials, cfg.Data,
		enroll.Request{PCID: cfg.PCID, Hostname: host, Groups: cfg.Groups}, log)
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
		AgentVersion: version, OSVersion: osVersion(), Tasks: tasks, Trust: trust, Logger: log,
	}
	if cfg.InventoryInterval.D() > 0 {
		wc.Inventory, wc.InventoryInterval = inventory.Collect, cfg.InventoryInterval.D()
	}
	w, err := worker.New(wc)
	if err != nil {
		return err
	}
	log.Info("kanade-agent running", "groups", strings.Join(groups, ","), "own_identity", id.Enrolled)
	return w.Run(ctx, cfg.Server, id.Option)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// osVersion returns a readable OS name where one is cheap to find.
func osVersion() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
