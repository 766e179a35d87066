// Package worker is the agent's core: it connects to NATS, follows the
// commands addressed to its PC (live over core subscriptions, catch-up
// from the EXEC stream after every (re)connect), runs each execution at
// most once, streams output, reports results through a durable outbox,
// obeys kills and sends heartbeats.
package worker

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/dialer"
	"github.com/kanadehq/kanade/agent/ledger"
	"github.com/kanadehq/kanade/agent/outbox"
	"github.com/kanadehq/kanade/agent/runner"
	"github.com/kanadehq/kanade/agent/update"
	"github.com/kanadehq/kanade/agent/wire"
)

// Config describes one agent.
type Config struct {
	PCID     string
	Hostname string
	Groups   []string
	// DataDir holds the ledger, the outbox and script files.
	DataDir           string
	HeartbeatInterval time.Duration
	// OutputCap is the default cap per output stream (commands may set their own).
	OutputCap    int
	AgentVersion string
	// OS and Arch default to this machine's (the swarm simulator sets them).
	OS, Arch  string
	OSVersion string
	// Exec runs one script; nil means runner.Run. The swarm simulator
	// replaces it with a scripted model.
	Exec func(ctx context.Context, s runner.Spec) runner.Outcome
	// Jitter picks the wait before a command with a jitter starts (and
	// the inventory's random delays), in [0, max); nil picks uniformly at
	// random (tests pin it).
	Jitter func(max time.Duration) time.Duration
	// Trust holds the server keys commands, kills and control messages
	// must be signed with; nil accepts unsigned messages (a static
	// credential on an external broker, without enrollment).
	Trust Trust
	// SigCheck checks signatures (nil: ed25519.Verify). The swarm shares
	// one memoizing check between its simulated agents.
	SigCheck wire.SigCheck
	// Ledger and Outbox replace the on-disk ledger and outbox (the swarm
	// simulator keeps them in memory); nil opens them in DataDir.
	Ledger Ledger
	Outbox Outbox
	// Tasks run beside the worker once it is connected (credential
	// renewal), until it stops.
	Tasks  []func(ctx context.Context, nc *nats.Conn)
	Logger *slog.Logger
	// Status is told about connections, errors, group changes and
	// heartbeats (status.Recorder keeps DATA/status.json for
	// `kanade-agent status`; the swarm counts connected agents); nil
	// records nothing.
	Status StatusRecorder

	// Inventory collects this PC's inventory (inventory.Collect); nil
	// means the agent sends none. The worker publishes it on
	// wire.InventorySubject shortly after the start, every
	// InventoryInterval (default DefaultInventoryInterval, plus jitter)
	// and when the server asks (see inventory.go).
	Inventory         func(ctx context.Context) (wire.Inventory, error)
	InventoryInterval time.Duration

	// Update carries out update commands (update.Updater); nil: the agent
	// skips them.
	Update Updater

	// User says who is logged on at the PC (inventory.User), sent with
	// every heartbeat; nil sends nobody.
	User func() string
}

// Updater replaces the agent's binary (package update; the swarm
// simulator has its own).
type Updater interface {
	// Apply carries out an update command: its final result, or restart
	// (the new binary is in place and the agent stops; the next process
	// reports the result).
	Apply(ctx context.Context, nc *nats.Conn, req update.Request) (r wire.Result, restart bool)
	// Connected is called on each connection; it returns the result of
	// an update an earlier agent process carried out, once (ok: there is
	// one). Reported follows when the result is queued.
	Connected(ctx context.Context, nc *nats.Conn) (r wire.Result, ok bool)
	Reported(execID string)
}

// Trust is where the worker gets the keys it verifies signed messages with.
type Trust interface {
	Keys() []wire.CommandKey
	// Refresh asks the server for its current keys (after a rotation the
	// agent missed while offline).
	Refresh(ctx context.Context, nc *nats.Conn) error
	// SetKeys replaces the trusted keys (a signed rotation announcement).
	SetKeys(keys []wire.CommandKey) error
	// SetCredential stores a credential the server pushed (new groups).
	SetCredential(rep wire.EnrollReply) error
	// Groups are the groups of the current credential.
	Groups() []string
}

// StatusRecorder records the agent's state as it changes.
type StatusRecorder interface {
	Connected(url string)
	Disconnected(err error)
	Error(err error)
	Groups(groups []string)
	Heartbeat()
}

type noStatus struct{}

func (noStatus) Connected(string)   {}
func (noStatus) Disconnected(error) {}
func (noStatus) Error(error)        {}
func (noStatus) Groups([]string)    {}
func (noStatus) Heartbeat()         {}

// Ledger remembers which executions this agent claimed and finished
// (see package ledger).
type Ledger interface {
	Claim(execID string, now time.Time) (bool, error)
	Finish(execID string) error
	Seen(execID string) bool
	Unfinished() []string
	Created() time.Time
	Close() error
}

// Outbox queues results until the broker acknowledged them (see package outbox).
type Outbox interface {
	Put(subject string, data []byte) error
	Pending() ([]outbox.Item, error)
	Remove(it outbox.Item) error
}

// Worker is one running agent.
type Worker struct {
	cfg    Config
	log    *slog.Logger
	ledger Ledger
	outbox Outbox

	nc *nats.Conn
	js jetstream.JetStream

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
	killed  map[string]time.Time
	// groups are the agent's current groups and groupSubs their live
	// subscriptions (guarded by mu); they change when the server says so.
	groups    []string
	groupSubs map[string]*nats.Subscription
	// estop is the fleet's emergency stop as last seen (guarded by mu).
	estop wire.EmergencyStop
	// estopKnown: estop was read (or pushed) since the agent started.
	estopKnown bool

	catchup   chan struct{}
	reconnect chan struct{}
	drainNow  chan struct{} // a result queued, or a (re)connect: try the outbox now
	// draining is held by whoever delivers the outbox (the drain loop, and
	// Run's last try when the agent stops): one at a time, so that a
	// result is not published twice.
	draining sync.Mutex
	// inbox receives every subscription's messages; one goroutine routes
	// them (a goroutine per subscription would cost 6 per agent, which
	// adds up in the swarm simulator).
	inbox    chan *nats.Msg
	runs     sync.WaitGroup
	caughtUp atomic.Int64
	cpu      cpuMeter // CPU use between heartbeats

	inventoryNow chan struct{} // the server asked for the inventory
}

// New validates cfg and opens the agent's on-disk state.
func New(cfg Config) (*Worker, error) {
	if err := wire.ValidateID("pc_id", cfg.PCID); err != nil {
		return nil, fmt.Errorf("%w (set pc_id in the config or --pc-id)", err)
	}
	for _, g := range cfg.Groups {
		if err := wire.ValidateGroup(g); err != nil {
			return nil, err
		}
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.SigCheck == nil {
		cfg.SigCheck = ed25519.Verify
	}
	if cfg.OutputCap <= 0 {
		cfg.OutputCap = runner.DefaultOutputCap
	}
	if cfg.Exec == nil {
		cfg.Exec = runner.Run
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Status == nil {
		cfg.Status = noStatus{}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = cfg.PCID
	}
	if cfg.OS == "" {
		cfg.OS, cfg.Arch = runtime.GOOS, runtime.GOARCH
	}
	cfg.Groups = slices.Clone(cfg.Groups)
	slices.Sort(cfg.Groups)
	cfg.Groups = slices.Compact(cfg.Groups)
	l, ob := cfg.Ledger, cfg.Outbox
	if l == nil || ob == nil {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	if l == nil {
		dl, err := ledger.Open(filepath.Join(cfg.DataDir, "ledger.jsonl"), time.Now())
		if err != nil {
			return nil, err
		}
		l = dl
	}
	if ob == nil {
		do, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"))
		if err != nil {
			l.Close()
			return nil, err
		}
		ob = do
	}
	w := &Worker{
		cfg: cfg, log: cfg.Logger.With("pc_id", cfg.PCID), ledger: l, outbox: ob,
		running: map[string]context.CancelCauseFunc{}, killed: map[string]time.Time{},
		groups: cfg.Groups, groupSubs: map[string]*nats.Subscription{},
		catchup: make(chan struct{}, 1), reconnect: make(chan struct{}, 1), drainNow: make(chan struct{}, 1),
		inbox: make(chan *nats.Msg, 4096), inventoryNow: make(chan struct{}, 1),
	}
	if cfg.Inventory != nil {
		if w.cfg.InventoryInterval <= 0 {
			w.cfg.InventoryInterval = DefaultInventoryInterval
		}
		w.cfg.Tasks = append(slices.Clone(cfg.Tasks), w.inventoryTask)
	}
	return w, nil
}

// ErrStopping is the cause given to runs cancelled because the agent stops.
var ErrStopping = errors.New("the agent was shut down")

// Run connects to url and serves until ctx is done. opts carry the
// credentials. It returns after running scripts were stopped, queued
// results were given a moment to drain and the connection was closed.
func (w *Worker) Run(ctx context.Context, url string, opts ...nats.Option) error {
	defer w.ledger.Close()
	w.recoverUnfinished()

	base := []nats.Option{
		nats.Name("kanade-agent " + w.cfg.PCID),
		nats.CustomInboxPrefix(wire.AgentInboxPrefix(w.cfg.PCID)),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(reconnectDelay),
		// The dialer bounds the TCP connect; this bounds the handshake
		// after it (INFO, CONNECT, the first PONG). A broker that accepted
		// the connection is alive but may be busy authenticating a fleet
		// that reconnects at once: giving up after nats.go's default 2 s
		// throws away the work it did for this connection and queues the
		// same work again.
		nats.Timeout(HandshakeTimeout),
		// The kernel finds a dead path (dialer.UserTimeout, with a heartbeat
		// always in flight); pings only catch a hung broker, so they are rare:
		// each costs the broker a wake-up and a write for every agent.
		nats.SetCustomDialer(&redialer{d: dialer.New(dialer.UserTimeout, w.log)}),
		// Where the bound cannot be set (Wine, an old kernel), pings must
		// find dead paths too: the probe tries the option before the first
		// dial, as nats.go fixes the interval at Connect.
		nats.PingInterval(dialer.PingInterval(dialer.Probe(dialer.UserTimeout) == nil)),
		nats.ConnectHandler(func(nc *nats.Conn) {
			w.log.Info("connected to NATS")
			w.cfg.Status.Connected(nc.ConnectedUrl())
			w.signalConnected()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			w.log.Info("reconnected to NATS", "url", nc.ConnectedUrl())
			w.cfg.Status.Connected(nc.ConnectedUrl())
			w.signalConnected()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			w.cfg.Status.Disconnected(err)
			if err != nil {
				w.log.Warn("disconnected from NATS", "err", err)
				w.connError(err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			w.log.Error("NATS error", "subject", subj, "err", err)
			w.cfg.Status.Error(err)
			if s == nil {
				w.connError(err)
			}
		}),
		// Failed connection attempts (a refused credential among them) go
		// to the credential's keeper, which says what to do and enrolls
		// again; the connection keeps trying instead of giving up.
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { w.connError(err) }),
		nats.IgnoreAuthErrorAbort(),
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	w.nc, w.js = nc, js

	runCtx, stopRuns := context.WithCancelCause(context.Background())
	defer stopRuns(ErrStopping)
	if err := w.subscribe(); err != nil {
		return err
	}
	if nc.IsConnected() {
		w.signalConnected()
	}

	var bg, starters sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(context.Background())
	// The router and the catch-up start runs: they stop before the runs
	// are waited for, so that no run starts during that wait.
	startCtx, stopStarting := context.WithCancel(context.Background())
	starters.Add(2)
	go func() { defer starters.Done(); w.route(startCtx, runCtx) }()
	go func() { defer starters.Done(); w.catchupLoop(startCtx, runCtx) }()
	bg.Add(2 + len(w.cfg.Tasks))
	for _, task := range w.cfg.Tasks {
		go func() { defer bg.Done(); task(bgCtx, nc) }()
	}
	go func() { defer bg.Done(); w.drainLoop(bgCtx) }()
	go func() { defer bg.Done(); w.heartbeatLoop(bgCtx) }()

	<-ctx.Done()
	w.log.Info("agent stopping")
	stopStarting()
	starters.Wait()
	stopRuns(ErrStopping)
	w.runs.Wait()
	// Give queued results a moment to reach the broker; whatever is left
	// stays in the outbox for the next start.
	drainCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	w.draining.Lock()
	w.drainOnce(drainCtx)
	w.draining.Unlock()
	cancel()
	stopBG()
	bg.Wait()
	w.sendHeartbeat(true)
	_ = nc.Flush()
	return nil
}

// connError hands a broker connection error to the credential's keeper
// when it takes them (enroll.Keeper does: it logs the cause and enrolls
// again when the credential was refused).
func (w *Worker) connError(err error) {
	w.cfg.Status.Error(err)
	if h, ok := w.cfg.Trust.(interface{ ConnError(error) }); ok && err != nil {
		h.ConnError(err)
	}
}

// ReportError records err as the agent's last error (shown by
// `kanade-agent status`).
func (w *Worker) ReportError(err error) { w.cfg.Status.Error(err) }

// reconnectDelay is the wait before reconnect attempt attempts+1 (nats.go
// counts from 1): between half and all of a window of 2 s that grows by
// 1 s per attempt up to 8 s, so that a fleet that lost its server at the
// same moment (a restart) spreads its attempts and is back within a few
// seconds of the server; after reconnectQuick attempts (about a minute)
// the window is 30 s, so that a long outage costs the broker little.
func reconnectDelay(attempts int) time.Duration {
	d := time.Duration(min(attempts+1, 8)) * time.Second
	if attempts > reconnectQuick {
		d = 30 * time.Second
	}
	return d/2 + rand.N(d/2+1)
}

// reconnectQuick is how many reconnect attempts use the short windows.
const reconnectQuick = 12

// HandshakeTimeout bounds a connection's handshake with the broker once
// the TCP connection is up.
const HandshakeTimeout = 15 * time.Second

func (w *Worker) signalConnected() {
	for _, ch := range []chan struct{}{w.catchup, w.reconnect, w.drainNow} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// subscribe opens the core subscriptions and flushes them to the server,
// so that a kill published right after a command cannot be missed.
func (w *Worker) subscribe() error {
	subjects := []string{wire.CommandAllWildcard, wire.CommandPCWildcard(w.cfg.PCID)}
	w.mu.Lock()
	groups := w.groups
	w.groups = nil
	w.mu.Unlock()
	if _, err := w.applyGroups(groups); err != nil {
		return err
	}
	for _, s := range subjects {
		if _, err := w.nc.ChanSubscribe(s, w.inbox); err != nil {
			return fmt.Errorf("subscribe %s: %w", s, err)
		}
	}
	if _, err := w.nc.ChanSubscribe(wire.KillWildcard, w.inbox); err != nil {
		return fmt.Errorf("subscribe kills: %w", err)
	}
	for _, s := range []string{wire.ControlAll, wire.ControlPCSubject(w.cfg.PCID)} {
		if _, err := w.nc.ChanSubscribe(s, w.inbox); err != nil {
			return fmt.Errorf("subscribe %s: %w", s, err)
		}
	}
	if w.nc.IsConnected() {
		if err := w.nc.FlushTimeout(5 * time.Second); err != nil {
			w.log.Warn("flush subscriptions", "err", err)
		}
	}
	return nil
}

// route hands each received message to its handler, in order.
func (w *Worker) route(ctx, runCtx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-w.inbox:
			switch {
			case wire.IsCommandSubject(m.Subject):
				w.handleCommand(runCtx, m.Subject, m.Header, m.Data, false)
			case wire.IsKillSubject(m.Subject):
				w.handleKill(m)
			case wire.IsControlSubject(m.Subject):
				w.handleControl(m)
			}
		}
	}
}

// CatchUps counts the catch-up passes completed since Run started.
func (w *Worker) CatchUps() int64 { return w.caughtUp.Load() }

// Groups returns the agent's groups.
func (w *Worker) Groups() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.groups)
}

// applyGroups makes groups the agent's groups: subscriptions of groups it
// left end at once (a command for them is no longer for this agent), and
// groups it joined are subscribed. It reports whether anything changed.
func (w *Worker) applyGroups(groups []string) (bool, error) {
	groups = wire.NormalizeGroups(groups)
	w.mu.Lock()
	defer w.mu.Unlock()
	if slices.Equal(groups, w.groups) && len(w.groupSubs) == len(groups) {
		return false, nil
	}
	want := map[string]bool{}
	for _, g := range groups {
		want[g] = true
	}
	for g, sub := range w.groupSubs {
		if !want[g] {
			_ = sub.Unsubscribe()
			delete(w.groupSubs, g)
		}
	}
	for _, g := range groups {
		if w.groupSubs[g] != nil {
			continue
		}
		sub, err := w.nc.ChanSubscribe(wire.CommandGroupWildcard(g), w.inbox)
		if err != nil {
			return true, fmt.Errorf("subscribe group %s: %w", g, err)
		}
		w.groupSubs[g] = sub
	}
	w.groups = groups
	return true, nil
}

// followCredentialGroups applies the groups of the agent's credential. A
// changed credential only grants the new groups' subjects on a new
// connection, so the agent reconnects; NATS then re-subscribes.
func (w *Worker) followCredentialGroups() {
	if w.cfg.Trust == nil {
		return
	}
	changed, err := w.applyGroups(w.cfg.Trust.Groups())
	if err != nil {
		w.log.Error("cannot follow the new groups", "err", err)
	}
	if changed {
		w.log.Info("groups changed", "groups", strings.Join(w.Groups(), ","))
		w.cfg.Status.Groups(w.Groups())
		if err := w.nc.ForceReconnect(); err != nil {
			w.log.Warn("reconnect after a group change", "err", err)
		}
		w.sendHeartbeat(false)
	}
}

// runningNow returns how many executions run and, when there are at most
// wire.MaxRunningExecs, their exec_ids, sorted (the server tells a lost
// target by its absence).
func (w *Worker) runningNow() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.running) > wire.MaxRunningExecs {
		return len(w.running), nil
	}
	ids := slices.Sorted(maps.Keys(w.running))
	return len(ids), ids
}

func (w *Worker) heartbeatLoop(ctx context.Context) {
	w.sendHeartbeat(false)
	for {
		// ±10 % jitter keeps a fleet from beating in step.
		d := w.cfg.HeartbeatInterval
		d = d*9/10 + rand.N(d/5+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.reconnect:
			t.Stop()
		case <-t.C:
		}
		w.sendHeartbeat(false)
	}
}

func (w *Worker) sendHeartbeat(stopping bool) { w.heartbeat(stopping, "") }

// user is who is logged on at the PC, for the heartbeat.
func (w *Worker) user() string {
	if w.cfg.User == nil {
		return ""
	}
	return w.cfg.User()
}

// heartbeat publishes a heartbeat; pong answers a ping.
func (w *Worker) heartbeat(stopping bool, pong string) {
	now := time.Now()
	running, runningExecs := w.runningNow()
	hb := wire.Heartbeat{
		Protocol: wire.ProtocolVersion, PCID: w.cfg.PCID, Hostname: w.cfg.Hostname,
		OS: w.cfg.OS, OSVersion: w.cfg.OSVersion, Arch: w.cfg.Arch, AgentVersion: w.cfg.AgentVersion,
		Groups: w.Groups(), Interval: wire.Duration(w.cfg.HeartbeatInterval), At: now.UTC(),
		Stopping: stopping,
		RSSBytes: processRSS(now), CPUPercent: w.cpu.percent(now), Pong: pong, User: w.user(),
		Running: running, RunningExecs: runningExecs, StopSince: w.stopSince(),
	}
	if err := w.publishJSON(wire.HeartbeatSubject(w.cfg.PCID), hb); err != nil {
		w.log.Debug("heartbeat", "err", err)
	}
	w.cfg.Status.Heartbeat()
}
