package web

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

func (s *server) dashboard(c echo.Context) error {
	ctx, now := c.Request().Context(), s.Now()
	online, total, err := s.Store.AgentCounts(ctx, now)
	if err != nil {
		return err
	}
	execs, _, err := s.Store.Executions(ctx, store.ExecFilter{Limit: 10})
	if err != nil {
		return err
	}
	m := views.DashboardModel{Online: online, Offline: total - online, Total: total}
	for _, e := range execs {
		m.Recent = append(m.Recent, execRow(e, now))
	}
	fails, nFails, err := s.Store.RecentFailures(ctx, now.Add(-24*time.Hour), 10)
	if err != nil {
		return err
	}
	for _, r := range fails {
		m.Failures = append(m.Failures, targetRow(r, now, ""))
	}
	m.FailureTotal = nFails
	byOS, byVersion, err := s.Store.FleetBreakdown(ctx)
	if err != nil {
		return err
	}
	for _, b := range byOS {
		m.ByOS = append(m.ByOS, views.Breakdown{Value: b.Value, N: b.N})
	}
	for _, b := range byVersion {
		m.ByVersion = append(m.ByVersion, views.Breakdown{Value: b.Value, N: b.N, URL: "/agents?version=" + url.QueryEscape(b.Value)})
	}
	return render(c, http.StatusOK, views.DashboardPage(s.layout(c, "Dashboard", "dashboard"), m))
}

func (s *server) agentList(c echo.Context) error {
	ctx := c.Request().Context()
	f, err := s.agentFilter(c)
	if err != nil {
		return err
	}
	now := f.Now
	agents, total, err := s.Store.Agents(ctx, f)
	if err != nil {
		return err
	}
	groups, err := s.Store.Groups(ctx)
	if err != nil {
		return err
	}
	online, all, err := s.Store.AgentCounts(ctx, now)
	if err != nil {
		return err
	}
	_, pending, err := s.Store.AgentKeys(ctx, store.KeyPending, 1, 0)
	if err != nil {
		return err
	}
	m := views.AgentListModel{Q: f.Q, Status: f.Status, Group: f.Group, Software: f.Software, Version: f.Version, OS: f.OS, Sort: f.Sort,
		SortURLs: sortURLs(*c.Request().URL, f.Sort), Groups: groups, Online: online, Total: all, Pending: pending, CSRFToken: csrfToken(c)}
	for _, a := range agents {
		m.Rows = append(m.Rows, agentRow(a, now))
	}
	if err := s.withAddresses(ctx, m.Rows); err != nil {
		return err
	}
	m.Pager = pager(*c.Request().URL, total, f.Offset, f.Limit, len(agents))
	return s.page(c, "Agents", "agents", views.AgentListPage(s.layout(c, "Agents", "agents"), m), views.AgentTable(m))
}

func (s *server) agentShow(c echo.Context) error {
	ctx, now := c.Request().Context(), s.Now()
	pc, err := idParam(c, "pc", "agent")
	if err != nil {
		return err
	}
	a, err := s.Store.Agent(ctx, pc)
	if err != nil {
		return err
	}
	results, _, err := s.Store.Results(ctx, store.ResultFilter{PCID: pc, Limit: 20})
	if err != nil {
		return err
	}
	m := views.AgentModel{Agent: agentRow(a, now), Interval: a.Interval.String(), Running: a.Running,
		FirstSeen: timeText(a.FirstSeen, now)}
	if m.Identity, err = s.agentIdentity(c, pc); err != nil {
		return err
	}
	for _, r := range results {
		m.Recent = append(m.Recent, targetRow(r, now, ""))
	}
	if m.Inventory, err = s.inventoryView(c, pc, strings.TrimSpace(c.QueryParam("software"))); err != nil {
		return err
	}
	m.CSRFToken = csrfToken(c)
	if principal(c).Can(auth.Operator) { // operators may refresh, ping and run
		m.RefreshURL = "/agents/" + url.PathEscape(pc) + "/inventory"
		m.PingURL = "/agents/" + url.PathEscape(pc) + "/ping"
		m.RunURL, m.Shells, m.Shell = "/run?pcs="+url.QueryEscape(pc), wire.Shells, wire.ShellSh
		if a.OS == "windows" {
			m.Shell = wire.ShellPowerShell
		}
	}
	if err := s.agentPageExtras(ctx, &m); err != nil {
		return err
	}
	return render(c, http.StatusOK, views.AgentPage(s.layout(c, pc, "agents"), m))
}

func (s *server) execList(c echo.Context) error {
	ctx, now := c.Request().Context(), s.Now()
	f, err := execFilter(c)
	if err != nil {
		return err
	}
	execs, total, err := s.Store.Executions(ctx, f)
	if err != nil {
		return err
	}
	m := views.ExecListModel{Status: string(f.Status), JobID: f.JobID, PCID: f.PCID, Title: f.Title, InitiatedBy: f.InitiatedBy,
		Statuses: append(outcomeValues(), string(store.StatusCompleted))}
	if f.Outcome != "" {
		m.Status = string(f.Outcome)
	}
	for _, e := range execs {
		m.Rows = append(m.Rows, execRow(e, now))
	}
	m.Pager = pager(*c.Request().URL, total, f.Offset, f.Limit, len(execs))
	return s.page(c, "Executions", "executions", views.ExecListPage(s.layout(c, "Executions", "executions"), m), views.ExecTable(m))
}

// sortURLs returns, per sortable column, the agents list URL sorted by it:
// ascending, or descending when it is the current ascending sort.
func sortURLs(u url.URL, current string) map[string]string {
	out := map[string]string{}
	for col := range store.AgentSorts {
		q := u.Query()
		q.Del("offset")
		next := col
		if current == col {
			next = "-" + col
		}
		q.Set("sort", next)
		u.RawQuery = q.Encode()
		out[col] = "/agents?" + u.RawQuery
	}
	return out
}
