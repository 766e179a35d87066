package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kanadehq/kanade/agent/profiling"
	"github.com/kanadehq/kanade/agent/swarm"
)

// runSwarm is `kanade-agent swarm`: many simulated agents in one process.
func runSwarm(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kanade-agent swarm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "nats://127.0.0.1:4222", "NATS URL")
	creds := fs.String("credentials", "", "the server's DATA/agent-credentials (required)")
	count := fs.Int("count", 100, "number of simulated agents")
	seed := fs.Uint64("seed", 1, "random seed (same seed, same fleet)")
	prefix := fs.String("prefix", "swarm", "pc_id prefix")
	groups := fs.String("groups", "canary,wave1,wave2", "groups spread over the agents")
	startPeriod := fs.Duration("start-period", 0, "spread the connects over this long")
	data := fs.String("data", "", "keys and credentials of the simulated agents, kept for the next run on the same directory\n"+
		"(default: a new temporary directory, removed at the end: every run enrolls a new fleet)")
	hb := fs.Duration("heartbeat", 30*time.Second, "heartbeat interval")
	parallel := fs.Int("parallel", 32, "concurrent enrollments")
	latency := fs.Duration("latency", 100*time.Millisecond, "modelled script run time (a script whose first line is \"# swarm: latency=5s jitter=5s\" sets its own)")
	jitter := fs.Duration("latency-jitter", 50*time.Millisecond, "± around the run time")
	failRate := fs.Float64("fail-rate", 0.01, "probability that a script exits 1")
	outBytes := fs.Int("output-bytes", 256, "stdout bytes per run")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *creds == "" {
		return fmt.Errorf("--credentials is required")
	}
	if *failRate < 0 || *failRate > 1 {
		return fmt.Errorf("--fail-rate must be between 0 and 1")
	}
	log := newLogger(stderr, *logLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dataDir := *data
	if dataDir == "" {
		// A directory of this run's own: the identities of an earlier run
		// (against another server, perhaps reset since) are never reused.
		dir, err := os.MkdirTemp("", "kanade-swarm-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	if err := profiling.FromEnv(ctx, log); err != nil {
		return err
	}
	var stats swarm.Stats
	start := time.Now()
	cfg := swarm.Config{
		Server: *server, Credentials: *creds, Count: *count, Seed: *seed, Prefix: *prefix, Groups: splitList(*groups),
		StartPeriod: *startPeriod, DataDir: dataDir, HeartbeatInterval: *hb, Parallel: *parallel, AgentVersion: version,
		Model:  swarm.Model{Latency: *latency, Jitter: *jitter, FailRate: *failRate, OutputBytes: *outBytes},
		Logger: log,
	}
	log.Info("swarm starting", "count", *count, "seed", *seed, "server", *server, "data", dataDir)
	ready := make(chan struct{})
	progressCtx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go progress(progressCtx, stdout, &stats, *count, start, ready)
	return swarm.Run(ctx, cfg, &stats, func() {
		close(ready)
		d := time.Since(start)
		fmt.Fprintf(stdout, "swarm ready: %d agents connected in %s (%.0f/s)\n", *count, d.Round(time.Millisecond), float64(*count)/d.Seconds())
	})
}

// progress prints how many agents are enrolled and connected every few
// seconds until all are connected (ready is closed) or ctx ends.
func progress(ctx context.Context, stdout io.Writer, stats *swarm.Stats, count int, start time.Time, ready <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ready:
			return
		case <-t.C:
			fmt.Fprintf(stdout, "swarm: %d of %d agents connected (%d enrolled) after %s\n",
				stats.Connected.Load(), count, stats.Enrolled.Load(), time.Since(start).Round(time.Second))
		}
	}
}
