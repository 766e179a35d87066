// Package audit records who did what. Every state-changing action is
// published to the AUDIT stream (the durable record) and projected into the
// audit_log table, which the Audit page and GET /api/audit read.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/projector"
	"github.com/kanadehq/kanade/store"
)

// Actions recorded so far.
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
	TokenCreate       = "enrollment_token.create"
	TokenRevoke       = "enrollment_token.revoke"
	CommandKeysRotate = "command_keys.rotate"
	Login             = "login"
	LoginFailed       = "login.failed"
	Logout            = "logout"
	APITokenCreate    = "api_token.create"
	APITokenRevoke    = "api_token.revoke"
	WaveApprove       = "wave.approve"
	RolloutHalt       = "rollout.halt"
	RolloutResume     = "rollout.resume"
	RolloutAutoHalt   = "rollout.auto_halt"
	ScheduleCreate    = "schedule.create"
	ScheduleUpdate    = "schedule.update"
	ScheduleDelete    = "schedule.delete"
)

// Event is what is published on audit.<action>.
type Event struct {
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target,omitempty"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// Recorder publishes audit events.
type Recorder struct {
	js  jetstream.JetStream
	log *slog.Logger
	now func() time.Time
}

// New returns a recorder.
func New(js jetstream.JetStream, log *slog.Logger) *Recorder {
	return &Recorder{js: js, log: log, now: func() time.Time { return time.Now().UTC() }}
}

// Record publishes one event and waits for the stream to store it. detail
// is marshalled to JSON (nil for none). The action has already happened
// when Record is called, so a failure is logged and returned for the
// caller to report, not to undo.
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
	if _, err := r.js.Publish(ctx, wire.AuditSubject(action), data); err != nil {
		r.log.Error("audit event not recorded", "action", action, "actor", actor, "target", target, "err", err)
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// Project copies the AUDIT stream into the audit_log table until ctx is
// done, acknowledging each batch after its commit.
func Project(ctx context.Context, js jetstream.JetStream, st *store.Store, ev *events.Broker, log *slog.Logger) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, wire.StreamAudit, jetstream.ConsumerConfig{
		Durable: "audit-projector", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: 5000,
	})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("audit projector: fetch", "err", err)
			continue
		}
		var msgs []jetstream.Msg
		var evs []store.AuditEvent
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
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			log.Warn("audit projector: batch", "err", err)
		}
		if len(evs) == 0 {
			continue
		}
		if err := st.AddAuditEvents(ctx, evs); err != nil {
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
