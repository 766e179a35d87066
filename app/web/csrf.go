package web

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/auth"
)

const (
	csrfKey = "csrf"
	// csrfCookie holds a random value per browser that a dev-mode CSRF
	// token is bound to (a signed-in user's is bound to the session).
	csrfCookie = "kanade_csrf"
	// csrfHeader and csrfField carry the token: htmx sends the header
	// (hx-headers on <body>), plain forms the field.
	csrfHeader = "X-CSRF-Token"
	csrfField  = "_csrf"
)

// csrf hands the pages their CSRF token and refuses a state-changing
// request that ambient credentials authenticate (a session cookie, dev
// mode) unless it carries that token. The token is an HMAC of the
// session (or, in dev mode, of the browser's csrfCookie) under a server
// key: a token taken from one session fails in another, and a cookie
// planted by a neighbouring site yields no token its author knows.
func (s *server) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		binding := s.csrfBinding(c)
		if binding != "" {
			c.Set(csrfKey, s.Auth.CSRFToken(binding))
		}
		r := c.Request()
		if csrfExempt(c) || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
			return next(c)
		}
		sent := r.Header.Get(csrfHeader)
		if sent == "" {
			sent = c.FormValue(csrfField)
		}
		if binding == "" || !s.Auth.CheckCSRF(binding, sent) {
			return echo.NewHTTPError(http.StatusForbidden, "the form expired or came from another site; reload the page and try again")
		}
		return next(c)
	}
}

// csrfBinding returns what the caller's CSRF token is bound to: the
// session of a signed-in user, else the browser's csrfCookie (set now
// when missing); "" for callers that need no token.
func (s *server) csrfBinding(c echo.Context) string {
	if csrfExempt(c) {
		return ""
	}
	if p := principal(c); p.Kind == auth.KindUser {
		return "session:" + p.ID
	}
	r := c.Request()
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) >= 32 {
		return "browser:" + ck.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	// Only the form that reads it from a page this request renders may
	// use the new value; a state-changing request without the cookie
	// fails the check.
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		c.SetCookie(&http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: s.Auth.Secure(r)})
	}
	return "browser:" + v
}

func csrfToken(c echo.Context) string {
	t, _ := c.Get(csrfKey).(string)
	return t
}
