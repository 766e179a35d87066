package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/store"
)

// Permit defaults.
const (
	// DefaultMaxDownloads is [update] max_downloads's default.
	DefaultMaxDownloads = 200
	// DefaultLease is how long a grant counts without its done message or
	// the target's final result.
	DefaultLease = 10 * time.Minute
	// DefaultRetryAfter is what an agent told "not now" waits (±10 %).
	DefaultRetryAfter = 30 * time.Second
	// PermitQueue is the queue group of the permit responders.
	PermitQueue = "kanade-update-permits"
)

// Reasons of refusals the agents show in their results.
const (
	PermitBusy  = "too many agents download now"
	PermitEnded = "the rollout ended"
)

// PermitOptions configure Permits.
type PermitOptions struct {
	// Max downloads at once (0: DefaultMaxDownloads).
	Max int
	// Lease and RetryAfter (0: the defaults).
	Lease, RetryAfter time.Duration
	// Now is the clock (nil: the real one).
	Now func() time.Time
}

// Permits answers the agents' download permit requests
// (wire.UpdatePermitWildcard): at most Max grants count at once; a grant
// counts until its done message, its target's final result or its lease,
// whichever comes first. It is safe for concurrent use.
type Permits struct {
	b   *bus.Bus
	st  *store.Store
	o   PermitOptions
	log *slog.Logger

	warn *rate.Limiter

	mu     sync.Mutex
	grants map[string]grant // by pc_id
	swept  time.Time
	ended  map[string]time.Time // exec_ids found over, and when
}

type grant struct {
	exec  string
	until time.Time
}

// NewPermits returns the responder; Serve runs it.
func NewPermits(b *bus.Bus, st *store.Store, o PermitOptions, log *slog.Logger) *Permits {
	if o.Max <= 0 {
		o.Max = DefaultMaxDownloads
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Permits{b: b, st: st, o: o, log: log, warn: rate.NewLimiter(1, 5), grants: map[string]grant{}, ended: map[string]time.Time{}}
}

// InFlight is the number of grants that count now.
func (p *Permits) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(p.o.Now())
	return len(p.grants)
}

// Max is the most grants that count at once.
func (p *Permits) Max() int { return p.o.Max }

// Serve answers permit requests until ctx is done.
func (p *Permits) Serve(ctx context.Context) error {
	sub, err := p.b.NC.QueueSubscribe(wire.UpdatePermitWildcard, PermitQueue, func(m *nats.Msg) { p.handle(ctx, m) })
	if err != nil {
		return fmt.Errorf("update permits: subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	<-ctx.Done()
	return nil
}

// handle answers one request: only one that came through the agents'
// service import (bus.CheckRequest), for the agent its subject names.
func (p *Permits) handle(ctx context.Context, m *nats.Msg) {
	pc := wire.LastToken(m.Subject)
	var from bus.Requester
	var err error
	if m.Reply == "" {
		// A done message expects no answer; who sent it is checked as for
		// a request (the broker maps no reply subject for it).
		probe := *m
		probe.Reply = bus.ResponsePrefix
		from, err = p.b.CheckRequest(&probe)
	} else {
		from, err = p.b.CheckRequest(m)
	}
	if err != nil {
		p.refuseQuietly(m, err)
		return
	}
	var req wire.PermitRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		p.refuse(m, fmt.Sprintf("the request is not a permit request: %v", err))
		return
	}
	switch {
	case wire.ValidateID("pc_id", pc) != nil:
		p.refuse(m, fmt.Sprintf("bad request subject %q", m.Subject))
		return
	// The broker lets an agent publish on its own update.permit.<pc>
	// only (bus.AgentTemplate), so the subject names the requester; a
	// shared identity, when the import carries one, must agree.
	case req.PCID != pc || (from.Name != "" && from.Name != pc):
		p.refuse(m, fmt.Sprintf("the request names pc_id %q on %s, asked by %q: an agent asks for itself only", req.PCID, m.Subject, from.Name))
		return
	}
	if req.Done {
		p.done(pc, req.ExecID)
		return
	}
	if m.Reply == "" {
		return
	}
	rep := p.Decide(ctx, pc, req)
	data, _ := json.Marshal(rep)
	if err := m.Respond(data); err != nil && p.warn.Allow() {
		p.log.Warn("update permits: cannot answer", "pc_id", pc, "err", err)
	}
}

// refuseQuietly drops a request it must not answer (the reply subject
// was not mapped by the broker: answering would publish where the
// requester chose).
func (p *Permits) refuseQuietly(m *nats.Msg, err error) {
	if p.warn.Allow() {
		p.log.Warn("update permits: request not answered", "subject", m.Subject, "err", err)
	}
}

// refuse answers a hostile or broken request with a refusal that does
// not ask again (the reply subject is the broker's, so answering is safe).
func (p *Permits) refuse(m *nats.Msg, why string) {
	if p.warn.Allow() {
		p.log.Warn("update permits: request refused", "subject", m.Subject, "reason", why)
	}
	if m.Reply == "" {
		return
	}
	data, _ := json.Marshal(wire.PermitReply{Reason: "refused: " + why})
	_ = m.Respond(data)
}

// Decide answers agent pc's request (checked already to come from pc).
func (p *Permits) Decide(ctx context.Context, pc string, req wire.PermitRequest) wire.PermitReply {
	now := p.o.Now()
	if wire.ValidateID("exec_id", req.ExecID) != nil {
		return wire.PermitReply{Reason: "refused: the request names no update execution"}
	}
	if p.isEnded(req.ExecID, now) {
		return wire.PermitReply{Reason: PermitEnded}
	}
	e, err := p.st.Execution(ctx, req.ExecID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return wire.PermitReply{Reason: "refused: execution " + req.ExecID + " is unknown"}
	case err != nil:
		return p.later(now, "the server cannot look the rollout up now")
	case e.JobID != wire.UpdateJobID:
		return wire.PermitReply{Reason: "refused: execution " + req.ExecID + " is not an update"}
	case !store.IsOpen(e.Status):
		p.markEnded(req.ExecID, now)
		return wire.PermitReply{Reason: PermitEnded}
	case req.Version != "" && req.Version != e.Version:
		return wire.PermitReply{Reason: fmt.Sprintf("refused: execution %s updates to %s, not %s", e.ExecID, e.Version, req.Version)}
	}
	res, err := p.st.Result(ctx, req.ExecID, pc)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return wire.PermitReply{Reason: "refused: " + pc + " is not a target of execution " + req.ExecID}
	case err != nil:
		return p.later(now, "the server cannot look the target up now")
	case res.State != wire.StatePending && res.State != wire.StateRunning:
		return wire.PermitReply{Reason: "refused: the target is over (" + string(res.State) + ")"}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(now)
	if _, ok := p.grants[pc]; !ok && len(p.grants) >= p.o.Max {
		p.sweep(ctx, now)
	}
	if _, ok := p.grants[pc]; ok || len(p.grants) < p.o.Max {
		p.grants[pc] = grant{exec: req.ExecID, until: now.Add(p.o.Lease)}
		return wire.PermitReply{Granted: true}
	}
	return p.later(now, fmt.Sprintf("%s (%d at once)", PermitBusy, p.o.Max))
}

func (p *Permits) later(_ time.Time, why string) wire.PermitReply {
	return wire.PermitReply{RetryAfter: wire.Duration(p.o.RetryAfter), Reason: why}
}

// done frees pc's grant for exec.
func (p *Permits) done(pc, exec string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if g, ok := p.grants[pc]; ok && g.exec == exec {
		delete(p.grants, pc)
	}
}

// expire drops the grants whose lease ended. p.mu is held.
func (p *Permits) expire(now time.Time) {
	for pc, g := range p.grants {
		if !now.Before(g.until) {
			delete(p.grants, pc)
		}
	}
}

// sweepEvery bounds how often a full pool looks up its grants' targets.
const sweepEvery = 2 * time.Second

// sweep drops the grants whose target is over (its agent's final result
// came, or the rollout was killed). p.mu is held.
func (p *Permits) sweep(ctx context.Context, now time.Time) {
	if now.Sub(p.swept) < sweepEvery {
		return
	}
	p.swept = now
	for pc, g := range p.grants {
		res, err := p.st.Result(ctx, g.exec, pc)
		if errors.Is(err, store.ErrNotFound) || (err == nil && res.State != wire.StatePending && res.State != wire.StateRunning) {
			delete(p.grants, pc)
		}
	}
}

// endedFor is how long an execution found over is remembered, so that
// a fleet asking about it costs no lookups.
const endedFor = 10 * time.Minute

func (p *Permits) isEnded(exec string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.ended[exec]
	return ok && now.Sub(at) < endedFor
}

func (p *Permits) markEnded(exec string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, at := range p.ended {
		if now.Sub(at) >= endedFor {
			delete(p.ended, id)
		}
	}
	p.ended[exec] = now
	for pc, g := range p.grants {
		if g.exec == exec {
			delete(p.grants, pc)
		}
	}
}
