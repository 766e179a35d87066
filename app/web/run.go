package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
	"github.com/kanadehq/kanade/views/components"
)

// runForm is the Run page's form as submitted.
type runForm struct {
	Mode, PCs, Groups, Shell, Script, Timeout, Title string
}

func readRunForm(c echo.Context, get func(string) string) runForm {
	f := runForm{Mode: get("target_mode"), PCs: get("pcs"), Groups: get("groups"), Shell: get("shell"),
		Script: get("script"), Timeout: get("timeout"), Title: get("title")}
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

// target reads the target the form names; problems name form fields,
// one per field, in words for people.
func (f runForm) target() (store.Target, map[string]string) {
	errs := map[string]string{}
	var t store.Target
	switch f.Mode {
	case "all":
		t.All = true
	case "groups":
		t.Groups = wire.NormalizeGroups(splitIDs(f.Groups))
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
	if len(errs) > 0 {
		return t, errs // what is missing, said once
	}
	for _, p := range dispatch.ValidateTarget(t) {
		if field := runField(p.Field); errs[field] == "" {
			errs[field] = runWords(p)
		}
	}
	return t, errs
}

// runField is the Run form's field of a dispatch problem ("" for the
// form's own error).
func runField(f string) string {
	switch f = strings.TrimPrefix(f, "target."); f {
	case "target", "pcs", "groups", "shell", "script", "timeout", "title":
		return f
	}
	return ""
}

// runWords says a dispatch problem of a run or deploy for a help desk.
func runWords(p problem.Problem) string {
	msg := p.Message
	switch {
	case p.Field == "target.pcs" && strings.HasPrefix(msg, "unknown PC"):
		_, ids, _ := strings.Cut(msg, ": ")
		if strings.HasPrefix(msg, "unknown PCs") {
			return "Unknown PCs: " + ids + ". No agent has ever had these names; check the spelling."
		}
		return "Unknown PC: " + ids + ". No agent has ever had this name; check the spelling."
	case p.Field == "target.pcs":
		return "PC " + strings.TrimPrefix(msg, "pc ") + "."
	case p.Field == "target.groups":
		return "Group " + strings.TrimPrefix(msg, "group ") + "."
	case p.Field == "target" && msg == "matches no agent":
		return "No agent matches: check the group names, or wait until the PCs have enrolled."
	case p.Field == "target":
		return "Choose these PCs, groups or all agents."
	case p.Field == "script" && msg == "is empty":
		return "Write the script to run."
	case p.Field == "shell":
		return "Choose a shell."
	case p.Field == "" || p.Field == "deadline":
		return capitalize(strings.TrimSpace(p.Field+" "+msg)) + "."
	}
	return "The " + strings.ReplaceAll(p.Field, "_", " ") + " " + msg + "."
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
	if f.Timeout == "" {
		f.Timeout = "60s"
	}
	return views.RunModel{TargetMode: f.Mode, PCs: f.PCs, Groups: f.Groups, Shell: f.Shell, Script: f.Script,
		Timeout: f.Timeout, Title: f.Title, Shells: wire.Shells, Errors: map[string]string{}}
}

// preview counts what the form's target matches, for the Run form.
func (s *server) preview(c echo.Context, f runForm) views.RunPreviewModel {
	t, errs := f.target()
	for _, k := range []string{"target", "pcs", "groups"} {
		if errs[k] != "" {
			return views.RunPreviewModel{Error: errs[k]}
		}
	}
	return s.targetPreview(c, t, runQuestion)
}

// targetPreview counts the PCs a target matches and how many are online,
// names the PCs no agent has ever had, suggests the shell of their
// systems, and words the question to ask before acting on more than one
// PC (ask).
func (s *server) targetPreview(c echo.Context, t store.Target, ask func(matched, online int, all bool) string) views.RunPreviewModel {
	ctx := c.Request().Context()
	matched, online, err := s.Dispatcher.Preview(ctx, t)
	var ve *problem.Error
	switch {
	case errors.As(err, &ve) && len(ve.Problems) > 0:
		return views.RunPreviewModel{Error: runWords(ve.Problems[0])}
	case err != nil:
		_, msg := s.errorText(c, err)
		return views.RunPreviewModel{Error: msg}
	}
	unknown, err := s.Dispatcher.UnknownPCs(ctx, t.PCs)
	if err != nil {
		_, msg := s.errorText(c, err)
		return views.RunPreviewModel{Error: msg}
	}
	p := views.RunPreviewModel{Matched: matched - len(unknown), Online: online, Unknown: unknown, Shell: wire.ShellSh}
	if p.Shell, p.ShellHint, err = s.targetShell(ctx, t); err != nil {
		s.Log.Warn("run preview: the systems of the target", "err", err)
		p.Shell, p.ShellHint = wire.ShellSh, ""
	}
	if len(unknown) == 0 && p.Matched > 1 {
		p.Confirm = ask(p.Matched, p.Online, t.All)
	}
	return p
}

// runQuestion asks before a run on more than one PC, with the count the
// preview found.
func runQuestion(matched, online int, all bool) string {
	if all {
		return fmt.Sprintf("All %s agents? The script runs on every agent: %s.", components.Number(matched), startsText(matched, online))
	}
	return fmt.Sprintf("Run on %s PCs? %s.", components.Number(matched), capitalize(startsText(matched, online)))
}

// startsText says who starts at once and who later.
func startsText(matched, online int) string {
	switch {
	case online >= matched:
		return fmt.Sprintf("all %s are online and start now", components.Number(matched))
	case online == 0:
		return "none is online; they start when they reconnect"
	}
	return fmt.Sprintf("%s online start now, the other %s when they reconnect", components.Number(online), components.Number(matched-online))
}

// osNames are the systems as people call them.
var osNames = map[string]string{"windows": "Windows", "linux": "Linux", "darwin": "macOS"}

// targetShell suggests the shell for a target from its agents' systems:
// PowerShell when they all run Windows, sh when none does (or none is
// known), and none when they are mixed, with a hint that asks.
func (s *server) targetShell(ctx context.Context, t store.Target) (shell, hint string, err error) {
	counts := map[string]int{}
	if t.All || len(t.Groups) > 0 {
		if counts, err = s.Store.TargetOS(ctx, t.All, t.Groups); err != nil {
			return "", "", err
		}
	}
	if len(t.PCs) > 0 {
		oses, err := s.Store.PCsOS(ctx, t.PCs)
		if err != nil {
			return "", "", err
		}
		for _, os := range oses {
			counts[os]++
		}
	}
	var systems []string
	windows, others := 0, 0
	for os, n := range counts {
		if os == "" || n == 0 {
			continue
		}
		name := osNames[os]
		if name == "" {
			name = os
		}
		systems = append(systems, name)
		if os == "windows" {
			windows += n
		} else {
			others += n
		}
	}
	switch {
	case windows > 0 && others == 0:
		return wire.ShellPowerShell, "", nil
	case windows > 0:
		slices.Sort(systems)
		return "", "These PCs run " + andList(systems) + ": choose the shell for them all.", nil
	}
	return wire.ShellSh, "", nil
}

// andList joins "a", "b" and "c" as "a, b and c".
func andList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

func (s *server) runForm(c echo.Context) error {
	f := readRunForm(c, c.QueryParam)
	if selected := c.QueryParams()["pc"]; f.PCs == "" && len(selected) > 0 { // "Run on selected" from the agents list
		f.Mode, f.PCs = "pcs", strings.Join(selected, ", ")
	}
	if f.PCs == "" && f.Groups == "" && f.Mode == "pcs" {
		f.PCs = s.localPC(c.Request().Context())
	}
	m := s.runModel(f)
	m.Preview = s.preview(c, f)
	if m.ShellChosen = c.QueryParams().Has("shell"); !m.ShellChosen {
		m.Shell, m.ShellHint = m.Preview.Shell, m.Preview.ShellHint
		if m.Preview.Error != "" {
			m.Shell = wire.ShellSh
		}
	}
	return render(c, http.StatusOK, views.RunPage(s.layout(c, "Run", "run"), m))
}

func (s *server) runPreview(c echo.Context) error {
	if job := c.QueryParam("job"); job != "" && s.Catalog != nil {
		if e, ok := s.Catalog.Get(job); ok && e.Manifest != nil {
			return render(c, http.StatusOK, views.RunPreview(s.deployPreview(c, *e.Manifest, runForm{Mode: c.QueryParam("target_mode"),
				PCs: c.QueryParam("pcs"), Groups: c.QueryParam("groups")}, c.QueryParam("version"))))
		}
	}
	return render(c, http.StatusOK, views.RunPreview(s.preview(c, readRunForm(c, c.QueryParam))))
}

func (s *server) runCreate(c echo.Context) error {
	f := readRunForm(c, c.FormValue)
	m := s.runModel(f)
	t, errs := f.target()
	m.Errors = errs
	if strings.TrimSpace(f.Shell) == "" {
		m.Errors["shell"] = "Choose a shell."
	}
	timeout, err := time.ParseDuration(strings.TrimSpace(f.Timeout))
	if err != nil {
		m.Errors["timeout"] = "Use a duration such as 30s, 10m or 1h."
	}
	status := http.StatusUnprocessableEntity
	if len(m.Errors) == 0 {
		e, err := s.Dispatcher.Run(c.Request().Context(), dispatch.RunRequest{
			Target: t, Shell: f.Shell, Script: f.Script, Timeout: timeout, Title: f.Title, Actor: actor(c), ActorSubject: actorSubject(c)})
		if err == nil {
			return c.Redirect(http.StatusSeeOther, "/executions/"+e.ExecID)
		}
		status = s.formProblems(c, err, m.Errors, runField, runWords)
	}
	m.Preview = s.preview(c, f)
	if f.Shell == "" {
		m.ShellHint = m.Preview.ShellHint
	}
	// A message shown next to its field is not repeated in the preview.
	for _, msg := range m.Errors {
		if msg == m.Preview.Error {
			m.Preview.Error = ""
		}
	}
	return render(c, status, views.RunPage(s.layout(c, "Run", "run"), m))
}

// localPC is this host's pc_id when an agent has had it ("" otherwise):
// the Run and Deploy forms offer it.
func (s *server) localPC(ctx context.Context) string {
	if s.LocalPC == "" || s.Dispatcher == nil {
		return ""
	}
	if unknown, err := s.Dispatcher.UnknownPCs(ctx, []string{s.LocalPC}); err != nil || len(unknown) > 0 {
		return ""
	}
	return s.LocalPC
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
