package web

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// targetTable builds the target table of an execution from the request's
// filters — state, and wave for a rollout (1-based, as the page numbers
// waves) — and offset. Each row of a rollout names its wave, and a target
// that cannot run yet says why (pendingWhy).
func (s *server) targetTable(c echo.Context, execID, selected string) (views.TargetTableModel, error) {
	ctx := c.Request().Context()
	state, err := stateParam(c)
	if err != nil {
		return views.TargetTableModel{}, err
	}
	_, offset, err := paging(c)
	if err != nil {
		return views.TargetTableModel{}, err
	}
	waves, err := s.Store.WaveStates(ctx, execID)
	if err != nil {
		return views.TargetTableModel{}, err
	}
	n, err := waveParam(c, len(waves))
	if err != nil {
		return views.TargetTableModel{}, err
	}
	f := store.TargetFilter{ExecID: execID, State: state, Limit: targetsPerPage, Offset: offset}
	if n > 0 {
		f.Wave = new(n - 1)
	}
	ts, total, err := s.Store.ExecTargets(ctx, f)
	if err != nil {
		return views.TargetTableModel{}, err
	}
	q := url.Values{}
	if state != "" {
		q.Set("state", string(state))
	}
	if n > 0 {
		q.Set("wave", strconv.Itoa(n))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	if selected != "" {
		q.Set("pc", selected)
	}
	u := url.URL{Path: "/executions/" + execID + "/targets", RawQuery: q.Encode()}
	m := views.TargetTableModel{ExecID: execID, State: string(state), URL: u.String()}
	m.Wave = n
	for _, w := range waves {
		m.Waves = append(m.Waves, views.WaveOption{N: w.Index + 1, Label: waveLabel(w)})
	}
	// The execution (its deadline and status) matters only to pending
	// targets, which say why they wait.
	var e store.Execution
	for _, t := range ts {
		if t.State == wire.StatePending {
			if e, err = s.Store.Execution(ctx, execID); err != nil {
				return views.TargetTableModel{}, err
			}
			break
		}
	}
	now := s.Now()
	for _, t := range ts {
		row := targetRow(t.Result, now, selected)
		if t.Wave != nil && *t.Wave >= 0 && *t.Wave < len(waves) {
			row.Wave = waveLabel(waves[*t.Wave])
		}
		why, until := pendingWhy(t, e, waves, now)
		row.Why = why
		if !until.IsZero() {
			row.Until = until.UTC().Format(time.RFC3339)
		}
		m.Rows = append(m.Rows, row)
	}
	m.Pager = pager(u, total, offset, targetsPerPage, len(ts))
	return m, nil
}

// waveParam reads the targets table's wave filter: a wave's number from 1
// to waves, or none (0).
func waveParam(c echo.Context, waves int) (int, error) {
	v := c.QueryParam("wave")
	if v == "" {
		return 0, nil
	}
	if waves == 0 {
		return 0, badParam("wave", "cannot filter this execution: it has no waves")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > waves {
		return 0, badParam("wave", fmt.Sprintf("must be the number of one of this rollout's waves, 1 to %d", waves))
	}
	return n, nil
}

// waveLabel names a wave as its card does: "2. fleet".
func waveLabel(w store.Wave) string {
	return strconv.Itoa(w.Index+1) + ". " + w.Name
}

// pendingWhy says why a pending target of e has not run yet (and until
// when it waits, zero for no such time): its wave has not started, no
// agent ever had its PC id, or its agent is offline (or never connected)
// and gets the command when it connects, until the deadline. An online
// agent's pending target needs no words: it is on its way.
func pendingWhy(t store.ExecTarget, e store.Execution, waves []store.Wave, now time.Time) (string, time.Time) {
	if t.State != wire.StatePending {
		return "", time.Time{}
	}
	deadline := e.DeadlineAt
	if t.Wave != nil && *t.Wave >= 0 && *t.Wave < len(waves) {
		w := waves[*t.Wave]
		label := fmt.Sprintf("wave %d (%s)", w.Index+1, w.Name)
		halted := e.Status == store.StatusHalted
		switch w.State {
		case store.WaveWaiting:
			if halted {
				return "waiting for " + label + ", which does not start while the rollout is halted", time.Time{}
			}
			return "waiting for " + label + " to start", time.Time{}
		case store.WaveAwaitingApproval:
			if halted {
				return "waiting for " + label + ": it awaits approval once the rollout is resumed", time.Time{}
			}
			return "waiting for " + label + " to be approved", time.Time{}
		}
		deadline = w.DeadlineAt
	}
	switch {
	case !t.AgentKnown:
		return "unknown PC: no agent has ever had this id, so nothing will run it", time.Time{}
	case !t.AgentSeen:
		return "never connected — runs when its agent first connects", deadline
	case !t.AgentOnline(now):
		return "offline — runs when it reconnects", deadline
	}
	return "", time.Time{}
}
