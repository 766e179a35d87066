package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

const (
	// minUpdateGap coalesces bursts: a live page gets at most a few
	// "changed" events per second however many results arrive.
	minUpdateGap = 300 * time.Millisecond
	// keepAlive is the comment interval that keeps proxies from closing an idle stream.
	keepAlive = 15 * time.Second
	// maxLiveChunk is the most of one output chunk a live viewer is sent;
	// maxLiveFlush the most output one flush (100 ms) gathers.
	maxLiveChunk = 64 << 10
	maxLiveFlush = 256 << 10
	// livePull is how many OUTPUT messages a live viewer's consumer may
	// hold ahead of what the viewer was sent.
	livePull = 16
	// replaySlack starts the replay of a target's output this much before
	// its start, for a broker whose clock is behind the server's.
	replaySlack = 5 * time.Second
)

// capChunk returns data cut to at most max bytes (at a character
// boundary) with a marker saying how much was left out.
func capChunk(data string, max int) string {
	if len(data) <= max {
		return data
	}
	cut := max
	for cut > 0 && cut > max-utf8.UTFMax && !utf8.RuneStart(data[cut]) {
		cut--
	}
	return data[:cut] + fmt.Sprintf("\n[kanade: %d more bytes of this chunk are not shown live]\n", len(data)-cut)
}

// execEvents streams a bare "changed" event whenever the execution
// changes; each live region of the page re-fetches itself.
func (s *server) execEvents(c echo.Context) error {
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return err
	}
	if _, err := s.Store.Execution(c.Request().Context(), id); err != nil {
		return err
	}
	release, err := s.acquireSSE(c)
	if err != nil {
		return err
	}
	defer release()
	ch, cancel := s.Events.Subscribe(events.Execution(id))
	defer cancel()
	defer s.Metrics.TrackSSE()()
	out := startSSE(c)
	// The page was rendered before this stream existed: whatever changed in
	// between (or while a dropped stream reconnected) is fetched now.
	if out.send("changed", "1") != nil {
		return nil
	}
	last := time.Now()
	ctx := c.Request().Context()
	life := time.NewTimer(s.SSEMaxLifetime)
	defer life.Stop()
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-life.C:
			return nil
		case <-ping.C:
			if out.comment("ping") != nil {
				return nil
			}
		case <-ch:
			if !waitGap(ctx, last, minUpdateGap) {
				return nil
			}
			last = time.Now()
			if out.send("changed", "1") != nil {
				return nil
			}
		}
	}
}

// logStream streams a running target's output: everything it printed so
// far (replayed from the OUTPUT stream), then live chunks, then "done"
// once its final result is in. Besides, "state" events carry the
// target's state and duration (LogState) whenever they change: a target
// whose output streams is running even before its agent's report says so.
// An agent's output is untrusted: a chunk is cut at maxLiveChunk and one
// flush at maxLiveFlush, with a visible marker (the stored output, shown
// once the target ends, has the rest up to the output cap).
func (s *server) logStream(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return err
	}
	pc, err := idParam(c, "pc", "target")
	if err != nil {
		return err
	}
	// Subscribe before reading the state, so that a result landing in
	// between is not missed.
	changed, cancel := s.Events.Subscribe(events.Execution(id))
	defer cancel()
	r, err := s.Store.Result(ctx, id, pc)
	if err != nil {
		return err
	}
	from, err := s.targetStart(ctx, id, r)
	if err != nil {
		return err
	}
	release, err := s.acquireSSE(c)
	if err != nil {
		return err
	}
	defer release()
	defer s.Metrics.TrackSSE()()
	out := startSSE(c)
	if r.State.Final() {
		return out.send("done", "")
	}
	state := newStateSender(c, out, s.Now)
	if state.send(r.State, r.StartedAt) != nil {
		return nil
	}

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	chunks, err := s.followOutput(cctx, id, pc, from)
	if err != nil {
		s.Log.Warn("live output unavailable", "exec_id", id, "pc_id", pc, "err", err)
		_ = out.comment("live output unavailable")
	}
	life := time.NewTimer(s.SSEMaxLifetime)
	defer life.Stop()
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	flush := time.NewTicker(100 * time.Millisecond)
	defer flush.Stop()
	var pending strings.Builder
	var dropped int // bytes left out of this flush
	var finalSeen time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-life.C:
			return nil
		case <-ping.C:
			if out.comment("ping") != nil {
				return nil
			}
		case ch, ok := <-chunks:
			if !ok {
				chunks = nil
				continue
			}
			if state.shown == wire.StatePending && state.send(wire.StateRunning, time.Time{}) != nil {
				return nil
			}
			if pending.Len() >= maxLiveFlush {
				dropped += len(ch.Data)
				continue
			}
			html, err := renderString(c, views.LogChunk(ch.Stream, capChunk(ch.Data, maxLiveChunk)))
			if err != nil {
				return err
			}
			pending.WriteString(html)
		case <-flush.C:
			if dropped > 0 {
				html, err := renderString(c, views.LogChunk("stderr", fmt.Sprintf("\n[kanade: %d bytes of output arrived faster than they can be shown live and were skipped here]\n", dropped)))
				if err != nil {
					return err
				}
				pending.WriteString(html)
				dropped = 0
			}
			if pending.Len() > 0 {
				if out.send("chunk", pending.String()) != nil {
					return nil
				}
				pending.Reset()
			}
			// After the final result, wait for the output to go quiet
			// briefly, then end: the panel reloads the stored output.
			if !finalSeen.IsZero() && time.Since(finalSeen) > 500*time.Millisecond {
				_ = out.send("done", "")
				return nil
			}
		case <-changed:
			if finalSeen.IsZero() {
				if r, err := s.Store.Result(ctx, id, pc); err == nil {
					if state.send(r.State, r.StartedAt) != nil {
						return nil
					}
					if r.State.Final() {
						finalSeen = time.Now()
					}
				}
			}
		}
	}
}

// targetStart returns when the target could first have printed: its
// wave's start in a rollout, else its execution's creation, less
// replaySlack.
func (s *server) targetStart(ctx context.Context, execID string, r store.Result) (time.Time, error) {
	e, err := s.Store.Execution(ctx, execID)
	if err != nil {
		return time.Time{}, err
	}
	start := e.CreatedAt
	if r.Wave != nil {
		ws, err := s.Store.Waves(ctx, execID)
		if err != nil {
			return time.Time{}, err
		}
		for _, w := range ws {
			if w.Index == *r.Wave && w.StartedAt.After(start) {
				start = w.StartedAt
			}
		}
	}
	return start.Add(-replaySlack), nil
}

// followOutput replays the OUTPUT stream of one target from when it could
// first have printed (not the whole stream: the PC's subject holds all
// its executions' output), then follows it. It reads on LiveJS, at most
// livePull messages ahead of the viewer.
func (s *server) followOutput(ctx context.Context, execID, pc string, from time.Time) (<-chan wire.OutputChunk, error) {
	if s.LiveJS == nil {
		return nil, errors.New("no JetStream connection")
	}
	cons, err := s.LiveJS.OrderedConsumer(ctx, wire.StreamOutput, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.OutputSubject(pc)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(livePull))
	if err != nil {
		return nil, err
	}
	ch := make(chan wire.OutputChunk, 64)
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	go func() {
		defer close(ch)
		for {
			m, err := it.Next()
			if err != nil {
				return
			}
			var oc wire.OutputChunk
			// The agent's subject carries the output of all its
			// executions; keep this one's.
			if json.Unmarshal(m.Data(), &oc) != nil || oc.ExecID != execID || oc.PCID != pc {
				continue
			}
			select {
			case ch <- oc:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// stateSender sends a live output panel's "state" events: the target's
// state and how long it has run, each time either is news.
type stateSender struct {
	c       echo.Context
	out     *sse
	now     func() time.Time
	shown   wire.State
	started time.Time // the start the panel counts from (zero: none yet)
}

func newStateSender(c echo.Context, out *sse, now func() time.Time) *stateSender {
	return &stateSender{c: c, out: out, now: now}
}

// send sends state unless the panel shows it already with a known start.
// A running target whose start is not known yet (its output came before
// its report) counts from now.
func (s *stateSender) send(state wire.State, started time.Time) error {
	if state == s.shown && (!s.started.IsZero() || started.IsZero()) {
		return nil
	}
	now := s.now()
	if state == wire.StateRunning && started.IsZero() {
		started = s.started
		if started.IsZero() {
			started = now
		}
	}
	r := store.Result{State: state, StartedAt: started}
	if state.Final() {
		r.FinishedAt = now // the panel reloads the stored result right after
	}
	html, err := renderString(s.c, views.LogState(string(state), targetTick(r, now)))
	if err != nil {
		return err
	}
	s.shown, s.started = state, started
	return s.out.send("state", html)
}

// waitGap waits until gap has passed since last, so that a burst of
// notifications becomes one update; false when ctx ended first.
func waitGap(ctx context.Context, last time.Time, gap time.Duration) bool {
	wait := gap - time.Since(last)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
