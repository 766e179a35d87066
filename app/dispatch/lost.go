package dispatch

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/store"
)

// DefaultLostGrace is how long past its timeout a running target waits for
// its agent's report before the sweeper may end it as lost.
const DefaultLostGrace = 2 * time.Minute

// offlineBeats is how many heartbeat intervals without one make an agent
// offline (the projector's OfflineAfter); the sweeper also waits that long
// after it starts before it believes an agent offline, since a server that
// was down heard no heartbeats meanwhile.
const offlineBeats = 3

// LostReason decides whether a running target is lost at now and says why
// ("" when it is not). It is lost once its timeout plus grace has passed
// since the server stored its running report, and its agent
//   - is offline (or unknown) and the sweeper has been listening for
//     heartbeats for offlineBeats intervals since watching, or
//   - sent a heartbeat after the timeout had passed whose complete list of
//     running executions leaves it out: the agent is alive and no longer
//     runs it, yet its end never arrived (a reinstalled agent, a lost
//     ledger).
//
// The agent enforces the timeout itself from the script's real start, just
// before it reports running, so a live agent has ended the script by then.
// A lost target is the server's guess: the agent's real report replaces it.
func LostReason(t store.RunningTarget, now, watching time.Time, grace time.Duration) string {
	due := t.Since.Add(t.Timeout)
	if now.Before(due.Add(grace)) {
		return ""
	}
	a := t.Agent
	listen := grace
	if t.KnownAgent && a.Interval > 0 {
		listen = offlineBeats * a.Interval
	}
	if !t.KnownAgent || !a.Online(now) {
		if now.Before(watching.Add(listen)) {
			return ""
		}
		if !t.KnownAgent {
			return fmt.Sprintf("the server has no heartbeat from the agent, and the timeout (%s) passed %s ago without a result", t.Timeout, now.Sub(due).Round(time.Second))
		}
		return fmt.Sprintf("the agent went offline (last heartbeat %s) and never reported the end; the timeout (%s) passed %s ago",
			a.LastSeen.UTC().Format(time.RFC3339), t.Timeout, now.Sub(due).Round(time.Second))
	}
	if a.LastSeen.Before(due) || !a.RunningComplete() || slices.Contains(a.RunningExecs, t.ExecID) {
		return ""
	}
	return fmt.Sprintf("the agent is online but no longer runs it (heartbeat at %s) and never reported the end; the timeout (%s) passed %s ago",
		a.LastSeen.UTC().Format(time.RFC3339), t.Timeout, now.Sub(due).Round(time.Second))
}

// SweepLost ends as lost the running targets LostReason gives up on (see
// there) and returns the exec_ids it changed. watching is when the caller
// started listening for heartbeats. It also reconciles the executions a
// restored database holds open: their running targets are judged the same
// way once their agents have had offlineBeats intervals to be heard.
func (d *Dispatcher) SweepLost(ctx context.Context, watching time.Time) ([]string, error) {
	now := d.now()
	grace := d.lim.LostGrace
	if grace <= 0 {
		grace = DefaultLostGrace
	}
	var lost []store.LostTarget
	var ids []string
	for afterExec, afterPC := "", ""; ; {
		ts, err := d.st.RunningPastTimeout(ctx, now.Add(-grace), afterExec, afterPC)
		if err != nil {
			return ids, err
		}
		var page []store.LostTarget
		for _, t := range ts {
			if why := LostReason(t, now, watching, grace); why != "" {
				page = append(page, store.LostTarget{ExecID: t.ExecID, PCID: t.PCID, Since: t.Since, Reason: why})
			}
		}
		changed, err := d.st.EndLost(ctx, page, now)
		if err != nil {
			return ids, err
		}
		lost, ids = append(lost, page...), append(ids, changed...)
		if len(ts) < store.RunningTargetsPage {
			break
		}
		afterExec, afterPC = ts[len(ts)-1].ExecID, ts[len(ts)-1].PCID
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	perExec := map[string][]string{}
	for _, t := range lost {
		perExec[t.ExecID] = append(perExec[t.ExecID], t.PCID)
	}
	for _, id := range ids {
		pcs := perExec[id]
		d.log.Warn("running targets ended as lost", "exec_id", id, "state", wire.StateLost, "targets", len(pcs), "first_pc", pcs[0])
	}
	for _, id := range ids {
		d.ev.Publish(events.Execution(id))
	}
	if len(ids) > 0 {
		d.ev.Publish(events.Executions)
	}
	return ids, nil
}
