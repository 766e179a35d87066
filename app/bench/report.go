package main

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// nResult is everything measured for one N.
type nResult struct {
	N      int
	Kanade *kanadeResult
	// TLS is kanade again with the broker on TLS, connecting and idle only (-tls compare).
	TLS      *kanadeResult
	Baseline *baselineResult
	Err      []error
}

// report is the bench's output: a header, the table, and notes.
type report struct {
	cfg     config
	machine string
	date    time.Time
	version string
	results []nResult
	// noise is the -noise process, noiseStart its sample when it started
	// and noiseCPU what it used over the run (% of one core).
	noise      *child
	noiseStart procSample
	noiseCPU   float64
}

// String renders the report as markdown.
func (r report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## kanade bench, %s\n\n", r.date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s. %s, kanade %s. Server and swarm are separate processes on the same cores.\n", r.machine, runtime.Version(), r.version)
	interleaved := ""
	if r.cfg.baseline && !r.cfg.skipKanade {
		interleaved = ", kanade's and the baseline's taking turns"
	}
	fmt.Fprintf(&b, "Swarm: heartbeat %s, model run time 0 for round trips, fail rate %g, %d B of output per target. "+
		"Round trips: %d warm-up + %d measured, median (min–max)%s. Idle: %s window after %s settling. "+
		"Page latencies: %d sequential requests from the bench, wall time to the last byte.\n\n",
		r.cfg.heartbeat, r.cfg.failRate, r.cfg.outputBytes, r.cfg.warmup, r.cfg.rounds, interleaved, r.cfg.idle, r.cfg.settle, r.cfg.samples)
	if r.cfg.noise {
		fmt.Fprintf(&b, "Background load (-noise): a process spinning %.0f %% of every %s kept one core busy during the whole run (it used %.0f %% of a core on average).\n\n",
			100*noiseDuty, noisePeriod, r.noiseCPU)
	}
	switch r.cfg.tls {
	case "on":
		b.WriteString("The broker serves TLS (--nats-tls auto); the swarm dials tls:// and pins the bundle's CA.\n\n")
	case "compare":
		b.WriteString("The \"over TLS\" rows are a second server and swarm, started after the plain-text ones stopped, with the broker on TLS (--nats-tls auto, the swarm pinning the bundle's CA); they measure connecting and idle only.\n\n")
	}
	b.WriteString(r.table().String())
	if notes := r.notes(); notes != "" {
		b.WriteString("\n" + notes)
	}
	return b.String()
}

// table has one row per figure and one column per N.
func (r report) table() *table {
	t := &table{header: []string{"N"}}
	for _, res := range r.results {
		t.header = append(t.header, group(int64(res.N)))
	}
	row := func(name string, cell func(k *kanadeResult, b *baselineResult) string) {
		cells := []string{name}
		for _, res := range r.results {
			cells = append(cells, cell(res.Kanade, res.Baseline))
		}
		t.add(cells...)
	}
	kan := func(f func(k *kanadeResult) string) func(*kanadeResult, *baselineResult) string {
		return func(k *kanadeResult, _ *baselineResult) string {
			if k == nil {
				return "–"
			}
			return f(k)
		}
	}
	base := func(f func(b *baselineResult) string) func(*kanadeResult, *baselineResult) string {
		return func(_ *kanadeResult, b *baselineResult) string {
			if b == nil {
				return "–"
			}
			return f(b)
		}
	}
	row("kanade: all agents online after the swarm starts (all enrolled)", kan(func(k *kanadeResult) string {
		if k.Connect == 0 {
			return "–"
		}
		return fmt.Sprintf("%s (%s)", fmtDur(k.Connect), fmtDur(k.Enrolled))
	}))
	idleServer := func(w idle) string {
		v := cpuRSS(w.ServerCPU, w.ServerRSS)
		if w.ServerGCs >= 0 && v != "–" {
			v += fmt.Sprintf(" (%d)", w.ServerGCs)
		}
		return v
	}
	row("kanade: idle server CPU / RSS (garbage collections in the window)", kan(func(k *kanadeResult) string { return idleServer(k.Idle) }))
	row("kanade: idle swarm CPU / RSS (per simulated agent)", kan(func(k *kanadeResult) string {
		v := cpuRSS(k.Idle.SwarmCPU, k.Idle.SwarmRSS)
		if v == "–" || k.N == 0 {
			return v
		}
		// % of a core → µs of CPU per second per agent.
		return fmt.Sprintf("%s (%.1f µs/s, %.0f KiB)", v, k.Idle.SwarmCPU*1e4/float64(k.N), float64(k.Idle.SwarmRSS)/1024/float64(k.N))
	}))
	if r.cfg.tls == "compare" {
		tlsRow := func(name string, f func(k *kanadeResult) string) {
			cells := []string{name}
			for _, res := range r.results {
				if res.TLS == nil {
					cells = append(cells, "–")
				} else {
					cells = append(cells, f(res.TLS))
				}
			}
			t.add(cells...)
		}
		tlsRow("kanade over TLS: all agents online after the swarm starts (all enrolled)", func(k *kanadeResult) string {
			if k.Connect == 0 {
				return "–"
			}
			return fmt.Sprintf("%s (%s)", fmtDur(k.Connect), fmtDur(k.Enrolled))
		})
		row("kanade: connecting, CPU-s server / swarm (plain text)", kan(func(k *kanadeResult) string { return cpuPair(k.ConnectServerCPU, k.ConnectSwarm) }))
		tlsRow("kanade over TLS: connecting, CPU-s server / swarm", func(k *kanadeResult) string { return cpuPair(k.ConnectServerCPU, k.ConnectSwarm) })
		tlsRow("kanade over TLS: idle server CPU / RSS (garbage collections in the window)", func(k *kanadeResult) string { return idleServer(k.Idle) })
		tlsRow("kanade over TLS: idle swarm CPU / RSS (context)", func(k *kanadeResult) string { return cpuRSS(k.Idle.SwarmCPU, k.Idle.SwarmRSS) })
	}
	if r.cfg.soak > 0 {
		row(fmt.Sprintf("kanade: idle server after %d more executions (-soak), CPU / RSS (collections)", r.cfg.soak),
			kan(func(k *kanadeResult) string { return idleServer(k.Soak) }))
	}
	row("**kanade: deploy round trip** (POST /api/run → every target final in the API)", kan(func(k *kanadeResult) string { return fmtSpread(k.RoundTrip) }))
	row("kanade: results ingested/s (N / round trip)", kan(func(k *kanadeResult) string { return fmtRate(k.N, k.RoundTrip.Median) }))
	row("kanade: CPU-s per round, server / swarm", kan(func(k *kanadeResult) string { return cpuPair(k.RoundServerCPU, k.RoundSwarmCPU) }))
	row("**baseline: round trip** (bare NATS + SQLite: publish → every row committed)", base(func(b *baselineResult) string { return fmtSpread(b.RoundTrip) }))
	row("baseline: CPU-s per round, server / agents", base(func(b *baselineResult) string { return cpuPair(b.RoundServerCPU, b.AgentCPU) }))
	row("**ratio kanade / baseline** (target ≤ 1.3×)", func(k *kanadeResult, b *baselineResult) string {
		if k == nil || b == nil {
			return "–"
		}
		return fmtRatio(k.RoundTrip.Median, b.RoundTrip.Median)
	})
	if r.cfg.restart {
		rs := func(f func(x *restartResult) string) func(*kanadeResult, *baselineResult) string {
			return kan(func(k *kanadeResult) string {
				if k.Restart == nil {
					return "–"
				}
				return f(k.Restart)
			})
		}
		row("**kanade: restart storm** (kill -9, start again): every agent connected / caught up / heartbeat recorded, after the kill", rs(func(x *restartResult) string {
			if x.CaughtUp == 0 {
				return "–"
			}
			v := fmtDur(x.Reconnected) + " / " + fmtDur(x.CaughtUp) + " / "
			if x.Heartbeats == 0 {
				return v + "–"
			}
			return v + fmtDur(x.Heartbeats)
		}))
		row("kanade: restart storm: the run in flight across it (results; runs of its script)", rs(func(x *restartResult) string {
			if x.RunDone == 0 {
				return "–"
			}
			runs := "–"
			if x.RunsChecked {
				runs = group(x.ModelRuns)
			}
			return fmt.Sprintf("complete after %s (%s results; %s runs)", fmtDur(x.RunDone), group(int64(x.RunResults)), runs)
		}))
	}
	if r.cfg.update {
		up := func(f func(x *updateResult) string) func(*kanadeResult, *baselineResult) string {
			return kan(func(k *kanadeResult) string {
				if k.Update == nil || k.Update.Targets == 0 {
					return "–"
				}
				return f(k.Update)
			})
		}
		row("**kanade: update wave** (15 MiB release, one wave to every agent): rollout → every target final", up(func(x *updateResult) string { return fmtDur(x.Wall) }))
		row("kanade: update wave: succeeded / failed / other (targets)", up(func(x *updateResult) string {
			return fmt.Sprintf("%s / %s / %s (%s)", group(int64(x.Succeeded)), group(int64(x.Failed)), group(int64(x.Other)), group(int64(x.Targets)))
		}))
		row("kanade: update wave: broker peak out, MiB/s (1 s window); total out", up(func(x *updateResult) string {
			return fmt.Sprintf("%.0f; %s", x.PeakOut/(1<<20), fmtMiB(int64(x.BytesOut)))
		}))
		row("kanade: update wave: downloads in flight, peak", up(func(x *updateResult) string { return group(x.PeakInFlight) }))
		row("kanade: update wave: load average after it (1, 5, 15 min)", up(func(x *updateResult) string { return x.Load }))
	}
	row("kanade: GET /agents (HTML), median (p95)", kan(func(k *kanadeResult) string { return fmtLatency(k.AgentsPage) }))
	row("kanade: GET /agents?q=swarm-0009 (search), median (p95)", kan(func(k *kanadeResult) string { return fmtLatency(k.AgentsSearch) }))
	row("kanade: GET /api/agents?limit=1000, median (p95)", kan(func(k *kanadeResult) string { return fmtLatency(k.AgentsAPI) }))
	row("kanade: execution page during a run, GET /executions/{id}, median (p95)", kan(func(k *kanadeResult) string { return fmtLatency(k.InFlight.Page) }))
	row("kanade: its live regions on each update, summary / targets, median", kan(func(k *kanadeResult) string {
		if k.InFlight.Summary.N == 0 {
			return "–"
		}
		return fmtDur(k.InFlight.Summary.Median) + " / " + fmtDur(k.InFlight.Table.Median)
	}))
	row("kanade: its event stream, headers / first event", kan(func(k *kanadeResult) string {
		if k.InFlight.SSEEvents == 0 {
			return "–"
		}
		return fmtDur(k.InFlight.SSEHeaders) + " / " + fmtDur(k.InFlight.SSEFirst)
	}))
	row("kanade: updates during the run (longest gap; final update after completion)", kan(func(k *kanadeResult) string {
		f := k.InFlight
		if f.SSEEvents == 0 {
			return "–"
		}
		last := "none"
		if f.SSELastLag >= 0 {
			last = "+" + fmtDur(f.SSELastLag)
		}
		return fmt.Sprintf("%d in %s (%s; %s)", f.SSEEvents, fmtDur(f.Wall), fmtDur(f.SSEMaxGap), last)
	}))
	return t
}

// notes explain the table: where the time went, and what failed.
func (r report) notes() string {
	var b strings.Builder
	for _, res := range r.results {
		var lines []string
		if k := res.Kanade; k != nil {
			if k.Connect > 0 {
				lines = append(lines, fmt.Sprintf("connecting cost the server %s CPU-s and the swarm %s CPU-s (enrollment included)",
					secs(k.ConnectServerCPU), secs(k.ConnectSwarm)))
			}
			if k.PeakRSS > 0 {
				lines = append(lines, fmt.Sprintf("server peak RSS over the whole run (VmHWM: connecting, rounds, soak; the idle trim hands it back): %s", fmtMiB(k.PeakRSS)))
			}
			for _, w := range []struct {
				when string
				w    idle
			}{{"the idle window", k.Idle}, {fmt.Sprintf("the idle window after %d more executions", k.SoakRuns), k.Soak}} {
				if m := w.w.Mem; m.OK {
					line := fmt.Sprintf("server memory at the end of %s (Go runtime): heap in use %s (next collection at %s), goroutine stacks %s, free heap not yet returned %s; %s goroutines",
						w.when, fmtMiB(int64(m.HeapInuse)), fmtMiB(int64(m.NextGC)), fmtMiB(int64(m.Stacks)), fmtMiB(int64(m.Retained)), group(int64(m.Goroutines)))
					if m.Trims >= 0 {
						line += fmt.Sprintf("; memory trims since the server started: %d", int(m.Trims))
					}
					if w.w.ServerAllocRate >= 0 {
						line += fmt.Sprintf("; allocated %.1f MiB/s over the window", w.w.ServerAllocRate/(1<<20))
					}
					lines = append(lines, line)
				}
			}
			if k.Accepted.N > 0 {
				lines = append(lines, fmt.Sprintf("POST /api/run answered after %s (median): the execution and its %s target rows are recorded and the command published before the 202",
					fmtDur(k.Accepted.Median), group(int64(k.N))))
				lines = append(lines, fmt.Sprintf("the round trip ends when GET /api/executions/{id}/wait, which answers once the server has committed the last result, returns every target final (%s requests in the measured rounds)",
					group(int64(k.Waits))))
			}
			if k.SoakRuns > 0 {
				lines = append(lines, fmt.Sprintf("soak: %d executions back to back in %s, %s each on average from POST to every target final (more samples than the measured rounds, with no pause between them)",
					k.SoakRuns, fmtDur(k.SoakWall), fmtDur(k.SoakWall/time.Duration(k.SoakRuns))))
			}
			if d := k.Diag; d.Wall > 0 {
				lines = append(lines, fmt.Sprintf("diagnostic round (/metrics scraped every 50 ms, not in the table): %s; results ingested from %s to %s after the POST, every target's result in the stream by %s, %.0f results (%.1f per target); results-projector backlog peaked at %.0f messages",
					fmtDur(d.Wall), fmtDur(d.FirstIngest), fmtDur(d.AllIngest), fmtDur(d.AllStream), d.Ingested, d.Ingested/float64(k.N), d.PeakPending))
			}
			if x := k.Restart; x != nil && x.CaughtUp > 0 {
				lines = append(lines, fmt.Sprintf("restart storm: the new server answered /healthz %s after the kill and its broker held as many connections as before after %s (not all of them authenticated yet); %s failed connection attempts meanwhile; CPU-s until every heartbeat was in: server %s (since its start), swarm %s",
					fmtDur(x.Healthy), fmtDur(x.Conns), group(x.ConnErrors), secs(x.ServerCPU), secs(x.SwarmCPU)))
				if x.RunDone > 0 {
					lines = append(lines, fmt.Sprintf("restart storm: the run in flight (%s±%s per target) was killed with the server half way; its targets by state: %s; the swarm's model ran its script %s times for %s agents (more: a target ran twice; fewer: one was lost)",
						r.cfg.inflight, r.cfg.inflight, fmtCounts(x.RunCounts), runsText(x), group(int64(k.N))))
				}
			}
			if f := k.InFlight; f.Wall > 0 {
				lines = append(lines, fmt.Sprintf("execution page run: %s±%s per target, every target final after %s; page fetched %d times, each live region %d times",
					r.cfg.inflight, r.cfg.inflight, fmtDur(f.Wall), f.Page.N, f.Summary.N))
			}
			for _, err := range k.Errs {
				lines = append(lines, "kanade error: "+oneLine(err))
			}
		}
		if bl := res.Baseline; bl != nil {
			if bl.Connect > 0 {
				lines = append(lines, fmt.Sprintf("baseline: %s connections subscribed after %s; %s rows in %s batches (%.0f rows per batch)",
					group(int64(bl.N)), fmtDur(bl.Connect), group(bl.Rows), group(bl.Batches), float64(bl.Rows)/float64(max(bl.Batches, 1))))
			}
			if bl.Interleaved > 0 {
				lines = append(lines, fmt.Sprintf("baseline rounds interleaved with kanade's: %d of them ran right after one of kanade's, with kanade's server and swarm stopped (SIGSTOP), and the baseline's agents were stopped during kanade's", bl.Interleaved))
			}
			if k := res.Kanade; k != nil {
				if p, ok := pairedRatios(k.Walls, bl.Walls); ok {
					lines = append(lines, fmt.Sprintf("ratio round by round (kanade's round i / the baseline's round i): median %s, min %s, max %s over %d pairs",
						fmtFactor(p.median), fmtFactor(p.min), fmtFactor(p.max), p.n))
				}
			}
			for _, err := range bl.Errs {
				lines = append(lines, "baseline error: "+oneLine(err))
			}
		}
		for _, err := range res.Err {
			lines = append(lines, "error: "+oneLine(err))
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "N = %s:\n", group(int64(res.N)))
		for _, l := range lines {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

func cpuRSS(cpu float64, rss int64) string {
	if rss == 0 {
		return "–"
	}
	return strconv.FormatFloat(cpu, 'f', 1, 64) + " % / " + fmtMiB(rss)
}

func cpuPair(a, b time.Duration) string {
	if a <= 0 && b <= 0 {
		return "–"
	}
	return secs(a) + " / " + secs(b)
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) }

func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// fmtCounts lists the non-zero counts, by name.
func fmtCounts(counts map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", group(int64(counts[k])), k))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func runsText(x *restartResult) string {
	if !x.RunsChecked {
		return "an unknown number of"
	}
	return group(x.ModelRuns)
}
