package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// noiseDuty is the share of one core the -noise process keeps busy, and
// noisePeriod the cycle it works and sleeps in: short, so that the load
// is spread evenly over every measured window rather than in bursts.
const (
	noiseDuty   = 0.5
	noisePeriod = 20 * time.Millisecond
)

// runNoise is `kanade-bench noise`: it keeps one core noiseDuty busy
// until it is signalled.
func runNoise() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	burn(ctx, noiseDuty, noisePeriod)
}

// burn spins for duty of every period and sleeps the rest, until ctx is
// done.
func burn(ctx context.Context, duty float64, period time.Duration) {
	busy := time.Duration(duty * float64(period))
	x := uint64(1)
	for ctx.Err() == nil {
		start := time.Now()
		for time.Since(start) < busy {
			for range 1000 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		if sleep(ctx, period-busy) != nil {
			break
		}
	}
	if x == 0 { // keeps the loop from being optimised away
		fmt.Fprintln(os.Stderr, x)
	}
}

// startNoise starts the background load of -noise as a child process.
func startNoise(dir string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("noise: %w", err)
	}
	return startChild("noise", dir, filepath.Join(dir, "noise.log"), nil, childEnv(), exe, "noise")
}
