package worker

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/outbox"
	"github.com/kanadehq/kanade/agent/wire"
)

// drainLoop publishes queued results to JetStream, oldest first, and
// removes each only after the broker acknowledged it. It sleeps until a
// result is queued, and retries every 2 s only while something is left.
func (w *Worker) drainLoop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		if !w.drainOnce(ctx) {
			retry.Reset(2 * time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.outbox.Notify():
		case <-w.drainNow:
		case <-retry.C:
		}
	}
}

// drainOnce delivers what is queued; it reports whether the outbox is empty.
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
// result of the same target (same subject) replaces. Only reports that are
// not final are superseded: the server keeps the newest state of a target
// anyway, so a "running" report queued behind its final one (a script that
// ended within a few milliseconds, or results queued while offline) is
// only load on the broker and the database.
func superseded(items []outbox.Item) map[int]bool {
	last := map[string]int{}
	for i, it := range items {
		if strings.HasPrefix(it.Subject, "results.") {
			last[it.Subject] = i
		}
	}
	var out map[int]bool
	for i, it := range items {
		if j, ok := last[it.Subject]; ok && j > i {
			var r struct {
				State wire.State `json:"state"`
			}
			if json.Unmarshal(it.Data, &r) == nil && !r.State.Final() {
				if out == nil {
					out = map[int]bool{}
				}
				out[i] = true
			}
		}
	}
	return out
}

// catchupLoop replays, after every (re)connect, the newest command of
// each subject addressed to this agent from the EXEC stream. Only the
// agent's own subjects are read (one single-filter consumer per scope,
// deleted when done), so catch-up costs O(own commands), not O(fleet).
func (w *Worker) catchupLoop(ctx, runCtx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.catchup:
		}
		// The emergency stop and a credential re-minted while the agent
		// was away (new groups) come first, so catch-up obeys both.
		w.readEmergencyStop(ctx)
		if w.cfg.Trust != nil {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := w.cfg.Trust.Refresh(rctx, w.nc); err != nil {
				w.log.Warn("cannot refresh the credential", "err", err)
			}
			cancel()
			w.followCredentialGroups()
		}
		filters := []string{wire.CommandPCWildcard(w.cfg.PCID), wire.CommandAllWildcard}
		for _, g := range w.Groups() {
			filters = append(filters, wire.CommandGroupWildcard(g))
		}
		n := 0
		for _, f := range filters {
			c, err := w.catchupFilter(ctx, runCtx, f)
			n += c
			if err != nil {
				w.log.Warn("catch-up", "filter", f, "err", err)
			}
		}
		w.caughtUp.Add(1)
		w.log.Debug("catch-up done", "messages", n)
	}
}

func (w *Worker) catchupFilter(ctx, runCtx context.Context, filter string) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cons, err := w.js.CreateConsumer(cctx, wire.StreamExec, jetstream.ConsumerConfig{
		FilterSubject:     filter,
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	})
	if err != nil {
		return 0, err
	}
	info := cons.CachedInfo()
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = w.js.DeleteConsumer(dctx, wire.StreamExec, info.Name)
		dcancel()
	}()
	left := int(info.NumPending)
	got := 0
	for left > 0 {
		batch, err := cons.Fetch(min(left, 256), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return got, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			w.handleCommand(runCtx, m.Subject(), m.Headers(), m.Data(), true)
		}
		if n == 0 {
			return got, batch.Error()
		}
		got += n
		left -= n
	}
	return got, nil
}

// chunker coalesces live output into chunks of at most chunkMax bytes,
// flushed every chunkEvery, so a chatty script does not become a message
// per line.
type chunker struct {
	w      *Worker
	execID string
	mu     sync.Mutex
	buf    map[string][]byte
	off    map[string]int64
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

const (
	chunkMax   = 32 << 10
	chunkEvery = 100 * time.Millisecond
)

func newChunker(w *Worker, execID string) *chunker {
	c := &chunker{w: w, execID: execID, buf: map[string][]byte{}, off: map[string]int64{}, done: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(chunkEvery)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				c.flushFinal(true)
				return
			case <-t.C:
				c.flush()
			}
		}
	}()
	return c
}

func (c *chunker) add(stream string, p []byte) {
	c.mu.Lock()
	c.buf[stream] = append(c.buf[stream], p...)
	full := len(c.buf[stream]) >= chunkMax
	c.mu.Unlock()
	if full {
		c.flush()
	}
}

func (c *chunker) flush() { c.flushFinal(false) }

// flushFinal publishes what is buffered. Unless final, an incomplete
// UTF-8 sequence at the end is held back so that a character is never
// split across two chunks. A run that ends before its first chunk went
// out sends none: its result carries the output, and a live view shows
// the stored output once the result is in. (At fleet scale that is one
// stored message less per target for the many scripts that end at once.)
func (c *chunker) flushFinal(final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if final && c.off[wire.Stdout] == 0 && c.off[wire.Stderr] == 0 {
		return
	}
	for _, s := range []string{wire.Stdout, wire.Stderr} {
		b, tail := c.buf[s], 0
		if !final {
			tail = incompleteTail(b)
		}
		held := b[len(b)-tail:]
		b = b[:len(b)-tail]
		for len(b) > 0 {
			n := min(len(b), chunkMax)
			if n < len(b) {
				n -= incompleteTail(b[:n])
			}
			data, _ := json.Marshal(wire.OutputChunk{ExecID: c.execID, PCID: c.w.cfg.PCID, Stream: s, Offset: c.off[s], Data: string(b[:n])})
			_ = c.w.nc.Publish(wire.OutputSubject(c.execID, c.w.cfg.PCID), data)
			c.off[s] += int64(n)
			b = b[n:]
		}
		c.buf[s] = append([]byte(nil), held...)
	}
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

func (c *chunker) stop() {
	c.once.Do(func() { close(c.done); c.wg.Wait() })
}
