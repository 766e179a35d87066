package web

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
	"github.com/kanadehq/kanade/views/components"
)

// apiDeploy deploys a manifest sent as JSON or YAML (`?version=` overrides
// its version; `?allow_mismatch=true` deploys an id and version the jobs
// directory has with another script; `?title=` names the execution).
// Every mistake comes back at once, with YAML line numbers.
func (s *server) apiDeploy(c echo.Context) error {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, jobs.MaxSize))
	if err != nil {
		return apiErr(http.StatusRequestEntityTooLarge, "too_large", "the manifest is larger than 256 KiB", nil)
	}
	var m jobs.Manifest
	var ps []jobs.Problem
	switch ct {
	case echo.MIMEApplicationJSON:
		m, ps = jobs.ParseJSON(body)
	case "application/yaml", "application/x-yaml", "text/yaml":
		m, ps = jobs.Parse("request", body)
	default:
		return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the manifest as application/json or application/yaml", nil)
	}
	if len(ps) > 0 {
		return &problem.Error{Problems: problem.FromJobs(ps)}
	}
	allow, err := queryBool(c, "allow_mismatch")
	if err != nil {
		return err
	}
	e, err := s.Dispatcher.Deploy(c.Request().Context(), dispatch.DeployRequest{Manifest: m, Version: c.QueryParam("version"), Actor: actor(c), ActorSubject: actorSubject(c), AllowMismatch: allow,
		Title: c.QueryParam("title")})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, toExecutionJSON(e))
}

// queryBool reads an optional true/false query parameter.
func queryBool(c echo.Context, name string) (bool, error) {
	switch v := c.QueryParam(name); v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, validation(name, fmt.Sprintf("%q is not true or false", v))
	}
}

// apiJobStatus revokes or unrevokes a job.
func (s *server) apiJobStatus(status string) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("id")
		if err := s.Dispatcher.SetJobStatus(c.Request().Context(), id, status, actor(c)); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]string{"job_id": id, "status": status})
	}
}

// formJobStatus is the Revoke / Unrevoke button of the job page; the
// job page shows the new state (Revoke posts with htmx: see seeOther).
func (s *server) formJobStatus(status string) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("id")
		if err := s.Dispatcher.SetJobStatus(c.Request().Context(), id, status, actor(c)); err != nil {
			return err
		}
		return seeOther(c, "/jobs/"+url.PathEscape(id))
	}
}

// deployForm is the Deploy panel's form as submitted.
type deployForm struct {
	Mode, PCs, Groups, Version, Title string
}

func readDeployForm(get func(string) string) deployForm {
	return deployForm{Mode: get("target_mode"), PCs: get("pcs"), Groups: get("groups"),
		Version: strings.TrimSpace(get("version")), Title: get("title")}
}

// target is the form's target override (nil: the job's own target) and
// what is missing from it.
func (f deployForm) target() (*store.Target, map[string]string) {
	errs := map[string]string{}
	switch f.Mode {
	case "all":
		return &store.Target{All: true}, errs
	case "groups":
		t := &store.Target{Groups: wire.NormalizeGroups(splitIDs(f.Groups))}
		if len(t.Groups) == 0 {
			errs["groups"] = "Enter at least one group."
		}
		return t, errs
	case "pcs":
		t := &store.Target{PCs: splitIDs(f.PCs)}
		if len(t.PCs) == 0 {
			errs["pcs"] = "Enter at least one PC."
		}
		return t, errs
	}
	return nil, errs
}

// deployField is the Deploy panel's field of a dispatch problem.
func deployField(f string) string {
	switch f = strings.TrimPrefix(f, "target."); f {
	case "target", "pcs", "groups", "version", "title":
		return f
	}
	return ""
}

// formDeploy deploys a job of the catalog from its page, with an optional
// target override, version and title. A refusal shows in the Deploy
// panel with what was typed.
func (s *server) formDeploy(c echo.Context) error {
	entry, err := s.jobParam(c)
	if err != nil {
		return err
	}
	f := readDeployForm(c.FormValue)
	errs := map[string]string{}
	status := http.StatusUnprocessableEntity
	if entry.Manifest == nil || !entry.Valid {
		errs[""] = "This job has problems: fix its file before deploying it."
	} else {
		target, terrs := f.target()
		errs = terrs
		if len(errs) == 0 {
			e, err := s.Dispatcher.Deploy(c.Request().Context(), dispatch.DeployRequest{Manifest: *entry.Manifest, Version: f.Version,
				Target: target, Title: f.Title, Actor: actor(c), ActorSubject: actorSubject(c)})
			if err == nil {
				return c.Redirect(http.StatusSeeOther, "/executions/"+e.ExecID)
			}
			status = s.formProblems(c, err, errs, deployField, runWords)
		}
	}
	m := s.jobModel(entry)
	if m.Deploy, err = s.jobDeploy(c, entry); err != nil {
		return err
	}
	if m.Deploy == nil { // an invalid job has no panel: its problems say why
		return s.renderError(c, status, errs[""])
	}
	d := m.Deploy
	d.TargetMode, d.PCs, d.Groups, d.Version, d.Title, d.Errors = f.Mode, f.PCs, f.Groups, f.Version, f.Title, errs
	d.Preview = s.deployPreview(c, *entry.Manifest, runForm{Mode: f.Mode, PCs: f.PCs, Groups: f.Groups}, f.Version)
	for _, msg := range errs {
		if msg == d.Preview.Error {
			d.Preview.Error = ""
		}
	}
	return render(c, status, views.JobPage(s.layout(c, entry.ID, "jobs"), m))
}

// jobDeploy is the deploy panel of a valid job manifest.
func (s *server) jobDeploy(c echo.Context, e catalog.Entry) (*views.JobDeploy, error) {
	if e.Manifest == nil || !e.Valid || s.Dispatcher == nil {
		return nil, nil
	}
	ctx := c.Request().Context()
	status, err := s.Dispatcher.JobStatus(ctx, e.ID)
	if err != nil {
		return nil, err
	}
	pinned, err := s.Dispatcher.PinnedVersion(ctx, e.ID)
	if err != nil {
		return nil, err
	}
	base := "/jobs/" + url.PathEscape(e.ID)
	d := &views.JobDeploy{Status: status, Pinned: pinned, DeployURL: base + "/deploy", StatusURL: base + "/revoke",
		CSRFToken: csrfToken(c), PCs: s.localPC(ctx), Version: e.Manifest.Version, Errors: views.FieldErrors{},
		Preview:       s.deployPreview(c, *e.Manifest, runForm{}, ""),
		RevokeConfirm: fmt.Sprintf("Revoke job %s? PCs that have not started it yet skip it, and it cannot be deployed until it is unrevoked.", e.ID)}
	if status == wire.StatusRevoked {
		d.StatusURL = base + "/unrevoke"
	}
	return d, nil
}

// deployPreview counts the PCs a deploy of m reaches: the job's own
// target, or the one the form names (f.Mode not ""); version, when set,
// is the version the question names.
func (s *server) deployPreview(c echo.Context, m jobs.Manifest, f runForm, version string) views.RunPreviewModel {
	if version = strings.TrimSpace(version); version == "" {
		version = m.Version
	}
	ask := func(matched, online int, all bool) string {
		what := fmt.Sprintf("%s version %s", m.ID, version)
		if all {
			return fmt.Sprintf("All %s agents? This deploys %s to every agent: %s.", components.Number(matched), what, startsText(matched, online))
		}
		return fmt.Sprintf("Deploy %s to %s PCs? %s.", what, components.Number(matched), capitalize(startsText(matched, online)))
	}
	if f.Mode == "" {
		return s.targetPreview(c, store.Target{All: m.Target.All, Groups: wire.NormalizeGroups(m.Target.Groups), PCs: m.Target.PCs}, ask)
	}
	t, errs := f.target()
	for _, k := range []string{"target", "pcs", "groups"} {
		if errs[k] != "" {
			return views.RunPreviewModel{Error: errs[k]}
		}
	}
	return s.targetPreview(c, t, ask)
}
