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
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// apiDeploy deploys a manifest sent as JSON or YAML (`?version=` overrides
// its version; `?allow_mismatch=true` deploys an id and version the jobs
// directory has with another script). Every mistake comes back at once,
// with YAML line numbers.
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
		return &dispatch.ValidationError{Problems: dispatchProblems(ps)}
	}
	allow, err := queryBool(c, "allow_mismatch")
	if err != nil {
		return err
	}
	e, err := s.Dispatcher.Deploy(c.Request().Context(), dispatch.DeployRequest{Manifest: m, Version: c.QueryParam("version"), Actor: actor(c), AllowMismatch: allow})
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

func dispatchProblems(ps []jobs.Problem) []dispatch.Problem {
	out := make([]dispatch.Problem, 0, len(ps))
	for _, p := range ps {
		out = append(out, dispatch.Problem{Field: p.Field, Line: p.Line, Message: p.Message})
	}
	return out
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

// formJobStatus is the Revoke / Unrevoke button of the job page.
func (s *server) formJobStatus(status string) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("id")
		if err := s.Dispatcher.SetJobStatus(c.Request().Context(), id, status, actor(c)); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/jobs/"+id)
	}
}

// formDeploy deploys a job of the catalog from its page, with an optional
// target override and version.
func (s *server) formDeploy(c echo.Context) error {
	entry, err := s.jobParam(c)
	if err != nil {
		return err
	}
	if entry.Manifest == nil || !entry.Valid {
		return apiErr(http.StatusUnprocessableEntity, "invalid_manifest", "this job has problems; fix the file before deploying it", nil)
	}
	req := dispatch.DeployRequest{Manifest: *entry.Manifest, Version: strings.TrimSpace(c.FormValue("version")), Actor: actor(c)}
	switch c.FormValue("target_mode") {
	case "all":
		req.Target = &store.Target{All: true}
	case "groups":
		req.Target = &store.Target{Groups: wire.NormalizeGroups(splitIDs(c.FormValue("groups")))}
	case "pcs":
		req.Target = &store.Target{PCs: splitIDs(c.FormValue("pcs"))}
	}
	e, err := s.Dispatcher.Deploy(c.Request().Context(), req)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/executions/"+e.ExecID)
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
		CSRFToken: csrfToken(c), DefaultPCs: s.LocalPC, Preview: s.jobPreview(c, *e.Manifest)}
	if status == wire.StatusRevoked {
		d.StatusURL = base + "/unrevoke"
	}
	return d, nil
}

// jobPreview counts the PCs a manifest's own target matches.
func (s *server) jobPreview(c echo.Context, m jobs.Manifest) views.RunPreviewModel {
	matched, online, err := s.Dispatcher.Preview(c.Request().Context(), store.Target{All: m.Target.All, Groups: m.Target.Groups, PCs: m.Target.PCs})
	if err != nil {
		return views.RunPreviewModel{Error: err.Error()}
	}
	return views.RunPreviewModel{Matched: matched, Online: online}
}
