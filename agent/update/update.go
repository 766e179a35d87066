// Package update replaces the agent's own binary with a signed release
// (docs/UPDATE.md). An update command is carried out in order: a download
// permit from the server, the release read from the Object Store with the
// record's signature and the SHA-256 checked while it streams, the binary
// staged in DATA/update, a trial run of it (`kanade-agent selftest`: it
// must load this agent's configuration and identity and connect), then
// the swap (github.com/minio/selfupdate's rename dance) and a restart: the
// agent exits for its service manager, or re-executes itself. A marker
// written before the swap lets the new binary prove itself: it must reach
// the broker within the rollback window, and it may start at most
// MaxStarts times; otherwise the previous binary is put back and restarted,
// and it reports why once it is connected.
package update

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
)

// Config describes the running agent.
type Config struct {
	// DataDir is the agent's data directory; the update's files are in
	// DataDir/update.
	DataDir string
	// Executable is the agent's binary as found at the start
	// (os.Executable): once it is swapped, the running image's own path
	// names the moved-aside file on some systems.
	Executable string
	// Version is this binary's version.
	Version string
	// Args are the flags of this run (after the program name, or after
	// `service run`): the trial runs the new binary with them, and a
	// re-execution this one.
	Args []string
	// Service: a service manager runs the agent and starts it again when
	// it exits (systemd Restart=always, the Windows recovery actions,
	// launchd KeepAlive). Otherwise the agent re-executes itself.
	Service bool
	PCID    string
	// SigCheck checks signatures (nil: ed25519.Verify).
	SigCheck wire.SigCheck
	// TrialTimeout bounds a trial run (0: DefaultTrialTimeout).
	TrialTimeout time.Duration
	Logger       *slog.Logger
}

// Request is one update command handed over by the worker.
type Request struct {
	ExecID   string
	IssuedAt time.Time
	// Deadline is the command's: the swap waits for other runs until then.
	Deadline time.Time
	// Timeout bounds the download and the trial run.
	Timeout time.Duration
	Update  wire.Update
	// Busy says how many other executions are running; the swap waits
	// until none is (nil: none ever).
	Busy func() int
}

// Updater carries out update commands and follows an update across the
// restart. Begin makes one at the start of each agent process.
type Updater struct {
	cfg Config
	dir string
	log *slog.Logger

	mu      sync.Mutex
	keys    func() []wire.CommandKey
	refresh func(context.Context, *nats.Conn) error
	// pending is the update this process started with, still to report:
	// pendingStep stepWatch (this is the new version, on probation) or
	// stepReport (the outcome is pendingReason).
	pending       *Marker
	pendingStep   step
	pendingReason string
	handedOver    bool // the pending result was returned by Connected
	watchdog      *time.Timer
	rollingBack   bool

	applying  atomic.Bool
	restartCh chan struct{}
	restart   *Restart
	exiting   bool // the restart was handed to the caller
	exit      func(code int)
}

// Restart is the error an agent stops with to start again: a new binary
// is in place, or the previous one is back.
type Restart struct {
	Version    string // the version that starts next
	Reason     string
	Executable string
	Args       []string
}

func (r *Restart) Error() string {
	return fmt.Sprintf("restarting into version %s: %s", r.Version, r.Reason)
}

// Begin reads the update in flight, if any, when an agent process starts
// (before it connects). The new version counts its start and is put on
// probation: Connected confirms it, and a watchdog rolls it back when the
// window runs out. A new version past its starts or its window is rolled
// back at once: Begin then returns a *Restart, which the agent returns
// (to exit, or to re-execute with Restart.Exec).
func Begin(cfg Config) (*Updater, error) {
	if cfg.SigCheck == nil {
		cfg.SigCheck = ed25519.Verify
	}
	if cfg.TrialTimeout <= 0 {
		cfg.TrialTimeout = DefaultTrialTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	u := &Updater{cfg: cfg, dir: filepath.Join(cfg.DataDir, "update"), log: cfg.Logger, restartCh: make(chan struct{}), exit: os.Exit}
	m, ok, err := readMarker(u.dir)
	if err != nil {
		// Nobody can tell which update it was: keep running this binary.
		u.log.Error("an unreadable update marker is set aside; this version keeps running", "err", err)
		_ = os.Rename(markerPath(u.dir), markerPath(u.dir)+".unreadable")
		return u, nil
	}
	if !ok {
		return u, nil
	}
	now := time.Now()
	if cfg.Version == m.To && m.Outcome == "" {
		m.Starts++
		if m.FirstStart.IsZero() {
			m.FirstStart = now
		}
		if err := writeMarker(u.dir, m); err != nil {
			// Exiting would make a service manager start this version
			// again and again, uncounted: go on, counted in memory.
			u.log.Error("cannot count this start of the new version in the update marker", "version", m.To, "err", err)
		}
	}
	s, reason := decide(m, cfg.Version, now)
	switch s {
	case stepWatch:
		deadline := m.FirstStart.Add(m.Window.D())
		u.pending, u.pendingStep = &m, stepWatch
		u.watchdog = time.AfterFunc(time.Until(deadline), u.expire)
		u.log.Info("new version on probation: it must reach the broker before the deadline", "from", m.From, "version", m.To,
			"start", m.Starts, "deadline", deadline.Format(time.RFC3339))
	case stepRollBack:
		if err := u.rollback(&m, reason); err != nil {
			u.log.Error("cannot put the previous version back; this version keeps running", "from", m.From, "version", m.To, "err", err)
			u.pending, u.pendingStep, u.pendingReason = &m, stepReport, reason+"; putting version "+m.From+" back failed: "+err.Error()
			return u, nil
		}
		return u, &Restart{Version: m.From, Reason: reason, Executable: m.Executable, Args: cfg.Args}
	case stepReport:
		u.pending, u.pendingStep, u.pendingReason = &m, stepReport, reason
	}
	return u, nil
}

// SetTrust gives the updater the agent's trusted release keys and how to
// refresh them (the enrolled agent's credential keeper). Without it every
// update is refused: a static credential carries no release keys.
func (u *Updater) SetTrust(keys func() []wire.CommandKey, refresh func(context.Context, *nats.Conn) error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.keys, u.refresh = keys, refresh
}

// Restarting is closed when the agent must stop to restart.
func (u *Updater) Restarting() <-chan struct{} { return u.restartCh }

// Restart returns the *Restart the agent must stop with, or nil. Once it
// was returned, the caller restarts the agent.
func (u *Updater) Restart() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.restart == nil {
		return nil
	}
	u.exiting = true
	return u.restart
}

func (u *Updater) requestRestart(version, reason string) {
	u.mu.Lock()
	if u.restart != nil {
		u.mu.Unlock()
		return
	}
	u.restart = &Restart{Version: version, Reason: reason, Executable: u.cfg.Executable, Args: u.cfg.Args}
	u.mu.Unlock()
	close(u.restartCh)
}

// expire is the watchdog: the new version did not connect within its
// window. It puts the previous binary back and restarts; if the agent does
// not stop by itself within a grace period (it hangs), it is ended.
func (u *Updater) expire() {
	u.mu.Lock()
	if u.pending == nil || u.pendingStep != stepWatch || u.handedOver {
		u.mu.Unlock()
		return
	}
	m := *u.pending
	u.rollingBack = true
	u.mu.Unlock()
	reason := noConnection(m.Window.D())
	u.log.Warn("the new version did not reach the broker in time; putting the previous one back", "version", m.To, "from", m.From, "window", m.Window.D())
	if err := u.rollback(&m, reason); err != nil {
		u.log.Error("cannot put the previous version back; this version keeps running", "err", err)
		u.mu.Lock()
		u.rollingBack = false
		u.pendingStep, u.pendingReason = stepReport, reason+"; putting version "+m.From+" back failed: "+err.Error()
		u.mu.Unlock()
		return
	}
	u.requestRestart(m.From, reason)
	grace := max(5*time.Second, min(m.Window.D(), 30*time.Second))
	time.AfterFunc(grace, func() {
		u.mu.Lock()
		handed, r := u.exiting, u.restart
		u.mu.Unlock()
		if handed || r == nil {
			return
		}
		u.log.Error("the agent did not stop for the rollback; ending it", "grace", grace)
		if !u.cfg.Service {
			if err := r.Exec(); err != nil {
				u.log.Error("cannot restart the previous version", "err", err)
			}
		}
		u.exit(1)
	})
}

// rollback records the outcome in m, then puts the previous binary back
// (the failed one goes aside, beside it).
func (u *Updater) rollback(m *Marker, reason string) error {
	m.Outcome = reason
	if err := writeMarker(u.dir, *m); err != nil {
		return err
	}
	sum, err := hex.DecodeString(m.PreviousSHA256)
	if err != nil || len(sum) != 32 {
		return fmt.Errorf("the marker has no valid SHA-256 of %s", m.Previous)
	}
	if err := swap(m.Executable, m.Previous, failedPath(m.Executable), sum); err != nil {
		return fmt.Errorf("put version %s back: %w", m.From, err)
	}
	u.log.Warn("update rolled back", "version", m.To, "back_to", m.From, "reason", reason)
	return nil
}

// Connected is called on each connection to the broker. The first time,
// it confirms a new version on probation (after a round trip to the
// broker) or hands over the failure of an update to report; it returns
// that result (ok false: none). The caller queues it, then calls Reported.
func (u *Updater) Connected(ctx context.Context, nc *nats.Conn) (wire.Result, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pending == nil || u.handedOver || u.rollingBack {
		return wire.Result{}, false
	}
	m := u.pending
	r := wire.Result{ExecID: m.ExecID, FinishedAt: time.Now().UTC()}
	switch u.pendingStep {
	case stepWatch:
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			u.log.Warn("connected, but the broker did not answer; the new version is not confirmed yet", "err", err)
			return wire.Result{}, false
		}
		u.watchdog.Stop()
		r.State, r.Stdout = wire.StateSucceeded, fmt.Sprintf("updated from %s to %s", m.From, m.To)
		u.log.Info("update confirmed: the new version reached the broker", "from", m.From, "version", m.To, "start", m.Starts)
	default:
		r.State, r.Reason = wire.StateFailed, u.pendingReason
		u.log.Warn("reporting a failed update", "version", m.To, "reason", u.pendingReason)
	}
	u.handedOver = true
	return r, true
}

// Reported ends the update whose result was queued: the marker and the
// binaries kept beside the agent's go.
func (u *Updater) Reported(execID string) {
	u.mu.Lock()
	m := u.pending
	if m == nil || m.ExecID != execID || !u.handedOver {
		u.mu.Unlock()
		return
	}
	u.pending = nil
	u.mu.Unlock()
	if err := removeMarker(u.dir); err != nil {
		u.log.Error("cannot remove the update marker", "err", err)
	}
	if err := removeQuietly(m.Previous, failedPath(m.Executable)); err != nil {
		u.log.Warn("cannot remove a binary kept for the update", "err", err)
	}
	u.removeStaged()
}

// removeStaged removes downloaded binaries.
func (u *Updater) removeStaged() {
	files, _ := filepath.Glob(filepath.Join(u.dir, "kanade-agent-*"))
	if err := removeQuietly(files...); err != nil {
		u.log.Warn("cannot remove a downloaded binary", "err", err)
	}
}

// Apply carries out an update command. It returns the command's final
// result, or restart: the new binary is in place, Restarting is closed,
// and the next agent process reports the result.
func (u *Updater) Apply(ctx context.Context, nc *nats.Conn, req Request) (r wire.Result, restart bool) {
	end := func(state wire.State, reason string) (wire.Result, bool) {
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
	pending := u.pending
	u.mu.Unlock()
	switch {
	case rel.OS != runtime.GOOS || rel.Arch != runtime.GOARCH:
		return end(wire.StateSkipped, fmt.Sprintf("the release is for %s/%s; this agent runs on %s/%s", rel.OS, rel.Arch, runtime.GOOS, runtime.GOARCH))
	case rel.Version == u.cfg.Version:
		return end(wire.StateSkipped, "already runs version "+rel.Version)
	case pending != nil:
		return end(wire.StateSkipped, fmt.Sprintf("the update to version %s (execution %s) is not settled yet", pending.To, pending.ExecID))
	}
	if last, ok := u.lastIssued(); ok && req.IssuedAt.Before(last.IssuedAt) {
		return end(wire.StateSkipped, fmt.Sprintf("superseded by the update issued at %s (execution %s)", last.IssuedAt.Format(time.RFC3339), last.ExecID))
	}
	if err := u.setLastIssued(issued{ExecID: req.ExecID, IssuedAt: req.IssuedAt}); err != nil {
		return end(wire.StateFailed, wire.UpdateDownloadFailed+": "+err.Error())
	}
	log := u.log.With("exec_id", req.ExecID, "version", rel.Version)
	if err := u.verify(ctx, nc, rel); err != nil {
		log.Warn("refusing an update: bad release signature", "err", err)
		return end(wire.StateFailed, wire.UpdateSignatureInvalid+": "+err.Error())
	}
	if err := canReplace(u.cfg.Executable); err != nil {
		return end(wire.StateFailed, wire.UpdateSwapFailed+": "+err.Error())
	}
	stopped := func() (wire.Result, bool) {
		return end(wire.StateKilled, "killed before the swap: "+causeText(ctx))
	}
	tctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()

	log.Info("update: asking for a download permit")
	if err := u.permit(tctx, nc, wire.PermitRequest{ExecID: req.ExecID, PCID: u.cfg.PCID, Version: rel.Version, Size: rel.Size}); err != nil {
		var ref refusedError
		switch {
		case ctx.Err() != nil:
			return stopped()
		case errors.As(err, &ref):
			return end(wire.StateSkipped, "the server refused the download: "+ref.reason)
		}
		return end(wire.StateFailed, wire.UpdateDownloadFailed+": no download permit: "+err.Error())
	}
	log.Info("update: downloading", "object", rel.Object, "bytes", rel.Size)
	staged, kind, err := u.download(tctx, nc, rel.Release)
	u.permitDone(nc, req.ExecID, rel.Version)
	if err != nil {
		if ctx.Err() != nil {
			return stopped()
		}
		log.Warn("update: download refused", "reason", kind, "err", err)
		return end(wire.StateFailed, kind+": "+err.Error())
	}
	log.Info("update: trial run of the new binary", "binary", staged)
	if err := trial(tctx, staged, u.cfg.Args, rel.Version, min(u.cfg.TrialTimeout, max(time.Until(deadlineOf(tctx)), time.Second))); err != nil {
		_ = removeQuietly(staged)
		if ctx.Err() != nil {
			return stopped()
		}
		log.Warn("update: the trial run failed", "err", err)
		return end(wire.StateFailed, wire.UpdateTrialFailed+": "+err.Error())
	}
	if err := waitIdle(ctx, req, log); err != nil {
		_ = removeQuietly(staged)
		if ctx.Err() != nil {
			return stopped()
		}
		return end(wire.StateFailed, wire.UpdateSwapFailed+": "+err.Error())
	}
	if err := u.swapIn(req, rel.Release, staged); err != nil {
		_ = removeQuietly(staged)
		log.Error("update: the swap failed", "err", err)
		return end(wire.StateFailed, wire.UpdateSwapFailed+": "+err.Error())
	}
	_ = removeQuietly(staged)
	log.Info("update: new binary in place; restarting", "from", u.cfg.Version, "service", u.cfg.Service)
	u.requestRestart(rel.Version, fmt.Sprintf("version %s is in place (update %s)", rel.Version, req.ExecID))
	return wire.Result{}, true
}

// swapIn writes the marker and swaps the staged binary in.
func (u *Updater) swapIn(req Request, rel wire.Release, staged string) error {
	exe := u.cfg.Executable
	prevSum, err := fileSHA256(exe)
	if err != nil {
		return err
	}
	sum, _ := hex.DecodeString(rel.SHA256)
	m := Marker{ExecID: req.ExecID, From: u.cfg.Version, To: rel.Version, Executable: exe, Previous: previousPath(exe),
		PreviousSHA256: prevSum, Window: wire.Duration(req.Update.Window()), SwappedAt: time.Now().UTC()}
	if err := writeMarker(u.dir, m); err != nil {
		return err
	}
	if err := swap(exe, staged, m.Previous, sum); err != nil {
		if rerr := removeMarker(u.dir); rerr != nil {
			u.log.Error("cannot remove the update marker", "err", rerr)
		}
		return err
	}
	return nil
}

// verify checks the release record against the trusted release keys,
// refreshing them once from the server when the record names a key this
// agent does not know yet.
func (u *Updater) verify(ctx context.Context, nc *nats.Conn, rel wire.SignedRelease) error {
	u.mu.Lock()
	keys, refresh := u.keys, u.refresh
	u.mu.Unlock()
	if keys == nil {
		return errors.New("this agent trusts no release key (it runs with a static credential)")
	}
	err := wire.VerifyRelease(u.cfg.SigCheck, keys(), rel)
	if errors.Is(err, wire.ErrReleaseUnknownKey) && refresh != nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if rerr := refresh(rctx, nc); rerr != nil {
			u.log.Warn("cannot refresh the trusted keys", "err", rerr)
		}
		cancel()
		err = wire.VerifyRelease(u.cfg.SigCheck, keys(), rel)
	}
	return err
}

// download reads the release into DATA/update and checks its SHA-256.
// kind is the failure's reason (wire.UpdateDownloadFailed or
// wire.UpdateHashMismatch).
func (u *Updater) download(ctx context.Context, nc *nats.Conn, rel wire.Release) (path, kind string, err error) {
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		return "", wire.UpdateDownloadFailed, err
	}
	u.removeStaged()
	path = filepath.Join(u.dir, "kanade-agent-"+rel.Version+exeSuffix)
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700)
	if err != nil {
		return "", wire.UpdateDownloadFailed, err
	}
	sum, err := fetch(ctx, nc, rel, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case errors.Is(err, errMismatch):
		_ = removeQuietly(part)
		return "", wire.UpdateHashMismatch, err
	case err != nil:
		_ = removeQuietly(part)
		return "", wire.UpdateDownloadFailed, err
	case hex.EncodeToString(sum) != rel.SHA256:
		_ = removeQuietly(part)
		return "", wire.UpdateHashMismatch, fmt.Errorf("the object's SHA-256 is %x, the release's %s", sum, rel.SHA256)
	}
	if err := os.Rename(part, path); err != nil {
		return "", wire.UpdateDownloadFailed, err
	}
	return path, "", nil
}

// refusedError: the server will not grant a permit for this update.
type refusedError struct{ reason string }

func (e refusedError) Error() string { return "refused: " + e.reason }

// permitRetry is the wait after a permit request went unanswered.
const permitRetry = 30 * time.Second

// permit asks the server for a download permit until it grants one,
// waiting as long as it says ("not now, retry later"), or refuses.
func (u *Updater) permit(ctx context.Context, nc *nats.Conn, req wire.PermitRequest) error {
	body, _ := json.Marshal(req)
	subject := wire.UpdatePermitSubject(u.cfg.PCID)
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := nc.RequestWithContext(rctx, subject, body)
		cancel()
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		wait := permitRetry
		if err != nil {
			u.log.Info("no answer to the download permit request; asking again", "in", wait, "err", err)
		} else {
			var rep wire.PermitReply
			if err := json.Unmarshal(m.Data, &rep); err != nil {
				return fmt.Errorf("undecodable permit answer: %w", err)
			}
			if rep.Granted {
				return nil
			}
			if rep.RetryAfter <= 0 {
				return refusedError{reason: rep.Reason}
			}
			wait = min(max(rep.RetryAfter.D(), 100*time.Millisecond), 10*time.Minute)
			u.log.Info("no download permit yet; asking again", "in", wait, "reason", rep.Reason)
		}
		wait = wait*9/10 + rand.N(wait/5+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// permitDone gives the permit back (the download ended).
func (u *Updater) permitDone(nc *nats.Conn, execID, version string) {
	body, _ := json.Marshal(wire.PermitRequest{ExecID: execID, PCID: u.cfg.PCID, Version: version, Done: true})
	if err := nc.Publish(wire.UpdatePermitSubject(u.cfg.PCID), body); err != nil {
		u.log.Debug("cannot give the download permit back", "err", err)
	}
}

// waitIdle waits until no other execution runs, at most until the
// command's deadline: a swap restarts the agent, which kills what runs.
func waitIdle(ctx context.Context, req Request, log *slog.Logger) error {
	if req.Busy == nil {
		return nil
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := req.Busy(); n > 0; n = req.Busy() {
		if !req.Deadline.IsZero() && time.Now().After(req.Deadline) {
			return fmt.Errorf("%d other runs were still going at the command's deadline (%s)", n, req.Deadline.Format(time.RFC3339))
		}
		log.Info("update: waiting for the other runs to end before the swap", "running", n)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
	return nil
}

// issued is DATA/update/last.json: the newest update command acted on.
type issued struct {
	ExecID   string    `json:"exec_id"`
	IssuedAt time.Time `json:"issued_at"`
}

func (u *Updater) lastIssued() (issued, bool) {
	var l issued
	b, err := os.ReadFile(filepath.Join(u.dir, "last.json"))
	if err != nil || json.Unmarshal(b, &l) != nil {
		return l, false
	}
	return l, true
}

func (u *Updater) setLastIssued(l issued) error {
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(l)
	return writeFileSync(filepath.Join(u.dir, "last.json"), b)
}

func causeText(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil {
		return c.Error()
	}
	return "cancelled"
}

// deadlineOf is ctx's deadline (far away when it has none).
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(24 * time.Hour)
}
