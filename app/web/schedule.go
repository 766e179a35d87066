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

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/dispatch"
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
	if s.Scheduler == nil {
		return []scheduleJSON{}, nil
	}
	defs, err := s.Scheduler.Defs(ctx)
	if err != nil {
		return nil, err
	}
	last, err := s.Store.LastFires(ctx)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	out := make([]scheduleJSON, 0, len(defs))
	for _, d := range defs {
		j := scheduleJSON{ID: d.ID, Description: d.Description, Cron: d.Cron, Human: schedule.Describe(d.Cron), Timezone: d.Timezone,
			JobID: d.JobID, Target: d.Target, Enabled: d.Enabled, Source: d.Source, Problem: d.Problem, Shadowed: d.Shadowed,
			NextFireAt: timePtr(schedule.NextFire(d, now))}
		if j.Source == "" {
			j.Source = "api"
		}
		if f, ok := last[d.ID]; ok {
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

// checkSchedule validates a schedule from the API or the form, naming
// every bad field.
func (s *server) checkSchedule(ctx context.Context, r scheduleRequestJSON) (store.Schedule, error) {
	var ps []dispatch.Problem
	bad := func(f, m string) { ps = append(ps, dispatch.Problem{Field: f, Message: m}) }
	if err := wire.ValidateID("id", r.ID); err != nil {
		bad("id", err.Error())
	}
	if _, err := schedule.ParseCron(r.Cron, ""); err != nil {
		bad("cron", err.Error())
	}
	if r.Timezone != "" {
		if _, err := schedule.ParseCron("@daily", r.Timezone); err != nil {
			bad("timezone", err.Error())
		}
	}
	if err := wire.ValidateID("job_id", r.JobID); err != nil {
		bad("job_id", err.Error())
	} else if e, ok := s.jobEntry(r.JobID); !ok || e.Kind != jobs.KindJob {
		bad("job_id", fmt.Sprintf("there is no job %q in the jobs directory", r.JobID))
	}
	if r.Target != nil {
		r.Target.Groups = wire.NormalizeGroups(r.Target.Groups)
		tps := dispatch.ValidateTarget(*r.Target)
		ps = append(ps, tps...)
		if len(tps) == 0 && len(r.Target.PCs) > 0 && s.Dispatcher != nil {
			// As a run would be: a PC no agent has ever had is a typo.
			unknown, err := s.Dispatcher.UnknownPCs(ctx, r.Target.PCs)
			if err != nil {
				return store.Schedule{}, err
			}
			if len(unknown) > 0 {
				bad("target.pcs", dispatch.UnknownPCsMessage(unknown))
			}
		}
	}
	if len(r.Description) > 500 {
		bad("description", "is longer than 500 characters")
	}
	if len(ps) > 0 {
		return store.Schedule{}, &dispatch.ValidationError{Problems: ps}
	}
	sc := store.Schedule{ID: r.ID, Description: strings.TrimSpace(r.Description), Cron: strings.Join(strings.Fields(r.Cron), " "),
		Timezone: r.Timezone, JobID: r.JobID, Target: r.Target, Enabled: r.Enabled == nil || *r.Enabled}
	// The jobs directory wins: its ids cannot be taken here.
	if src := s.Scheduler.FileSource(sc.ID); src != "" {
		return sc, fmt.Errorf("%w: schedule %s is defined by %s in the jobs directory; edit that file", dispatch.ErrConflict, sc.ID, src)
	}
	return sc, nil
}

func (s *server) saveSchedule(c echo.Context, r scheduleRequestJSON, create bool) (store.Schedule, error) {
	if s.Scheduler == nil {
		return store.Schedule{}, echo.NewHTTPError(http.StatusConflict, "this server runs no scheduler")
	}
	ctx := c.Request().Context()
	sc, err := s.checkSchedule(ctx, r)
	if err != nil {
		return sc, err
	}
	now := s.Now()
	sc.UpdatedAt = now
	action := audit.ScheduleUpdate
	if create {
		action = audit.ScheduleCreate
	}
	if err := s.Audit.Record(ctx, actor(c), action, sc.ID, map[string]any{"cron": sc.Cron, "job_id": sc.JobID, "target": sc.Target, "enabled": sc.Enabled, "timezone": sc.Timezone}); err != nil {
		return sc, err
	}
	if create {
		sc.CreatedAt, sc.CreatedBy = now, actor(c)
		err = s.Store.CreateSchedule(ctx, sc)
		if errors.Is(err, store.ErrExists) {
			err = fmt.Errorf("%w: schedule %s exists; change it with PUT /api/schedules/%s", dispatch.ErrConflict, sc.ID, sc.ID)
		}
	} else {
		err = s.Store.UpdateSchedule(ctx, sc)
	}
	if err != nil {
		s.Audit.Failed(ctx, actor(c), action, sc.ID, err)
		return sc, err
	}
	s.Scheduler.Kick()
	return sc, nil
}

func (s *server) apiCreateSchedule(c echo.Context) error {
	var r scheduleRequestJSON
	if err := decodeJSON(c, &r); err != nil {
		return err
	}
	if _, err := s.saveSchedule(c, r, true); err != nil {
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
	if _, err := s.Store.Schedule(c.Request().Context(), id); err != nil {
		return err
	}
	if _, err := s.saveSchedule(c, r, false); err != nil {
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

func (s *server) deleteSchedule(c echo.Context) (string, error) {
	id, err := idParam(c, "id", "schedule")
	if err != nil {
		return "", err
	}
	if s.Scheduler == nil {
		return "", echo.NewHTTPError(http.StatusConflict, "this server runs no scheduler")
	}
	if err := s.Audit.Record(c.Request().Context(), actor(c), audit.ScheduleDelete, id, nil); err != nil {
		return "", err
	}
	if err := s.Store.DeleteSchedule(c.Request().Context(), id); err != nil {
		s.Audit.Failed(c.Request().Context(), actor(c), audit.ScheduleDelete, id, err)
		if src := s.Scheduler.FileSource(id); src != "" && errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("%w: schedule %s is defined by %s in the jobs directory; delete or disable it there", dispatch.ErrConflict, id, src)
		}
		return "", err
	}
	s.Scheduler.Kick()
	return id, nil
}

func (s *server) apiDeleteSchedule(c echo.Context) error {
	if _, err := s.deleteSchedule(c); err != nil {
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
	_, err := s.saveSchedule(c, r, true)
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
func scheduleWords(p dispatch.Problem) string {
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
	if s.Scheduler == nil {
		return echo.NewHTTPError(http.StatusConflict, "this server runs no scheduler")
	}
	sc, err := s.Store.Schedule(c.Request().Context(), id)
	if err == nil {
		enabled := !sc.Enabled
		r := scheduleRequestJSON{ID: sc.ID, Description: sc.Description, Cron: sc.Cron, Timezone: sc.Timezone, JobID: sc.JobID, Target: sc.Target, Enabled: &enabled}
		_, err = s.saveSchedule(c, r, false)
	}
	if err != nil {
		return s.scheduleRowFailed(c, "Schedule "+id, err)
	}
	return c.Redirect(http.StatusSeeOther, "/schedules")
}

func (s *server) formDeleteSchedule(c echo.Context) error {
	if _, err := s.deleteSchedule(c); err != nil {
		return s.scheduleRowFailed(c, "Schedule "+c.Param("id"), err)
	}
	return c.Redirect(http.StatusSeeOther, "/schedules")
}

// scheduleRowFailed shows the Schedules page again with why a row's
// button did nothing.
func (s *server) scheduleRowFailed(c echo.Context, what string, err error) error {
	status, msg := s.errorText(c, err)
	var ve *dispatch.ValidationError
	if errors.As(err, &ve) && len(ve.Problems) > 0 {
		msg = what + ": " + scheduleWords(ve.Problems[0])
	}
	return s.renderSchedules(c, status, views.SchedulesModel{Enabled: true, Errors: views.FieldErrors{"row": msg}})
}
