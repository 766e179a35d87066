package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// kanadeResult is what one N measured against the real server and swarm.
type kanadeResult struct {
	N int
	// Enrolled: swarm start → the swarm printed that every agent enrolled
	// and started; Connect: swarm start → the API lists N agents online.
	Enrolled, Connect              time.Duration
	ConnectServerCPU, ConnectSwarm time.Duration // CPU-s spent until Connect

	// Idle is the steady state after connecting; Soak the same after
	// SoakRuns more executions (-soak): memory after activity.
	Idle, Soak idle
	SoakRuns   int
	SoakWall   time.Duration // the SoakRuns executions, back to back
	// PeakRSS is the server's largest RSS over the whole run (VmHWM; 0:
	// unknown): what bursts cost before the idle trim hands memory back.
	PeakRSS int64
	// Restart is the restart storm (-restart).
	Restart *restartResult
	// Update is the update wave (-update).
	Update *updateResult

	AgentsPage, AgentsSearch, AgentsAPI spread

	RoundTrip, Accepted            spread          // POST sent → every target final; POST sent → 202
	Walls                          []time.Duration // the measured round trips, in order
	RoundServerCPU, RoundSwarmCPU  time.Duration
	Waits                          int // GET …/wait requests in all measured rounds
	Diag                           diag
	InFlight                       inFlight
	IngestedTotal, ResultsPerAgent float64

	Errs []error
}

// idle is one idle window: CPU over it, memory at its end.
type idle struct {
	ServerCPU, SwarmCPU float64 // % of one core
	ServerGCs           int     // garbage collections in the server during the window (-1: unknown)
	ServerRSS, SwarmRSS int64
	ServerAllocRate     float64 // bytes/s the server allocated over the window (-1: unknown)
	Mem                 serverMem
}

// serverMem is where the server's memory was at the end of an idle
// window, from the Go runtime's figures on its /metrics.
type serverMem struct {
	HeapInuse, NextGC, Stacks, Retained, Goroutines float64
	Trims                                           float64 // kanade_memory_trims_total so far (-1: not reported)
	OK                                              bool
}

// readServerMem parses the runtime's memory figures from a /metrics scrape.
func readServerMem(text string) serverMem {
	var m serverMem
	var idle, released float64
	ok := true
	for _, f := range []struct {
		name string
		v    *float64
	}{
		{"go_memstats_heap_inuse_bytes", &m.HeapInuse}, {"go_memstats_next_gc_bytes", &m.NextGC},
		{"go_memstats_stack_inuse_bytes", &m.Stacks}, {"go_memstats_heap_idle_bytes", &idle},
		{"go_memstats_heap_released_bytes", &released}, {"go_goroutines", &m.Goroutines},
	} {
		v, found := promValue(text, f.name)
		*f.v, ok = v, ok && found
	}
	m.Retained, m.OK = idle-released, ok
	m.Trims = -1
	if v, found := promValue(text, "kanade_memory_trims_total"); found {
		m.Trims = v
	}
	return m
}

// measureIdle measures the server and the swarm over cfg.idle (with
// -profile, under the CPU profiler, and writes heap profiles after it).
func measureIdle(ctx context.Context, c *client, cfg config, prof *profiler, phase string, srv, swarm *child) (idle, error) {
	var w idle
	// counters reads the collections and the bytes allocated so far (-1: unknown).
	counters := func() (gcs, allocs float64, text string) {
		b, _, err := c.get(ctx, "/metrics")
		if err != nil {
			return -1, -1, ""
		}
		text = string(b)
		gcs, allocs = -1, -1
		if v, ok := promValue(text, "go_gc_duration_seconds_count"); ok {
			gcs = v
		}
		if v, ok := promValue(text, "go_memstats_alloc_bytes_total"); ok {
			allocs = v
		}
		return gcs, allocs, text
	}
	// With -profile, a heap profile at the start too: with the one at the
	// end it gives what the window allocated (its collection is forced).
	prof.heap(ctx, phase+"-start")
	gc0, alloc0, _ := counters()
	t0 := time.Now()
	a, as := snap(srv.pid()), snap(swarm.pid())
	profWait := prof.cpu(ctx, phase, cfg.idle)
	if err := sleep(ctx, cfg.idle); err != nil {
		return w, err
	}
	b, bs := snap(srv.pid()), snap(swarm.pid())
	gc1, alloc1, text := counters()
	w.ServerGCs, w.ServerAllocRate = -1, -1
	if gc0 >= 0 && gc1 >= 0 {
		w.ServerGCs = int(gc1 - gc0)
	}
	if alloc0 >= 0 && alloc1 >= alloc0 {
		w.ServerAllocRate = (alloc1 - alloc0) / time.Since(t0).Seconds()
	}
	if text != "" {
		w.Mem = readServerMem(text)
	}
	profWait()
	prof.heap(ctx, phase)
	if a.CPU > 0 || b.CPU > 0 {
		w.ServerCPU, w.SwarmCPU = cpuPercent(a, b), cpuPercent(as, bs)
	}
	w.ServerRSS, w.SwarmRSS = b.RSS, bs.RSS
	return w, swarm.exited()
}

// diag is one extra round with /metrics scraped alongside.
type diag struct {
	Wall, Accepted         time.Duration
	FirstIngest, AllIngest time.Duration // since the POST was sent
	AllStream              time.Duration // since the POST: every target's result in the stream (ingested + backlog)
	Ingested, PeakPending  float64
	Scrapes                int
	ScrapeFailures         int
	FirstScrapeErr         error
	ingestedBefore         float64
	n                      int
}

// inFlight is what the execution page saw during a run that stays in
// flight for a while.
type inFlight struct {
	Wall                 time.Duration // POST → every target final
	Page, Summary, Table spread        // GET /executions/{id}, and its two live regions
	SSEHeaders, SSEFirst time.Duration
	SSEEvents            int
	SSEMaxGap            time.Duration
	SSELastLag           time.Duration // first event once every target is final − when the API showed that; -1: none
}

// benchKanade measures kanade with n simulated agents. between, if set,
// runs after each warm-up and measured round trip, given the server and
// the swarm (the baseline's interleaved rounds).
//
// With tls the broker serves TLS (--nats-tls auto) and the swarm dials
// tls://, pinning the CA of the enrollment bundle; with connectOnly the
// measurement ends after the idle window.
func benchKanade(ctx context.Context, cfg config, n int, tls, connectOnly bool, between func(context.Context, ...*child)) (r kanadeResult, err error) {
	r.N = n
	dir, err := os.MkdirTemp("", fmt.Sprintf("kanade-bench-%d-*", n))
	if err != nil {
		return r, fmt.Errorf("temp dir: %w", err)
	}
	if cfg.keep {
		progress("N=%d: keeping %s", n, dir)
	} else {
		defer os.RemoveAll(dir)
	}
	httpPort, err := freePort()
	if err != nil {
		return r, err
	}
	natsPort, err := freePort()
	if err != nil {
		return r, err
	}
	data := filepath.Join(dir, "server")
	var prof *profiler
	srvProf, srvPC, err := pprofEnv(cfg.profileDir != "")
	if err != nil {
		return r, err
	}
	swarmProf, swarmPC, err := pprofEnv(cfg.profileDir != "")
	if err != nil {
		return r, err
	}
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return r, err
		}
		prof = &profiler{dir: cfg.profileDir, n: n, clients: map[string]*client{"server": srvPC, "swarm": swarmPC}}
	}

	// 1. The server.
	progress("N=%d: starting the server (logs in %s)", n, filepath.Join(dir, "server.log"))
	serveArgs := []string{"serve", "--data", data, "--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort)}
	scheme := "nats"
	if tls {
		serveArgs, scheme = append(serveArgs, "--nats-tls", "auto"), "tls"
	}
	srv, err := startChild("server", dir, filepath.Join(dir, "server.log"), nil, childEnv(srvProf...),
		filepath.Join(cfg.binDir, "kanade"), serveArgs...)
	if err != nil {
		return r, err
	}
	defer func() { srv.stop(30 * time.Second) }() // the restart storm replaces srv
	c := newClient(fmt.Sprintf("http://127.0.0.1:%d", httpPort))
	creds := filepath.Join(data, "agent-credentials")
	if err := waitFor(ctx, time.Minute, 100*time.Millisecond, func() error {
		if err := srv.exited(); err != nil {
			return fatal(err)
		}
		if _, _, err := c.get(ctx, "/healthz"); err != nil {
			return err
		}
		if _, err := os.Stat(creds); err != nil {
			return fmt.Errorf("agent credentials: %w", err)
		}
		return nil
	}); err != nil {
		return r, fmt.Errorf("server did not become healthy: %w", err)
	}

	// 2. The swarm, and the time until every agent is online.
	progress("N=%d: starting the swarm", n)
	ready := make(chan time.Time, 1)
	lines := &swarmLines{}
	out := &lineWriter{fn: func(line string) {
		if !strings.HasPrefix(line, "swarm: ") && strings.HasPrefix(line, "swarm ") {
			lines.add(line)
		}
		if strings.HasPrefix(line, "swarm ready") {
			select {
			case ready <- time.Now():
			default:
			}
		}
	}}
	srv0 := snap(srv.pid())
	swarmStart := time.Now()
	swarm, err := startChild("swarm", dir, filepath.Join(dir, "swarm.log"), out, childEnv(swarmProf...),
		filepath.Join(cfg.binDir, "kanade-swarm"),
		"--server", fmt.Sprintf("%s://127.0.0.1:%d", scheme, natsPort), "--credentials", creds,
		"--count", strconv.Itoa(n), "--seed", "1", "--data", filepath.Join(dir, "swarm"),
		"--heartbeat", cfg.heartbeat.String(), "--latency", "0s", "--latency-jitter", "0s",
		"--fail-rate", strconv.FormatFloat(cfg.failRate, 'g', -1, 64), "--output-bytes", strconv.Itoa(cfg.outputBytes),
		"--update-fail", strconv.FormatFloat(cfg.updateFail, 'g', -1, 64), "--log-level", "warn")
	if err != nil {
		return r, err
	}
	defer swarm.stop(30 * time.Second)
	lastReport := time.Now()
	if err := waitFor(ctx, cfg.connectTimeout, 250*time.Millisecond, func() error {
		for _, ch := range []*child{srv, swarm} {
			if err := ch.exited(); err != nil {
				return fatal(err)
			}
		}
		online, err := c.online(ctx)
		if err != nil {
			return err
		}
		if time.Since(lastReport) > 5*time.Second {
			progress("N=%d: %d of %d agents online after %s", n, online, n, time.Since(swarmStart).Round(time.Second))
			lastReport = time.Now()
		}
		if online < n {
			return fmt.Errorf("%d of %d agents online", online, n)
		}
		return nil
	}); err != nil {
		return r, fmt.Errorf("agents did not come online: %w", err)
	}
	r.Connect = time.Since(swarmStart)
	select {
	case t := <-ready:
		r.Enrolled = t.Sub(swarmStart)
	default:
	}
	if srv1 := snap(srv.pid()); srv1.CPU > 0 {
		r.ConnectServerCPU = srv1.CPU - srv0.CPU
	}
	r.ConnectSwarm = snap(swarm.pid()).CPU
	progress("N=%d: all %d agents online after %s (enrolled and started after %s)", n, n, fmtDur(r.Connect), fmtDur(r.Enrolled))

	// 3. Idle steady state.
	progress("N=%d: letting the server settle for %s, then measuring %s of idle", n, cfg.settle, cfg.idle)
	if err := sleep(ctx, cfg.settle); err != nil {
		return r, err
	}
	if r.Idle, err = measureIdle(ctx, c, cfg, prof, "idle", srv, swarm); err != nil {
		return r, err
	}
	progress("N=%d: idle server %.1f%% of a core, %s, %d garbage collections; swarm %.1f%%, %s", n,
		r.Idle.ServerCPU, fmtMiB(r.Idle.ServerRSS), r.Idle.ServerGCs, r.Idle.SwarmCPU, fmtMiB(r.Idle.SwarmRSS))
	if connectOnly {
		return r, nil
	}

	// 4. Agents page.
	progress("N=%d: agents page (%d requests each)", n, cfg.samples)
	if r.AgentsPage, err = c.timeGets(ctx, cfg.samples, "/agents"); err != nil {
		r.Errs = append(r.Errs, err)
	}
	if r.AgentsSearch, err = c.timeGets(ctx, cfg.samples, "/agents?q=swarm-0009"); err != nil {
		r.Errs = append(r.Errs, err)
	}
	if r.AgentsAPI, err = c.timeGets(ctx, cfg.samples, "/api/agents?limit=1000"); err != nil {
		r.Errs = append(r.Errs, err)
	}

	// 5. Deploy round trips.
	var walls, accepted, srvCPU, swCPU []time.Duration
	var waits int
	for i := range cfg.warmup + cfg.rounds {
		if err := sleep(ctx, 2*time.Second); err != nil {
			return r, err
		}
		a, as := snap(srv.pid()), snap(swarm.pid())
		rt, err := roundTrip(ctx, c, cfg, n, fmt.Sprintf("echo bench round %d", i+1), nil)
		if err != nil {
			r.Errs = append(r.Errs, fmt.Errorf("round trip %d: %w", i+1, err))
			break
		}
		b, bs := snap(srv.pid()), snap(swarm.pid())
		kind, num := "warm-up", i+1
		if i >= cfg.warmup {
			kind, num = "round", i+1-cfg.warmup
			walls, accepted = append(walls, rt.wall), append(accepted, rt.accepted)
			waits += rt.waits
			srvCPU, swCPU = append(srvCPU, b.CPU-a.CPU), append(swCPU, bs.CPU-as.CPU)
		}
		progress("N=%d: %s %d: every target final after %s (POST answered after %s; CPU-s server %s, swarm %s)",
			n, kind, num, fmtDur(rt.wall), fmtDur(rt.accepted), secs(b.CPU-a.CPU), secs(bs.CPU-as.CPU))
		if between != nil {
			between(ctx, srv, swarm)
		}
	}
	r.RoundTrip, r.Accepted, r.Walls = summarize(walls), summarize(accepted), walls
	r.Waits = waits
	r.RoundServerCPU, r.RoundSwarmCPU = summarize(srvCPU).Median, summarize(swCPU).Median

	// 6. One more round with /metrics scraped alongside: where the time goes.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return r, err
	}
	if d, err := diagRound(ctx, c, cfg, n); err != nil {
		r.Errs = append(r.Errs, fmt.Errorf("diagnostic round: %w", err))
	} else {
		r.Diag = d
		progress("N=%d: diagnostic round: %s; first result ingested after %s, every result in the stream after %s, all %.0f ingested after %s; projector backlog peak %.0f",
			n, fmtDur(d.Wall), fmtDur(d.FirstIngest), fmtDur(d.AllStream), d.Ingested, fmtDur(d.AllIngest), d.PeakPending)
	}

	// With -profile, one more round under the CPU profiler.
	if prof != nil && len(walls) > 0 {
		if err := sleep(ctx, 2*time.Second); err != nil {
			return r, err
		}
		prof.heap(ctx, "round-before")
		wait := prof.cpu(ctx, "round", r.RoundTrip.Median+time.Second)
		if _, err := roundTrip(ctx, c, cfg, n, "echo profiled round", nil); err != nil {
			r.Errs = append(r.Errs, fmt.Errorf("profiled round: %w", err))
		}
		wait()
		prof.heap(ctx, "round-after")
	}

	// 7. The execution page following a run that stays in flight.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return r, err
	}
	progress("N=%d: execution page during a run of %s±%s per target", n, cfg.inflight, cfg.inflight)
	if f, err := followRun(ctx, c, cfg, n); err != nil {
		r.Errs = append(r.Errs, fmt.Errorf("execution page: %w", err))
	} else {
		r.InFlight = f
	}

	if text, _, err := c.get(ctx, "/metrics"); err == nil {
		r.IngestedTotal, _ = promValue(string(text), "kanade_results_ingested_total")
		runs := float64(cfg.warmup + len(walls) + 2)
		r.ResultsPerAgent = r.IngestedTotal / runs / float64(n)
	}

	// 8. With -soak, many more executions back to back, then idle again.
	if cfg.soak > 0 {
		progress("N=%d: soak: %d executions back to back", n, cfg.soak)
		start := time.Now()
		for i := range cfg.soak {
			if _, err := roundTrip(ctx, c, cfg, n, fmt.Sprintf("echo bench soak %d", i+1), nil); err != nil {
				r.Errs = append(r.Errs, fmt.Errorf("soak execution %d: %w", i+1, err))
				break
			}
			r.SoakRuns++
		}
		r.SoakWall = time.Since(start)
		progress("N=%d: soak: %d executions done; settling %s, then measuring %s of idle", n, r.SoakRuns, cfg.settle, cfg.idle)
		if err := sleep(ctx, cfg.settle); err != nil {
			return r, err
		}
		if r.Soak, err = measureIdle(ctx, c, cfg, prof, "soak", srv, swarm); err != nil {
			return r, err
		}
		progress("N=%d: idle after the soak: server %.1f%% of a core, %s, %d garbage collections", n,
			r.Soak.ServerCPU, fmtMiB(r.Soak.ServerRSS), r.Soak.ServerGCs)
	}
	r.PeakRSS = snap(srv.pid()).HWM

	// 9. With -update, the update wave.
	if cfg.update && !connectOnly {
		u, err := updateWave(ctx, c, n, lines, cfg.updateFail, cfg.updateTimeout)
		r.Update = &u
		if err != nil {
			r.Errs = append(r.Errs, fmt.Errorf("update wave: %w", err))
		}
	}

	// 10. With -restart, the restart storm.
	if cfg.restart {
		if err := sleep(ctx, 2*time.Second); err != nil {
			return r, err
		}
		gen := 1
		rs, err := restartStorm(ctx, c, cfg, n, &srv, swarm, lines, func() (*child, error) {
			gen++
			return startChild("server", dir, filepath.Join(dir, fmt.Sprintf("server-%d.log", gen)), nil, childEnv(srvProf...),
				filepath.Join(cfg.binDir, "kanade"), serveArgs...)
		})
		r.Restart = &rs
		if err != nil {
			r.Errs = append(r.Errs, fmt.Errorf("restart storm: %w", err))
		}
	}
	for _, ch := range []*child{srv, swarm} {
		if err := ch.exited(); err != nil {
			r.Errs = append(r.Errs, err)
		}
	}
	progress("N=%d: stopping the swarm and the server", n)
	swarm.stop(30 * time.Second)
	srv.stop(30 * time.Second)
	if rs := r.Restart; rs != nil && rs.RunDone > 0 {
		// The swarm prints how often its model ran each script as it stops.
		rs.ModelRuns, rs.RunsChecked = lines.modelRuns(rs.script)
	}
	return r, nil
}

// roundResult is one round trip: POST sent (t0) → 202 (accepted) → every
// target final as seen by the API (doneAt, wall).
type roundResult struct {
	t0, doneAt     time.Time
	wall, accepted time.Duration
	waits          int // GET /api/executions/{id}/wait requests
}

// roundTrip runs script on every agent and waits until every target's
// result is committed and visible through the API. during, if set, runs
// while the round is in flight.
func roundTrip(ctx context.Context, c *client, cfg config, n int, script string, during func(ctx context.Context, t0 time.Time, id string)) (roundResult, error) {
	t0 := time.Now()
	e, err := c.run(ctx, script)
	if err != nil {
		return roundResult{}, err
	}
	rr := roundResult{t0: t0, accepted: time.Since(t0)}
	if e.TargetCount != n {
		return rr, fmt.Errorf("the run targets %d agents, want %d", e.TargetCount, n)
	}
	dctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if during != nil {
		wg.Go(func() { during(dctx, t0, e.ExecID) })
	}
	at, waits, err := c.waitDone(ctx, e.ExecID, cfg.roundTimeout)
	rr.waits = waits
	stop()
	wg.Wait()
	if err != nil {
		return rr, err
	}
	rr.doneAt, rr.wall = at, at.Sub(t0)
	return rr, nil
}

// diagRound is a round trip with /metrics scraped every 50 ms: when the
// first result was ingested, when the last, and the projector's backlog.
func diagRound(ctx context.Context, c *client, cfg config, n int) (diag, error) {
	d := diag{n: n}
	text, _, err := c.get(ctx, "/metrics")
	if err != nil {
		return d, err
	}
	d.ingestedBefore, _ = promValue(string(text), "kanade_results_ingested_total")
	rt, err := roundTrip(ctx, c, cfg, n, "echo bench diagnostic round", func(ctx context.Context, t0 time.Time, _ string) {
		for ctx.Err() == nil {
			text, _, err := c.get(ctx, "/metrics")
			at := time.Since(t0)
			if err != nil {
				if ctx.Err() == nil {
					d.ScrapeFailures++
					d.FirstScrapeErr = cmpErr(d.FirstScrapeErr, err)
				}
			} else {
				d.Scrapes++
				d.observe(string(text), at)
			}
			if sleep(ctx, 50*time.Millisecond) != nil {
				return
			}
		}
	})
	if err != nil {
		return d, err
	}
	d.Wall, d.Accepted = rt.wall, rt.accepted
	// One scrape after the end, for the final count.
	if text, _, err := c.get(ctx, "/metrics"); err == nil {
		d.observe(string(text), rt.wall)
	}
	return d, nil
}

// observe folds one /metrics scrape taken at (since the POST) into d.
func (d *diag) observe(text string, at time.Duration) {
	ing, haveIng := promValue(text, "kanade_results_ingested_total")
	if haveIng && ing > d.ingestedBefore {
		if d.FirstIngest == 0 {
			d.FirstIngest = at
		}
		if ing-d.ingestedBefore > d.Ingested {
			d.Ingested, d.AllIngest = ing-d.ingestedBefore, at
		}
	}
	if p, ok := promValue(text, "kanade_projector_pending_messages", `consumer="results-projector"`); ok {
		d.PeakPending = max(d.PeakPending, p)
		if haveIng && d.AllStream == 0 && ing-d.ingestedBefore+p >= float64(d.n) {
			d.AllStream = at
		}
	}
}

// followRun starts a run whose targets stay in flight for a while (the
// swarm's model directive) and measures the execution page meanwhile: the
// full page, its two live regions, and its event stream.
func followRun(ctx context.Context, c *client, cfg config, n int) (inFlight, error) {
	var f inFlight
	script := fmt.Sprintf("# swarm: latency=%s jitter=%s\necho bench in flight", cfg.inflight, cfg.inflight)
	var page, summary, table []time.Duration
	var sse *sseFollower
	var sseErr, getErr error
	sctx, stopSSE := context.WithCancel(ctx)
	defer stopSSE()
	rt, err := roundTrip(ctx, c, cfg, n, script, func(ctx context.Context, t0 time.Time, id string) {
		sse, sseErr = c.followSSE(sctx, "/executions/"+id+"/events")
		gets := []struct {
			path string
			hx   bool // requested the way the page's live regions refetch
			into *[]time.Duration
		}{
			{"/executions/" + id, false, &page},
			{"/executions/" + id + "/summary", true, &summary},
			{"/executions/" + id + "/targets", true, &table},
		}
		for ctx.Err() == nil {
			for _, g := range gets {
				var hdr []string
				if g.hx {
					hdr = []string{"HX-Request", "true"}
				}
				_, took, err := c.get(ctx, g.path, hdr...)
				if err != nil {
					if ctx.Err() == nil {
						getErr = cmpErr(getErr, err)
					}
					continue
				}
				*g.into = append(*g.into, took)
			}
			if sleep(ctx, time.Second) != nil {
				return
			}
		}
	})
	if err != nil {
		return f, err
	}
	f.Wall = rt.wall
	f.Page, f.Summary, f.Table = summarize(page), summarize(summary), summarize(table)
	if sseErr != nil {
		return f, sseErr
	}
	// Give the stream its coalescing gap to deliver the last change.
	if err := sleep(ctx, time.Second); err != nil {
		return f, err
	}
	stopSSE()
	<-sse.done
	evs := slices.DeleteFunc(sse.snapshot(), func(e sseEvent) bool { return e.Name != "changed" })
	f.SSEHeaders = sse.firstByte
	if len(evs) == 0 {
		return f, errors.Join(getErr, errors.New("the execution's event stream sent no event"))
	}
	f.SSEFirst = evs[0].At.Sub(sse.start)
	f.SSEEvents = len(evs)
	for i := 1; i < len(evs); i++ {
		f.SSEMaxGap = max(f.SSEMaxGap, evs[i].At.Sub(evs[i-1].At))
	}
	// The first event once every target is final (allowing for the time
	// the wait request's answer took to arrive) is the one that makes the
	// page show the final state.
	f.SSELastLag = -1
	for _, e := range evs {
		if !e.At.Before(rt.doneAt.Add(-10 * time.Millisecond)) {
			f.SSELastLag = e.At.Sub(rt.doneAt)
			break
		}
	}
	return f, getErr
}

// cmpErr keeps the first error.
func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
