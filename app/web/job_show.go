package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/views"
)

// jobParam reads the :id of a job page, which may be an escaped file name.
func (s *server) jobParam(c echo.Context) (catalog.Entry, error) {
	id := c.Param("id")
	if u, err := url.PathUnescape(id); err == nil {
		id = u
	}
	e, ok := s.jobEntry(id)
	if !ok {
		return e, apiErr(http.StatusNotFound, "not_found", "job "+strconv.Quote(id)+" does not exist", nil)
	}
	return e, nil
}

func (s *server) jobShow(c echo.Context) error {
	e, err := s.jobParam(c)
	if err != nil {
		return err
	}
	m := s.jobModel(e)
	if principal(c).Can(auth.Operator) {
		if m.Deploy, err = s.jobDeploy(c, e); err != nil {
			return err
		}
	}
	return render(c, http.StatusOK, views.JobPage(s.layout(c, e.ID, "jobs"), m))
}

func (s *server) jobModel(e catalog.Entry) views.JobModel {
	m := views.JobModel{Job: jobRow(e), Modified: timeText(e.ModTime, s.Now())}
	var t *jobs.Target
	switch {
	case e.Manifest != nil:
		mf := e.Manifest
		t = &mf.Target
		m.Shell, m.Timeout = mf.Execute.Shell, durationText(mf.Execute.Timeout.D())
		m.Jitter, m.Deadline = durationText(mf.Execute.Jitter.D()), durationText(mf.Deadline.D())
		if m.Deadline == "" {
			m.Deadline = "server default"
		}
		m.FourEyes = s.FourEyes
		if mf.FourEyes != nil {
			m.FourEyes = *mf.FourEyes
		}
		if mf.Rollout != nil {
			for i, w := range mf.Rollout.Waves {
				m.Waves = append(m.Waves, waveRow(i, w))
			}
		}
		m.TargetNone = "nothing"
	case e.Schedule != nil:
		sc := e.Schedule
		t = sc.Target
		m.Cron, m.JobID, m.Enabled = sc.Cron, sc.JobID, sc.Enabled
		if j, ok := s.jobEntry(sc.JobID); ok && sc.JobID != "" && j.Kind == jobs.KindJob {
			m.JobURL = jobURL(sc.JobID)
		}
		m.TargetNone = "the job's own target"
	}
	if t != nil {
		m.TargetAll, m.TargetGroups, m.TargetPCs = t.All, t.Groups, t.PCs
	}
	onLine := map[int][]string{}
	for _, p := range e.Problems {
		jp := views.JobProblem{Field: p.Field, Line: p.Line, Message: p.Message}
		if p.Line > 0 {
			jp.Anchor = lineAnchor(p.Line)
			onLine[p.Line] = append(onLine[p.Line], problemText(p))
		}
		m.Problems = append(m.Problems, jp)
	}
	if e.YAML != "" {
		lines := strings.Split(strings.TrimSuffix(e.YAML, "\n"), "\n")
		for i, text := range lines {
			n := i + 1
			m.Lines = append(m.Lines, views.YAMLLine{N: n, Text: strings.TrimSuffix(text, "\r"), Anchor: lineAnchor(n),
				Problems: strings.Join(onLine[n], "\n")})
		}
	}
	return m
}

func lineAnchor(n int) string { return "L" + strconv.Itoa(n) }

func problemText(p jobs.Problem) string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// durationText formats a manifest duration ("" for none): "30s", "1h30m".
func durationText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	s := d.String()
	for _, z := range []string{"m0s", "h0m"} {
		s = strings.Replace(s, z, z[:1], 1)
	}
	return s
}

func waveRow(i int, w jobs.Wave) views.WaveRow {
	r := views.WaveRow{N: i + 1, Name: w.Name, Delay: durationText(w.Delay.D()), Approval: w.Approval}
	switch {
	case w.Group != "":
		r.Who = "group " + w.Group
	case len(w.PCs) > 0:
		r.Who = strings.Join(w.PCs, ", ")
	case w.Percent > 0:
		r.Who = fmt.Sprintf("%d %% of the target", w.Percent)
	case w.Count > 0:
		r.Who = fmt.Sprintf("%s PC%s of the target", thousands(w.Count), plural(w.Count))
	}
	if w.MaxFailures != nil {
		r.MaxFailures = w.MaxFailures.String()
	}
	if w.MinSuccess != nil {
		r.MinSuccess = w.MinSuccess.String()
	}
	return r
}
