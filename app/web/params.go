package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/store"
)

// paging reads limit (default 50, at most 1000) and offset.
func paging(c echo.Context) (limit, offset int, err error) {
	limit, offset = 50, 0
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return 0, 0, badParam("limit", "must be a whole number from 1 to 1000")
		}
		limit = n
	}
	if v := c.QueryParam("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, badParam("offset", "must be a whole number of 0 or more")
		}
		offset = n
	}
	return limit, offset, nil
}

func badParam(field, msg string) error {
	return apiErr(http.StatusBadRequest, "invalid_parameter", field+" "+msg,
		[]map[string]string{{"field": field, "message": msg}})
}

// idParam reads a path parameter that must be a subject-token-safe id.
func idParam(c echo.Context, name, field string) (string, error) {
	v := c.Param(name)
	if err := wire.ValidateID(field, v); err != nil {
		return "", apiErr(http.StatusNotFound, "not_found", field+" "+strconvQuote(v)+" does not exist", nil)
	}
	return v, nil
}

func strconvQuote(s string) string { return strconv.Quote(s) }

// optionalID reads a query parameter that, when set, must be a valid id.
func optionalID(c echo.Context, name string) (string, error) {
	v := strings.TrimSpace(c.QueryParam(name))
	if v == "" {
		return "", nil
	}
	if err := wire.ValidateID(name, v); err != nil {
		return "", badParam(name, err.Error())
	}
	return v, nil
}

func stateParam(c echo.Context) (wire.State, error) {
	v := wire.State(c.QueryParam("state"))
	if v != "" && !v.Valid() {
		return "", badParam("state", "is not one of pending, running, succeeded, failed, timed_out, killed, skipped, expired, lost")
	}
	return v, nil
}

func oneOf(c echo.Context, name string, allowed ...string) (string, error) {
	v := c.QueryParam(name)
	if v == "" {
		return "", nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", badParam(name, "must be one of "+strings.Join(allowed, ", "))
}

// agentFilter reads the agent list filters: q, group, status, os, limit, offset.
func (s *server) agentFilter(c echo.Context) (store.AgentFilter, error) {
	limit, offset, err := paging(c)
	if err != nil {
		return store.AgentFilter{}, err
	}
	status, err := oneOf(c, "status", "online", "offline")
	if err != nil {
		return store.AgentFilter{}, err
	}
	group, err := optionalID(c, "group")
	if err != nil {
		return store.AgentFilter{}, err
	}
	sort := c.QueryParam("sort")
	if _, ok := store.AgentSorts[strings.TrimPrefix(sort, "-")]; sort != "" && !ok {
		return store.AgentFilter{}, validation("sort", "must be one of pc, hostname, os, version, last_seen, with - first for descending")
	}
	return store.AgentFilter{Q: strings.TrimSpace(c.QueryParam("q")), Group: group, Status: status, OS: c.QueryParam("os"), Sort: sort,
		Version: strings.TrimSpace(c.QueryParam("version")), Software: strings.TrimSpace(c.QueryParam("software")),
		Now: s.Now(), Limit: limit, Offset: offset}, nil
}

// execFilter reads the execution list filters: status (a status or an
// outcome), outcome, job_id, pc_id, title, initiated_by, limit, offset.
func execFilter(c echo.Context) (store.ExecFilter, error) {
	limit, offset, err := paging(c)
	if err != nil {
		return store.ExecFilter{}, err
	}
	f := store.ExecFilter{Limit: limit, Offset: offset}
	// "completed" is only a status; every other status has the outcome of
	// the same name, and the outcomes that are not statuses (succeeded,
	// failed, ...) filter as outcomes.
	status, err := oneOf(c, "status", append([]string{string(store.StatusCompleted)}, outcomeValues()...)...)
	if err != nil {
		return store.ExecFilter{}, err
	}
	if status == string(store.StatusCompleted) {
		f.Status = store.StatusCompleted
	} else {
		f.Outcome = store.Outcome(status)
	}
	outcome, err := oneOf(c, "outcome", outcomeValues()...)
	if err != nil {
		return store.ExecFilter{}, err
	}
	if outcome != "" {
		if f.Outcome != "" && f.Outcome != store.Outcome(outcome) {
			return store.ExecFilter{}, badParam("outcome", "contradicts status="+status)
		}
		f.Outcome = store.Outcome(outcome)
	}
	if f.JobID, err = optionalID(c, "job_id"); err != nil {
		return store.ExecFilter{}, err
	}
	if f.PCID, err = optionalID(c, "pc_id"); err != nil {
		return store.ExecFilter{}, err
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"title", &f.Title}, {"initiated_by", &f.InitiatedBy}} {
		v := strings.TrimSpace(c.QueryParam(p.name))
		if utf8.RuneCountInString(v) > dispatch.MaxTitleChars || !utf8.ValidString(v) {
			return store.ExecFilter{}, badParam(p.name, fmt.Sprintf("must be text of at most %d characters", dispatch.MaxTitleChars))
		}
		*p.dst = v
	}
	return f, nil
}

// outcomeValues lists the outcomes as strings, in display order.
func outcomeValues() []string {
	out := make([]string, len(store.Outcomes))
	for i, o := range store.Outcomes {
		out[i] = string(o)
	}
	return out
}

// execParam loads the execution named by the :id path parameter.
func (s *server) execParam(c echo.Context) (store.Execution, error) {
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return store.Execution{}, err
	}
	return s.Store.Execution(c.Request().Context(), id)
}
