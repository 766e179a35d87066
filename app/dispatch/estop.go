package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/store"
)

// ErrLocked is returned for new work while the emergency stop is on.
var ErrLocked = errors.New("the emergency stop is on")

// EmergencyStop returns the current switch (from the broker, so several
// server replicas agree).
func (d *Dispatcher) EmergencyStop(ctx context.Context) (wire.EmergencyStop, error) {
	var es wire.EmergencyStop
	kv, err := d.kv(ctx, wire.KVFleet)
	if err != nil {
		return es, err
	}
	e, err := kv.Get(ctx, wire.KeyEmergencyStop)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return es, nil
	}
	if err != nil {
		return es, fmt.Errorf("emergency stop: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &es); err != nil {
		return es, fmt.Errorf("emergency stop: %w", err)
	}
	return es, nil
}

// checkNotStopped refuses new work while the emergency stop is on.
func (d *Dispatcher) checkNotStopped(ctx context.Context) error {
	es, err := d.EmergencyStop(ctx)
	if err != nil {
		return err
	}
	if es.Active {
		return fmt.Errorf("%w since %s (by %s: %s); lift it before starting new work", ErrLocked, es.Since.Format("2006-01-02 15:04 MST"), es.By, es.Reason)
	}
	return nil
}

// SetEmergencyStop turns the stop on (every agent kills what runs and
// refuses new work; the server refuses new executions and kills the
// running ones) or off. A reason is required to turn it on.
func (d *Dispatcher) SetEmergencyStop(ctx context.Context, active bool, reason, actor string) (wire.EmergencyStop, error) {
	cur, err := d.EmergencyStop(ctx)
	if err != nil {
		return cur, err
	}
	reason = strings.TrimSpace(reason)
	if active && reason == "" {
		return cur, &ValidationError{Problems: []Problem{{Field: "reason", Message: "say why the fleet is being stopped"}}}
	}
	if len(reason) > 500 {
		return cur, &ValidationError{Problems: []Problem{{Field: "reason", Message: "is longer than 500 characters"}}}
	}
	now := d.now()
	es := cur
	if active {
		es = wire.EmergencyStop{Active: true, Since: now, By: actor, Reason: reason, LastStopAt: now}
	} else {
		es.Active = false
	}
	body, _ := json.Marshal(es)
	kv, err := d.kv(ctx, wire.KVFleet)
	if err != nil {
		return cur, err
	}
	if _, err := kv.Put(ctx, wire.KeyEmergencyStop, body); err != nil {
		return cur, fmt.Errorf("emergency stop: %w", err)
	}
	action := audit.EmergencyStopOn
	if !active {
		action = audit.EmergencyStopOff
	}
	d.log.Warn("emergency stop", "active", active, "by", actor, "reason", reason)
	_ = d.Audit.Record(ctx, actor, action, "fleet", map[string]any{"reason": reason})
	if active && d.Rollouts != nil {
		// Rollouts halt (and can resume once the stop is lifted); the
		// agents kill their running wave's processes.
		if err := d.Rollouts.HaltAll(ctx, fmt.Sprintf("emergency stop by %s: %s", actor, reason)); err != nil {
			return es, err
		}
	}
	if active {
		// Executions first, so that they end as killed (and their
		// pending targets cancelled) before the agents hear of the stop.
		for {
			execs, _, err := d.st.Executions(ctx, store.ExecFilter{Status: "running", Limit: 1000})
			if err != nil {
				return es, err
			}
			if len(execs) == 0 {
				break
			}
			for _, e := range execs {
				if err := d.Kill(ctx, e.ExecID, actor); err != nil && !errors.Is(err, ErrConflict) {
					return es, err
				}
			}
		}
	}
	msg, _ := json.Marshal(wire.Control{Kind: wire.ControlEmergencyStop, Emergency: &es})
	if err := d.nc.PublishMsg(d.keys.Msg(wire.ControlAll, msg, now)); err != nil {
		return es, fmt.Errorf("announce the emergency stop: %w", err)
	}
	d.ev.Publish(events.Executions)
	return es, nil
}
