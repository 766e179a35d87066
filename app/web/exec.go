package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

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
	return render(c, http.StatusOK, views.ExecPage(s.layout(c, "Execution "+id, "executions"), m))
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
	return render(c, http.StatusOK, views.ExecSummary(m))
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

// targetTable builds the target table of an execution from the request's
// state filter and offset.
func (s *server) targetTable(c echo.Context, execID, selected string) (views.TargetTableModel, error) {
	state, err := stateParam(c)
	if err != nil {
		return views.TargetTableModel{}, err
	}
	_, offset, err := paging(c)
	if err != nil {
		return views.TargetTableModel{}, err
	}
	rs, total, err := s.Store.Results(c.Request().Context(), store.ResultFilter{ExecID: execID, State: state, Limit: targetsPerPage, Offset: offset})
	if err != nil {
		return views.TargetTableModel{}, err
	}
	q := url.Values{}
	if state != "" {
		q.Set("state", string(state))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	if selected != "" {
		q.Set("pc", selected)
	}
	u := url.URL{Path: "/executions/" + execID + "/targets", RawQuery: q.Encode()}
	m := views.TargetTableModel{ExecID: execID, State: string(state), URL: u.String()}
	now := s.Now()
	for _, r := range rs {
		m.Rows = append(m.Rows, targetRow(r, now, selected))
	}
	m.Pager = pager(u, total, offset, targetsPerPage, len(rs))
	return m, nil
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
	return render(c, http.StatusOK, views.ExecSummary(m))
}
