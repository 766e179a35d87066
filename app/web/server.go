// Package web is kanade's HTTP face: the server-rendered GUI (templ +
// htmx, live parts over SSE) and the JSON API of docs/API.md. Every route is
// in routes.go; each handler parses, calls, then renders.
package web

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/app/agentinstall"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/backup"
	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/app/commandkeys"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/enroll"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/fleet"
	"github.com/kanadehq/kanade/app/health"
	"github.com/kanadehq/kanade/app/metrics"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/release"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/app/schedule"
	"github.com/kanadehq/kanade/store"
)

// Deps are what the handlers need.
type Deps struct {
	Store      *store.Store
	Dispatcher *dispatch.Dispatcher
	// Enroller approves, rejects and revokes agent identities (nil with an external broker).
	Enroller *enroll.Service
	// Audit records the actions handled here directly.
	Audit *audit.Recorder
	// CommandKeys lists and rotates the keys agents trust (nil: none).
	CommandKeys *commandkeys.Service
	// Fleet pings agents and asks them for their inventory (nil: neither).
	Fleet  *fleet.Service
	Events *events.Broker
	JS     jetstream.JetStream
	// Catalog is the jobs directory (nil: no jobs).
	Catalog *catalog.Catalog
	// NATSHealthy reports the broker connection's health for /healthz.
	NATSHealthy func(ctx context.Context) error
	Log         *slog.Logger
	Version     string
	// DevMode: no sign-in, every request acts as the admin "dev".
	DevMode bool
	// Auth identifies callers (nil: a dev-mode service is made, DevMode must be set).
	Auth *auth.Service
	// Rollouts approves, halts and resumes waves (nil: no rollouts).
	Rollouts *rollout.Engine
	// Schedules lists and changes the schedules (nil: no scheduler runs).
	Schedules *schedule.Service
	// FourEyes is the rollout default shown on job pages.
	FourEyes bool
	// OIDCIssuer and RolesClaim are shown on the sign-in page.
	OIDCIssuer, RolesClaim string
	// LocalPC is this host's pc_id, offered as "this PC" on the Run page.
	LocalPC string
	// OutputCap is shown when output was truncated.
	OutputCap int
	// SSEMaxLifetime ends live streams after this long (browsers reconnect).
	SSEMaxLifetime time.Duration
	// Now is the clock (tests may replace it).
	Now func() time.Time
	// Metrics is served at /metrics and times requests (nil: a fresh one
	// with only the HTTP, SSE and runtime metrics).
	Metrics *metrics.Metrics
	// MetricsToken is a bearer token that opens /metrics outside dev mode
	// ("" = none; API tokens open it too).
	MetricsToken string
	// LiveJS follows live output for viewers: a connection of its own, so
	// that viewers who read slowly can never make the broker drop the
	// server's main connection as a slow consumer (nil: JS).
	LiveJS jetstream.JetStream
	// SSEPerCaller is how many live streams one caller may hold open
	// (0: DefaultSSEPerCaller).
	SSEPerCaller int
	// AgentBinaries are served at /download/agent and offered on
	// Settings › Add agents (nil: none).
	AgentBinaries *agentinstall.Binaries
	// AgentURL is the broker URL install commands give agents ([nats]
	// agent_url; "" derives it from BrokerURL).
	AgentURL string
	// BrokerURL is the embedded broker's client URL as bound
	// (nats://host:port or tls://host:port; "" with an external broker).
	BrokerURL string
	// Health answers /healthz, feeds the disk banner and the System page
	// (nil: /healthz pings NATSHealthy and the database, and there is no
	// System page).
	Health *health.Monitor
	// LastBackup reads the record of the newest backup (Settings ›
	// Backups; nil: none is shown).
	LastBackup func() (backup.Record, bool, error)
	// DBDriver is the database the server runs on ("sqlite", "postgres").
	DBDriver string
	// Releases keeps the agent releases and rolls them out (nil: none).
	Releases *release.Service
}

type server struct {
	Deps
	sse *sseLimiter
}

// New returns the HTTP handler.
func New(d Deps) *echo.Echo {
	if d.Now == nil {
		d.Now = func() time.Time { return time.Now().UTC() }
	}
	if d.SSEMaxLifetime == 0 {
		d.SSEMaxLifetime = 30 * time.Minute
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	if d.LiveJS == nil {
		d.LiveJS = d.JS
	}
	if d.SSEPerCaller <= 0 {
		d.SSEPerCaller = DefaultSSEPerCaller
	}
	if d.Auth == nil {
		if !d.DevMode {
			panic("web: Deps.Auth is required outside dev mode")
		}
		keys := make([]byte, auth.KeySize)
		_, _ = rand.Read(keys)
		a, err := auth.New(d.Store, auth.Config{Lifetime: time.Hour, IdleTimeout: time.Hour, Keys: keys, Now: d.Now, Log: d.Log})
		if err != nil {
			panic(err)
		}
		d.Auth = a
	}
	s := &server{Deps: d, sse: &sseLimiter{max: d.SSEPerCaller, open: map[string]int{}}}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		s.Log.Error("panic in handler", "path", c.Path(), "err", err, "stack", string(stack))
		return err
	}}))
	e.Use(s.Metrics.Middleware) // outside accessLog, which turns errors into responses
	// The dev-mode guard runs before anything reads the request; the body
	// limit before the CSRF check reads the form.
	e.Use(s.accessLog, securityHeaders, s.loopbackOnly, limitFormBody, s.authenticate, s.csrf)
	s.routes(e)
	return e
}

func isAPI(c echo.Context) bool { return strings.HasPrefix(c.Request().URL.Path, "/api/") }

func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// A browser never sends a cross-site request that changes state.
		r := c.Request()
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			return echo.NewHTTPError(http.StatusForbidden, "cross-site requests are refused")
		}
		return next(c)
	}
}

func (s *server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		lvl := slog.LevelDebug
		switch {
		case status == http.StatusServiceUnavailable: // busy, shutting down: handleError said why
			lvl = slog.LevelWarn
		case status >= 500:
			lvl = slog.LevelError
		}
		s.Log.Log(c.Request().Context(), lvl, "http", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", status, "dur", time.Since(start).Round(time.Microsecond), "actor", actor(c))
		return nil
	}
}

// apiError is the error body of docs/API.md.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// handleError maps errors to statuses in one place: JSON for the API, an
// error page for the GUI (a fragment for htmx).
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, code, msg, details := s.classify(c, err)
	s.logFailure(c, status, code, err)
	if p := c.Request().URL.Path; isAPI(c) || isDownload(c) || p == "/healthz" || p == metrics.MetricsPath {
		_ = c.JSON(status, apiError{Error: apiErrorBody{Code: code, Message: msg, Details: details}})
		return
	}
	_ = s.renderError(c, status, msg)
}

// classify maps an error to its status, code, message and details (and
// sets Retry-After where trying again helps). Messages name what went
// wrong in words, never the store's internals.
func (s *server) classify(c echo.Context, err error) (status int, code, msg string, details any) {
	status, code, msg = http.StatusInternalServerError, "internal", "something went wrong; the server log has the details"
	var he *echo.HTTPError
	var ve *problem.Error
	switch {
	case errors.As(err, &ve):
		status, code, msg, details = http.StatusBadRequest, "validation_failed", problemsMessage(ve.Problems), ve.Problems
	case errors.Is(err, enroll.ErrInvalid):
		status, code, msg = http.StatusBadRequest, "validation_failed", err.Error()
	case errors.Is(err, store.ErrNotFound):
		status, code, msg = http.StatusNotFound, "not_found", notFoundMessage(err)
	case errors.Is(err, rollout.ErrFourEyes):
		status, code, msg = http.StatusForbidden, "four_eyes", err.Error()
	case errors.Is(err, rollout.ErrState), errors.Is(err, enroll.ErrState):
		status, code, msg = http.StatusConflict, "conflict", err.Error()
	case errors.Is(err, dispatch.ErrLocked):
		status, code, msg = http.StatusLocked, "emergency_stop", err.Error()
	case store.IsBusy(err):
		// Nothing was written: the client may simply send it again.
		status, code, msg = http.StatusServiceUnavailable, "busy", "the database is busy; try again in a moment"
		c.Response().Header().Set("Retry-After", "1")
	case errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil:
		// The request's context ended: the server shuts down (or the
		// client left, and hears nothing either way).
		status, code, msg = http.StatusServiceUnavailable, "unavailable", "the server is shutting down; try again in a moment"
		c.Response().Header().Set("Retry-After", "5")
		return status, code, msg, details
	case errors.Is(err, audit.ErrUnavailable):
		status, code, msg = http.StatusServiceUnavailable, "audit_unavailable", audit.ErrUnavailable.Error()+"; try again once the broker stores audit events again (the server log has the cause)"
	case errors.Is(err, dispatch.ErrConflict):
		status, code, msg = http.StatusConflict, "conflict", strings.TrimPrefix(err.Error(), dispatch.ErrConflict.Error()+": ")
	case errors.As(err, &he):
		status = he.Code
		code = strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(status)
		}
		if ce, ok := he.Internal.(*codedError); ok {
			code, details = ce.code, ce.details
		}
	}
	if status == http.StatusInternalServerError {
		status, code, msg = s.unavailable(c, status, code, msg)
	}
	return status, code, msg, details
}

// logFailure logs a request that failed on the server's side.
func (s *server) logFailure(c echo.Context, status int, code string, err error) {
	shutdown := code == "unavailable" && errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil
	switch {
	case shutdown:
		s.Log.Info("request ended by shutdown", "method", c.Request().Method, "path", c.Request().URL.Path)
	case code == "busy":
		s.Log.Warn("request refused: database busy", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	case code == "unavailable":
		s.Log.Warn("request refused: the server cannot store", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	case status >= 500:
		s.Log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
}

// codedError carries a stable error code and details through echo.HTTPError.
type codedError struct {
	code    string
	details any
}

func (e *codedError) Error() string { return e.code }

func apiErr(status int, code, msg string, details any) error {
	return echo.NewHTTPError(status, msg).SetInternal(&codedError{code: code, details: details})
}
