package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/schedule"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// scheduleJSON is docs/API.md's schedule, plus where it comes from and why it
// cannot fire.
type scheduleJSON struct {
	ID          string        `json:"id"`
	Description string        `json:"description,omitempty"`
	Cron        string        `json:"cron"`
	Human       string        `json:"human"`
	Timezone    string        `json:"timezone,omitempty"`
	JobID       string        `json:"job_id"`
	Target      *store.Target `json:"target,omitempty"`
	Enabled     bool          `json:"enabled"`
	Source      string        `json:"source"` // "api" or the file in the jobs directory
	Problem     string        `json:"problem,omitempty"`
	Shadowed    bool          `json:"shadowed,omitempty"`
	NextFireAt  *time.Time    `json:"next_fire_at"`
	LastFireAt  *time.Time    `json:"last_fire_at,omitempty"`
	LastStatus  string        `json:"last_status,omitempty"`
	LastExecID  string        `json:"last_exec_id,omitempty"`
	LastReason  string        `json:"last_reason,omitempty"`
}

func (s *server) schedules(ctx context.Context) ([]scheduleJSON, error) {
	if s.Schedules == nil {
		return []scheduleJSON{}, nil
	}
	list, err := s.Schedules.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]scheduleJSON, 0, len(list))
	for _, l := range list {
		j := scheduleJSON{ID: l.ID, Description: l.Description, Cron: l.Cron, Human: schedule.Describe(l.Cron), Timezone: l.Timezone,
			JobID: l.JobID, Target: l.Target, Enabled: l.Enabled, Source: l.Source, Problem: l.Problem, Shadowed: l.Shadowed,
			NextFireAt: timePtr(l.NextFire)}
		if j.Source == "" {
			j.Source = "api"
		}
		if f := l.LastFire; f != nil {
			j.LastFireAt, j.LastStatus, j.LastExecID, j.LastReason = timePtr(f.At), f.Status, f.ExecID, f.Reason
		}
		out = append(out, j)
	}
	return out, nil
}

func (s *server) apiSchedules(c echo.Context) error {
	list, err := s.schedules(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"schedules": list, "total": len(list)})
}

// scheduleRequestJSON is the body of POST /api/schedules and PUT /api/schedules/{id}.
type scheduleRequestJSON struct {
	ID          string        `json:"id"`
	Description string        `json:"description"`
	Cron        string        `json:"cron"`
	Timezone    string        `json:"timezone"`
	JobID       string        `json:"job_id"`
	Target      *store.Target `json:"target"`
	Enabled     *bool         `json:"enabled"`
}

func (r scheduleRequestJSON) input() schedule.Input {
	return schedule.Input{ID: r.ID, Description: r.Description, Cron: r.Cron, Timezone: r.Timezone, JobID: r.JobID, Target: r.Target, Enabled: r.Enabled}
}

// scheduleService is the schedules' service; a server that runs no
// scheduler refuses changes to them.
func (s *server) scheduleService() (*schedule.Service, error) {
	if s.Schedules == nil {
		return nil, echo.NewHTTPError(http.StatusConflict, "this server runs no scheduler")
	}
	return s.Schedules, nil
}

func (s *server) apiCreateSchedule(c echo.Context) error {
	var r scheduleRequestJSON
	if err := decodeJSON(c, &r); err != nil {
		return err
	}
	sv, err := s.scheduleService()
	if err != nil {
		return err
	}
	if _, err := sv.Create(c.Request().Context(), r.input(), actor(c)); err != nil {
		return err
	}
	return s.apiScheduleOut(c, r.ID, http.StatusCreated)
}

func (s *server) apiUpdateSchedule(c echo.Context) error {
	id, err := idParam(c, "id", "schedule")
	if err != nil {
		return err
	}
	var r scheduleRequestJSON
	if err := decodeJSON(c, &r); err != nil {
		return err
	}
	if r.ID == "" {
		r.ID = id
	}
	if r.ID != id {
		return validation("id", "must match the URL")
	}
	sv, err := s.scheduleService()
	if err != nil {
		return err
	}
	if _, err := sv.Update(c.Request().Context(), r.input(), actor(c)); err != nil {
		return err
	}
	return s.apiScheduleOut(c, id, http.StatusOK)
}

func (s *server) apiScheduleOut(c echo.Context, id string, status int) error {
	list, err := s.schedules(c.Request().Context())
	if err != nil {
		return err
	}
	for _, j := range list {
		if j.ID == id && j.Source == "api" {
			return c.JSON(status, j)
		}
	}
	return apiErr(http.StatusNotFound, "not_found", "schedule "+id+" does not exist", nil)
}

func (s *server) deleteSchedule(c echo.Context) error {
	id, err := idParam(c, "id", "schedule")
	if err != nil {
		return err
	}
	sv, err := s.scheduleService()
	if err != nil {
		return err
	}
	return sv.Delete(c.Request().Context(), id, actor(c))
}

func (s *server) apiDeleteSchedule(c echo.Context) error {
	if err := s.deleteSchedule(c); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// fireJSON is one fire of a schedule.
type fireJSON struct {
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	ExecID string    `json:"exec_id,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// apiScheduleFires lists a schedule's fires, newest first (?limit=).
func (s *server) apiScheduleFires(c echo.Context) error {
	id, err := idParam(c, "id", "schedule")
	if err != nil {
		return err
	}
	limit, _, err := paging(c)
	if err != nil {
		return err
	}
	fs, err := s.Store.Fires(c.Request().Context(), id, limit)
	if err != nil {
		return err
	}
	out := make([]fireJSON, 0, len(fs))
	for _, f := range fs {
		out = append(out, fireJSON{At: f.At, Status: f.Status, ExecID: f.ExecID, Reason: f.Reason})
	}
	return c.JSON(http.StatusOK, map[string]any{"fires": out})
}

// schedulesPage lists the schedules with the form to add one.
func (s *server) schedulesPage(c echo.Context) error {
	return s.renderSchedules(c, http.StatusOK, views.SchedulesModel{Enabled: true})
}

func (s *server) renderSchedules(c echo.Context, status int, m views.SchedulesModel) error {
	ctx := c.Request().Context()
	list, err := s.schedules(ctx)
	if err != nil {
		return err
	}
	now := s.Now()
	canEdit := principal(c).Can(auth.Operator)
	m.CanEdit = canEdit
	for _, j := range list {
		r := views.ScheduleRow{ID: j.ID, Description: j.Description, Cron: j.Cron, Human: j.Human, Timezone: j.Timezone, JobID: j.JobID,
			JobURL: jobURL(j.JobID), Enabled: j.Enabled, Problem: j.Problem, Shadowed: j.Shadowed, LastStatus: j.LastStatus, LastReason: j.LastReason}
		if j.Source != "api" {
			r.Source = j.Source
		}
		r.Target = "the job's target"
		if j.Target != nil {
			r.Target = jobs.Target{All: j.Target.All, Groups: j.Target.Groups, PCs: j.Target.PCs}.String()
		}
		if j.NextFireAt != nil {
			r.Next = timeText(*j.NextFireAt, now)
		}
		if j.LastFireAt != nil {
			r.Last = timeText(*j.LastFireAt, now)
		}
		if j.LastExecID != "" {
			r.LastExecURL = "/executions/" + url.PathEscape(j.LastExecID)
		}
		if canEdit && j.Source == "api" {
			base := "/schedules/" + url.PathEscape(j.ID)
			r.ToggleURL, r.DeleteURL = base+"/toggle", base+"/delete"
			when := ""
			if j.Human != "" {
				when = " (" + strings.ToLower(j.Human[:1]) + j.Human[1:] + ")"
			}
			r.DeleteConfirm = fmt.Sprintf("Delete schedule %s? It no longer runs %s%s; what it ran stays under Executions.", j.ID, j.JobID, when)
		}
		m.Rows = append(m.Rows, r)
	}
	if s.Dispatcher != nil {
		if es, err := s.Dispatcher.EmergencyStop(ctx); err == nil && es.Active {
			m.Suppressed = true
		}
	}
	for _, e := range s.jobEntries() {
		if e.Kind == jobs.KindJob && e.Valid && e.ID != "" {
			m.Jobs = append(m.Jobs, e.ID)
		}
	}
	return render(c, status, views.SchedulesPage(s.layout(c, "Schedules", "schedules"), m))
}

func (s *server) formCreateSchedule(c echo.Context) error {
	enabled := c.FormValue("enabled") == "true"
	r := scheduleRequestJSON{ID: strings.TrimSpace(c.FormValue("id")), Description: c.FormValue("description"), Cron: c.FormValue("cron"),
		Timezone: strings.TrimSpace(c.FormValue("timezone")), JobID: c.FormValue("job_id"), Enabled: &enabled}
	groups, pcs := splitIDs(c.FormValue("groups")), splitIDs(c.FormValue("pcs"))
	if len(groups) > 0 || len(pcs) > 0 {
		r.Target = &store.Target{Groups: groups, PCs: pcs}
	}
	sv, err := s.scheduleService()
	if err == nil {
		_, err = sv.Create(c.Request().Context(), r.input(), actor(c))
	}
	if err == nil {
		return c.Redirect(http.StatusSeeOther, "/schedules")
	}
	m := views.SchedulesModel{ID: r.ID, Description: r.Description, Cron: r.Cron, Timezone: r.Timezone, JobID: r.JobID,
		Groups: c.FormValue("groups"), PCs: c.FormValue("pcs"), Enabled: enabled, Errors: views.FieldErrors{}}
	status := s.formProblems(c, err, m.Errors, scheduleField, scheduleWords)
	return s.renderSchedules(c, status, m)
}

// scheduleField is the New schedule form's field of a problem.
func scheduleField(f string) string {
	switch f = strings.TrimPrefix(f, "target."); f {
	case "id", "cron", "timezone", "job_id", "groups", "pcs", "description":
		return f
	}
	return ""
}

// scheduleWords says a problem of the New schedule form for people.
func scheduleWords(p problem.Problem) string {
	switch p.Field {
	case "target.pcs", "target.groups", "target":
		return runWords(p)
	case "id":
		if p.Message == "id is empty" {
			return "Enter an id, such as nightly-disk-report."
		}
		return sentence("Id " + strings.TrimPrefix(p.Message, "id "))
	case "job_id":
		return sentence(strings.TrimPrefix(p.Message, "job_id "))
	case "description":
		return "The description " + strings.TrimSuffix(p.Message, ".") + "."
	}
	return sentence(p.Message)
}

// sentence capitalizes a message and ends it with a full stop.
func sentence(s string) string {
	s = capitalize(strings.TrimSpace(s))
	if s != "" && !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func (s *server) formToggleSchedule(c echo.Context) error {
	id, err := idParam(c, "id", "schedule")
	if err != nil {
		return err
	}
	sv, err := s.scheduleService()
	if err != nil {
		return err
	}
	if _, err := sv.Toggle(c.Request().Context(), id, actor(c)); err != nil {
		return s.scheduleRowFailed(c, "Schedule "+id, err)
	}
	return c.Redirect(http.StatusSeeOther, "/schedules")
}

func (s *server) formDeleteSchedule(c echo.Context) error {
	if err := s.deleteSchedule(c); err != nil {
		return s.scheduleRowFailed(c, "Schedule "+c.Param("id"), err)
	}
	return c.Redirect(http.StatusSeeOther, "/schedules")
}

// scheduleRowFailed shows the Schedules page again with why a row's
// button did nothing.
func (s *server) scheduleRowFailed(c echo.Context, what string, err error) error {
	status, msg := s.errorText(c, err)
	var ve *problem.Error
	if errors.As(err, &ve) && len(ve.Problems) > 0 {
		msg = what + ": " + scheduleWords(ve.Problems[0])
	}
	return s.renderSchedules(c, status, views.SchedulesModel{Enabled: true, Errors: views.FieldErrors{"row": msg}})
}
