package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// targetsPerPage is the page size of an execution's target table.
const targetsPerPage = 100

func (s *server) execShow(c echo.Context) error {
	ctx := c.Request().Context()
	e, err := s.execParam(c)
	if err != nil {
		return err
	}
	id := e.ExecID
	selected := c.QueryParam("pc")
	if isPartial(c) && selected != "" {
		return s.logPanelFor(c, id, selected)
	}
	targets, err := s.targetTable(c, id, selected)
	if err != nil {
		return err
	}
	lm := views.LogModel{ExecID: id, Empty: true}
	if selected == "" && len(targets.Rows) > 0 {
		selected = targets.Rows[0].PCID
		targets.Rows[0].Selected = true
	}
	if selected != "" {
		r, err := s.Store.Result(ctx, id, selected)
		if err == nil {
			lm = s.logModel(r)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	summary, err := s.summaryModel(c, e)
	if err != nil {
		return err
	}
	m := views.ExecModel{
		Summary: summary, Script: e.Script, Targets: targets, Log: lm,
		EventsURL: "/executions/" + id + "/events", SummaryURL: "/executions/" + id + "/summary",
	}
	return render(c, http.StatusOK, views.ExecPage(s.layout(c, summary.TabTitle, "executions"), m))
}

func (s *server) execSummary(c echo.Context) error {
	e, err := s.execParam(c)
	if err != nil {
		return err
	}
	m, err := s.summaryModel(c, e)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ExecSummaryFragment(m))
}

func (s *server) execTargets(c echo.Context) error {
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return err
	}
	m, err := s.targetTable(c, id, c.QueryParam("pc"))
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.TargetTable(m))
}

func (s *server) logPanel(c echo.Context) error {
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return err
	}
	return s.logPanelFor(c, id, c.Param("pc"))
}

func (s *server) logPanelFor(c echo.Context, execID, pc string) error {
	r, err := s.Store.Result(c.Request().Context(), execID, pc)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.LogPanel(s.logModel(r)))
}

func (s *server) execKill(c echo.Context) error {
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return err
	}
	if err := s.Dispatcher.Kill(c.Request().Context(), id, actor(c)); err != nil {
		return err
	}
	if !isPartial(c) {
		return c.Redirect(http.StatusSeeOther, "/executions/"+id)
	}
	e, err := s.Store.Execution(c.Request().Context(), id)
	if err != nil {
		return err
	}
	m, err := s.summaryModel(c, e)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ExecSummaryFragment(m))
}

// failureStates are the states of targets that Re-run on failed runs
// again: everything that ended without succeeding, except skipped (a
// target that could not run there, such as a shell of another OS).
var failureStates = []wire.State{wire.StateFailed, wire.StateTimedOut, wire.StateExpired, wire.StateKilled, wire.StateLost}

// failedCount is how many targets Re-run on failed would run again.
func failedCount(c store.Counts) int {
	n := 0
	for _, st := range failureStates {
		n += c.Of(st)
	}
	return n
}

// failureText says what became of those targets: "2 failed, 1 timed out".
func failureText(c store.Counts) string {
	var parts []string
	for _, st := range failureStates {
		if n := c.Of(st); n > 0 {
			parts = append(parts, thousands(n)+" "+strings.ReplaceAll(string(st), "_", " "))
		}
	}
	return strings.Join(parts, ", ")
}

// execName names an execution in lists and tab titles: its title, else
// the first line of its script (a job: its id). detail is that line or
// job when a title names it ("" otherwise).
func execName(e store.Execution) (name, detail string) {
	what := e.JobID
	if e.JobID == dispatch.AdhocJob {
		what = firstLine(e.Script)
	}
	if e.Title == "" {
		return what, ""
	}
	return e.Title, what
}

// maxLineChars bounds the script line a list shows.
const maxLineChars = 80

// firstLine is the first line of script that is not blank, trimmed and
// cut at maxLineChars with an ellipsis.
func firstLine(script string) string {
	for line := range strings.Lines(script) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if utf8.RuneCountInString(line) > maxLineChars {
			r := []rune(line)
			return strings.TrimSpace(string(r[:maxLineChars-1])) + "…"
		}
		return line
	}
	return ""
}

// targetText says what an execution of n targets was aimed at: "PC-042",
// "PC-1, PC-2", "group canary, 40 PCs", "all agents, 5,213 PCs".
func targetText(t store.Target, n int) string {
	count := thousands(n) + " PC" + plural(n)
	var parts []string
	if t.All {
		parts = append(parts, "all agents")
	}
	switch len(t.Groups) {
	case 0:
	case 1:
		parts = append(parts, "group "+t.Groups[0])
	default:
		parts = append(parts, "groups "+listText(t.Groups, 3))
	}
	if len(parts) == 0 {
		if len(t.PCs) > 0 && len(t.PCs) <= 3 && len(t.PCs) == n {
			return strings.Join(t.PCs, ", ")
		}
		if len(t.PCs) == 0 {
			return count
		}
		return listText(t.PCs, 3) + ", " + count
	}
	if len(t.PCs) > 0 {
		parts = append(parts, listText(t.PCs, 3))
	}
	return strings.Join(parts, " + ") + ", " + count
}

// listText joins at most shown items: "a, b, c and 4 more".
func listText(items []string, shown int) string {
	if len(items) <= shown {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:shown], ", "), len(items)-shown)
}

// tickText formats a running duration as kanade.js counts it: "42s",
// "3m 05s", "1h 02m".
func tickText(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// runTick is the duration of something that started at start and ended
// at end (zero: it still runs, and the page counts on from now).
func runTick(start, end, now time.Time) views.Tick {
	switch {
	case start.IsZero():
		return views.Tick{}
	case !end.IsZero():
		return views.Tick{Text: shortDuration(end.Sub(start))}
	}
	return views.Tick{Text: tickText(now.Sub(start)), From: start.UTC().Format(time.RFC3339Nano), Now: now.UTC().Format(time.RFC3339Nano)}
}

// execHead fills what an execution's head shows besides its facts: its
// name, target, duration and tab title, and, for operators, Run again and
// Re-run on failed.
func (s *server) execHead(c echo.Context, e store.Execution, now time.Time) views.ExecHead {
	name, _ := execName(e)
	if name == "" {
		name = "Execution " + e.ExecID
	}
	h := views.ExecHead{Title: e.Title, Target: targetText(e.Target, e.Counts.Total()),
		TabTitle: views.ExecTabTitle(string(e.Outcome()), name)}
	h.Duration = runTick(e.CreatedAt, e.FinishedAt, now)
	if !principal(c).Can(auth.Operator) || s.Dispatcher == nil || e.Script == "" {
		return h
	}
	base := "/executions/" + url.PathEscape(e.ExecID)
	if e.JobID == dispatch.AdhocJob {
		h.RunAgainURL, h.RunAgainLabel = base+"/again", "Run again…"
	} else if s.Catalog != nil {
		if _, ok := s.Catalog.Get(e.JobID); ok {
			h.RunAgainURL, h.RunAgainLabel = "/jobs/"+url.PathEscape(e.JobID), "Deploy again…"
		}
	}
	if failedCount(e.Counts) == 0 || store.IsOpen(e.Status) {
		return h
	}
	counts, _, err := s.rerunScope(c.Request().Context(), e)
	if err != nil {
		s.Log.Warn("execution page: waves", "exec_id", e.ExecID, "err", err)
		return h
	}
	if n := failedCount(counts); n > 0 {
		h.RerunURL, h.RerunCount = base+"/rerun-failed", n
		pcs := fmt.Sprintf("%s PC%s (%s)", thousands(n), plural(n), failureText(counts))
		if e.JobID == dispatch.AdhocJob {
			h.RerunConfirm = "Run the same script again on " + pcs + "?"
		} else {
			h.RerunConfirm = fmt.Sprintf("Deploy job %s version %s again to %s?", e.JobID, e.Version, pcs)
		}
	}
	return h
}

// execAgain opens the Run form filled in with what an ad-hoc execution
// ran: the Run page's own handler answers, reading the same query
// parameters as a link to /run would carry.
func (s *server) execAgain(c echo.Context) error {
	e, err := s.execParam(c)
	if err != nil {
		return err
	}
	if e.JobID != dispatch.AdhocJob {
		return c.Redirect(http.StatusSeeOther, "/jobs/"+url.PathEscape(e.JobID))
	}
	q := url.Values{"shell": {e.Shell}, "script": {e.Script}, "timeout": {durationText(e.Timeout)}, "title": {e.Title}}
	switch {
	case e.Target.All:
		q.Set("target_mode", "all")
	case len(e.Target.Groups) > 0:
		q.Set("target_mode", "groups")
		q.Set("groups", strings.Join(e.Target.Groups, ", "))
	default:
		q.Set("target_mode", "pcs")
		q.Set("pcs", strings.Join(e.Target.PCs, ", "))
	}
	c.Request().URL.RawQuery = q.Encode()
	return s.runForm(c)
}

// rerunTitle names a re-run after the execution it repeats, within the
// title's limit.
func rerunTitle(e store.Execution) string {
	const suffix = " (re-run on failed)"
	if e.Title == "" {
		return "Re-run on failed of " + e.ExecID
	}
	t := []rune(e.Title)
	if keep := dispatch.MaxTitleChars - utf8.RuneCountInString(suffix); len(t) > keep {
		t = t[:keep]
	}
	return strings.TrimSpace(string(t)) + suffix
}

// rerunScope is what Re-run on failed considers: the counts of an
// execution's targets and, for a rollout, the waves that started (nil
// without waves). The targets of a rollout's waves that never started
// were killed before they ran, when the rollout was: running them again
// at once would skip the rollout's gates.
func (s *server) rerunScope(ctx context.Context, e store.Execution) (store.Counts, map[int]bool, error) {
	ws, err := s.Store.Waves(ctx, e.ExecID)
	if err != nil || len(ws) == 0 {
		return e.Counts, nil, err
	}
	var c store.Counts
	started := map[int]bool{}
	for _, w := range ws {
		if w.StartedAt.IsZero() {
			continue
		}
		started[w.Index] = true
		c = c.Plus(w.Counts)
	}
	return c, started, nil
}

// failedPCs lists the PCs of an execution's targets in failureStates
// (within the waves that started: rerunScope).
func (s *server) failedPCs(ctx context.Context, e store.Execution) ([]string, error) {
	_, started, err := s.rerunScope(ctx, e)
	if err != nil {
		return nil, err
	}
	var pcs []string
	for _, st := range failureStates {
		for offset := 0; ; {
			rs, total, err := s.Store.Results(ctx, store.ResultFilter{ExecID: e.ExecID, State: st, Limit: store.MaxLimit, Offset: offset})
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				if started == nil || r.Wave == nil || started[*r.Wave] {
					pcs = append(pcs, r.PCID)
				}
			}
			offset += len(rs)
			if len(rs) == 0 || offset >= total {
				break
			}
		}
	}
	slices.Sort(pcs)
	return pcs, nil
}

// execRerunFailed runs an execution again on the PCs whose targets did
// not succeed (failureStates): an ad-hoc run as the same script, shell,
// timeout and deadline; a job deployed again at the same version (refused
// when another version is pinned now, which the deploy would replace).
func (s *server) execRerunFailed(c echo.Context) error {
	ctx := c.Request().Context()
	e, err := s.execParam(c)
	if err != nil {
		return err
	}
	if store.IsOpen(e.Status) {
		return apiErr(http.StatusConflict, "conflict", "this execution has not ended yet: kill it, or wait for it to end, before running its failed targets again", nil)
	}
	if e.Script == "" {
		return apiErr(http.StatusConflict, "conflict", "this execution has no script to run again", nil)
	}
	pcs, err := s.failedPCs(ctx, e)
	if err != nil {
		return err
	}
	if len(pcs) == 0 {
		return apiErr(http.StatusConflict, "conflict", "no target of this execution failed", nil)
	}
	deadline := e.DeadlineAt.Sub(e.CreatedAt)
	if e.DeadlineAt.IsZero() {
		deadline = e.WaveDeadline
	}
	var again store.Execution
	if e.JobID == dispatch.AdhocJob {
		again, err = s.Dispatcher.Run(ctx, dispatch.RunRequest{Target: store.Target{PCs: pcs}, Shell: e.Shell, Script: e.Script,
			Timeout: e.Timeout, Deadline: max(deadline, 0), Actor: actor(c), ActorSubject: actorSubject(c), Title: rerunTitle(e)})
	} else {
		pinned, perr := s.Dispatcher.PinnedVersion(ctx, e.JobID)
		if perr != nil {
			return perr
		}
		if pinned != "" && pinned != e.Version {
			return apiErr(http.StatusConflict, "conflict", fmt.Sprintf("job %s is at version %s now, not %s: deploy it from its page instead", e.JobID, pinned, e.Version), nil)
		}
		m := jobs.Manifest{ID: e.JobID, Version: e.Version, Target: jobs.Target{PCs: pcs}, Deadline: wire.Duration(max(deadline, 0)),
			Execute: jobs.Execute{Shell: e.Shell, Script: e.Script, Timeout: wire.Duration(e.Timeout), Jitter: wire.Duration(e.Jitter)}}
		again, err = s.Dispatcher.Deploy(ctx, dispatch.DeployRequest{Manifest: m, Actor: actor(c), ActorSubject: actorSubject(c), Title: rerunTitle(e)})
	}
	if err != nil {
		return err
	}
	to := "/executions/" + url.PathEscape(again.ExecID)
	if isPartial(c) {
		// htmx follows this header with a page load; a redirect would be
		// followed by XMLHttpRequest and its page drawn inside the form.
		c.Response().Header().Set("HX-Redirect", to)
		return c.NoContent(http.StatusOK)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// logDownload answers a target's stored output as a text file:
// <exec>-<pc>.log, stdout then stderr under a line that says so.
func (s *server) logDownload(c echo.Context) error {
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return err
	}
	pc, err := idParam(c, "pc", "target")
	if err != nil {
		return err
	}
	r, err := s.Store.Result(c.Request().Context(), id, pc)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-%s.log"`, id, pc)) // ids are [A-Za-z0-9_-]
	h.Set("X-Content-Type-Options", "nosniff")
	return c.String(http.StatusOK, logText(r.Stdout, r.Stderr))
}

// logText is a target's output as one text: stdout, then stderr after a
// line "--- stderr ---".
func logText(stdout, stderr string) string {
	if stderr == "" {
		return stdout
	}
	if stdout != "" && !strings.HasSuffix(stdout, "\n") {
		stdout += "\n"
	}
	return stdout + "--- stderr ---\n" + stderr
}

// targetTick is how long a target ran, or has been running.
func targetTick(r store.Result, now time.Time) views.Tick {
	if r.State.Final() && r.FinishedAt.IsZero() {
		return views.Tick{} // ended without running (expired, killed before it started)
	}
	return runTick(r.StartedAt, r.FinishedAt, now)
}

// capText is the output cap in words: "1 MiB" (the agents' default when
// the server has none set).
func (s *server) capText() string {
	n := int64(s.OutputCap)
	if n <= 0 {
		n = 1 << 20
	}
	return strings.Replace(bus.SizeText(n), ".0 ", " ", 1)
}
