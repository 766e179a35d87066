package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/outbox"
	"github.com/kanadehq/kanade/agent/wire"
)

// drainLoop publishes queued results to JetStream, oldest first, and
// removes each only after the broker acknowledged it. It wakes when a
// result is queued (deliver), on a (re)connect, and every 2 s while
// something is left.
func (w *Worker) drainLoop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		w.draining.Lock()
		empty := w.drainOnce(ctx)
		w.draining.Unlock()
		if !empty {
			retry.Reset(2 * time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.drainNow:
		case <-retry.C:
		}
	}
}

// deliver wakes the drain loop for a result just queued. The run that
// queued it does not publish it itself: a run is a new goroutine with a
// small stack, which the publish (nats.go's request path) grew a copy at a
// time for every command. In the swarm simulator that was 18 % of its CPU
// in a deploy round at 10,000 agents; with the hand-off to the drain loop,
// whose stack grew once, the swarm's CPU per round went from 0.84 to 0.70
// CPU-s (medians of 30 rounds, 2026-12-06).
func (w *Worker) deliver() {
	select {
	case w.drainNow <- struct{}{}:
	default:
	}
}

// drainOnce delivers what is queued; it reports whether the outbox is
// empty. The caller holds w.draining.
func (w *Worker) drainOnce(ctx context.Context) bool {
	if !w.nc.IsConnected() {
		return false
	}
	items, err := w.outbox.Pending()
	if err != nil {
		w.log.Error("outbox", "err", err)
		return false
	}
	skip := superseded(items)
	for i, it := range items {
		if skip[i] {
			// A later report of the same target is queued: this "running"
			// report would be replaced at once, so it is not sent.
			if err := w.outbox.Remove(it); err != nil {
				w.log.Error("outbox", "err", err)
			}
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := w.js.Publish(pctx, it.Subject, it.Data)
		cancel()
		if err != nil {
			w.log.Debug("result not delivered yet; kept in the outbox", "subject", it.Subject, "err", err)
			return false
		}
		if err := w.outbox.Remove(it); err != nil {
			w.log.Error("outbox", "err", err)
		}
	}
	return true
}

// superseded returns the indexes of queued results that a later queued
// result of the same target (same execution) replaces. Only reports that
// are not final are superseded: the server keeps the newest state of a
// target anyway, so a "running" report queued behind its final one (a
// script that ended within a few milliseconds, or results queued while
// offline) is only load on the broker and the database.
func superseded(items []outbox.Item) map[int]bool {
	type report struct {
		ExecID string     `json:"exec_id"`
		State  wire.State `json:"state"`
	}
	n := 0
	for _, it := range items {
		if wire.IsResultSubject(it.Subject) {
			n++
		}
	}
	if n < 2 {
		return nil // the usual case: nothing to compare
	}
	reports := make([]report, len(items))
	last := map[string]int{}
	for i, it := range items {
		if wire.IsResultSubject(it.Subject) && json.Unmarshal(it.Data, &reports[i]) == nil && reports[i].ExecID != "" {
			last[reports[i].ExecID] = i
		}
	}
	var out map[int]bool
	for i, r := range reports {
		if j, ok := last[r.ExecID]; ok && j > i && !r.State.Final() {
			if out == nil {
				out = map[int]bool{}
			}
			out[i] = true
		}
	}
	return out
}

// catchupLoop replays, after every (re)connect, the newest command of
// each subject addressed to this agent (its own, everyone's and its
// groups'), which the server reads from the EXEC stream for it: catch-up
// costs O(own commands), not O(fleet), and the agent needs no JetStream
// permissions for it. A failed catch-up (no server answering yet, a
// reconnect wave) is retried with a growing pause until one succeeds.
func (w *Worker) catchupLoop(ctx, runCtx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.catchup:
		}
		// An update an earlier process carried out is confirmed (or its
		// failure reported) as soon as the agent is connected.
		w.reportUpdate(ctx)
		// A credential re-minted while the agent was away (new groups)
		// and the emergency stop come first, so catch-up obeys both.
		if w.cfg.Trust != nil {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := w.cfg.Trust.Refresh(rctx, w.nc); err != nil {
				w.log.Warn("cannot refresh the credential", "err", err)
			}
			cancel()
			w.followCredentialGroups()
		}
	retry:
		for attempt := 1; ; attempt++ {
			err := w.readEmergencyStop(ctx)
			var n int
			if err == nil {
				n, err = w.catchupOnce(ctx, runCtx)
			}
			if err == nil {
				w.caughtUp.Add(1)
				w.log.Debug("catch-up done", "messages", n)
				break
			}
			pause := catchupPause(attempt)
			w.log.Warn("catch-up failed; retrying", "attempt", attempt, "in", pause.Round(time.Second), "err", err)
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-w.catchup:
				// A new connection: start over (emergency stop first).
				t.Stop()
				select {
				case w.catchup <- struct{}{}:
				default: // signalled again meanwhile
				}
				break retry
			case <-t.C:
			}
		}
	}
}

// catchupPause is the wait before catch-up attempt+1: doubling from 1 s
// up to a minute, each with up to half again at random, so that a fleet
// that failed at once does not retry at once.
func catchupPause(attempt int) time.Duration {
	d := time.Minute
	if attempt < 7 {
		d = time.Second << (attempt - 1)
	}
	return d + rand.N(d/2+1)
}

// errNoServer: nobody answers catch-up requests (the server is down or
// starting while the broker is up).
var errNoServer = errors.New("no server answers catch-up requests")

// catchupOnce asks the server for this agent's commands and handles each
// as it arrives, until the server's end marker. (A callback subscription:
// a synchronous one preallocates a 64k-message channel, 512 KB per agent
// in a swarm.)
func (w *Worker) catchupOnce(ctx, runCtx context.Context) (int, error) {
	var n atomic.Int64
	done := make(chan error, 1)
	progress := make(chan struct{}, 1)
	end := func(err error) {
		select {
		case done <- err:
		default:
		}
	}
	sub, err := w.nc.Subscribe(w.nc.NewInbox(), func(m *nats.Msg) {
		switch {
		case m.Header.Get("Status") == "503":
			end(errNoServer)
		case m.Header.Get(wire.HeaderCatchupError) != "":
			end(fmt.Errorf("server: %s", m.Header.Get(wire.HeaderCatchupError)))
		case m.Header.Get(wire.HeaderCatchupEnd) != "":
			end(nil)
		default:
			w.handleCommand(runCtx, m.Header.Get(wire.HeaderSubject), m.Header, m.Data, true)
			n.Add(1)
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := w.nc.PublishRequest(wire.CatchupSubject(w.cfg.PCID), sub.Subject, nil); err != nil {
		return 0, err
	}
	// Each message within 30 s: a server busy with a reconnect wave
	// answers requests in turn.
	idle := time.NewTimer(30 * time.Second)
	defer idle.Stop()
	for {
		select {
		case err := <-done:
			return int(n.Load()), err
		case <-progress:
			idle.Reset(30 * time.Second)
		case <-idle.C:
			return int(n.Load()), errors.New("no answer from the server within 30s")
		case <-ctx.Done():
			return int(n.Load()), ctx.Err()
		}
	}
}

// chunker coalesces live output into chunks of at most chunkMax bytes,
// flushed every chunkEvery, so a chatty script does not become a message
// per line. Its flush timer starts with the first output and stops while
// there is none: a run that prints nothing, or ends before its first
// chunk is due, costs no goroutine and no ticker (at fleet scale most
// runs do).
type chunker struct {
	w      *Worker
	execID string
	every  time.Duration // chunkEvery

	mu      sync.Mutex
	buf     [2][]byte // stdout, stderr
	off     [2]int64
	tick    *time.Timer // created with the first output
	armed   bool        // tick is due
	stopped bool
}

const (
	chunkMax   = 32 << 10
	chunkEvery = 100 * time.Millisecond
)

// chunkStreams are the output streams in the order of chunker.buf.
var chunkStreams = [2]string{wire.Stdout, wire.Stderr}

func newChunker(w *Worker, execID string) *chunker {
	return &chunker{w: w, execID: execID, every: chunkEvery}
}

func (c *chunker) add(stream string, p []byte) {
	i := 0
	if stream == wire.Stderr {
		i = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.buf[i] = append(c.buf[i], p...)
	if len(c.buf[i]) >= chunkMax {
		c.flushLocked(false)
	}
	if !c.armed {
		c.armed = true
		if c.tick == nil {
			c.tick = time.AfterFunc(c.every, c.onTick)
		} else {
			c.tick.Reset(c.every)
		}
	}
}

// onTick flushes, and keeps the timer going while output keeps coming.
func (c *chunker) onTick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	if c.flushLocked(false) {
		c.tick.Reset(c.every)
	} else {
		c.armed = false
	}
}

// flushLocked publishes what is buffered and reports whether there was
// anything. Unless final, an incomplete UTF-8 sequence at the end is held
// back so that a character is never split across two chunks. A run that
// ends before its first chunk went out sends none: its result carries the
// output, and a live view shows the stored output once the result is in.
// (At fleet scale that is one stored message less per target for the many
// scripts that end at once.)
func (c *chunker) flushLocked(final bool) bool {
	if final && c.off[0] == 0 && c.off[1] == 0 {
		return false
	}
	sent := false
	for i, s := range chunkStreams {
		b, tail := c.buf[i], 0
		if !final {
			tail = incompleteTail(b)
		}
		held := b[len(b)-tail:]
		b = b[:len(b)-tail]
		for len(b) > 0 {
			sent = true
			n := min(len(b), chunkMax)
			if n < len(b) {
				n -= incompleteTail(b[:n])
			}
			data, _ := json.Marshal(wire.OutputChunk{ExecID: c.execID, PCID: c.w.cfg.PCID, Stream: s, Offset: c.off[i], Data: string(b[:n])})
			_ = c.w.nc.Publish(wire.OutputSubject(c.w.cfg.PCID), data)
			c.off[i] += int64(n)
			b = b[n:]
		}
		c.buf[i] = append(c.buf[i][:0], held...)
	}
	return sent
}

// incompleteTail is the length of a UTF-8 sequence cut off at the end of b.
func incompleteTail(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if utf8.FullRune(b[len(b)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}

// stop sends what is left (see flushLocked); no chunk goes out after it
// returns. It may be called more than once.
func (c *chunker) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	if c.tick != nil {
		c.tick.Stop()
	}
	c.flushLocked(true)
}
