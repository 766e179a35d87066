package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// runForm is the Run page's form as submitted.
type runForm struct {
	Mode, PCs, Groups, Shell, Script, Timeout string
}

func readRunForm(c echo.Context, get func(string) string) runForm {
	f := runForm{Mode: get("target_mode"), PCs: get("pcs"), Groups: get("groups"), Shell: get("shell"),
		Script: get("script"), Timeout: get("timeout")}
	if f.Mode == "" {
		switch {
		case f.Groups != "" && f.PCs == "":
			f.Mode = "groups"
		case get("all") == "true":
			f.Mode = "all"
		default:
			f.Mode = "pcs"
		}
	}
	return f
}

// target reads the target the form names; problems name form fields.
func (f runForm) target() (store.Target, map[string]string) {
	errs := map[string]string{}
	var t store.Target
	switch f.Mode {
	case "all":
		t.All = true
	case "groups":
		t.Groups = splitIDs(f.Groups)
		if len(t.Groups) == 0 {
			errs["groups"] = "Enter at least one group."
		}
	case "pcs":
		t.PCs = splitIDs(f.PCs)
		if len(t.PCs) == 0 {
			errs["pcs"] = "Enter at least one PC."
		}
	default:
		errs["target"] = "Choose these PCs, groups or all agents."
	}
	for _, p := range dispatch.ValidateTarget(t) {
		field := map[string]string{"target.groups": "groups", "target.pcs": "pcs"}[p.Field]
		if field == "" {
			field = "target"
		}
		if _, seen := errs[field]; !seen {
			errs[field] = p.Message
		}
	}
	return t, errs
}

func splitIDs(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == ';' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (s *server) runModel(f runForm) views.RunModel {
	if f.Shell == "" {
		f.Shell = wire.ShellSh
	}
	if f.Timeout == "" {
		f.Timeout = "60s"
	}
	return views.RunModel{TargetMode: f.Mode, PCs: f.PCs, Groups: f.Groups, Shell: f.Shell, Script: f.Script,
		Timeout: f.Timeout, Shells: wire.Shells, Errors: map[string]string{}}
}

func (s *server) preview(c echo.Context, f runForm) views.RunPreviewModel {
	t, errs := f.target()
	if len(errs) > 0 {
		for _, k := range []string{"target", "pcs", "groups"} {
			if errs[k] != "" {
				return views.RunPreviewModel{Error: errs[k]}
			}
		}
	}
	matched, online, err := s.Dispatcher.Preview(c.Request().Context(), t)
	if err != nil {
		return views.RunPreviewModel{Error: err.Error()}
	}
	return views.RunPreviewModel{Matched: matched, Online: online}
}

func (s *server) runForm(c echo.Context) error {
	f := readRunForm(c, c.QueryParam)
	if selected := c.QueryParams()["pc"]; f.PCs == "" && len(selected) > 0 { // "Run on selected" from the agents list
		f.Mode, f.PCs = "pcs", strings.Join(selected, ", ")
	}
	if f.PCs == "" && f.Groups == "" && f.Mode == "pcs" {
		f.PCs = s.LocalPC
	}
	m := s.runModel(f)
	m.Preview = s.preview(c, f)
	return render(c, http.StatusOK, views.RunPage(s.layout(c, "Run", "run"), m))
}

func (s *server) runPreview(c echo.Context) error {
	if job := c.QueryParam("job"); job != "" && c.QueryParam("target_mode") == "" && s.Catalog != nil {
		if e, ok := s.Catalog.Get(job); ok && e.Manifest != nil {
			return render(c, http.StatusOK, views.RunPreview(s.jobPreview(c, *e.Manifest)))
		}
	}
	return render(c, http.StatusOK, views.RunPreview(s.preview(c, readRunForm(c, c.QueryParam))))
}

func (s *server) runCreate(c echo.Context) error {
	f := readRunForm(c, c.FormValue)
	m := s.runModel(f)
	t, errs := f.target()
	m.Errors = errs
	timeout, err := time.ParseDuration(strings.TrimSpace(f.Timeout))
	if err != nil {
		m.Errors["timeout"] = "Use a duration such as 30s, 10m or 1h."
	}
	if len(m.Errors) == 0 {
		e, err := s.Dispatcher.Run(c.Request().Context(), dispatch.RunRequest{
			Target: t, Shell: f.Shell, Script: f.Script, Timeout: timeout, Actor: actor(c)})
		var ve *dispatch.ValidationError
		switch {
		case err == nil:
			return c.Redirect(http.StatusSeeOther, "/executions/"+e.ExecID)
		case errors.As(err, &ve):
			for _, p := range ve.Problems {
				field := strings.TrimPrefix(p.Field, "target.")
				if m.Errors[field] == "" {
					m.Errors[field] = capitalize(p.Message) + "."
				}
			}
		default:
			return err
		}
	}
	m.Preview = s.preview(c, f)
	return render(c, http.StatusUnprocessableEntity, views.RunPage(s.layout(c, "Run", "run"), m))
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
