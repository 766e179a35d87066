package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/update"
	"github.com/kanadehq/kanade/agent/wire"
)

// simUpdater carries out update commands for one simulated agent the way
// agent/update does, without files: the permit and the download go
// through the broker as a real agent's (update.Permit, update.Fetch), the
// release signature and the SHA-256 are checked, the trial passes unless
// the model fails it (FailRate), and the "swap" restarts the agent's
// worker as the new version, which reports the result once connected.
// One simUpdater lives as long as its agent, across such restarts.
type simUpdater struct {
	pc, os, arch string
	seed         uint64
	failRate     float64
	stats        *Stats
	sigCheck     wire.SigCheck
	log          *slog.Logger

	applying atomic.Bool

	mu      sync.Mutex
	version string // the version the agent runs
	keys    func() []wire.CommandKey
	refresh func(context.Context, *nats.Conn) error
	pending *wire.Result // the swapped-in version's result, still to report
	handed  bool         // Connected returned pending
	restart func()       // stops the agent's worker so that it starts again as version
}

// setTrust gives the updater the agent's trusted release keys (nil: a
// static credential, which trusts none).
func (u *simUpdater) setTrust(keys func() []wire.CommandKey, refresh func(context.Context, *nats.Conn) error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.keys, u.refresh = keys, refresh
}

// Version is the version the agent runs.
func (u *simUpdater) Version() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.version
}

func (u *simUpdater) Apply(ctx context.Context, nc *nats.Conn, req update.Request) (r wire.Result, restart bool) {
	end := func(state wire.State, reason string) (wire.Result, bool) {
		if state == wire.StateFailed {
			u.stats.UpdateFailed.Add(1)
		}
		return wire.Result{ExecID: req.ExecID, State: state, Reason: reason, FinishedAt: time.Now().UTC()}, false
	}
	if !u.applying.CompareAndSwap(false, true) {
		return end(wire.StateSkipped, "another update is under way")
	}
	defer func() {
		if !restart {
			u.applying.Store(false)
		}
	}()
	rel := req.Update.Release
	u.mu.Lock()
	from, pending, keys, refresh := u.version, u.pending, u.keys, u.refresh
	u.mu.Unlock()
	switch {
	case rel.OS != u.os || rel.Arch != u.arch:
		return end(wire.StateSkipped, fmt.Sprintf("the release is for %s/%s; this agent runs on %s/%s", rel.OS, rel.Arch, u.os, u.arch))
	case rel.Version == from:
		return end(wire.StateSkipped, "already runs version "+rel.Version)
	case pending != nil:
		return end(wire.StateSkipped, fmt.Sprintf("the update of execution %s is not settled yet", pending.ExecID))
	}
	if keys == nil {
		return end(wire.StateFailed, wire.UpdateSignatureInvalid+": this agent trusts no release key (it runs with a static credential)")
	}
	err := wire.VerifyRelease(u.sigCheck, keys(), rel)
	if errors.Is(err, wire.ErrReleaseUnknownKey) && refresh != nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = refresh(rctx, nc)
		cancel()
		err = wire.VerifyRelease(u.sigCheck, keys(), rel)
	}
	if err != nil {
		return end(wire.StateFailed, wire.UpdateSignatureInvalid+": "+err.Error())
	}
	stopped := func() (wire.Result, bool) {
		return end(wire.StateKilled, "killed before the swap: "+causeOf(ctx))
	}
	tctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	refused, err := update.Permit(tctx, nc, wire.PermitRequest{ExecID: req.ExecID, PCID: u.pc, Version: rel.Version, Size: rel.Size}, u.log)
	switch {
	case ctx.Err() != nil:
		return stopped()
	case err != nil:
		return end(wire.StateFailed, wire.UpdateDownloadFailed+": no download permit: "+err.Error())
	case refused != "":
		return end(wire.StateSkipped, "the server refused the download: "+refused)
	}
	u.stats.downloadStarted()
	kind, err := update.Fetch(tctx, nc, rel.Release, io.Discard)
	u.stats.Downloading.Add(-1)
	update.PermitDone(nc, u.pc, req.ExecID, rel.Version)
	if err != nil {
		if ctx.Err() != nil {
			return stopped()
		}
		return end(wire.StateFailed, kind+": "+err.Error())
	}
	u.stats.Downloaded.Add(1)
	// The trial: fails with FailRate, the same way for the same seed,
	// agent and version.
	if rand.New(rand.NewPCG(u.seed, fnv1a(fnv1a(fnvOffset, u.pc), rel.Version))).Float64() < u.failRate {
		return end(wire.StateFailed, wire.UpdateTrialFailed+": exit status 3: simulated trial failure")
	}
	u.mu.Lock()
	u.version = rel.Version
	u.pending = &wire.Result{ExecID: req.ExecID, State: wire.StateSucceeded, Stdout: fmt.Sprintf("updated from %s to %s", from, rel.Version)}
	u.handed = false
	stop := u.restart
	u.mu.Unlock()
	if stop != nil {
		stop()
	}
	return wire.Result{}, true
}

// Connected hands over the result of the update the agent restarted for,
// once the broker answered.
func (u *simUpdater) Connected(_ context.Context, nc *nats.Conn) (wire.Result, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pending == nil || u.handed {
		return wire.Result{}, false
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return wire.Result{}, false
	}
	r := *u.pending
	r.FinishedAt = time.Now().UTC()
	u.handed = true
	return r, true
}

func (u *simUpdater) Reported(execID string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pending != nil && u.pending.ExecID == execID && u.handed {
		u.pending = nil
		u.applying.Store(false)
		u.stats.Updated.Add(1)
	}
}

func causeOf(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil {
		return c.Error()
	}
	return "cancelled"
}
