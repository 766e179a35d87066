package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/store"
)

// A busy database and a request ended by the server's shutdown answer 503
// with Retry-After, and neither is logged as an error; anything else
// unknown stays a logged 500.
func TestHandleError_Unavailable(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		cancel     bool
		status     int
		code       string
		retryAfter string
		logged     string // the level of the log line
	}{
		{"busy", fmt.Errorf("store: create execution: %w", store.ErrBusy), false, 503, "busy", "1", "WARN"},
		{"shutdown", fmt.Errorf("store: execution: %w", context.Canceled), true, 503, "unavailable", "5", "INFO"},
		{"cancelled but the request lives on", context.Canceled, false, 500, "internal", "", "ERROR"},
		{"other", errors.New("disk on fire"), false, 500, "internal", "", "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := &server{Deps: Deps{Log: slog.New(slog.NewTextHandler(&logs, nil))}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/executions/e1/wait", nil)
			if tt.cancel {
				cancel()
			}
			rec := httptest.NewRecorder()
			s.handleError(tt.err, echo.New().NewContext(req, rec))
			var body apiError
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tt.status || body.Error.Code != tt.code || rec.Header().Get("Retry-After") != tt.retryAfter {
				t.Errorf("answer %d %q Retry-After %q, want %d %q %q", rec.Code, body.Error.Code, rec.Header().Get("Retry-After"), tt.status, tt.code, tt.retryAfter)
			}
			if !strings.Contains(logs.String(), "level="+tt.logged) || (tt.logged != "ERROR" && strings.Contains(logs.String(), "level=ERROR")) {
				t.Errorf("log = %q, want one line at %s", logs.String(), tt.logged)
			}
		})
	}
}
