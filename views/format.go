// Package views renders kanade's web pages and their htmx partials with
// templ. It only formats: the handlers build the models in models.go, and
// nothing here reads a database or the clock.
package views

import (
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/a-h/templ"

	"github.com/kanadehq/kanade/views/components"
)

// navItem is one section of the top bar.
type navItem struct {
	Key, Label, URL string
	Role            string // least role that sees it
}

// nav lists the sections of the top bar, in order.
var nav = []navItem{
	{"dashboard", "Dashboard", "/", "viewer"},
	{"agents", "Agents", "/agents", "viewer"},
	{"run", "Run", "/run", "operator"},
	{"jobs", "Jobs", "/jobs", "viewer"},
	{"executions", "Executions", "/executions", "viewer"},
	{"schedules", "Schedules", "/schedules", "viewer"},
	{"agent-versions", "Agent versions", "/agent-versions", "viewer"},
	{"audit", "Audit", "/audit", "viewer"},
	{"settings", "Settings", "/settings", "admin"},
	{"system", "System", "/system", "admin"},
}

// navItems are the sections the caller's role may open.
func (l Layout) navItems() []navItem {
	var out []navItem
	for _, n := range nav {
		if l.Can(n.Role) {
			out = append(out, n)
		}
	}
	return out
}

// asset returns the URL of an embedded static file.
func asset(name string) string { return "/static/" + name }

// csrfHeaders returns the hx-headers JSON that makes htmx send the CSRF
// token with every request.
func csrfHeaders(token string) string {
	b, err := json.Marshal(map[string]string{"X-CSRF-Token": token})
	if err != nil { // a map of strings always marshals
		return "{}"
	}
	return string(b)
}

// segments returns the counts as progress-bar segments in state order.
func (c Counts) segments() []components.Segment {
	segs := make([]components.Segment, len(components.TargetStates))
	for i, st := range components.TargetStates {
		segs[i] = components.Segment{State: st, N: c.N[st]}
	}
	return segs
}

// pager converts p for the pager component; attrs go on its links.
func pager(p Pager, attrs templ.Attributes) components.PagerProps {
	return components.PagerProps{Total: p.Total, From: p.From, To: p.To, PrevURL: p.PrevURL, NextURL: p.NextURL, Attrs: attrs}
}

// withState returns u with its "state" query parameter set to state (or
// removed when empty) and its "offset" removed, so a filter starts on its
// first page. An unparsable u is returned unchanged.
func withState(u, state string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	q.Del("offset")
	if state == "" {
		q.Del("state")
	} else {
		q.Set("state", state)
	}
	p.RawQuery = q.Encode()
	return p.String()
}

// plural returns "1 agent" or "3 agents".
func plural(n int, one, many string) string {
	if n == 1 {
		return components.Number(n) + " " + one
	}
	return components.Number(n) + " " + many
}

// itoa formats an int for an attribute or text.
func itoa(n int) string { return strconv.Itoa(n) }

// errorFor returns the error message of a form field, or "".
func (m RunModel) errorFor(field string) string { return m.Errors[field] }

// errID returns the id of a field's error message, for aria-describedby.
func errID(field string) string { return "err-" + field }

// previewOnline formats the online count of a run preview.
func previewOnline(p RunPreviewModel) string { return components.Number(p.Online) }

// scriptShell is the " (shell)" suffix of the script box's summary.
func scriptShell(shell string) string {
	if shell == "" {
		return ""
	}
	return " (" + shell + ")"
}

// tzText is " (Asia/Tokyo)" for a schedule's time zone, "" for UTC.
func tzText(tz string) string {
	if tz == "" || tz == "UTC" {
		return ""
	}
	return " (" + tz + ")"
}

// usageLevel colours a disk usage bar: ok, warn (≥ 80 %), danger (≥ 95 %).
func usageLevel(pct int) string {
	switch {
	case pct >= 95:
		return "danger"
	case pct >= 80:
		return "warn"
	}
	return "ok"
}
