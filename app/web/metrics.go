package web

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// serveMetrics serves /metrics. In dev mode anyone may read it (the server
// is reachable from this machine only); with sign-in configured the caller
// sends the metrics token or any API token as a bearer token (a signed-in
// user's session works too: the dashboard shows as much).
func (s *server) serveMetrics(c echo.Context) error {
	if !s.Auth.DevMode() && !s.metricsToken(c.Request()) && principal(c) == nil {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="kanade"`)
		return apiErr(http.StatusUnauthorized, "unauthorized",
			`send "Authorization: Bearer <token>" with the metrics token ([metrics] token) or an API token`, nil)
	}
	s.Metrics.Handler().ServeHTTP(c.Response(), c.Request())
	return nil
}

// metricsToken reports whether r carries the configured metrics token.
func (s *server) metricsToken(r *http.Request) bool {
	if s.MetricsToken == "" {
		return false
	}
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(secret)), []byte(s.MetricsToken)) == 1
}
