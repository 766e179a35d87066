package web

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/jobs"
)

// jobSummaryJSON is one entry of GET /api/jobs.
type jobSummaryJSON struct {
	ID          string         `json:"id"`
	Version     string         `json:"version"`
	Description string         `json:"description"`
	Source      string         `json:"source"`
	Kind        jobs.Kind      `json:"kind"`
	Valid       bool           `json:"valid"`
	Errors      []jobs.Problem `json:"errors"`
}

func errorsOf(e catalog.Entry) []jobs.Problem {
	if e.Problems == nil {
		return []jobs.Problem{}
	}
	return e.Problems
}

func (s *server) apiJobs(c echo.Context) error {
	entries := s.jobEntries()
	out := make([]jobSummaryJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, jobSummaryJSON{ID: e.ID, Version: e.Version(), Description: e.Description(), Source: e.Source,
			Kind: e.Kind, Valid: e.Valid, Errors: errorsOf(e)})
	}
	return c.JSON(http.StatusOK, map[string]any{"jobs": out, "total": len(out)})
}

// apiJob answers the manifest (or schedule) as JSON, plus the file's
// facts, its problems and its text. An invalid file answers too, with
// what could be read.
func (s *server) apiJob(c echo.Context) error {
	e, err := s.jobParam(c)
	if err != nil {
		return err
	}
	body := map[string]any{}
	var v any
	switch {
	case e.Manifest != nil:
		v = e.Manifest
	case e.Schedule != nil:
		v = e.Schedule
	}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return err
		}
	}
	body["id"] = e.ID
	body["kind"] = e.Kind
	body["source"] = e.Source
	body["valid"] = e.Valid
	body["errors"] = errorsOf(e)
	body["yaml"] = e.YAML
	body["modified_at"] = e.ModTime.UTC().Format(time.RFC3339)
	return c.JSON(http.StatusOK, body)
}

func (s *server) apiManifestSchema(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/schema+json", jobs.Schema())
}
