// Command kanade-bench is `make bench`: it measures kanade at fleet scale
// and, in the same run, a bare NATS + SQLite program doing the same work
// (DESIGN.md §9, reference/limits.md).
//
// For each N it starts the real server (bin/kanade serve, dev mode, a
// fresh data directory, random loopback ports) and, as a second process,
// a swarm of N simulated agents (bin/kanade-swarm). It measures the
// time until every agent is online, the idle server's CPU and RSS, the
// deploy round trip (POST /api/run to every target final through the
// API), the agents page, and the execution page following a run that
// stays in flight. The baseline with N agents is set up first, and its
// round trips run between kanade's, each side's processes stopped while
// the other measures, so that both see the machine at the same speed. It
// prints a markdown table (stdout; progress goes to stderr).
//
//	kanade-bench [-n 1000,5000,10000] [-bin bin] [-rounds 3] [-settle 30s] [-idle 30s] …
//	kanade-bench baseline-agents -url URL -count N   (the baseline's agent process; started by the bench)
//
// CPU and memory come from /proc, so those figures need Linux.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	counts         []int
	binDir         string
	rounds, warmup int
	settle, idle   time.Duration
	heartbeat      time.Duration
	samples        int
	inflight       time.Duration
	outputBytes    int
	failRate       float64
	baseline, keep bool
	connectTimeout time.Duration
	roundTimeout   time.Duration
	skipKanade     bool
	profileDir     string
	soak           int
	restart        bool
	noise          bool
	// update: the update wave (update.go); updateFail is the swarm's
	// probability of a failed trial run.
	update        bool
	updateFail    float64
	updateTimeout time.Duration
	// tls: "off" (plain text), "on" (everything over TLS) or "compare"
	// (plain text, then a second server and swarm over TLS measured until
	// the end of their idle window).
	tls string
}

var started = time.Now()

// progress writes a progress line to stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline-agents" {
		if err := runBaselineAgents(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "kanade-bench baseline-agents:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "noise" {
		runNoise()
		return
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "kanade-bench:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kanade-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defN := os.Getenv("BENCH_N")
	if defN == "" {
		defN = "1000"
	}
	counts := fs.String("n", defN, "agent counts, comma-separated: 1000,5000,10000 or 1k,5k,10k (default $BENCH_N, else 1000)")
	var cfg config
	fs.StringVar(&cfg.binDir, "bin", "bin", "directory with kanade and kanade-swarm (make bench builds them)")
	fs.IntVar(&cfg.rounds, "rounds", 3, "measured deploy round trips per N (kanade and baseline)")
	fs.IntVar(&cfg.warmup, "warmup", 1, "unmeasured round trips before them")
	fs.DurationVar(&cfg.settle, "settle", 30*time.Second, "wait after every agent is online before measuring idle")
	fs.DurationVar(&cfg.idle, "idle", 5*time.Minute, "idle measurement window (a multiple of -heartbeat is fairest; long enough that the garbage collections it catches are the average)")
	fs.DurationVar(&cfg.heartbeat, "heartbeat", 30*time.Second, "the swarm's heartbeat interval")
	fs.IntVar(&cfg.samples, "samples", 20, "requests per page-latency figure")
	fs.DurationVar(&cfg.inflight, "inflight", 5*time.Second, "modelled run time (± the same) of the run the execution page follows")
	fs.IntVar(&cfg.outputBytes, "output-bytes", 256, "stdout bytes per result (swarm and baseline)")
	fs.Float64Var(&cfg.failRate, "fail-rate", 0.01, "the swarm's probability that a script exits 1")
	fs.BoolVar(&cfg.baseline, "baseline", true, "also measure the bare NATS + SQLite baseline")
	fs.BoolVar(&cfg.skipKanade, "baseline-only", false, "measure only the baseline")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temp directories (data, logs)")
	fs.StringVar(&cfg.profileDir, "profile", "", "write CPU profiles of the server and the swarm (idle window, one extra round) and heap profiles (idle) to this directory")
	fs.IntVar(&cfg.soak, "soak", 0, "after the rest, this many more executions back to back, then a second idle window (memory after activity)")
	fs.BoolVar(&cfg.restart, "restart", true, "at the end, the restart storm: kill -9 the server with every agent connected and a run in flight, start it again, and time the way back")
	fs.BoolVar(&cfg.update, "update", false, "before the restart storm, the update wave: upload a 15 MiB agent release, roll it out to every agent in one wave, and time it with the broker's peak throughput")
	fs.Float64Var(&cfg.updateFail, "update-fail", 0, "with -update, the swarm's probability that an update's trial run fails")
	fs.DurationVar(&cfg.updateTimeout, "update-timeout", 30*time.Minute, "with -update, the longest wait for every target to be final")
	fs.BoolVar(&cfg.noise, "noise", false, "keep one core about 50 % busy in a background process during the whole run (a shared machine)")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 10*time.Minute, "longest wait for every agent to come online")
	fs.DurationVar(&cfg.roundTimeout, "round-timeout", 2*time.Minute, "longest wait for one round trip")
	fs.StringVar(&cfg.tls, "tls", "off", `broker TLS: "off", "on", or "compare" (plain text, then connecting and idle again over TLS)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.tls != "off" && cfg.tls != "on" && cfg.tls != "compare" {
		return fmt.Errorf("-tls %q: want off, on or compare", cfg.tls)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.counts, err = parseCounts(*counts); err != nil {
		return err
	}
	if cfg.rounds < 1 || cfg.warmup < 0 || cfg.samples < 1 || cfg.soak < 0 {
		return errors.New("-rounds and -samples must be at least 1, -warmup and -soak at least 0")
	}
	// The children run in their temp directories: resolve bin now.
	if cfg.binDir, err = filepath.Abs(cfg.binDir); err != nil {
		return fmt.Errorf("-bin: %w", err)
	}
	if !cfg.skipKanade {
		for _, b := range []string{"kanade", "kanade-swarm"} {
			if _, err := os.Stat(filepath.Join(cfg.binDir, b)); err != nil {
				return fmt.Errorf("%w (run make bench, or make build)", err)
			}
		}
	}
	if lim, err := raiseFDLimit(); err == nil {
		progress("open files limit %d", lim)
	} else if !errors.Is(err, errors.ErrUnsupported) {
		progress("cannot raise the open files limit: %v", err)
	}
	if _, err := readProc(os.Getpid()); err != nil {
		progress("no CPU or memory figures on this system: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := report{cfg: cfg, machine: machine(), date: time.Now(), version: kanadeVersion(cfg.binDir)}
	if cfg.noise {
		dir, err := os.MkdirTemp("", "kanade-bench-noise-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		noise, err := startNoise(dir)
		if err != nil {
			return err
		}
		progress("background load: one core about %.0f %% busy (pid %d)", 100*noiseDuty, noise.pid())
		defer noise.stop(5 * time.Second)
		rep.noise, rep.noiseStart = noise, snap(noise.pid())
	}
	var failed []error
	for _, n := range cfg.counts {
		res := nResult{N: n}
		// With both, the baseline is set up first and its rounds run
		// between kanade's (baselineRig.between).
		var rig *baselineRig
		if cfg.baseline && !cfg.skipKanade {
			var err error
			if rig, err = startBaseline(ctx, cfg, n); err != nil {
				b := rig.result()
				res.Baseline, rig = &b, nil
				res.Err = append(res.Err, fmt.Errorf("baseline: %w", err))
			} else if err := rig.pause(); err != nil {
				res.Err = append(res.Err, fmt.Errorf("baseline: %w", err))
			}
		}
		if !cfg.skipKanade && ctx.Err() == nil {
			var between func(context.Context, ...*child)
			if rig != nil {
				between = rig.between
			}
			k, err := benchKanade(ctx, cfg, n, cfg.tls == "on", false, between)
			res.Kanade = &k
			if err != nil {
				res.Err = append(res.Err, fmt.Errorf("kanade: %w", err))
			}
		}
		switch {
		case rig != nil:
			// The rounds kanade did not leave room for, and the profiled one.
			if err := rig.resume(); err != nil {
				res.Err = append(res.Err, fmt.Errorf("baseline: %w", err))
			}
			for rig.wants() && ctx.Err() == nil {
				if err := rig.round(ctx); err != nil {
					res.Err = append(res.Err, fmt.Errorf("baseline: %w", err))
					break
				}
			}
			b := rig.result()
			rig.close()
			res.Baseline = &b
		case cfg.baseline && res.Baseline == nil && ctx.Err() == nil:
			b, err := benchBaseline(ctx, cfg, n)
			res.Baseline = &b
			if err != nil {
				res.Err = append(res.Err, fmt.Errorf("baseline: %w", err))
			}
		}
		if cfg.tls == "compare" && !cfg.skipKanade && ctx.Err() == nil {
			progress("N=%d: again over TLS (connecting and idle)", n)
			k, err := benchKanade(ctx, cfg, n, true, true, nil)
			res.TLS = &k
			if err != nil {
				res.Err = append(res.Err, fmt.Errorf("kanade over TLS: %w", err))
			}
		}
		for _, err := range res.Err {
			progress("N=%d: %v", n, err)
		}
		failed = append(failed, res.Err...)
		rep.results = append(rep.results, res)
		if ctx.Err() != nil {
			break
		}
	}
	if rep.noise != nil {
		rep.noiseCPU = cpuPercent(rep.noiseStart, snap(rep.noise.pid()))
	}
	fmt.Fprint(stdout, rep.String())
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d measurement(s) failed (see above)", len(failed))
	}
	return nil
}

// fatalError stops waitFor at once.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

func fatal(err error) error { return fatalError{err} }

// waitFor calls fn every step until it returns nil, returns a fatal error,
// or timeout passes (then fn's last error is returned).
func waitFor(ctx context.Context, timeout, step time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var f fatalError
		if errors.As(err, &f) {
			return f.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		if err := sleep(ctx, step); err != nil {
			return err
		}
	}
}

// machine describes this computer in one line.
func machine() string {
	cpu := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	s := fmt.Sprintf("%d vCPU (%s)", runtime.NumCPU(), cpu)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err == nil {
					s += fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		s += ", Linux " + strings.TrimSpace(string(b))
	} else {
		s += ", " + runtime.GOOS
	}
	return s
}

// kanadeVersion asks bin/kanade for its version.
func kanadeVersion(binDir string) string {
	out, err := exec.Command(filepath.Join(binDir, "kanade"), "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "kanade"))
}
