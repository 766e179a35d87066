// Command kanade-swarm is the load simulator: many simulated agents in one
// process (package swarm), for `make bench` and load tests. It is a binary
// of its own so that the production agent does not carry it; `make build`
// writes it as bin/kanade-swarm.
//
//	kanade-swarm --server nats://127.0.0.1:4222 --credentials DATA/agent-credentials --count 1000 [--seed 1] [--groups …]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kanadehq/kanade/agent/swarm"
	"github.com/kanadehq/kanade/app/profiling"
)

// version is set at build time with -ldflags "-X main.version=…"; the
// simulated agents report it as their agent version.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "kanade-swarm:", err)
		os.Exit(1)
	}
}

// run parses the flags and runs the swarm until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kanade-swarm", flag.ContinueOnError)
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
	updateFail := fs.Float64("update-fail", 0, "probability that an update's simulated trial run fails (\"trial run failed: …\")")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *creds == "" {
		return fmt.Errorf("--credentials is required")
	}
	if *failRate < 0 || *failRate > 1 {
		return fmt.Errorf("--fail-rate must be between 0 and 1")
	}
	if *updateFail < 0 || *updateFail > 1 {
		return fmt.Errorf("--update-fail must be between 0 and 1")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
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
		Model:          swarm.Model{Latency: *latency, Jitter: *jitter, FailRate: *failRate, OutputBytes: *outBytes},
		UpdateFailRate: *updateFail, Logger: log,
	}
	log.Info("swarm starting", "count", *count, "seed", *seed, "server", *server, "data", dataDir)
	ready := make(chan struct{})
	progressCtx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go progress(progressCtx, stdout, &stats, *count, start, ready)
	err := swarm.Run(ctx, cfg, &stats, func() {
		close(ready)
		d := time.Since(start)
		fmt.Fprintf(stdout, "swarm ready: %d agents connected in %s (%.0f/s)\n", *count, d.Round(time.Millisecond), float64(*count)/d.Seconds())
	})
	stopProgress()
	printRuns(stdout, &stats)
	return err
}

// progress prints how many agents are enrolled and connected every few
// seconds until all are connected (ready is closed). Then, until ctx
// ends, it follows connection losses: when agents lose their connection
// it prints "swarm lost", and once all are connected again and once all
// have caught up since, "swarm reconnected" and "swarm caught up", with
// the time since the first loss and the connection errors meanwhile.
func progress(ctx context.Context, stdout io.Writer, stats *swarm.Stats, count int, start time.Time, ready <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
waitReady:
	for {
		select {
		case <-ctx.Done():
			return
		case <-ready:
			break waitReady
		case <-t.C:
			fmt.Fprintf(stdout, "swarm: %d of %d agents connected (%d enrolled) after %s\n",
				stats.Connected.Load(), count, stats.Enrolled.Load(), time.Since(start).Round(time.Second))
		}
	}
	t.Stop()
	watch := time.NewTicker(swarm.CaughtUpEvery)
	defer watch.Stop()
	var lostAt, reportedAt time.Time
	var errs0 int64
	reconnected := false
	updates, updatesAt := updateLine(stats), time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-watch.C:
		}
		// Updates under way: a line a second while the figures change
		// (kanade-bench -update reads them).
		if u := updateLine(stats); u != updates && time.Since(updatesAt) >= time.Second {
			updates, updatesAt = u, time.Now()
			fmt.Fprintln(stdout, u)
		}
		connected, caughtUp := stats.Connected.Load(), stats.CaughtUp.Load()
		if !lostAt.IsZero() && time.Since(reportedAt) >= 5*time.Second {
			reportedAt = time.Now()
			fmt.Fprintf(stdout, "swarm: %d of %d agents connected, %d caught up, %d connection errors, %s after the first loss\n",
				connected, count, caughtUp, stats.ConnErrors.Load()-errs0, time.Since(lostAt).Round(time.Second))
		}
		switch {
		case lostAt.IsZero() && connected < int64(count):
			lostAt, errs0, reconnected = time.Now(), stats.ConnErrors.Load(), false
			reportedAt = lostAt
			fmt.Fprintf(stdout, "swarm lost: %d of %d agents disconnected\n", int64(count)-connected, count)
		case !lostAt.IsZero() && !reconnected && connected == int64(count):
			reconnected = true
			fmt.Fprintf(stdout, "swarm reconnected: %d agents connected again %s after the first loss (%d connection errors meanwhile)\n",
				count, time.Since(lostAt).Round(time.Millisecond), stats.ConnErrors.Load()-errs0)
			fmt.Fprintf(stdout, "swarm connection errors so far: %s\n", errorKinds(stats.ErrorKinds()))
		case reconnected && caughtUp == int64(count):
			fmt.Fprintf(stdout, "swarm caught up: %d agents caught up %s after the first loss\n",
				count, time.Since(lostAt).Round(time.Millisecond))
			lostAt, reconnected = time.Time{}, false
		}
	}
}

// updateLine is the "swarm updates:" progress line.
func updateLine(stats *swarm.Stats) string {
	return fmt.Sprintf("swarm updates: %d downloading, %d peak, %d downloaded, %d updated, %d failed",
		stats.Downloading.Load(), stats.DownloadPeak.Load(), stats.Downloaded.Load(), stats.Updated.Load(), stats.UpdateFailed.Load())
}

// errorKinds lists error counts by kind, most frequent first.
func errorKinds(kinds map[string]int64) string {
	keys := slices.SortedFunc(maps.Keys(kinds), func(a, b string) int {
		if kinds[a] != kinds[b] {
			return int(kinds[b] - kinds[a])
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d × %q", kinds[k], k))
	}
	return strings.Join(parts, ", ")
}

// printRuns prints how often the model ran each script, in the order of
// the scripts, as "swarm runs: COUNT SCRIPT" (the script quoted).
func printRuns(stdout io.Writer, stats *swarm.Stats) {
	runs := stats.Runs()
	for _, script := range slices.Sorted(maps.Keys(runs)) {
		fmt.Fprintf(stdout, "swarm runs: %d %q\n", runs[script], script)
	}
}

// splitList splits "a, b,,c" into [a b c].
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}
