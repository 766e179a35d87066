// Package audit records who did what. Every state-changing action is
// published to the AUDIT stream (the durable record) and projected into the
// audit_log table, which the Audit page and GET /api/audit read.
//
// The record fails closed: an action is recorded before it is carried out,
// and when the event cannot be stored (the broker is down, AUDIT is full or
// gone and cannot be re-provisioned) the action is refused with an error
// wrapping ErrUnavailable, which the API answers with 503
// "audit_unavailable". The event therefore describes an attempt; when the
// action then fails, a second event "<action>.failed" carries the error
// (Failed), so the log never claims more than happened. An id the action
// itself makes (an API token's) is recorded right after it, and the action
// undone when that fails.
//
// The exceptions stop work, or are sign-ins, and must work when nothing
// else does: turning the emergency stop on (and the kills it makes) and a
// rollout's automatic halt go ahead, and signing in and out is recorded
// best effort (refusing it would lock out the admins who must repair the
// broker); an event they could not record is logged as an error. A
// scheduler fire is a deploy: when its event cannot be recorded it does
// not run, and the fire is recorded as failed.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/projector"
	"github.com/kanadehq/kanade/store"
)

// The actions recorded. Each is in Actions, and the Audit page says each
// in words (app/web's auditSentence); a test holds both to this list.
const (
	Run               = "run"
	Deploy            = "deploy"
	Revoke            = "job.revoke"
	Unrevoke          = "job.unrevoke"
	EmergencyStopOn   = "emergency_stop.on"
	EmergencyStopOff  = "emergency_stop.off"
	Kill              = "kill"
	AgentRevoke       = "agent.revoke"
	AgentGroups       = "agent.groups"
	EnrollmentApprove = "enrollment.approve"
	EnrollmentReject  = "enrollment.reject"
	// EnrollmentReenrollRequest: a known PC asked to be bound to a new key.
	EnrollmentReenrollRequest = "enrollment.reenroll_request"
	TokenCreate               = "enrollment_token.create"
	TokenRevoke               = "enrollment_token.revoke"
	TokenRotate               = "enrollment_token.rotate"
	CommandKeysRotate         = "command_keys.rotate"
	Login                     = "login"
	LoginFailed               = "login.failed"
	Logout                    = "logout"
	APITokenCreate            = "api_token.create"
	APITokenRevoke            = "api_token.revoke"
	WaveApprove               = "wave.approve"
	RolloutHalt               = "rollout.halt"
	RolloutResume             = "rollout.resume"
	RolloutAutoHalt           = "rollout.auto_halt"
	ScheduleCreate            = "schedule.create"
	ScheduleUpdate            = "schedule.update"
	ScheduleDelete            = "schedule.delete"
	// Agent releases (app/release); an update's rollout is a Deploy of
	// job agent-update.
	ReleaseUpload     = "agent_release.upload"
	ReleaseDelete     = "agent_release.delete"
	ReleaseKeysRotate = "release_keys.rotate"
)

// Actions lists every action above, so that what reads events (the Audit
// page) can be checked against all of them.
var Actions = []string{
	Run, Deploy, Revoke, Unrevoke, EmergencyStopOn, EmergencyStopOff, Kill,
	AgentRevoke, AgentGroups, EnrollmentApprove, EnrollmentReject, EnrollmentReenrollRequest,
	TokenCreate, TokenRevoke, TokenRotate, CommandKeysRotate,
	Login, LoginFailed, Logout, APITokenCreate, APITokenRevoke,
	WaveApprove, RolloutHalt, RolloutResume, RolloutAutoHalt,
	ScheduleCreate, ScheduleUpdate, ScheduleDelete,
	ReleaseUpload, ReleaseDelete, ReleaseKeysRotate,
}

// Event is what is published on audit.<action>.
type Event struct {
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target,omitempty"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// ErrUnavailable is wrapped by Record's errors: the event could not be
// stored, so the action must not be carried out.
var ErrUnavailable = errors.New("the audit log cannot record this action, so it was not carried out")

// Recorder publishes audit events.
type Recorder struct {
	js  jetstream.JetStream
	log *slog.Logger
	now func() time.Time
	// Provisioner re-creates AUDIT when a publish finds it gone (nil: the
	// publish fails).
	Provisioner *bus.Provisioner
}

// New returns a recorder.
func New(js jetstream.JetStream, log *slog.Logger) *Recorder {
	return &Recorder{js: js, log: log, now: func() time.Time { return time.Now().UTC() }}
}

// Record publishes one event and waits for the stream to store it. detail
// is marshalled to JSON (nil for none). Callers record before they act
// and refuse the action when Record fails: its error wraps ErrUnavailable.
func (r *Recorder) Record(ctx context.Context, actor, action, target string, detail any) error {
	if r == nil {
		return nil
	}
	ev := Event{At: r.now(), Actor: actor, Action: action, Target: target}
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return fmt.Errorf("audit %s: %w", action, err)
		}
		ev.Detail = b
	}
	data, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := r.Provisioner.Retry(ctx, func() error {
		_, err := r.js.Publish(ctx, wire.AuditSubject(action), data)
		return err
	})
	if err != nil {
		r.log.Error("audit event not recorded", "action", action, "actor", actor, "target", target, "err", err)
		return fmt.Errorf("%w (%s: %w)", ErrUnavailable, action, err)
	}
	return nil
}

// Failed records that an action recorded before did not complete: the
// event "<action>.failed" with the error. It is best effort: a failure is
// logged (the attempt is on record already).
func (r *Recorder) Failed(ctx context.Context, actor, action, target string, cause error) {
	if r == nil || cause == nil {
		return
	}
	_ = r.Record(ctx, actor, action+FailedSuffix, target, map[string]any{"error": cause.Error()})
}

// FailedSuffix ends the action of an event that records a failure (Failed).
const FailedSuffix = ".failed"

// Project copies the AUDIT stream into the audit_log table until ctx is
// done, acknowledging each batch after its commit. It returns when its
// consumer or the stream is gone (projector.Keep starts it again, which
// creates the consumer again); other fetch errors are retried after a
// growing pause, each logged once.
func Project(ctx context.Context, js jetstream.JetStream, st *store.Store, ev *events.Broker, log *slog.Logger) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, wire.StreamAudit, jetstream.ConsumerConfig{
		Durable: "audit-projector", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: 5000,
	})
	if err != nil {
		return err
	}
	var pause projector.Backoff
	for ctx.Err() == nil {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		var msgs []jetstream.Msg
		var evs []store.AuditEvent
		if err == nil {
			for m := range projector.BatchMessages(ctx, batch) {
				md, err := m.Metadata()
				var e Event
				if err != nil || json.Unmarshal(m.Data(), &e) != nil {
					log.Warn("audit projector: dropping an undecodable event", "subject", m.Subject())
					_ = m.Term()
					continue
				}
				msgs = append(msgs, m)
				evs = append(evs, store.AuditEvent{Seq: md.Sequence.Stream, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: e.Detail})
			}
			if berr := batch.Error(); berr != nil && !errors.Is(berr, jetstream.ErrNoMessages) && !errors.Is(berr, nats.ErrTimeout) {
				err = berr
			}
		}
		if err != nil && ctx.Err() == nil {
			if projector.Gone(err) {
				return fmt.Errorf("audit projector: %w", err)
			}
			d := pause.Next()
			log.Warn("audit projector: fetch failed; trying again", "err", err, "in", d)
			if !projector.Wait(ctx, d) {
				return nil
			}
			continue
		}
		pause.Reset()
		if len(evs) == 0 {
			continue
		}
		if err := st.AddAuditEvents(ctx, evs); err != nil {
			if ctx.Err() != nil {
				return nil // shutting down: the events come again
			}
			log.Error("audit projector: database write failed; will retry", "err", err)
			for _, m := range msgs {
				_ = m.NakWithDelay(time.Second)
			}
			continue
		}
		for _, m := range msgs {
			_ = m.Ack()
		}
		ev.Publish(events.Audit)
	}
	return nil
}
