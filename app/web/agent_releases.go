package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/agentinstall"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/release"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// agentVersionsUpload is where the Agent versions page posts a binary:
// its body may be a release's size, not a form's (limitFormBody).
const agentVersionsUpload = "/agent-versions"

// largeForm is a form route whose body may exceed maxBodyBytes.
type largeForm struct {
	limit    int64
	read     time.Duration // how long reading the body may take
	tooLarge string
}

// largeForms are the form routes with a limit of their own.
var largeForms = map[string]largeForm{
	agentVersionsUpload: {limit: wire.MaxReleaseSize + 1<<20, read: 30 * time.Minute,
		tooLarge: fmt.Sprintf("the agent binary is larger than %d MiB", wire.MaxReleaseSize>>20)},
}

// releaseJSON is an agent release in the API.
type releaseJSON struct {
	Version    string    `json:"version"`
	OS         string    `json:"os"`
	Arch       string    `json:"arch"`
	SHA256     string    `json:"sha256"`
	Size       int64     `json:"size"`
	Object     string    `json:"object"`
	SignedAt   time.Time `json:"signed_at"`
	Kid        string    `json:"kid"`
	Source     string    `json:"source"`
	UploadedBy string    `json:"uploaded_by"`
	UploadedAt time.Time `json:"uploaded_at"`
}

func toReleaseJSON(r store.Release) releaseJSON {
	s := r.Signed
	return releaseJSON{Version: s.Version, OS: s.OS, Arch: s.Arch, SHA256: s.SHA256, Size: s.Size, Object: s.Object, SignedAt: s.SignedAt,
		Kid: s.Kid, Source: r.Source, UploadedBy: r.UploadedBy, UploadedAt: r.UploadedAt}
}

func releasesJSON(rs []store.Release) []releaseJSON {
	out := make([]releaseJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, toReleaseJSON(r))
	}
	return out
}

// releases is the release service, or 503 when the server runs none.
func (s *server) releases() (*release.Service, error) {
	if s.Releases == nil {
		return nil, apiErr(http.StatusServiceUnavailable, "unavailable", "agent releases are not available on this server", nil)
	}
	return s.Releases, nil
}

// apiAgentReleases lists the releases, newest upload first.
func (s *server) apiAgentReleases(c echo.Context) error {
	svc, err := s.releases()
	if err != nil {
		return err
	}
	rs, err := svc.List(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"releases": releasesJSON(rs)})
}

// apiUploadAgentRelease stores the body (the binary) as a release.
func (s *server) apiUploadAgentRelease(c echo.Context) error {
	svc, err := s.releases()
	if err != nil {
		return err
	}
	r := c.Request()
	if ct, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); ct != echo.MIMEOctetStream {
		return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the agent binary as application/octet-stream", nil)
	}
	if r.ContentLength > svc.MaxSize() {
		return tooLargeRelease(svc)
	}
	// A release may take longer to send than the server's read timeout.
	_ = http.NewResponseController(c.Response().Writer).SetReadDeadline(time.Now().Add(largeForms[agentVersionsUpload].read))
	q := c.QueryParams()
	rel, err := svc.Upload(r.Context(), release.UploadRequest{Version: q.Get("version"), OS: q.Get("os"), Arch: q.Get("arch"),
		Body: http.MaxBytesReader(c.Response(), r.Body, svc.MaxSize()+1), Actor: actor(c)})
	if err != nil {
		if errors.Is(err, release.ErrTooLarge) {
			return tooLargeRelease(svc)
		}
		return err
	}
	return c.JSON(http.StatusCreated, toReleaseJSON(rel))
}

func tooLargeRelease(svc *release.Service) error {
	return apiErr(http.StatusRequestEntityTooLarge, "too_large", "the agent binary is larger than "+bus.SizeText(svc.MaxSize()), nil)
}

// apiDeleteAgentRelease deletes a version's releases (?os=&arch=: one platform).
func (s *server) apiDeleteAgentRelease(c echo.Context) error {
	svc, err := s.releases()
	if err != nil {
		return err
	}
	gone, err := svc.Delete(c.Request().Context(), c.Param("version"), c.QueryParam("os"), c.QueryParam("arch"), actor(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"deleted": releasesJSON(gone)})
}

// rolloutJSON answers a rollout: the execution and who it left out.
type rolloutJSON struct {
	ExecID   string              `json:"exec_id"`
	Status   string              `json:"status"`
	Targets  int                 `json:"targets"`
	Excluded []dispatch.Excluded `json:"excluded"`
}

// apiRolloutAgentRelease starts a rollout of a release.
func (s *server) apiRolloutAgentRelease(c echo.Context) error {
	svc, err := s.releases()
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes))
	if err != nil {
		return apiErr(http.StatusRequestEntityTooLarge, "too_large", "the body is larger than 1 MiB", nil)
	}
	if ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType)); len(body) > 0 && ct != echo.MIMEApplicationJSON {
		return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json", nil)
	}
	target, waves, fourEyes, title, err := release.ParseRollout(body)
	if err != nil {
		return err
	}
	e, excluded, err := svc.Rollout(c.Request().Context(), dispatch.UpdateRequest{Version: c.Param("version"), Target: target, Waves: waves,
		FourEyes: fourEyes, Title: title, Actor: actor(c), ActorSubject: actorSubject(c)})
	if err != nil {
		return err
	}
	if excluded == nil {
		excluded = []dispatch.Excluded{}
	}
	return c.JSON(http.StatusAccepted, rolloutJSON{ExecID: e.ExecID, Status: string(e.Status), Targets: e.Counts.Total(), Excluded: excluded})
}

// apiReleaseKeys lists the release keys agents trust, newest last.
func (s *server) apiReleaseKeys(c echo.Context) error {
	svc, err := s.releases()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": releaseKeysJSON(svc.TrustedKeys())})
}

// apiRotateReleaseKeys makes a new release signing key and announces it.
func (s *server) apiRotateReleaseKeys(c echo.Context) error {
	svc, err := s.releases()
	if err != nil {
		return err
	}
	keys, err := svc.RotateKeys(c.Request().Context(), actor(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": releaseKeysJSON(keys)})
}

func releaseKeysJSON(keys []wire.CommandKey) []map[string]string {
	out := []map[string]string{}
	for _, k := range keys {
		out = append(out, map[string]string{"kid": k.Kid, "public_key": base64.StdEncoding.EncodeToString(k.Key)})
	}
	return out
}

// agentVersionsPage shows the releases, the fleet's versions and the
// failed updates.
func (s *server) agentVersionsPage(c echo.Context) error {
	m, err := s.agentVersionsModel(c)
	if err != nil {
		return err
	}
	if v := c.QueryParam("rollout"); v != "" {
		m.RolloutVersion = v
	}
	return render(c, http.StatusOK, views.AgentVersionsPage(s.layout(c, "Agent versions", "agent-versions"), m))
}

func (s *server) agentVersionsModel(c echo.Context) (views.AgentVersionsModel, error) {
	ctx := c.Request().Context()
	now := s.Now()
	m := views.AgentVersionsModel{ServerVersion: s.Version, Errors: views.FieldErrors{}, MaxSize: bus.SizeText(wire.MaxReleaseSize)}
	if p := principal(c); p != nil && p.Can(auth.Admin) && s.Releases != nil {
		m.CanEdit = true
	}
	for _, p := range agentinstall.Platforms {
		m.Platforms = append(m.Platforms, p.String())
	}
	if s.Releases != nil {
		rs, err := s.Releases.List(ctx)
		if err != nil {
			return m, err
		}
		for _, r := range rs {
			sr := r.Signed
			platform := sr.OS + "/" + sr.Arch
			q := url.Values{"os": {sr.OS}, "arch": {sr.Arch}}
			m.Releases = append(m.Releases, views.ReleaseRow{Version: sr.Version, Platform: platform, Size: bus.SizeText(sr.Size), SHA256: sr.SHA256,
				Source: r.Source, UploadedBy: r.UploadedBy, Uploaded: timeText(r.UploadedAt, now),
				DeleteURL:     "/agent-versions/" + url.PathEscape(sr.Version) + "/delete?" + q.Encode(),
				DeleteConfirm: fmt.Sprintf("Delete agent release %s for %s? Agents can no longer update to it, and its binary is removed.", sr.Version, platform),
				RolloutURL:    "/agent-versions?rollout=" + url.QueryEscape(sr.Version) + "#rollout"})
			if !slices.Contains(m.Versions, sr.Version) {
				m.Versions = append(m.Versions, sr.Version)
			}
		}
		for _, k := range s.Releases.TrustedKeys() {
			m.ReleaseKeys = append(m.ReleaseKeys, k.Kid)
		}
	}
	counts, err := s.Store.AgentVersions(ctx)
	if err != nil {
		return m, err
	}
	slices.SortFunc(counts, func(a, b store.VersionCount) int {
		return strings.Compare(a.Group+"\x00"+a.OS+"/"+a.Arch+"\x00"+a.AgentVersion, b.Group+"\x00"+b.OS+"/"+b.Arch+"\x00"+b.AgentVersion)
	})
	for _, v := range counts {
		m.Fleet = append(m.Fleet, views.FleetVersionRow{Group: v.Group, Platform: v.OS + "/" + v.Arch, Version: v.AgentVersion, Agents: v.Agents})
	}
	if _, m.FleetAgents, err = s.Store.AgentCounts(ctx, now); err != nil {
		return m, err
	}
	fails, err := s.Store.LatestFailures(ctx, wire.UpdateJobID, 100)
	if err != nil {
		return m, err
	}
	for _, f := range fails {
		m.Failures = append(m.Failures, views.UpdateFailureRow{PCID: f.PCID, PCURL: "/agents/" + url.PathEscape(f.PCID), Version: f.Version,
			State: f.State, Reason: f.Reason, ExecURL: "/executions/" + url.PathEscape(f.ExecID), At: timeText(f.FinishedAt, now)})
	}
	return m, nil
}

// formUploadAgentRelease stores the form's binary as a release.
func (s *server) formUploadAgentRelease(c echo.Context) error {
	svc, err := s.releases()
	if err != nil {
		return err
	}
	version, platform := strings.TrimSpace(c.FormValue("version")), c.FormValue("platform")
	errs := map[string]string{}
	status := http.StatusUnprocessableEntity
	osName, arch, _ := strings.Cut(platform, "-")
	fh, ferr := c.FormFile("binary")
	if ferr != nil {
		errs["body"] = "Choose the agent binary to upload."
	} else {
		f, err := fh.Open()
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = svc.Upload(c.Request().Context(), release.UploadRequest{Version: version, OS: osName, Arch: arch, Body: f, Actor: actor(c)})
		if err == nil {
			return c.Redirect(http.StatusSeeOther, "/agent-versions")
		}
		if errors.Is(err, release.ErrTooLarge) {
			errs["body"] = capitalize(err.Error()) + "."
		} else {
			status = s.formProblems(c, err, errs, releaseField, releaseWords)
		}
	}
	m, err := s.agentVersionsModel(c)
	if err != nil {
		return err
	}
	m.Errors, m.UploadVersion, m.UploadPlatform = errs, version, platform
	return render(c, status, views.AgentVersionsPage(s.layout(c, "Agent versions", "agent-versions"), m))
}

// formDeleteAgentRelease deletes one release (its version and platform).
func (s *server) formDeleteAgentRelease(c echo.Context) error {
	svc, err := s.releases()
	if err != nil {
		return err
	}
	if _, err := svc.Delete(c.Request().Context(), c.Param("version"), c.QueryParam("os"), c.QueryParam("arch"), actor(c)); err != nil {
		errs := map[string]string{}
		status := s.formProblems(c, err, errs, func(string) string { return "row" }, releaseWords)
		if msg := errs[""]; msg != "" {
			errs["row"] = msg
		}
		m, merr := s.agentVersionsModel(c)
		if merr != nil {
			return merr
		}
		m.Errors = errs
		return render(c, status, views.AgentVersionsPage(s.layout(c, "Agent versions", "agent-versions"), m))
	}
	return c.Redirect(http.StatusSeeOther, "/agent-versions")
}

// formRolloutAgentRelease starts a rollout from the page's form: a target,
// an optional canary wave of N agents, approval before the rest.
func (s *server) formRolloutAgentRelease(c echo.Context) error {
	svc, err := s.releases()
	if err != nil {
		return err
	}
	f := readDeployForm(c.FormValue)
	canary, approval, fourEyes := strings.TrimSpace(c.FormValue("canary")), c.FormValue("approval") == "true", c.FormValue("four_eyes") == "true"
	target, errs := f.target()
	n := 0
	if canary != "" {
		if n, err = strconv.Atoi(canary); err != nil || n < 0 {
			errs["canary"] = "Enter how many agents go first (0 or empty: one wave)."
		}
	}
	status := http.StatusUnprocessableEntity
	if len(errs) == 0 {
		r := dispatch.UpdateRequest{Version: f.Version, Title: f.Title, FourEyes: &fourEyes, Actor: actor(c), ActorSubject: actorSubject(c)}
		if target != nil {
			r.Target = *target
		}
		switch {
		case n > 0:
			r.Waves = []jobs.Wave{{Name: "canary", Count: n}, {Name: "rest", Percent: 100, Approval: approval}}
		case approval:
			r.Waves = []jobs.Wave{{Name: "all", Percent: 100, Approval: true}}
		}
		e, _, err := svc.Rollout(c.Request().Context(), r)
		if err == nil {
			return c.Redirect(http.StatusSeeOther, "/executions/"+e.ExecID)
		}
		status = s.formProblems(c, err, errs, deployField, runWords)
	}
	m, err := s.agentVersionsModel(c)
	if err != nil {
		return err
	}
	m.Errors, m.RolloutVersion, m.TargetMode, m.Groups, m.PCs, m.Title = errs, f.Version, f.Mode, f.Groups, f.PCs, f.Title
	m.Canary, m.Approval, m.FourEyes = canary, approval, fourEyes
	return render(c, status, views.AgentVersionsPage(s.layout(c, "Agent versions", "agent-versions"), m))
}

// releaseField is the upload form's field of a release problem.
func releaseField(f string) string {
	switch f {
	case "version", "os", "body":
		return f
	}
	return ""
}

func releaseWords(p problem.Problem) string { return capitalize(p.Message) + "." }
