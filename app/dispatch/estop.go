package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/store"
)

// ErrLocked is returned for new work while the emergency stop is on.
var ErrLocked = errors.New("the emergency stop is on")

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
		return cur, problem.New("reason", "say why the fleet is being stopped")
	}
	if len(reason) > 500 {
		return cur, problem.New("reason", "is longer than 500 characters")
	}
	action := audit.EmergencyStopOn
	if !active {
		action = audit.EmergencyStopOff
	}
	// Recorded first; lifting is refused without a record, turning on is
	// not (a stop must work when nothing else does).
	if err := d.Audit.Record(ctx, actor, action, "fleet", map[string]any{"reason": reason}); err != nil {
		if !active {
			return cur, err
		}
		d.log.Error("the emergency stop goes on without an audit record", "by", actor, "err", err)
	}
	now := d.now()
	es := cur
	if active {
		es = wire.EmergencyStop{Active: true, Since: now, By: actor, Reason: reason, LastStopAt: now}
	} else {
		es.Active = false
	}
	body, _ := json.Marshal(es)
	if err := d.putSigned(ctx, wire.KVFleet, wire.KeyEmergencyStop, body); err != nil {
		return cur, fmt.Errorf("emergency stop: %w", err)
	}
	d.log.Warn("emergency stop", "active", active, "by", actor, "reason", reason)
	if active {
		if err := d.stopWork(ctx, es); err != nil {
			return es, err
		}
	}
	if err := control.New(d.nc, d.keys, d.now).EmergencyStop(es); err != nil {
		return es, err
	}
	d.ev.Publish(events.Executions)
	return es, nil
}

// stopWork halts the open rollouts and kills the running executions for
// the stop es, and records what it did (store.RecordEmergencyStop) even
// when it fails part way: the page of the stop says what it did.
func (d *Dispatcher) stopWork(ctx context.Context, es wire.EmergencyStop) (err error) {
	rec := store.EmergencyStop{Since: es.Since, By: es.By, Reason: es.Reason}
	defer func() {
		if rerr := d.st.RecordEmergencyStop(context.WithoutCancel(ctx), rec); rerr != nil {
			d.log.Error("the emergency stop goes on without a record of what it did", "err", rerr)
		}
	}()
	if d.Rollouts != nil {
		// Rollouts halt (and can resume once the stop is lifted); the
		// agents kill their running wave's processes.
		rec.Halted, err = d.Rollouts.HaltAll(ctx, fmt.Sprintf("emergency stop by %s: %s", es.By, es.Reason))
		if err != nil {
			return err
		}
	}
	// Executions first, so that they end as killed (and their pending
	// targets cancelled) before the agents hear of the stop. Their
	// targets' reasons say why.
	why := "emergency stop: " + es.Reason
	for {
		execs, _, err := d.st.Executions(ctx, store.ExecFilter{Status: store.StatusRunning, Limit: 1000})
		if err != nil {
			return err
		}
		if len(execs) == 0 {
			return nil
		}
		for _, e := range execs {
			err := d.kill(ctx, e.ExecID, es.By, why, false)
			switch {
			case err == nil:
				rec.Killed = append(rec.Killed, e.ExecID)
			case !errors.Is(err, ErrConflict):
				return err
			}
		}
	}
}
