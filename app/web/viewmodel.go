package web

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// timeText formats t relative to now ("12s ago", "in 3m").
func timeText(t, now time.Time) views.TimeText {
	if t.IsZero() {
		return views.TimeText{Rel: "—"}
	}
	d := now.Sub(t)
	suffix, prefix := " ago", ""
	if d < 0 {
		d, suffix, prefix = -d, "", "in "
	}
	var rel string
	switch {
	case d < 5*time.Second && suffix != "":
		rel, suffix = "just now", ""
	case d < time.Minute:
		rel = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		rel = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		rel = fmt.Sprintf("%dh", int(d.Hours()))
	default:
		rel = fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	return views.TimeText{Rel: prefix + rel + suffix, Abs: t.UTC().Format(time.RFC3339)}
}

func shortDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

func countsView(c store.Counts) views.Counts {
	n := make(map[string]int, len(wire.States))
	for _, st := range wire.States {
		n[string(st)] = c.Of(st)
	}
	return views.Counts{N: n, Total: c.Total()}
}

func agentRow(a store.Agent, now time.Time) views.AgentRow {
	return views.AgentRow{
		PCID: a.PCID, Hostname: a.Hostname, OS: a.OS, OSVersion: a.OSVersion, Arch: a.Arch,
		AgentVersion: a.AgentVersion, Groups: a.Groups, Online: a.Online(now), HeartbeatLate: a.HeartbeatLate(now),
		LastSeen:   timeText(a.LastSeen, now),
		URL:        "/agents/" + url.PathEscape(a.PCID),
		OfflineFor: offlineFor(a, now), User: a.User,
	}
}

func execRow(e store.Execution, now time.Time) views.ExecRow {
	what, detail := execName(e)
	return views.ExecRow{ExecID: e.ExecID, JobID: e.JobID, Status: string(e.Status), InitiatedBy: e.InitiatedBy,
		Created: timeText(e.CreatedAt, now), Counts: countsView(e.Counts), URL: "/executions/" + e.ExecID,
		Outcome: string(e.Outcome()), What: what, Detail: detail, Target: targetText(e.Target, e.Counts.Total())}
}

// summaryModel offers the Kill button to operators and above and, for a
// rollout, its wave cards with the buttons the caller's role allows.
func (s *server) summaryModel(c echo.Context, e store.Execution) (views.ExecSummaryModel, error) {
	now := s.Now()
	n := e.Counts.Total()
	p := principal(c)
	m := views.ExecSummaryModel{
		Exec: execRow(e, now), Shell: e.Shell, Timeout: durationText(e.Timeout),
		Deadline: timeText(e.DeadlineAt, now), Finished: timeText(e.FinishedAt, now),
		Killable: store.IsOpen(e.Status) && p.Can(auth.Operator), KillURL: "/executions/" + e.ExecID + "/kill",
		KillConfirm: fmt.Sprintf("Kill execution %s on %s PC%s? Running scripts are killed and targets that have not started are cancelled.",
			e.ExecID, thousands(n), plural(n)),
		CSRFToken: csrfToken(c), HaltReason: e.HaltReason, FourEyes: e.FourEyes,
		ExecHead: s.execHead(c, e, now),
		Tally:    countLinks(e.ExecID, e.Counts, 0),
	}
	ws, err := s.Store.Waves(c.Request().Context(), e.ExecID)
	if err != nil || len(ws) == 0 {
		return m, err
	}
	base := "/executions/" + url.PathEscape(e.ExecID)
	m.KillConfirm = fmt.Sprintf("Kill rollout %s? The running wave's scripts are killed and the waves that have not started never will.", e.ExecID)
	if p.Can(auth.Operator) && s.Rollouts != nil {
		switch e.Status {
		case store.StatusRunning, store.StatusAwaitingApproval:
			m.HaltURL = base + "/halt"
		case store.StatusHalted:
			m.ResumeURL = base + "/resume"
		}
	}
	for _, w := range ws {
		card := views.WaveCard{Index: w.Index, Name: w.Name, State: w.State, Counts: countsView(w.Counts), Targets: w.TargetCount,
			Reason: w.Reason, MaxFailures: w.MaxFailures, MinSuccess: w.MinSuccess, Approval: w.Approval,
			StartsAt: timeText(w.ReadyAt, now), Started: timeText(w.StartedAt, now), Finished: timeText(w.FinishedAt, now)}
		if w.Delay > 0 {
			card.Delay = durationText(w.Delay)
		}
		if w.ApprovedBy != "" {
			card.ApprovedBy, card.ApprovedAt = w.ApprovedBy, timeText(w.ApprovedAt, now)
		}
		card.RolloutView = waveView(e, w)
		if w.State == store.WaveAwaitingApproval && e.Status == store.StatusHalted {
			card.ApproveNote = haltedApproveNote
		}
		if w.State == store.WaveAwaitingApproval && e.Status == store.StatusAwaitingApproval {
			switch {
			case !p.Can(auth.Approver):
				card.ApproveNote = "waiting for an approver"
			case rollout.CanApprove(e, rollout.Caller{Name: p.Name, Subject: p.Subject}) != nil:
				card.ApproveNote = "four-eyes: someone other than " + e.InitiatedBy + " approves this wave"
			case s.Rollouts != nil:
				card.ApproveURL = fmt.Sprintf("%s/waves/%d/approve", base, w.Index)
			}
		}
		m.Waves = append(m.Waves, card)
	}
	return m, nil
}

func targetRow(r store.Result, now time.Time, selected string) views.TargetRow {
	row := views.TargetRow{
		ExecID: r.ExecID, PCID: r.PCID, State: string(r.State), Reason: r.Reason,
		Started: timeText(r.StartedAt, now), Truncated: r.Truncated,
		LogURL: "/executions/" + r.ExecID + "?pc=" + url.QueryEscape(r.PCID), Selected: r.PCID == selected,
	}
	if r.ExitCode != nil {
		row.ExitCode = strconv.Itoa(*r.ExitCode)
	}
	switch {
	case !r.StartedAt.IsZero() && !r.FinishedAt.IsZero():
		row.Duration = shortDuration(r.FinishedAt.Sub(r.StartedAt))
	case r.State == wire.StateRunning && !r.StartedAt.IsZero():
		row.Duration = shortDuration(now.Sub(r.StartedAt)) + "…"
	}
	return row
}

func (s *server) logModel(r store.Result) views.LogModel {
	base := "/executions/" + r.ExecID + "/log/" + url.PathEscape(r.PCID)
	live := !r.State.Final()
	m := views.LogModel{ExecID: r.ExecID, PCID: r.PCID, State: string(r.State), Truncated: r.Truncated,
		Live: live, StreamURL: base + "/stream", PanelURL: base, Duration: targetTick(r, s.Now()), Cap: s.capText()}
	if !live {
		m.Stdout, m.Stderr = r.Stdout, r.Stderr
		m.DownloadURL = base + "/download"
	}
	return m
}

// pager builds the pager of a list whose current URL is u.
func pager(u url.URL, total, offset, limit, shown int) views.Pager {
	p := views.Pager{Total: total}
	if shown > 0 {
		p.From, p.To = offset+1, offset+shown
	}
	q := u.Query()
	if offset > 0 {
		q.Set("offset", strconv.Itoa(max(0, offset-limit)))
		if offset-limit <= 0 {
			q.Del("offset")
		}
		u.RawQuery = q.Encode()
		p.PrevURL = u.String()
	}
	if offset+shown < total {
		q.Set("offset", strconv.Itoa(offset+limit))
		u.RawQuery = q.Encode()
		p.NextURL = u.String()
	}
	return p
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
