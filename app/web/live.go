package web

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/views"
)

const (
	// minUpdateGap coalesces bursts: a live page gets at most a few
	// "changed" events per second however many results arrive.
	minUpdateGap = 300 * time.Millisecond
	// keepAlive is the comment interval that keeps proxies from closing an idle stream.
	keepAlive = 15 * time.Second
)

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
			if wait := minUpdateGap - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
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
// once its final result is in.
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
	defer s.Metrics.TrackSSE()()
	out := startSSE(c)
	if r.State.Final() {
		return out.send("done", "")
	}

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	chunks, err := s.followOutput(cctx, id, pc)
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
			html, err := renderString(c, views.LogChunk(ch.Stream, ch.Data))
			if err != nil {
				return err
			}
			pending.WriteString(html)
		case <-flush.C:
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
				if r, err := s.Store.Result(ctx, id, pc); err == nil && r.State.Final() {
					finalSeen = time.Now()
				}
			}
		}
	}
}

// followOutput replays and follows the OUTPUT stream of one target.
func (s *server) followOutput(ctx context.Context, execID, pc string) (<-chan wire.OutputChunk, error) {
	cons, err := s.JS.OrderedConsumer(ctx, wire.StreamOutput, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.OutputSubject(pc)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages()
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
