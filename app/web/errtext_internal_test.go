package web

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/store"
)

// What is missing is named in words, without the store's wording.
func TestNotFoundMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("store: agent nope: %w", store.ErrNotFound), "No agent named nope."},
		{fmt.Errorf("store: agent key pc-9: %w", store.ErrNotFound), "No agent named pc-9 has enrolled."},
		{fmt.Errorf("store: execution 01abc: %w", store.ErrNotFound), "No execution 01abc."},
		{fmt.Errorf("resolve: store: schedule nightly: %w", store.ErrNotFound), "No schedule named nightly."},
		{fmt.Errorf("store: result e1/pc-2: %w", store.ErrNotFound), "No result from pc-2 in execution e1."},
		{fmt.Errorf("store: inventory of pc-3: %w", store.ErrNotFound), "No inventory from pc-3 yet."},
		{fmt.Errorf("store: api token: %w", store.ErrNotFound), "No such API token."},
		{fmt.Errorf("store: enrollment token t1: %w", store.ErrNotFound), "No such enrollment token t1."},
		{fmt.Errorf("somewhere: %w", store.ErrNotFound), "Not found."},
	}
	for _, tt := range tests {
		if got := notFoundMessage(tt.err); got != tt.want {
			t.Errorf("notFoundMessage(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// A 404 names what is missing in the API and on pages; an htmx request
// gets a fragment, never the layout.
func TestHandleError_NotFoundAndPartials(t *testing.T) {
	err := fmt.Errorf("store: agent nope: %w", store.ErrNotFound)
	s := &server{Deps: Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	tests := []struct {
		name, path string
		htmx       bool
		want       []string
		wantNot    []string
	}{
		{"api", "/api/agents/nope", false, []string{`"message":"No agent named nope."`, `"code":"not_found"`}, []string{"store:"}},
		{"page", "/agents/nope", false, []string{"<html", "No agent named nope."}, []string{"store:"}},
		{"htmx", "/agents/nope/ping", true, []string{`data-toast`, "No agent named nope."}, []string{"<html", "store:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.htmx {
				req.Header.Set("HX-Request", "true")
			}
			rec := httptest.NewRecorder()
			s.handleError(err, echo.New().NewContext(req, rec))
			body := rec.Body.String()
			if rec.Code != http.StatusNotFound {
				t.Errorf("status %d, want 404", rec.Code)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("answer lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(body, w) {
					t.Errorf("answer has %q:\n%s", w, body)
				}
			}
			if tt.htmx && rec.Header().Get("HX-Reswap") != "none" {
				t.Errorf("HX-Reswap = %q, want none", rec.Header().Get("HX-Reswap"))
			}
		})
	}
}

// The API message of a validation error names its problems.
func TestHandleError_ValidationMessage(t *testing.T) {
	s := &server{Deps: Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	ps := []problem.Problem{{Field: "target.pcs", Message: "unknown PC: PC-TYPO-99"}, {Field: "script", Message: "is empty"},
		{Field: "execute.timeout", Line: 7, Message: "is negative"}, {Field: "shell", Message: "x"}}
	rec := httptest.NewRecorder()
	s.handleError(&problem.Error{Problems: ps}, echo.New().NewContext(httptest.NewRequest(http.MethodPost, "/api/run", nil), rec))
	var body apiError
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	want := "target.pcs: unknown PC: PC-TYPO-99; script: is empty; line 7: execute.timeout: is negative; and 1 more"
	if rec.Code != http.StatusBadRequest || body.Error.Message != want {
		t.Errorf("%d %q, want 400 %q", rec.Code, body.Error.Message, want)
	}
}

// A form post sent by htmx goes on with HX-Redirect; a plain one with 303.
func TestSeeOther(t *testing.T) {
	for _, htmx := range []bool{false, true} {
		req := httptest.NewRequest(http.MethodPost, "/jobs/tick/revoke", nil)
		if htmx {
			req.Header.Set("HX-Request", "true")
		}
		rec := httptest.NewRecorder()
		if err := seeOther(echo.New().NewContext(req, rec), "/jobs/tick"); err != nil {
			t.Fatal(err)
		}
		switch {
		case htmx && (rec.Code != http.StatusNoContent || rec.Header().Get("HX-Redirect") != "/jobs/tick" || rec.Header().Get("Location") != ""):
			t.Errorf("htmx: %d HX-Redirect %q Location %q", rec.Code, rec.Header().Get("HX-Redirect"), rec.Header().Get("Location"))
		case !htmx && (rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/jobs/tick"):
			t.Errorf("plain: %d Location %q", rec.Code, rec.Header().Get("Location"))
		}
	}
}

// The Run form's words for dispatch problems.
func TestRunWords(t *testing.T) {
	tests := []struct {
		p    problem.Problem
		want string
	}{
		{problem.Problem{Field: "target.pcs", Message: "unknown PC: PC-TYPO-99"}, "Unknown PC: PC-TYPO-99. No agent has ever had this name; check the spelling."},
		{problem.Problem{Field: "target.pcs", Message: "unknown PCs: a, b"}, "Unknown PCs: a, b. No agent has ever had these names; check the spelling."},
		{problem.Problem{Field: "target", Message: "choose at least one: all, groups or pcs"}, "Choose these PCs, groups or all agents."},
		{problem.Problem{Field: "script", Message: "is empty"}, "Write the script to run."},
		{problem.Problem{Field: "timeout", Message: "must be between 1s and 1h0m0s"}, "The timeout must be between 1s and 1h0m0s."},
		{problem.Problem{Field: "deadline", Message: "must be between 1s and 720h"}, "Deadline must be between 1s and 720h."},
	}
	for _, tt := range tests {
		if got := runWords(tt.p); got != tt.want {
			t.Errorf("runWords(%+v) = %q, want %q", tt.p, got, tt.want)
		}
	}
}
