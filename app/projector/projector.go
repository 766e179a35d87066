// Package projector copies what agents report into the database: the
// RESULTS stream into the results table (batched, idempotent upserts,
// acknowledged only after the commit) and heartbeats into the agents
// table (the newest per agent, written once a second).
package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/store"
)

// ResultsConsumer is the durable consumer name of the results projector.
const ResultsConsumer = "results-projector"

// MaxBatch is the most results written in one transaction. Results come
// in no order, so a batch rewrites about as many pages as it has results
// until it nears the number of pages of the execution's rows: 10,000
// shuffled results took 250 ms to apply in batches of 500 and 130 ms in
// batches of 2,000 (store's BenchmarkApplyResults10k, default SQLite
// settings).
const MaxBatch = 2000

// Linger and MaxLinger shape a batch that is not full: it waits Linger
// for more results, again while more keep coming, up to MaxLinger in
// all. A lone result is written Linger after it arrived. Without the
// wait, the projector kept pace with the first results of a deploy to
// 10,000 agents, which arrive a few hundred microseconds apart, and wrote
// them one transaction each: about a thousand single-row transactions
// per round, then batches of 2,000 once a backlog had built up.
const (
	Linger    = 2 * time.Millisecond
	MaxLinger = 20 * time.Millisecond
)

// Counter is what Results counts committed results with (a
// prometheus.Counter satisfies it).
type Counter interface{ Add(float64) }

// Results projects the RESULTS stream until ctx is done, adding the number
// of results of each committed batch to ingested (which may be nil).
func Results(ctx context.Context, js jetstream.JetStream, st *store.Store, ev *events.Broker, log *slog.Logger, ingested Counter) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, wire.StreamResults, jetstream.ConsumerConfig{
		Durable:       ResultsConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 20000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
	})
	if err != nil {
		return err
	}
	// Pulls expire after 10 s (heartbeats every 5 s): a pull the broker
	// dropped, as a JetStream restart after a full disk does, is noticed
	// and sent again within seconds instead of half a minute.
	it, err := cons.Messages(jetstream.PullMaxMessages(2*MaxBatch), jetstream.PullExpiry(10*time.Second))
	if err != nil {
		return err
	}
	msgs := make(chan jetstream.Msg, 2*MaxBatch)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				log.Warn("results projector: fetch", "err", err)
				continue
			}
			msgs <- m
		}
	}()
	defer wg.Wait()
	defer it.Stop()

	limits := newPCLimits(ResultsPerPCPerSecond, ResultsPerPCBurst)
	batch := make([]jetstream.Msg, 0, MaxBatch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			var open bool
			batch, open = collect(msgs, append(batch[:0], m), MaxBatch, Linger, MaxLinger)
			applyBatch(ctx, st, ev, log, ingested, limits, batch)
			if !open {
				return nil
			}
		}
	}
}

// collect adds to batch what msgs holds, up to max in all; while the
// batch is not full, it waits linger for more, and again while more keep
// coming, up to maxLinger in all. It reports whether msgs is still open.
func collect[T any](msgs <-chan T, batch []T, max int, linger, maxLinger time.Duration) ([]T, bool) {
	for waited := time.Duration(0); ; waited += linger {
		before := len(batch)
		for len(batch) < max {
			select {
			case m, ok := <-msgs:
				if !ok {
					return batch, false
				}
				batch = append(batch, m)
				continue
			default:
			}
			break
		}
		grew := len(batch) > before || waited == 0
		if len(batch) >= max || !grew || waited >= maxLinger {
			return batch, true
		}
		time.Sleep(linger)
	}
}

func applyBatch(ctx context.Context, st *store.Store, ev *events.Broker, log *slog.Logger, ingested Counter, limits *pcLimits, batch []jetstream.Msg) {
	rs := make([]wire.Result, 0, len(batch))
	good := make([]jetstream.Msg, 0, len(batch))
	for _, m := range batch {
		r, err := decodeResult(m.Subject(), m.Data())
		if err == nil && !limits.allow(r.PCID) {
			err = fmt.Errorf("more than %d results a second from %s", ResultsPerPCPerSecond, r.PCID)
		}
		if err != nil {
			limits.warnf(log, "results projector: dropping a result", "subject", m.Subject(), "err", err)
			_ = m.Term()
			continue
		}
		rs = append(rs, r)
		good = append(good, m)
	}
	if len(rs) == 0 {
		return
	}
	for {
		touched, err := st.ApplyResults(ctx, rs, time.Now().UTC())
		if err == nil {
			if ingested != nil {
				ingested.Add(float64(len(rs)))
			}
			for _, m := range good {
				_ = m.Ack()
			}
			for _, id := range touched {
				ev.Publish(events.Execution(id))
			}
			ev.Publish(events.Executions)
			return
		}
		if ctx.Err() != nil {
			return // not acked: redelivered after a restart
		}
		log.Error("results projector: database write failed; retrying", "results", len(rs), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// decodeResult trusts the subject over the body for who reports what.
func decodeResult(subject string, data []byte) (wire.Result, error) {
	// results.<pc> as agents publish it and the stream stores it;
	// results.<exec>.<pc> as protocol 1 agents published it (and as
	// streams provisioned before the transform hold it).
	pc, exec, ok := wire.ParseResultSubject(subject)
	if !ok {
		return wire.Result{}, errors.New("not a result subject")
	}
	r, err := wire.DecodeResult(data)
	if err != nil {
		return r, err
	}
	if r.PCID != pc || (exec != "" && r.ExecID != exec) {
		return r, errors.New("the body names another execution or PC than the subject")
	}
	return r, r.Validate()
}

// Heartbeats subscribes to heartbeats and writes the newest per agent
// every flushEvery until ctx is done; a heartbeat answering a ping wakes
// its waiter in pongs (which may be nil).
//
// Heartbeats queue in a synchronous subscription and are read in one go
// before each flush: at 10,000 agents, 333 a second, a goroutine woken for
// each one was a visible part of the server's idle CPU. While a ping
// waits for its answer they are read as they come, so that the answer's
// round trip is measured, not the flush interval.
func Heartbeats(ctx context.Context, nc *nats.Conn, st *store.Store, ev *events.Broker, log *slog.Logger, flushEvery time.Duration, pongs *Pongs) error {
	sub, err := nc.SubscribeSync(wire.HeartbeatWildcard)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	pending := map[string]wire.Heartbeat{}
	acks := newStopAcks()
	take := func(m *nats.Msg) {
		var hb wire.Heartbeat
		if err := json.Unmarshal(m.Data, &hb); err != nil {
			log.Warn("heartbeat: undecodable", "subject", m.Subject, "err", err)
			return
		}
		if hb.PCID != wire.LastToken(m.Subject) {
			log.Warn("heartbeat: body names another PC than the subject", "subject", m.Subject)
			return
		}
		if err := hb.Validate(); err != nil {
			log.Warn("heartbeat: invalid", "subject", m.Subject, "err", err)
			return
		}
		if hb.Pong != "" {
			pongs.deliver(hb.PCID + "/" + hb.Pong)
		}
		pending[hb.PCID] = hb
		acks.take(hb)
	}
	// next reads one heartbeat, waiting at most d; false when none came.
	next := func(d time.Duration) bool {
		m, err := sub.NextMsg(d)
		if err != nil {
			if !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
				log.Warn("heartbeat: read", "err", err)
				time.Sleep(d) // a closed connection fails at once: do not spin
			}
			return false
		}
		take(m)
		return true
	}
	known := map[string]facts{}
	wait := time.NewTimer(flushEvery)
	defer wait.Stop()
	flushAt := time.Now().Add(flushEvery)
	for ctx.Err() == nil {
		if left := time.Until(flushAt); left > 0 {
			if pongs.waiting() {
				next(min(left, 50*time.Millisecond))
				continue
			}
			wait.Reset(left)
			select {
			case <-ctx.Done():
			case <-pongs.started():
			case <-wait.C:
			}
			continue
		}
		flushAt = time.Now().Add(flushEvery)
		for n, _, _ := sub.Pending(); n > 0 && next(0); n-- {
		}
		if len(pending) == 0 {
			continue
		}
		batch := pending
		pending = map[string]wire.Heartbeat{}
		if err := acks.flush(ctx, st, time.Now().UTC()); err != nil && ctx.Err() == nil {
			log.Error("heartbeat: the emergency stop's acknowledgements were not written", "err", err)
		}
		if err := flushHeartbeats(ctx, st, known, batch, time.Now().UTC()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("heartbeat: database write failed", "agents", len(batch), "err", err)
			for pc, hb := range batch { // keep them unless a newer one came
				if _, ok := pending[pc]; !ok {
					pending[pc] = hb
				}
			}
			continue
		}
		ev.Publish(events.Agents)
	}
	return nil
}

// facts are what a heartbeat says about an agent besides when it was seen
// and its load; they rarely change.
type facts struct {
	hostname, os, osVersion, arch, version, groups, user string
	protocol                                             int
	interval                                             time.Duration
}

func factsOf(hb wire.Heartbeat) facts {
	return facts{hostname: hb.Hostname, os: hb.OS, osVersion: hb.OSVersion, arch: hb.Arch, version: hb.AgentVersion,
		groups: strings.Join(hb.Groups, ","), user: hb.User, protocol: hb.Protocol, interval: hb.Interval.D()}
}

// flushHeartbeats writes a batch of heartbeats. An agent whose facts are
// those this process last wrote for it only has its last-seen time and
// load updated (store.TouchAgents): most heartbeats. The others, and any
// agent the touch did not find, are written whole (store.UpsertAgents),
// with the groups its credential grants. known remembers the facts
// written; an agent's groups changed by an admin are written by the store
// directly, and the agent's next heartbeat reports them.
func flushHeartbeats(ctx context.Context, st *store.Store, known map[string]facts, batch map[string]wire.Heartbeat, now time.Time) error {
	var seen []store.Seen
	var whole []string
	for pc, hb := range batch {
		if f, ok := known[pc]; ok && f == factsOf(hb) {
			a := agentFromHeartbeat(hb, now)
			seen = append(seen, store.Seen{PCID: pc, LastSeen: a.LastSeen, OfflineAfter: a.OfflineAfter,
				Running: a.Running, RunningExecs: a.RunningExecs, RSSBytes: a.RSSBytes, CPUPercent: a.CPUPercent})
		} else {
			whole = append(whole, pc)
		}
	}
	missed, err := st.TouchAgents(ctx, seen)
	if err != nil {
		return err
	}
	whole = append(whole, missed...)
	if len(whole) == 0 {
		return nil
	}
	// An enrolled agent's groups are the ones its credential carries,
	// whatever its heartbeat claims.
	granted, err := st.GrantedGroups(ctx, whole)
	if err != nil {
		return fmt.Errorf("read granted groups: %w", err)
	}
	agents := make([]store.Agent, 0, len(whole))
	for _, pc := range whole {
		a := agentFromHeartbeat(batch[pc], now)
		if g, ok := granted[pc]; ok {
			a.Groups = g
		}
		agents = append(agents, a)
		delete(known, pc)
	}
	if err := st.UpsertAgents(ctx, agents); err != nil {
		return err
	}
	for _, pc := range whole {
		known[pc] = factsOf(batch[pc])
	}
	return nil
}

// agentFromHeartbeat uses the server's clock for last-seen times: agent
// clocks drift.
func agentFromHeartbeat(hb wire.Heartbeat, now time.Time) store.Agent {
	a := store.Agent{
		PCID: hb.PCID, Hostname: hb.Hostname, OS: hb.OS, OSVersion: hb.OSVersion, Arch: hb.Arch,
		AgentVersion: hb.AgentVersion, Protocol: hb.Protocol, Groups: hb.Groups, Interval: hb.Interval.D(),
		Running: hb.Running, RunningExecs: hb.RunningExecs, LastSeen: now, OfflineAfter: now.Add(3 * hb.Interval.D()),
		RSSBytes: hb.RSSBytes, CPUPercent: hb.CPUPercent, User: hb.User,
	}
	if hb.Stopping {
		a.OfflineAfter = now
	}
	return a
}

// BatchMessages yields the messages of a fetched batch until it ends or
// ctx is done, whichever comes first: a fetch whose end never comes (the
// broker shutting down under it) must not keep a projector from stopping.
// Messages not yielded are not acknowledged and come again.
func BatchMessages(ctx context.Context, batch jetstream.MessageBatch) iter.Seq[jetstream.Msg] {
	return func(yield func(jetstream.Msg) bool) {
		msgs := batch.Messages()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok || !yield(m) {
					return
				}
			}
		}
	}
}
