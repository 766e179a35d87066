// Package catchup answers agents' catch-up requests: after each (re)connect
// an agent asks on wire.CatchupSubject for the newest command of each
// subject addressed to it, and the server reads them from the EXEC stream
// and sends them to the agent's inbox.
//
// The server does this, not the agent, so that an agent's credential needs
// no JetStream API permissions: each permission subject is a subscription
// and sublist nodes the broker keeps for every connection (the consumer
// API subjects were a third of an agent's), and one request replaces the
// three consumers (create, fetch, delete each) every agent made.
package catchup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/limit"
	"github.com/kanadehq/kanade/store"
)

// Queue is the queue group servers answer catch-up requests in, so that
// each request is answered once however many servers run.
const Queue = "kanade-catchup"

// Workers is how many requests are answered at once; the rest wait in the
// subscription (a reconnect wave of 10,000 agents queues 10,000).
const Workers = 8

// fetchWait bounds each fetch from the EXEC stream.
const fetchWait = 5 * time.Second

// PerAgent bounds how often one agent's requests are answered: an agent
// asks once per (re)connect and retries failures after 1, 2, 4 … seconds.
// Requests beyond it are dropped unanswered (the agent retries later), so
// that one agent's flood cannot queue ahead of everyone else's.
var PerAgent = Limit{Every: 2 * time.Second, Burst: 5}

// Limit is a rate: one request per Every, Burst at once.
type Limit struct {
	Every time.Duration
	Burst int
}

// Serve answers catch-up requests until ctx is done.
func Serve(ctx context.Context, b *bus.Bus, st *store.Store, log *slog.Logger) error {
	return ServeLimited(ctx, b, st, log, PerAgent)
}

// ServeLimited is Serve with another per-agent limit.
func ServeLimited(ctx context.Context, b *bus.Bus, st *store.Store, log *slog.Logger, per Limit) error {
	nc := b.NC
	warn := rate.NewLimiter(1, 5) // a flood of refused requests must not flood the log
	perAgent := limit.NewKeyed(rate.Every(per.Every), per.Burst)
	// The callback hands each request to a worker and waits for one to
	// take it: the requests of a reconnect wave queue in the subscription
	// (up to its pending limits), where a channel subscription would drop
	// what its channel cannot hold.
	reqs := make(chan *nats.Msg)
	sub, err := nc.QueueSubscribe(wire.CatchupWildcard, Queue, func(m *nats.Msg) {
		if !perAgent.Allow(wire.LastToken(m.Subject)) {
			if warn.Allow() {
				log.Warn("catch-up: too many requests from one agent; dropped", "subject", m.Subject)
			}
			return
		}
		select {
		case reqs <- m:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("catch-up: subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	var wg sync.WaitGroup
	for range Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-reqs:
					answer(ctx, b, st, log, warn, m)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// answer sends the commands of one request, then the end (or the error).
// It answers only a request that came through the agents' service import
// (the broker then routes the answers back to the requester, never into
// kanade's account) from the agent the subject names.
func answer(ctx context.Context, b *bus.Bus, st *store.Store, log *slog.Logger, warn *rate.Limiter, m *nats.Msg) {
	nc, js := b.NC, b.JS
	pc := wire.LastToken(m.Subject)
	from, err := b.CheckRequest(m)
	if err == nil && wire.ValidateID("pc_id", pc) != nil {
		err = fmt.Errorf("bad request subject %q", m.Subject)
	}
	if err == nil && from.Name != pc {
		err = fmt.Errorf("requested by %q, not by %s", from.Name, pc)
	}
	if err != nil {
		if warn.Allow() {
			log.Warn("catch-up: request not answered", "subject", m.Subject, "err", err)
		}
		return
	}
	end := nats.NewMsg(m.Reply)
	n, err := send(ctx, nc, js, st, pc, m.Reply)
	if err != nil {
		log.Warn("catch-up failed", "pc_id", pc, "sent", n, "err", err)
		end.Header.Set(wire.HeaderCatchupError, err.Error())
	} else {
		end.Header.Set(wire.HeaderCatchupEnd, strconv.Itoa(n))
	}
	if err := nc.PublishMsg(end); err != nil {
		log.Warn("catch-up: cannot answer", "pc_id", pc, "err", err)
	}
}

// filters are the EXEC subjects addressed to a PC in groups.
func filters(pc string, groups []string) []string {
	f := []string{wire.CommandPCWildcard(pc), wire.CommandAllWildcard}
	for _, g := range groups {
		f = append(f, wire.CommandGroupWildcard(g))
	}
	return f
}

// send forwards the newest command of each subject addressed to pc, in
// stream order (withdrawals, which replace killed commands, are skipped), with the headers it was published with (the agent checks
// its signature, which covers the subject, against HeaderSubject). The
// groups are the server's record, not the agent's claim: an agent that is
// not recorded yet gets its own and everyone's commands.
//
// It reads them with one direct get of the newest message of each
// subject (sendDirect); when the stream cannot answer that way (more
// commands than one direct get returns), with a consumer of its own
// (sendConsumer).
func send(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, st *store.Store, pc, reply string) (int, error) {
	var groups []string
	switch a, err := st.Agent(ctx, pc); {
	case err == nil:
		groups = a.Groups
	case !errors.Is(err, store.ErrNotFound):
		return 0, err
	}
	n, err := sendDirect(ctx, nc, filters(pc, groups), reply)
	if !errors.Is(err, errNotDirect) {
		return n, err
	}
	return sendConsumer(ctx, nc, js, filters(pc, groups), reply)
}

// errNotDirect: the direct get cannot return every command (sendDirect
// has sent nothing).
var errNotDirect = errors.New("the commands do not fit one direct get")

// directMax is the most messages the broker answers one multi_last
// direct get with; over it, it answers 413.
const directMax = 1024

// directGetSubject is the EXEC stream's direct get API.
const directGetSubject = "$JS.API.DIRECT.GET." + wire.StreamExec

// directHeaders are the headers a direct get adds to a stored message;
// they are not forwarded (a command reaches its agent with the headers
// it was published with, as from a consumer).
var directHeaders = []string{"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Num-Pending", "Nats-Last-Sequence"}

// sendDirect forwards the newest message of each subject matching
// filters, in stream order, read with one direct get request
// ("multi_last"): no consumer to create, fetch from and delete, which at
// a reconnect wave of 10,000 agents was 30,000 JetStream API requests.
// The messages are collected before any is sent, so that errNotDirect
// (too many for one direct get, or the answer was cut) leaves nothing
// sent twice by the fallback.
func sendDirect(ctx context.Context, nc *nats.Conn, filters []string, reply string) (int, error) {
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{filters})
	if err != nil {
		return 0, err
	}
	inbox := nc.NewInbox()
	// Room for the most messages one direct get answers, and its end.
	msgs := make(chan *nats.Msg, directMax+1)
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(directGetSubject, inbox, req); err != nil {
		return 0, err
	}
	var got []*nats.Msg
	timeout := time.NewTimer(fetchWait)
	defer timeout.Stop()
	for {
		var m *nats.Msg
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-timeout.C:
			return 0, errors.New("no answer from the EXEC stream's direct get")
		case m = <-msgs:
		}
		timeout.Reset(fetchWait)
		switch status := m.Header.Get("Status"); status {
		case "":
			got = append(got, m)
			continue
		case "204": // the end of the batch
			if np := m.Header.Get("Nats-Num-Pending"); np != "" && np != "0" {
				return 0, errNotDirect // cut short (the server's byte limit)
			}
		case "404": // no message on any of the subjects
		case "413", "503": // too many for one direct get; direct gets not allowed
			return 0, errNotDirect
		default:
			return 0, fmt.Errorf("the EXEC stream's direct get answered %s %s", status, m.Header.Get("Description"))
		}
		break
	}
	sent := 0
	for _, m := range got {
		if m.Header.Get(wire.HeaderWithdrawn) != "" {
			continue // a killed command's place holder: nothing to run
		}
		subject := m.Header.Get("Nats-Subject")
		out := &nats.Msg{Subject: reply, Header: nats.Header{}, Data: m.Data}
		for k, v := range m.Header {
			out.Header[k] = v
		}
		for _, h := range directHeaders {
			out.Header.Del(h)
		}
		out.Header.Set(wire.HeaderSubject, subject)
		if err := nc.PublishMsg(out); err != nil {
			return sent, err
		}
		sent++
	}
	return sent, nil
}

// sendConsumer forwards the newest message of each subject matching
// filters, in stream order, read through an ephemeral consumer.
func sendConsumer(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, filters []string, reply string) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cons, err := js.CreateConsumer(cctx, wire.StreamExec, jetstream.ConsumerConfig{
		FilterSubjects:    filters,
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
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = js.DeleteConsumer(dctx, wire.StreamExec, info.Name)
		dcancel()
	}()
	sent := 0
	for left := int(info.NumPending); left > 0; {
		batch, err := cons.Fetch(min(left, 256), jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			return sent, err
		}
		n := 0
		for cm := range batch.Messages() {
			n++
			if cm.Headers().Get(wire.HeaderWithdrawn) != "" {
				continue // a killed command's place holder: nothing to run
			}
			out := &nats.Msg{Subject: reply, Header: nats.Header{}, Data: cm.Data()}
			for k, v := range cm.Headers() {
				out.Header[k] = v
			}
			out.Header.Set(wire.HeaderSubject, cm.Subject())
			if err := nc.PublishMsg(out); err != nil {
				return sent, err
			}
			sent++
		}
		if n == 0 {
			if err := batch.Error(); err != nil {
				return sent, err
			}
			return sent, errors.New("the EXEC stream returned fewer commands than it holds")
		}
		left -= n
	}
	return sent, nil
}
