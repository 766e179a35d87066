// Package dispatch turns a request to run something into an execution:
// it validates the request, resolves the target to PCs, records the
// execution with a pending row per PC, then publishes the command on the
// target's subjects. It also kills executions, expires targets that
// never answered before their deadline, and ends as lost the running
// targets of agents that went silent.
package dispatch

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

// Limits and defaults applied to requests.
type Limits struct {
	DefaultTimeout, MaxTimeout, DefaultDeadline time.Duration
	OutputCap                                   int
	// Rollout defaults: four-eyes, and a wave's max_failures ("0", "10%").
	FourEyes    bool
	MaxFailures string
	// LostGrace is how long past its timeout a running target waits for
	// its agent before it may end as lost (0: DefaultLostGrace).
	LostGrace time.Duration
}

// MaxScriptBytes bounds a script's size.
const MaxScriptBytes = 256 << 10

// AdhocJob is the job id of ad-hoc runs.
const AdhocJob = "adhoc"

// Dispatcher creates, publishes and kills executions.
type Dispatcher struct {
	st   *store.Store
	nc   *nats.Conn
	js   jetstream.JetStream
	keys *sign.Keyring
	ev   *events.Broker
	// Audit records runs and kills (nil records nothing). Each action is
	// recorded before it is carried out and refused when it cannot be
	// (see package audit).
	Audit *audit.Recorder
	// Provisioner re-creates EXEC when a publish finds it gone (nil: the
	// publish fails).
	Provisioner *bus.Provisioner
	// Catalog looks a job up in the jobs directory (nil: deploys are not
	// compared with it; see Deploy).
	Catalog func(jobID string) (jobs.Manifest, bool)
	// Rollouts drives executions with waves (nil: deploys with waves are refused).
	Rollouts *rollout.Engine
	lim      Limits
	log      *slog.Logger
	now      func() time.Time
}

// New returns a dispatcher; every command and kill it publishes is signed
// with keys.
func New(st *store.Store, nc *nats.Conn, js jetstream.JetStream, keys *sign.Keyring, ev *events.Broker, lim Limits, log *slog.Logger) *Dispatcher {
	return &Dispatcher{st: st, nc: nc, js: js, keys: keys, ev: ev, lim: lim, log: log, now: func() time.Time { return time.Now().UTC() }}
}

// ErrConflict reports a request that does not fit the current state.
var ErrConflict = errors.New("conflict")

// RunRequest is an ad-hoc run.
type RunRequest struct {
	Target   store.Target
	Shell    string
	Script   string
	Timeout  time.Duration // 0 → default
	Deadline time.Duration // 0 → default; how long offline PCs may still pick it up
	Actor    string
	// ActorSubject is the actor's stable identity (store.Execution.InitiatorSubject).
	ActorSubject string
	// Title is what people call this run (a ticket, "printer queue");
	// optional, see CheckTitle.
	Title string
}

// MaxTitleChars bounds an execution's title.
const MaxTitleChars = 200

// CheckTitle trims a title and checks it: one line of at most
// MaxTitleChars characters that all show (letters, marks, numbers,
// punctuation, symbols and spaces: no control or formatting characters,
// which could hide or reorder what a list shows), or empty.
func CheckTitle(title string) (string, []problem.Problem) {
	t := strings.TrimSpace(title)
	switch {
	case !utf8.ValidString(t):
		return t, []problem.Problem{{Field: "title", Message: "is not valid UTF-8 text"}}
	case utf8.RuneCountInString(t) > MaxTitleChars:
		return t, []problem.Problem{{Field: "title", Message: fmt.Sprintf("is %d characters long; the limit is %d", utf8.RuneCountInString(t), MaxTitleChars)}}
	case strings.IndexFunc(t, func(r rune) bool { return !unicode.IsGraphic(r) }) >= 0:
		return t, []problem.Problem{{Field: "title", Message: "must be one line of text, without tabs or control characters"}}
	}
	return t, nil
}

// ValidateTarget checks a target.
func ValidateTarget(t store.Target) []problem.Problem {
	var ps []problem.Problem
	if !t.All && len(t.Groups) == 0 && len(t.PCs) == 0 {
		ps = append(ps, problem.Problem{Field: "target", Message: "choose at least one: all, groups or pcs"})
	}
	for _, g := range t.Groups {
		if err := wire.ValidateGroup(g); err != nil {
			ps = append(ps, problem.Problem{Field: "target.groups", Message: err.Error()})
		}
	}
	for _, p := range t.PCs {
		if err := wire.ValidateID("pc", p); err != nil {
			ps = append(ps, problem.Problem{Field: "target.pcs", Message: err.Error()})
		}
	}
	return ps
}

// Check fills defaults into r and returns every problem with it. A
// negative Timeout or Deadline stands for an explicit invalid value.
func (d *Dispatcher) Check(r *RunRequest) []problem.Problem {
	r.Target.Groups = wire.NormalizeGroups(r.Target.Groups) // groups are case-insensitive
	ps := ValidateTarget(r.Target)
	var tps []problem.Problem
	r.Title, tps = CheckTitle(r.Title)
	ps = append(ps, tps...)
	if !wire.ValidShell(r.Shell) {
		ps = append(ps, problem.Problem{Field: "shell", Message: fmt.Sprintf("%q is not one of sh, cmd, powershell, pwsh", r.Shell)})
	}
	switch {
	case strings.TrimSpace(r.Script) == "":
		ps = append(ps, problem.Problem{Field: "script", Message: "is empty"})
	case len(r.Script) > MaxScriptBytes:
		ps = append(ps, problem.Problem{Field: "script", Message: fmt.Sprintf("is %d bytes; the limit is %d", len(r.Script), MaxScriptBytes)})
	}
	if r.Timeout == 0 {
		r.Timeout = d.lim.DefaultTimeout
	}
	if r.Timeout < time.Second || r.Timeout > d.lim.MaxTimeout {
		ps = append(ps, problem.Problem{Field: "timeout", Message: fmt.Sprintf("must be between 1s and %s", d.lim.MaxTimeout)})
	}
	if r.Deadline == 0 {
		r.Deadline = d.lim.DefaultDeadline
	}
	if r.Deadline < time.Second || r.Deadline > 30*24*time.Hour {
		ps = append(ps, problem.Problem{Field: "deadline", Message: "must be between 1s and 720h"})
	}
	return ps
}

// Preview counts the PCs a target resolves to and how many are online.
func (d *Dispatcher) Preview(ctx context.Context, t store.Target) (matched, online int, err error) {
	t.Groups = wire.NormalizeGroups(t.Groups)
	if ps := ValidateTarget(t); len(ps) > 0 {
		return 0, 0, &problem.Error{Problems: ps}
	}
	pcs, online, err := d.st.ResolveTarget(ctx, t.All, t.Groups, t.PCs, d.now())
	return len(pcs), online, err
}

// Run validates, records and publishes an ad-hoc run.
func (d *Dispatcher) Run(ctx context.Context, r RunRequest) (store.Execution, error) {
	if ps := d.Check(&r); len(ps) > 0 {
		return store.Execution{}, &problem.Error{Problems: ps}
	}
	if err := d.checkKnown(ctx, r.Target); err != nil {
		return store.Execution{}, err
	}
	if err := d.checkNotStopped(ctx); err != nil {
		return store.Execution{}, err
	}
	now := d.now()
	pcs, _, err := d.st.ResolveTarget(ctx, r.Target.All, r.Target.Groups, r.Target.PCs, now)
	if err != nil {
		return store.Execution{}, fmt.Errorf("resolve target: %w", err)
	}
	if len(pcs) == 0 {
		return store.Execution{}, problem.New("target", "matches no agent")
	}
	e := store.Execution{
		ExecID: NewExecID(now), JobID: AdhocJob, Shell: r.Shell, Script: r.Script, Title: r.Title,
		Timeout: r.Timeout, Target: r.Target, InitiatedBy: r.Actor, InitiatorSubject: r.ActorSubject, Status: store.StatusRunning,
		CreatedAt: now, DeadlineAt: now.Add(r.Deadline),
	}
	cmd := wire.Command{
		Protocol: wire.ProtocolVersion, ExecID: e.ExecID, JobID: AdhocJob, Shell: r.Shell, Script: r.Script,
		Timeout: wire.Duration(r.Timeout), IssuedAt: now, DeadlineAt: e.DeadlineAt, OutputCap: d.lim.OutputCap,
	}
	detail := map[string]any{"job_id": e.JobID, "target": r.Target,
		"targets": len(pcs), "shell": r.Shell, "script": r.Script, "script_sha256": ScriptSHA256(r.Script), "timeout": r.Timeout.String()}
	if r.Title != "" {
		detail["title"] = r.Title
	}
	if err := d.Audit.Record(ctx, r.Actor, audit.Run, e.ExecID, detail); err != nil {
		return store.Execution{}, err
	}
	if err := d.st.CreateExecution(ctx, e, pcs); err != nil {
		err = fmt.Errorf("record execution: %w", err)
		d.Audit.Failed(ctx, r.Actor, audit.Run, e.ExecID, err)
		return store.Execution{}, err
	}
	if err := d.publish(ctx, cmd, r.Target, adhocToken(e.ExecID)); err != nil {
		if derr := d.st.DeleteExecution(context.WithoutCancel(ctx), e.ExecID); derr != nil {
			d.log.Error("cannot remove an execution that was not published", "exec_id", e.ExecID, "err", derr)
		}
		err = fmt.Errorf("publish: %w", err)
		d.Audit.Failed(ctx, r.Actor, audit.Run, e.ExecID, err)
		return store.Execution{}, err
	}
	d.log.Info("execution started", "exec_id", e.ExecID, "job_id", e.JobID, "targets", len(pcs), "by", r.Actor)
	d.ev.Publish(events.Executions)
	return d.st.Execution(ctx, e.ExecID)
}

// ScriptSHA256 is the hex SHA-256 of a script, recorded in the audit
// events of runs and deploys and compared with the jobs directory's.
func ScriptSHA256(script string) string {
	sum := sha256.Sum256([]byte(script))
	return hex.EncodeToString(sum[:])
}

// adhocToken is the subject token of an ad-hoc run: unique, so that ad-hoc
// runs never replace each other in the EXEC stream.
func adhocToken(execID string) string { return AdhocJob + "-" + execID }

// publish sends cmd on every subject of the target and waits for the
// stream to acknowledge each. When EXEC is gone it is re-provisioned and
// everything sent again (agents run an execution once however often it
// comes).
func (d *Dispatcher) publish(ctx context.Context, cmd wire.Command, t store.Target, jobToken string) error {
	if err := cmd.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	subjects := subjectsOf(t, jobToken)
	return d.Provisioner.Retry(ctx, func() error { return d.publishOnce(ctx, subjects, data) })
}

func (d *Dispatcher) publishOnce(ctx context.Context, subjects []string, data []byte) error {
	futures := make([]jetstream.PubAckFuture, 0, len(subjects))
	now := d.now()
	for _, s := range subjects {
		f, err := d.js.PublishMsgAsync(d.keys.Msg(s, data, now))
		if err != nil {
			return fmt.Errorf("publish %s: %w", s, err)
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return errors.New("publish: no acknowledgement from JetStream within 30s")
		}
	}
	return nil
}

// Kill stops an execution: running processes are killed, targets that
// have not started are cancelled (also offline PCs, which will not find
// the command when they return), and running targets of offline agents,
// which the kill cannot reach, end lost (store.RequestKill). It is
// recorded first and refused when it cannot be.
func (d *Dispatcher) Kill(ctx context.Context, execID, actor string) error {
	return d.kill(ctx, execID, actor, "", true)
}

// kill is Kill; why, when set, says why ("emergency stop: …") in the
// killed targets' reasons, and mustRecord false carries the kill out even
// when its audit event cannot be recorded (the emergency stop's kills).
func (d *Dispatcher) kill(ctx context.Context, execID, actor, why string, mustRecord bool) error {
	e, err := d.st.Execution(ctx, execID)
	if err != nil {
		return err
	}
	if e.Status == store.StatusCompleted {
		return fmt.Errorf("%w: execution %s already completed", ErrConflict, execID)
	}
	if err := d.Audit.Record(ctx, actor, audit.Kill, execID, map[string]any{"job_id": e.JobID}); err != nil {
		if mustRecord {
			return err
		}
		d.log.Error("killing without an audit record", "exec_id", execID, "by", actor, "err", err)
	}
	if err := d.stop(ctx, e, actor, why); err != nil {
		d.Audit.Failed(ctx, actor, audit.Kill, execID, err)
		return err
	}
	return nil
}

// stop carries a kill out.
func (d *Dispatcher) stop(ctx context.Context, e store.Execution, actor, why string) error {
	execID := e.ExecID
	now := d.now()
	// The database first: the execution is killed and its pending targets
	// cancelled before any agent can report the kill, so the execution
	// ends as killed, not completed. A target that starts in between is
	// reported running and then killed by the broadcast below.
	if err := d.st.RequestKillBecause(ctx, execID, actor, why, now); err != nil {
		return err
	}
	if err := d.withdrawIfLatest(ctx, e); err != nil {
		return err
	}
	if d.Rollouts != nil {
		if err := d.Rollouts.Killed(ctx, execID, actor); err != nil {
			d.log.Error("kill: ending the rollout's waves", "exec_id", execID, "err", err)
		}
	}
	data, _ := json.Marshal(wire.Kill{ExecID: execID, By: actor, Reason: why})
	if err := d.nc.PublishMsg(d.keys.Msg(wire.KillSubject(execID), data, now)); err != nil {
		return fmt.Errorf("publish kill: %w", err)
	}
	if err := d.nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("publish kill: %w", err)
	}
	d.log.Info("execution killed", "exec_id", execID, "by", actor)
	d.ev.Publish(events.Execution(execID))
	d.ev.Publish(events.Executions)
	return nil
}

// ExpireLoop marks targets that never answered before their deadline as
// expired and running targets whose agent went silent as lost (SweepLost),
// every interval, until ctx is done.
func (d *Dispatcher) ExpireLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	watching := d.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := d.SweepLost(ctx, watching); err != nil && ctx.Err() == nil {
			d.log.Error("end lost targets", "err", err)
		}
		ids, err := d.st.ExpireOverdue(ctx, d.now())
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("expire overdue targets", "err", err)
			}
			continue
		}
		for _, id := range ids {
			d.ev.Publish(events.Execution(id))
		}
		if len(ids) > 0 {
			d.ev.Publish(events.Executions)
		}
	}
}

// NewExecID returns a new execution id: 26 lower-case Crockford base32
// characters, a 48-bit millisecond timestamp then 80 random bits, so ids
// sort by creation time.
func NewExecID(now time.Time) string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:])
	// 128 bits → 26 characters of 5 bits (the first carries 3).
	out := make([]byte, 26)
	var hi, lo = uint64(0), uint64(0)
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[i+8])
	}
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | (hi&31)<<59
		hi >>= 5
	}
	return string(out)
}
