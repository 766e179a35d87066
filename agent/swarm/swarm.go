// Package swarm runs thousands of simulated agents in one process for
// load tests: each has its own NATS connection, pc_id, groups, identity
// (it enrolls like a real agent) and the real worker code; only the script
// is answered by a scripted model instead of a child process, and the
// ledger and outbox live in memory. Update commands are carried out as a
// real agent does, without files (update.go). Everything is reproducible
// from the seed.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/runner"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/agent/worker"
)

// Config describes a swarm.
type Config struct {
	Server, Credentials string
	Count               int
	Seed                uint64
	// Prefix names the agents: <prefix>-00001 …
	Prefix string
	// Groups are spread over the agents: agent i is in Groups[i % len].
	Groups []string
	// StartPeriod spreads the agents' starts over this long.
	StartPeriod time.Duration
	// DataDir keeps each agent's key and credential (in DataDir/<pc_id>),
	// so a swarm restarted on the same DataDir does not enroll again.
	DataDir           string
	HeartbeatInterval time.Duration
	// Parallel bounds concurrent enrollments.
	Parallel     int
	Model        Model
	AgentVersion string
	// UpdateFailRate (0–1) is the probability that an update's simulated
	// trial run fails ("trial run failed: …"), per agent and version.
	UpdateFailRate float64
	Logger         *slog.Logger
}

// Model answers scripts.
type Model struct {
	Latency, Jitter time.Duration // run time: Latency ± Jitter
	FailRate        float64       // probability of exit code 1
	OutputBytes     int           // bytes of stdout per run
}

// Template is an OS an agent pretends to run.
type Template struct{ OS, OSVersion, Arch string }

// Templates are the simulated fleet's operating systems, most common first.
var Templates = []Template{
	{"windows", "Windows 11 Pro 23H2 (22631.4460)", "amd64"},
	{"windows", "Windows 10 Enterprise 22H2 (19045.5131)", "amd64"},
	{"windows", "Windows 11 Enterprise 24H2 (26100.2314)", "amd64"},
	{"windows", "Windows Server 2022 Datacenter (20348.2849)", "amd64"},
	{"linux", "Ubuntu 24.04.1 LTS", "amd64"},
	{"linux", "Ubuntu 22.04.5 LTS", "arm64"},
}

// Stats counts what the swarm did. Connected is the number of agents
// connected to the broker now; CaughtUp the number of those whose
// catch-up after their latest connection is done (updated every
// CaughtUpEvery); ConnErrors counts connection errors, failed reconnect
// attempts among them.
type Stats struct {
	Enrolled, Started, Connected atomic.Int64
	CaughtUp, ConnErrors         atomic.Int64
	// Updates: Downloading is the number of release downloads in flight,
	// DownloadPeak its highest value, Downloaded the downloads that
	// passed the hash check; Updated the agents that restarted as a new
	// version and reported it, UpdateFailed the updates that failed.
	Downloading, DownloadPeak, Downloaded atomic.Int64
	Updated, UpdateFailed                 atomic.Int64

	mu       sync.Mutex
	runs     map[string]int64 // script → runs the model started
	errKinds map[string]int64 // connection errors by kind (errKind)
}

func (s *Stats) downloadStarted() {
	n := s.Downloading.Add(1)
	for {
		p := s.DownloadPeak.Load()
		if n <= p || s.DownloadPeak.CompareAndSwap(p, n) {
			return
		}
	}
}

// maxErrKinds bounds the kinds of connection errors Stats tells apart.
const maxErrKinds = 16

// errKind is the last part of an error's text ("connection refused",
// "timeout"), without the addresses that differ per connection.
func errKind(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}

func (s *Stats) countError(err error) {
	s.ConnErrors.Add(1)
	if err == nil {
		return
	}
	k := errKind(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errKinds == nil {
		s.errKinds = map[string]int64{}
	}
	if _, ok := s.errKinds[k]; ok || len(s.errKinds) < maxErrKinds {
		s.errKinds[k]++
	} else {
		s.errKinds["other"]++
	}
}

// ErrorKinds counts the connection errors by kind: the last part of
// their text (up to 16 kinds, the rest as "other").
func (s *Stats) ErrorKinds() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.errKinds)
}

// Runs returns how many times the agents' model ran each script: a
// script sent to N agents once runs N times, unless a target was lost or
// ran it twice.
func (s *Stats) Runs() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.runs)
}

func (s *Stats) countRun(script string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = map[string]int64{}
	}
	s.runs[script]++
}

// CaughtUpEvery is how often Stats.CaughtUp is recounted.
const CaughtUpEvery = 100 * time.Millisecond

// connCounter counts one agent in Stats.Connected while it is connected
// (a worker.StatusRecorder), and remembers how many catch-ups its worker
// had completed when it last connected: one more means it caught up.
type connCounter struct {
	on      atomic.Bool
	stats   *Stats
	allOnce *sync.Once
	count   int64
	ready   func()

	w    atomic.Pointer[worker.Worker]
	base atomic.Int64 // the worker's CatchUps at the latest connection
}

func (c *connCounter) Connected(string) {
	if w := c.w.Load(); w != nil {
		c.base.Store(w.CatchUps())
	}
	if !c.on.Swap(true) && c.stats.Connected.Add(1) == c.count && c.ready != nil {
		c.allOnce.Do(c.ready)
	}
}

func (c *connCounter) Disconnected(error) {
	if c.on.Swap(false) {
		c.stats.Connected.Add(-1)
	}
}

// caughtUp: connected, and a catch-up completed since it connected.
func (c *connCounter) caughtUp() bool {
	w := c.w.Load()
	return w != nil && c.on.Load() && w.CatchUps() > c.base.Load()
}

func (c *connCounter) Error(err error) { c.stats.countError(err) }
func (*connCounter) Groups([]string)   {}
func (*connCounter) Heartbeat()        {}

// Run starts the agents and runs until ctx is done. ready, if set, is
// called once, when every agent is connected to the broker for the
// first time.
func Run(ctx context.Context, cfg Config, stats *Stats, ready func()) error {
	if cfg.Count <= 0 {
		return errors.New("swarm: count must be positive")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "swarm"
	}
	if err := wire.ValidateID("prefix", cfg.Prefix); err != nil {
		return err
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 32
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if stats == nil {
		stats = &Stats{}
	}
	cfg.Groups = wire.NormalizeGroups(cfg.Groups)
	quiet := slog.New(slog.DiscardHandler)
	sigs := newSigMemo()
	var allOnce sync.Once
	var wg sync.WaitGroup
	counters := make([]*connCounter, cfg.Count)
	for i := range counters {
		counters[i] = &connCounter{stats: stats, allOnce: &allOnce, count: int64(cfg.Count), ready: ready}
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go countCaughtUp(watchCtx, stats, counters)
	sem := make(chan struct{}, cfg.Parallel)
	errs := make(chan error, cfg.Count)
	start := time.Now()
	for i := 1; i <= cfg.Count; i++ {
		if cfg.StartPeriod > 0 {
			at := start.Add(cfg.StartPeriod * time.Duration(i-1) / time.Duration(cfg.Count))
			select {
			case <-ctx.Done():
				wg.Wait()
				return nil
			case <-time.After(time.Until(at)):
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			counter := counters[i-1]
			a := cfg.newAgent(i, stats)
			w, opt, err := cfg.agent(ctx, a, quiet, sigs, stats, counter)
			<-sem
			if err != nil {
				if ctx.Err() == nil {
					errs <- fmt.Errorf("agent %d: %w", i, err)
				}
				return
			}
			stats.Enrolled.Add(1)
			stats.Started.Add(1)
			for {
				counter.w.Store(w)
				// An update's swap stops this worker; the agent starts
				// again as the new version, with the same ledger and
				// outbox (a real agent keeps them on disk).
				wctx, stop := context.WithCancel(ctx)
				restarted := false
				a.upd.mu.Lock()
				a.upd.restart = func() { restarted = true; stop() }
				a.upd.mu.Unlock()
				_ = w.Run(wctx, cfg.Server, opt, nats.ReconnectBufSize(64<<10))
				stop()
				a.upd.mu.Lock()
				again := restarted
				a.upd.restart = nil
				a.upd.mu.Unlock()
				if !again || ctx.Err() != nil {
					return
				}
				if w, opt, err = cfg.agent(ctx, a, quiet, sigs, stats, counter); err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("agent %d after its update: %w", i, err)
					}
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(errs) }()
	var all []error
	for err := range errs {
		cfg.Logger.Error("swarm agent failed", "err", err)
		all = append(all, err)
	}
	return errors.Join(all...)
}

// countCaughtUp recounts Stats.CaughtUp every CaughtUpEvery until ctx is
// done.
func countCaughtUp(ctx context.Context, stats *Stats, counters []*connCounter) {
	t := time.NewTicker(CaughtUpEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := int64(0)
		for _, c := range counters {
			if c.caughtUp() {
				n++
			}
		}
		stats.CaughtUp.Store(n)
	}
}

// simAgent is what one simulated agent keeps across its restarts.
type simAgent struct {
	i      int
	pc     string
	tpl    Template
	groups []string
	ledger *memLedger
	outbox *memOutbox
	upd    *simUpdater
}

func (cfg Config) newAgent(i int, stats *Stats) *simAgent {
	pc := fmt.Sprintf("%s-%05d", cfg.Prefix, i)
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
	tpl := Templates[rng.IntN(len(Templates))]
	var groups []string
	if len(cfg.Groups) > 0 {
		groups = []string{cfg.Groups[(i-1)%len(cfg.Groups)]}
	}
	return &simAgent{i: i, pc: pc, tpl: tpl, groups: groups, ledger: newMemLedger(), outbox: newMemOutbox(),
		upd: &simUpdater{pc: pc, os: tpl.OS, arch: tpl.Arch, seed: cfg.Seed, failRate: cfg.UpdateFailRate,
			stats: stats, log: slog.New(slog.DiscardHandler), version: cfg.AgentVersion}}
}

// agent enrolls (or reloads) simulated agent a and builds its worker,
// running the version its updater says.
func (cfg Config) agent(ctx context.Context, a *simAgent, quiet *slog.Logger, sigs *sigMemo, stats *Stats, st worker.StatusRecorder) (*worker.Worker, nats.Option, error) {
	pc, groups := a.pc, a.groups
	id, err := enroll.Setup(ctx, cfg.Server, cfg.Credentials, filepath.Join(cfg.DataDir, pc),
		enroll.Request{PCID: pc, Hostname: strings.ToUpper(pc), Groups: groups}, quiet)
	if err != nil {
		return nil, nil, err
	}
	var tasks []func(context.Context, *nats.Conn)
	var trust worker.Trust
	if id.Enrolled {
		groups, tasks, trust = id.Groups, append(tasks, id.Renew), id.Keeper
		a.upd.setTrust(id.Keeper.ReleaseKeys, id.Keeper.Refresh)
	} else {
		a.upd.setTrust(nil, nil)
	}
	a.upd.sigCheck = sigs.check
	w, err := worker.New(worker.Config{
		PCID: pc, Hostname: strings.ToUpper(pc), Groups: groups, HeartbeatInterval: cfg.HeartbeatInterval,
		AgentVersion: a.upd.Version(), OS: a.tpl.OS, OSVersion: a.tpl.OSVersion, Arch: a.tpl.Arch,
		Exec: cfg.Model.exec(cfg.Seed, pc, stats), Ledger: a.ledger, Outbox: a.outbox,
		Trust: trust, SigCheck: sigs.check, Tasks: tasks, Logger: quiet, Status: st, Update: a.upd,
	})
	return w, id.Option, err
}

// DirectivePrefix starts a script's first line that overrides the modelled
// run time for that one run, so that one swarm answers both quick runs and
// runs that stay in flight for a while (make bench uses both):
//
//	# swarm: latency=5s jitter=5s
const DirectivePrefix = "# swarm:"

// forScript returns m with the latency and jitter a DirectivePrefix first
// line of script asks for. Unknown keys and unparsable or negative
// durations are ignored: a model never fails a run.
func (m Model) forScript(script string) Model {
	line, _, _ := strings.Cut(script, "\n")
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), DirectivePrefix)
	if !ok {
		return m
	}
	for _, kv := range strings.Fields(rest) {
		k, v, _ := strings.Cut(kv, "=")
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			continue
		}
		switch k {
		case "latency":
			m.Latency = d
		case "jitter":
			m.Jitter = d
		}
	}
	return m
}

// exec answers a script from the model: it "runs" for the modelled time
// (killable and subject to the timeout like a real run), prints
// OutputBytes and fails with FailRate, the same way for the same seed,
// agent and script. A DirectivePrefix first line changes the run time.
// Each run is counted in stats (which may be nil).
func (m Model) exec(seed uint64, pc string, stats *Stats) func(ctx context.Context, s runner.Spec) runner.Outcome {
	// The output depends on the PC only: made once, not per run.
	out := simulatedOutput(pc, m.OutputBytes)
	outBytes := []byte(out)
	return func(ctx context.Context, s runner.Spec) runner.Outcome {
		if stats != nil {
			stats.countRun(s.Script)
		}
		m := m.forScript(s.Script)
		// The run's random numbers: a PCG seeded with the swarm's seed and
		// an FNV-1a hash of the PC and the script, in a value (no
		// allocation) unless the jitter needs rand.Rand's Int64N.
		pcg := rand.PCG{}
		pcg.Seed(seed, fnv1a(fnv1a(fnvOffset, pc), s.Script))
		float := func() float64 { return float64(pcg.Uint64()<<11>>11) / (1 << 53) } // rand.Rand.Float64
		d := m.Latency
		if m.Jitter > 0 {
			jit := pcg // a copy, so that pcg itself stays a value
			rng := rand.New(&jit)
			d += time.Duration(rng.Int64N(int64(2*m.Jitter))) - m.Jitter
			float = rng.Float64
		}
		started := time.Now()
		o := runner.Outcome{StartedAt: started}
		if o.State, o.Reason = wait(ctx, d, s.Timeout); o.State == "" {
			code := 0
			if float() < m.FailRate {
				code = 1
			}
			o.ExitCode = &code
			o.State = wire.StateSucceeded
			if code != 0 {
				o.State, o.Reason = wire.StateFailed, "exit code 1"
			}
			if s.OnOutput != nil && len(out) > 0 {
				s.OnOutput(wire.Stdout, outBytes)
			}
			o.Stdout = out
		}
		o.FinishedAt = time.Now()
		return o
	}
}

// fnvOffset and fnv1a are FNV-1a (64 bits), as hash/fnv computes it,
// without its allocation.
const fnvOffset = 14695981039346656037

func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// wait "runs" for d, unless the timeout or a kill (ctx) comes first; it
// returns the state and reason of what ended the run early, or "". A run
// of no time ends at once, without a timer: in make bench's round trips
// that is a park and a wake-up less per agent.
func wait(ctx context.Context, d, timeout time.Duration) (wire.State, string) {
	killed := func() (wire.State, string) { return wire.StateKilled, "killed: " + context.Cause(ctx).Error() }
	if d <= 0 {
		if ctx.Err() != nil {
			return killed()
		}
		return "", ""
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	run := time.NewTimer(d)
	defer run.Stop()
	select {
	case <-ctx.Done():
		return killed()
	case <-expired:
		return wire.StateTimedOut, "timed out after " + timeout.String()
	case <-run.C:
		return "", ""
	}
}

func simulatedOutput(pc string, n int) string {
	if n <= 0 {
		return ""
	}
	line := "simulated output of " + pc + "\n"
	return strings.Repeat(line, n/len(line)+1)[:n]
}
