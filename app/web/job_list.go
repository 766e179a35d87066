package web

import (
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/views"
)

// jobEntries returns the catalog's entries (none without a catalog).
func (s *server) jobEntries() []catalog.Entry {
	if s.Catalog == nil {
		return nil
	}
	return s.Catalog.List()
}

// jobEntry returns the catalog entry with this id.
func (s *server) jobEntry(id string) (catalog.Entry, bool) {
	if s.Catalog == nil {
		return catalog.Entry{}, false
	}
	return s.Catalog.Get(id)
}

func (s *server) jobsDir() string {
	if s.Catalog == nil {
		return "(no jobs directory)"
	}
	return s.Catalog.Dir()
}

// jobURL is the page of a catalog entry; ids of files without a usable id
// are file names, which may hold a slash.
func jobURL(id string) string { return "/jobs/" + url.PathEscape(id) }

func jobRow(e catalog.Entry) views.JobRow {
	return views.JobRow{ID: e.ID, Version: e.Version(), Description: e.Description(), Source: e.Source,
		Kind: string(e.Kind), Valid: e.Valid, Errors: len(e.Problems), URL: jobURL(e.ID)}
}

func (s *server) jobList(c echo.Context) error {
	status, err := oneOf(c, "status", "valid", "invalid")
	if err != nil {
		return err
	}
	kind, err := oneOf(c, "kind", "job", "schedule")
	if err != nil {
		return err
	}
	q := strings.TrimSpace(c.QueryParam("q"))
	m := views.JobListModel{Q: q, Status: status, Kind: kind, Dir: s.jobsDir()}
	for _, e := range s.jobEntries() {
		m.Total++
		if !e.Valid {
			m.Invalid++
		}
		if matchJob(e, q, status, kind) {
			m.Rows = append(m.Rows, jobRow(e))
		}
	}
	return s.page(c, "Jobs", "jobs", views.JobListPage(s.layout(c, "Jobs", "jobs"), m), views.JobTable(m))
}

// matchJob applies the jobs page's filters: q is a case-insensitive
// substring of the id, description or file.
func matchJob(e catalog.Entry, q, status, kind string) bool {
	switch {
	case status == "valid" && !e.Valid, status == "invalid" && e.Valid:
		return false
	case kind != "" && string(e.Kind) != kind:
		return false
	}
	if q == "" {
		return true
	}
	q = strings.ToLower(q)
	for _, s := range []string{e.ID, e.Description(), e.Source} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}
