package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// The baseline is the bare program of reference/limits.md §6, in two
// processes like kanade: this process is the server side (an embedded
// nats-server, an in-process client, SQLite in WAL mode with
// synchronous=NORMAL and a batched-upsert projector), and a child process
// (kanade-bench baseline-agents) holds N plain nats.go connections. A
// round publishes one command on core NATS subject commands.all; every
// agent answers with a JSON result through JetStream PublishAsync on
// results.<pc> (as kanade agents do); the projector fetches up to baselineBatch results
// without waiting, upserts them in one transaction and acks them after
// the commit. The clock runs from the publish until the last row of the
// round is committed.

const (
	baselineBatch    = 500
	baselineCommands = "commands.all"
	baselineStream   = "RESULTS"
)

// baselineResult is what the baseline measured for one N.
type baselineResult struct {
	N                        int
	Connect                  time.Duration // child start → every connection subscribed
	RoundTrip                spread
	Walls                    []time.Duration // the measured rounds, in order
	Interleaved              int             // rounds run between kanade's (baselineRig.between)
	RoundServerCPU, AgentCPU time.Duration   // median CPU-s per round
	Batches, Rows            int64
	Errs                     []error
}

// baseCommand and baseResult are the baseline's messages.
type baseCommand struct {
	ExecID string `json:"exec_id"`
	Script string `json:"script"`
}

type baseResult struct {
	ExecID     string    `json:"exec_id"`
	PCID       string    `json:"pc_id"`
	State      string    `json:"state"`
	ExitCode   int       `json:"exit_code"`
	Stdout     string    `json:"stdout"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// baselineRig is the baseline for one N, set up once: its broker,
// database and agents' process stay up while its rounds run, on their own
// or interleaved with kanade's (see benchBaseline and run).
type baselineRig struct {
	cfg     config
	n       int
	nc      *nats.Conn
	p       *projector
	agents  *child
	closers []func()
	ran     int // rounds so far: names executions and tells warm-ups apart

	r                    baselineResult
	walls, srvCPU, agCPU []time.Duration
}

// benchBaseline measures the bare NATS + SQLite program with n agents on
// its own: every round one after the other.
func benchBaseline(ctx context.Context, cfg config, n int) (baselineResult, error) {
	b, err := startBaseline(ctx, cfg, n)
	if err != nil {
		return b.result(), err
	}
	defer b.close()
	for b.wants() {
		if err := b.round(ctx); err != nil {
			return b.result(), err
		}
	}
	return b.result(), nil
}

// startBaseline starts the broker, the database and the projector, and
// connects n agents. On error the rig is already closed, and only its
// result is of use.
func startBaseline(ctx context.Context, cfg config, n int) (b *baselineRig, err error) {
	b = &baselineRig{cfg: cfg, n: n, r: baselineResult{N: n}}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	dir, err := os.MkdirTemp("", fmt.Sprintf("kanade-baseline-%d-*", n))
	if err != nil {
		return b, fmt.Errorf("temp dir: %w", err)
	}
	if cfg.keep {
		progress("baseline N=%d: keeping %s", n, dir)
	} else {
		b.closers = append(b.closers, func() { os.RemoveAll(dir) })
	}

	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: filepath.Join(dir, "nats"),
		NoLog: true, NoSigs: true, MaxConn: 2*n + 100,
	})
	if err != nil {
		return b, fmt.Errorf("baseline nats-server: %w", err)
	}
	ns.Start()
	b.closers = append(b.closers, func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(30 * time.Second) {
		return b, errors.New("baseline nats-server did not start")
	}
	if b.nc, err = nats.Connect(ns.ClientURL(), nats.InProcessServer(ns)); err != nil {
		return b, fmt.Errorf("baseline in-process connection: %w", err)
	}
	b.closers = append(b.closers, b.nc.Close)
	js, err := jetstream.New(b.nc)
	if err != nil {
		return b, fmt.Errorf("baseline jetstream: %w", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: baselineStream, Subjects: []string{"results.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		return b, fmt.Errorf("baseline stream: %w", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, baselineStream, jetstream.ConsumerConfig{
		Durable: "projector", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: max(20000, 2*n),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return b, fmt.Errorf("baseline consumer: %w", err)
	}
	db, err := openBaselineDB(ctx, filepath.Join(dir, "results.db"))
	if err != nil {
		return b, err
	}
	b.closers = append(b.closers, func() { db.Close() })
	b.p = &projector{db: db, cons: cons, waiters: map[string]*waiter{}}

	// The agents' process.
	exe, err := os.Executable()
	if err != nil {
		return b, fmt.Errorf("baseline agents: %w", err)
	}
	ready := make(chan time.Time, 1)
	out := &lineWriter{fn: func(line string) {
		if strings.HasPrefix(line, "ready") {
			select {
			case ready <- time.Now():
			default:
			}
		}
	}}
	progress("baseline N=%d: connecting %d plain nats.go agents", n, n)
	start := time.Now()
	if b.agents, err = startChild("baseline agents", dir, filepath.Join(dir, "agents.log"), out, os.Environ(),
		exe, "baseline-agents", "-url", ns.ClientURL(), "-count", strconv.Itoa(n), "-output-bytes", strconv.Itoa(cfg.outputBytes)); err != nil {
		return b, err
	}
	b.closers = append(b.closers, func() { b.agents.stop(30 * time.Second) })
	select {
	case t := <-ready:
		b.r.Connect = t.Sub(start)
	case <-b.agents.done:
		return b, b.agents.exited()
	case <-time.After(cfg.connectTimeout):
		return b, fmt.Errorf("baseline agents not connected after %s; last lines of %s:\n%s", cfg.connectTimeout, b.agents.log, tail(b.agents.log, 15))
	case <-ctx.Done():
		return b, ctx.Err()
	}
	progress("baseline N=%d: %d agents connected and subscribed after %s", n, n, fmtDur(b.r.Connect))
	return b, nil
}

// wants reports whether the rig has rounds left to run: the warm-ups, the
// measured rounds and, under -profile, one round under the profiler.
func (b *baselineRig) wants() bool {
	total := b.cfg.warmup + b.cfg.rounds
	if b.cfg.profileDir != "" {
		total++
	}
	return b.ran < total && len(b.r.Errs) == 0
}

// round runs the rig's next round: a second's pause, one command to every
// agent, and the wait until every agent's row is committed. The projector
// runs only during a round, so that between rounds (and during kanade's,
// when they are interleaved) the baseline costs no CPU.
func (b *baselineRig) round(ctx context.Context) error {
	cfg, n, i := b.cfg, b.n, b.ran
	b.ran++
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	pctx, stopProjector := context.WithCancel(ctx)
	projDone := make(chan error, 1)
	go func() { projDone <- b.p.run(pctx) }()
	defer func() {
		stopProjector()
		if err := <-projDone; err != nil {
			progress("baseline N=%d: projector: %v", n, err)
		}
	}()
	id := fmt.Sprintf("b%d-%d", n, i+1)
	done := b.p.expect(id, n)
	a, aa := snap(os.Getpid()), snap(b.agents.pid())
	body, err := json.Marshal(baseCommand{ExecID: id, Script: "echo hi"})
	if err != nil {
		return err
	}
	profiled := i == cfg.warmup+cfg.rounds
	stopProfile := func() {}
	if profiled {
		if stopProfile, err = profileSelf(filepath.Join(cfg.profileDir, fmt.Sprintf("%d-baseline-round-cpu.pprof", n))); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := b.nc.Publish(baselineCommands, body); err != nil {
		stopProfile()
		return fmt.Errorf("baseline publish: %w", err)
	}
	var wall time.Duration
	select {
	case at := <-done:
		wall = at.Sub(t0)
	case <-time.After(cfg.roundTimeout):
		b.r.Errs = append(b.r.Errs, fmt.Errorf("baseline round %d: %d of %d rows after %s", i+1, b.p.committed(id), n, cfg.roundTimeout))
	case <-ctx.Done():
		stopProfile()
		return ctx.Err()
	}
	stopProfile()
	if wall == 0 {
		return nil
	}
	c, cc := snap(os.Getpid()), snap(b.agents.pid())
	kind, num := "warm-up", i+1
	switch {
	case profiled:
		kind, num = "profiled round", 1
	case i >= cfg.warmup:
		kind, num = "round", i+1-cfg.warmup
		b.walls = append(b.walls, wall)
		b.srvCPU, b.agCPU = append(b.srvCPU, c.CPU-a.CPU), append(b.agCPU, cc.CPU-aa.CPU)
	}
	progress("baseline N=%d: %s %d: every row committed after %s (CPU-s server %s, agents %s)", n, kind, num, fmtDur(wall), secs(c.CPU-a.CPU), secs(cc.CPU-aa.CPU))
	return nil
}

// interleaving reports whether the rig still has warm-up or measured
// rounds to run between kanade's.
func (b *baselineRig) interleaving() bool {
	return b.ran < b.cfg.warmup+b.cfg.rounds && len(b.r.Errs) == 0
}

// between runs the rig's next round right after one of kanade's, with
// kanade's processes stopped (SIGSTOP) for its duration and its own
// agents stopped again after it: each side measures alone, and the two
// share whatever this machine's speed is doing at the time. Errors go to
// the baseline's result.
func (b *baselineRig) between(ctx context.Context, kanade ...*child) {
	if !b.interleaving() {
		return
	}
	for i := len(kanade) - 1; i >= 0; i-- { // the swarm before the server
		if err := stopProcess(kanade[i].pid(), true); err != nil {
			b.r.Errs = append(b.r.Errs, err)
		}
	}
	defer func() {
		for _, c := range kanade {
			if err := stopProcess(c.pid(), false); err != nil {
				b.r.Errs = append(b.r.Errs, err)
			}
		}
	}()
	if err := b.resume(); err != nil {
		b.r.Errs = append(b.r.Errs, err)
		return
	}
	if err := b.round(ctx); err != nil && ctx.Err() == nil {
		b.r.Errs = append(b.r.Errs, err)
	} else {
		b.r.Interleaved++
	}
	if err := b.pause(); err != nil {
		b.r.Errs = append(b.r.Errs, err)
	}
}

// pause stops the agents' process (SIGSTOP) while kanade measures;
// resume lets it go on.
func (b *baselineRig) pause() error  { return stopProcess(b.agents.pid(), true) }
func (b *baselineRig) resume() error { return stopProcess(b.agents.pid(), false) }

// result is what the rounds so far measured.
func (b *baselineRig) result() baselineResult {
	r := b.r
	r.RoundTrip, r.Walls = summarize(b.walls), b.walls
	r.RoundServerCPU, r.AgentCPU = summarize(b.srvCPU).Median, summarize(b.agCPU).Median
	if b.p != nil {
		r.Batches, r.Rows = b.p.batches.Load(), b.p.rows.Load()
	}
	if b.agents != nil && b.closers != nil {
		if err := b.agents.exited(); err != nil {
			r.Errs = append(r.Errs, err)
		}
	}
	return r
}

// close stops the agents and the broker and removes the temp directory.
func (b *baselineRig) close() {
	if b.agents != nil {
		_ = b.resume() // a stopped process cannot act on SIGTERM
	}
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// openBaselineDB opens SQLite with the settings limits.md recommends
// (and kanade uses): WAL, synchronous=NORMAL.
func openBaselineDB(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("baseline sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE results (
		exec_id TEXT NOT NULL, pc_id TEXT NOT NULL, state TEXT NOT NULL, exit_code INTEGER,
		stdout TEXT NOT NULL, started_at INTEGER, finished_at INTEGER, updated_at INTEGER NOT NULL,
		PRIMARY KEY (exec_id, pc_id))`); err != nil {
		db.Close()
		return nil, fmt.Errorf("baseline sqlite schema: %w", err)
	}
	return db, nil
}

// projector is the baseline's results projector.
type projector struct {
	db            *sql.DB
	cons          jetstream.Consumer
	batches, rows atomic.Int64

	mu      sync.Mutex
	waiters map[string]*waiter
}

type waiter struct {
	want int
	seen map[string]bool
	done chan time.Time
}

// expect returns a channel that gets the time the n-th distinct row of
// execution id is committed.
func (p *projector) expect(id string, n int) <-chan time.Time {
	w := &waiter{want: n, seen: make(map[string]bool, n), done: make(chan time.Time, 1)}
	p.mu.Lock()
	p.waiters[id] = w
	p.mu.Unlock()
	return w.done
}

func (p *projector) committed(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.waiters[id]; w != nil {
		return len(w.seen)
	}
	return 0
}

// run fetches, upserts and acks until ctx is done.
func (p *projector) run(ctx context.Context) error {
	msgs := make([]jetstream.Msg, 0, baselineBatch)
	rows := make([]baseResult, 0, baselineBatch)
	for ctx.Err() == nil {
		b, err := p.cons.FetchNoWait(baselineBatch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch: %w", err)
		}
		msgs, rows = msgs[:0], rows[:0]
		for m := range b.Messages() {
			var r baseResult
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				_ = m.Term()
				continue
			}
			msgs, rows = append(msgs, m), append(rows, r)
		}
		if err := b.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("fetch: %w", err)
		}
		if len(rows) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		if err := p.upsert(ctx, rows); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, m := range msgs {
			_ = m.Ack()
		}
		p.batches.Add(1)
		p.rows.Add(int64(len(rows)))
		p.note(rows, time.Now())
	}
	return nil
}

// upsert writes rows in one transaction with one multi-row statement.
func (p *projector) upsert(ctx context.Context, rows []baseResult) error {
	var q strings.Builder
	q.WriteString("INSERT INTO results (exec_id, pc_id, state, exit_code, stdout, started_at, finished_at, updated_at) VALUES ")
	args := make([]any, 0, 8*len(rows))
	now := time.Now().UnixMilli()
	for i, r := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, r.ExecID, r.PCID, r.State, r.ExitCode, r.Stdout, r.StartedAt.UnixMilli(), r.FinishedAt.UnixMilli(), now)
	}
	q.WriteString(` ON CONFLICT (exec_id, pc_id) DO UPDATE SET state = excluded.state, exit_code = excluded.exit_code,
		stdout = excluded.stdout, started_at = excluded.started_at, finished_at = excluded.finished_at, updated_at = excluded.updated_at`)
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("baseline sqlite: %w", err)
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("baseline sqlite upsert: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("baseline sqlite commit: %w", err)
	}
	return nil
}

// note counts committed rows and wakes the waiter whose round is complete.
func (p *projector) note(rows []baseResult, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range rows {
		w := p.waiters[r.ExecID]
		if w == nil || len(w.seen) >= w.want {
			continue
		}
		w.seen[r.PCID] = true
		if len(w.seen) == w.want {
			w.done <- at
		}
	}
}

// runBaselineAgents is `kanade-bench baseline-agents`: count plain
// nats.go connections that answer every command on commands.all with a
// result published to JetStream. It prints "ready" once all are
// subscribed, and runs until SIGTERM or SIGINT (on Linux also when the
// bench dies: the parent-death signal).
func runBaselineAgents(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kanade-bench baseline-agents", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "NATS URL")
	count := fs.Int("count", 1000, "connections")
	outBytes := fs.Int("output-bytes", 256, "stdout bytes per result")
	parallel := fs.Int("parallel", 100, "concurrent connects")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *count <= 0 {
		return errors.New("baseline-agents needs -url and a positive -count")
	}
	if _, err := raiseFDLimit(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		fmt.Fprintln(stderr, "baseline agents:", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var pubErrs atomic.Int64
	conns := make([]*nats.Conn, *count)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	sem := make(chan struct{}, *parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range *count {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			nc, err := baselineAgent(*url, fmt.Sprintf("pc-%05d", i+1), *outBytes, &pubErrs)
			mu.Lock()
			defer mu.Unlock()
			conns[i] = nc
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(stdout, "ready %d\n", *count)
	<-ctx.Done()
	if n := pubErrs.Load(); n > 0 {
		fmt.Fprintf(stderr, "baseline agents: %d results not acknowledged\n", n)
	}
	return nil
}

// baselineAgent connects one agent and subscribes it to the commands.
func baselineAgent(url, pc string, outBytes int, pubErrs *atomic.Int64) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(pc), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", pc, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { pubErrs.Add(1) }))
	if err != nil {
		return nc, fmt.Errorf("%s: jetstream: %w", pc, err)
	}
	output := strings.Repeat("x", max(outBytes-1, 0)) + "\n"
	_, err = nc.Subscribe(baselineCommands, func(m *nats.Msg) {
		started := time.Now()
		var cmd baseCommand
		if json.Unmarshal(m.Data, &cmd) != nil || cmd.ExecID == "" {
			return
		}
		body, err := json.Marshal(baseResult{
			ExecID: cmd.ExecID, PCID: pc, State: "succeeded", Stdout: output, StartedAt: started, FinishedAt: time.Now(),
		})
		if err != nil {
			return
		}
		// One results subject per agent, as kanade agents publish.
		if _, err := js.PublishAsync("results."+pc, body); err != nil {
			pubErrs.Add(1)
		}
	})
	if err != nil {
		return nc, fmt.Errorf("%s: subscribe: %w", pc, err)
	}
	if err := nc.Flush(); err != nil {
		return nc, fmt.Errorf("%s: flush: %w", pc, err)
	}
	return nc, nil
}
