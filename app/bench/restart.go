package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// restartResult is the restart storm (-restart): the server killed with
// SIGKILL while every agent is connected and a run is in flight, then
// started again on the same data directory and ports.
type restartResult struct {
	// Since the kill: the server answers /healthz; the broker holds as
	// many connections as before the kill; the swarm says every agent is
	// connected again, and that every agent's catch-up since is done; the
	// API shows every agent's heartbeat since the restart.
	Healthy, Conns, Reconnected, CaughtUp, Heartbeats time.Duration
	ConnErrors                                        int64 // the swarm's connection errors meanwhile (failed reconnects)
	ServerCPU, SwarmCPU                               time.Duration
	// The run in flight across the restart: every target final after
	// the kill (RunDone), its results by state, results the API lists,
	// and how often the swarm's model ran its script (N: nothing run
	// twice, nothing lost).
	RunDone     time.Duration
	RunCounts   map[string]int
	RunResults  int
	ModelRuns   int64
	RunsChecked bool
	script      string
}

// swarmLines keeps the swarm's stdout lines that the bench follows, with
// when each arrived.
type swarmLines struct {
	mu    sync.Mutex
	lines []swarmLine
}

type swarmLine struct {
	at   time.Time
	text string
}

func (s *swarmLines) add(line string) { s.addAt(time.Now(), line) }

func (s *swarmLines) addAt(at time.Time, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, swarmLine{at, line})
}

// after returns the first line with prefix that arrived after t.
func (s *swarmLines) after(t time.Time, prefix string) (swarmLine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l.at.After(t) && strings.HasPrefix(l.text, prefix) {
			return l, true
		}
	}
	return swarmLine{}, false
}

// modelRuns reads "swarm runs: COUNT QUOTED-SCRIPT" lines (the swarm
// prints them as it stops) for script.
func (s *swarmLines) modelRuns(script string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		n, q, ok := parseRunsLine(l.text)
		if ok && q == script {
			return n, true
		}
	}
	return 0, false
}

// parseRunsLine parses `swarm runs: 10000 "echo hi"`.
func parseRunsLine(line string) (int64, string, bool) {
	rest, ok := strings.CutPrefix(line, "swarm runs: ")
	if !ok {
		return 0, "", false
	}
	num, quoted, ok := strings.Cut(rest, " ")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, "", false
	}
	script, err := strconv.Unquote(quoted)
	if err != nil {
		return 0, "", false
	}
	return n, script, true
}

// restartStorm kills the server (SIGKILL to its process group) while a
// run is in flight, starts it again with restart, and measures until
// every agent is back and the run is complete.
func restartStorm(ctx context.Context, c *client, cfg config, n int, srv **child, swarm *child, lines *swarmLines,
	restart func() (*child, error)) (restartResult, error) {
	r := restartResult{script: fmt.Sprintf("# swarm: latency=%s jitter=%s\necho bench restart", cfg.inflight, cfg.inflight)}
	text, _, err := c.get(ctx, "/metrics")
	if err != nil {
		return r, err
	}
	connsBefore, ok := promValue(string(text), "kanade_nats_connections")
	if !ok {
		return r, errors.New("no kanade_nats_connections in /metrics")
	}
	e, err := c.run(ctx, r.script)
	if err != nil {
		return r, err
	}
	if e.TargetCount != n {
		return r, fmt.Errorf("the run targets %d agents, want %d", e.TargetCount, n)
	}
	// Some targets have reported, most are still running.
	if err := sleep(ctx, cfg.inflight/2); err != nil {
		return r, err
	}
	sw0 := snap(swarm.pid())
	progress("N=%d: restart: killing the server (SIGKILL) with a run in flight", n)
	killedAt := time.Now()
	if err := signalGroup((*srv).cmd.Process, true); err != nil {
		return r, err
	}
	<-(*srv).done
	s, err := restart()
	if err != nil {
		return r, fmt.Errorf("start the server again: %w", err)
	}
	*srv = s
	startedAt := time.Now()
	since := func() time.Duration { return time.Since(killedAt) }
	if err := waitFor(ctx, 2*time.Minute, 50*time.Millisecond, func() error {
		if err := s.exited(); err != nil {
			return fatal(err)
		}
		if r.Healthy == 0 {
			if _, _, err := c.get(ctx, "/healthz"); err != nil {
				return err
			}
			r.Healthy = since()
		}
		if r.Conns == 0 {
			text, _, err := c.get(ctx, "/metrics")
			if err != nil {
				return err
			}
			if v, _ := promValue(string(text), "kanade_nats_connections"); v < connsBefore {
				return fmt.Errorf("%.0f of %.0f broker connections", v, connsBefore)
			}
			r.Conns = since()
		}
		rec, ok1 := lines.after(killedAt, "swarm reconnected")
		up, ok2 := lines.after(killedAt, "swarm caught up")
		if !ok1 || !ok2 {
			return errors.New("the swarm has not reported every agent reconnected and caught up")
		}
		r.Reconnected, r.CaughtUp = rec.at.Sub(killedAt), up.at.Sub(killedAt)
		r.ConnErrors = connErrors(rec.text)
		return nil
	}); err != nil {
		return r, fmt.Errorf("after the restart: %w", err)
	}
	progress("N=%d: restart: healthy after %s, broker connections back after %s, swarm reconnected after %s and caught up after %s",
		n, fmtDur(r.Healthy), fmtDur(r.Conns), fmtDur(r.Reconnected), fmtDur(r.CaughtUp))
	if err := waitFor(ctx, time.Minute, 250*time.Millisecond, func() error {
		seen, err := c.seenSince(ctx, startedAt)
		if err != nil {
			return err
		}
		if seen < n {
			return fmt.Errorf("%d of %d agents sent a heartbeat since the restart", seen, n)
		}
		r.Heartbeats = since()
		return nil
	}); err != nil {
		return r, err
	}
	r.ServerCPU, r.SwarmCPU = snap(s.pid()).CPU, snap(swarm.pid()).CPU-sw0.CPU
	doneAt, _, err := c.waitDone(ctx, e.ExecID, cfg.roundTimeout)
	if err != nil {
		return r, fmt.Errorf("the run in flight across the restart: %w", err)
	}
	r.RunDone = doneAt.Sub(killedAt)
	var final execution
	if err := c.getJSON(ctx, "/api/executions/"+e.ExecID, &final); err != nil {
		return r, err
	}
	r.RunCounts = final.Counts
	var list struct {
		Total int `json:"total"`
	}
	if err := c.getJSON(ctx, "/api/results?exec_id="+e.ExecID+"&limit=1", &list); err != nil {
		return r, err
	}
	r.RunResults = list.Total
	progress("N=%d: restart: every agent's heartbeat in after %s; the run in flight complete after %s, %d results (%v)",
		n, fmtDur(r.Heartbeats), fmtDur(r.RunDone), r.RunResults, r.RunCounts)
	return r, nil
}

// connErrors reads "(E connection errors meanwhile)" from a "swarm
// reconnected" line; -1 when it is not there.
func connErrors(line string) int64 {
	_, rest, ok := strings.Cut(line, "(")
	if !ok {
		return -1
	}
	num, _, _ := strings.Cut(rest, " ")
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// seenSince counts the agents whose last heartbeat the server recorded
// at or after t (the API's last_seen), a page of 1,000 at a time.
func (c *client) seenSince(ctx context.Context, t time.Time) (int, error) {
	seen := 0
	for offset := 0; ; offset += 1000 {
		var page struct {
			Total  int `json:"total"`
			Agents []struct {
				LastSeen *time.Time `json:"last_seen"`
			} `json:"agents"`
		}
		if err := c.getJSON(ctx, fmt.Sprintf("/api/agents?limit=1000&offset=%d", offset), &page); err != nil {
			return seen, err
		}
		for _, a := range page.Agents {
			if a.LastSeen != nil && !a.LastSeen.Before(t.Truncate(time.Millisecond)) {
				seen++
			}
		}
		if len(page.Agents) == 0 || offset+len(page.Agents) >= page.Total {
			return seen, nil
		}
	}
}
