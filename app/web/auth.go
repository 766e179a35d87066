package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

const (
	principalKey = "principal"
	authErrKey   = "auth_error"
)

// authenticate identifies the caller (a bearer token, a session cookie, or
// dev mode's "dev") for every request; need() decides per route.
func (s *server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := s.Auth.Authenticate(c.Response(), c.Request())
		switch {
		case errors.Is(err, auth.ErrUnauthorized):
			c.Set(authErrKey, err)
		case err != nil:
			return err
		case p != nil:
			c.Set(principalKey, p)
		}
		return next(c)
	}
}

func principal(c echo.Context) *auth.Principal {
	p, _ := c.Get(principalKey).(*auth.Principal)
	return p
}

// actor is the caller as the audit log records it.
func actor(c echo.Context) string {
	if p := principal(c); p != nil {
		return p.Name
	}
	return ""
}

// actorSubject is the caller's stable identity (auth.Principal.Subject).
func actorSubject(c echo.Context) string {
	if p := principal(c); p != nil {
		return p.Subject
	}
	return ""
}

// need lets a route through only for callers with at least role min:
// without credentials an API call gets 401 and a page load goes to the
// sign-in; a role too low gets 403.
func (s *server) need(min auth.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p := principal(c)
			if p == nil {
				if err, _ := c.Get(authErrKey).(error); err != nil {
					return apiErr(http.StatusUnauthorized, "unauthorized", strings.TrimPrefix(err.Error(), auth.ErrUnauthorized.Error()+": "), nil)
				}
				r := c.Request()
				if !isAPI(c) && r.Method == http.MethodGet {
					next := r.URL.RequestURI()
					if isPartial(c) || r.Header.Get("Accept") == "text/event-stream" {
						// htmx and SSE: send the whole page to the sign-in.
						next = "/"
						if u, err := url.Parse(r.Header.Get("HX-Current-URL")); err == nil && u.Path != "" {
							next = u.RequestURI()
						}
						c.Response().Header().Set("HX-Redirect", "/auth/start?next="+url.QueryEscape(next))
						return apiErr(http.StatusUnauthorized, "unauthorized", "sign in first", nil)
					}
					return c.Redirect(http.StatusSeeOther, "/auth/start?next="+url.QueryEscape(next))
				}
				if isPartial(c) {
					c.Response().Header().Set("HX-Redirect", "/login")
				}
				return apiErr(http.StatusUnauthorized, "unauthorized", "sign in first, or send \"Authorization: Bearer <token>\"", nil)
			}
			if !p.Can(min) {
				return apiErr(http.StatusForbidden, "forbidden", fmt.Sprintf("this needs the %s role; %s has %s", min, p.Name, p.Role), nil)
			}
			return next(c)
		}
	}
}

// csrfExempt: CSRF protects ambient credentials. Bearer-token calls carry
// none, an anonymous request has none to abuse (need() answers 401), and
// API calls in dev mode without a session are curl's. Every call that a
// session cookie authenticates, API ones included, must send the token.
func csrfExempt(c echo.Context) bool {
	if c.Request().Header.Get("Authorization") != "" {
		return true
	}
	p := principal(c)
	return p == nil || (isAPI(c) && p.Kind != auth.KindUser)
}

// loginPage offers the sign-in button (after logout, and when a sign-in failed).
func (s *server) loginPage(c echo.Context) error {
	if s.Auth.DevMode() {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	if p := principal(c); p != nil {
		return c.Redirect(http.StatusSeeOther, auth.LocalPath(c.QueryParam("next")))
	}
	m := views.LoginModel{StartURL: "/auth/start?next=" + url.QueryEscape(auth.LocalPath(c.QueryParam("next"))), Issuer: s.OIDCIssuer}
	if c.QueryParam("signed_out") != "" {
		m.Notice = "You are signed out."
	}
	return render(c, http.StatusOK, views.LoginPage(s.layout(c, "Sign in", ""), m))
}

// loginStart sends the browser to the issuer.
func (s *server) loginStart(c echo.Context) error {
	u, err := s.Auth.BeginLogin(c.Response(), c.Request(), c.QueryParam("next"))
	if err != nil {
		s.Log.Error("sign-in: the identity provider is unreachable", "issuer", s.OIDCIssuer, "err", err)
		return s.renderLoginError(c, http.StatusBadGateway, "The identity provider could not be reached. Try again in a minute; if it persists, an admin should check oidc.issuer and the server log.")
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, u)
}

// loginCallback finishes the sign-in the issuer redirected back.
func (s *server) loginCallback(c echo.Context) error {
	ctx := c.Request().Context()
	id, next, err := s.Auth.FinishLogin(c.Response(), c.Request())
	c.Response().Header().Set("Cache-Control", "no-store")
	var le *auth.LoginError
	if errors.As(err, &le) {
		who := id.Name
		if who == "" {
			who = "anonymous"
		}
		detail := map[string]any{"reason": err.Error(), "ip": c.RealIP()}
		if id.Subject != "" {
			detail["subject"] = id.Subject
		}
		if len(id.Values) > 0 {
			detail["claim_values"] = id.Values
		}
		s.Log.Warn("sign-in refused", "user", who, "err", err)
		_ = s.Audit.Record(ctx, who, audit.LoginFailed, who, detail)
		if errors.Is(err, auth.ErrNoRole) {
			msg := fmt.Sprintf("You signed in as %s, but kanade has no role for you.", id.Name)
			if len(id.Values) > 0 {
				msg += fmt.Sprintf(" Your %s are: %s.", s.RolesClaim, strings.Join(id.Values, ", "))
			} else {
				msg += fmt.Sprintf(" The identity provider sent no %s claim.", s.RolesClaim)
			}
			msg += " Ask an admin to map one of them to a role in kanade.toml [oidc.roles]."
			return s.renderLoginError(c, http.StatusForbidden, msg)
		}
		return s.renderLoginError(c, http.StatusForbidden, "Sign-in failed: "+strings.TrimPrefix(err.Error(), auth.ErrLogin.Error()+": "))
	}
	if err != nil {
		return err
	}
	s.Log.Info("signed in", "user", id.Name, "role", id.Role)
	// Best effort (see package audit): refusing sign-in would lock out
	// the admins who must repair the broker.
	_ = s.Audit.Record(ctx, id.Name, audit.Login, id.Name, map[string]any{"role": id.Role.String(), "ip": c.RealIP(), "subject": id.Subject, "display": id.Display})
	return c.Redirect(http.StatusSeeOther, next)
}

func (s *server) renderLoginError(c echo.Context, status int, msg string) error {
	m := views.LoginModel{StartURL: "/auth/start", Issuer: s.OIDCIssuer, Error: msg}
	return render(c, status, views.LoginPage(s.layout(c, "Sign in", ""), m))
}

// logout ends the session and shows the sign-in page.
func (s *server) logout(c echo.Context) error {
	p := principal(c)
	if err := s.Auth.Logout(c.Response(), c.Request()); err != nil {
		return err
	}
	if p != nil && p.Kind == auth.KindUser {
		s.Log.Info("signed out", "user", p.Name)
		_ = s.Audit.Record(c.Request().Context(), p.Name, audit.Logout, p.Name, nil)
	}
	if s.Auth.DevMode() {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return c.Redirect(http.StatusSeeOther, "/login?signed_out=1")
}

// meJSON is GET /api/me: who the server thinks the caller is.
type meJSON struct {
	Name string    `json:"name"`
	Kind auth.Kind `json:"kind"`
	Role auth.Role `json:"role"`
}

func (s *server) apiMe(c echo.Context) error {
	p := principal(c)
	return c.JSON(http.StatusOK, meJSON{Name: p.Name, Kind: p.Kind, Role: p.Role})
}

// apiTokenJSON is an API token in the API (never its secret).
type apiTokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Usable     bool       `json:"usable"`
}

func (s *server) toAPITokenJSON(t store.APIToken) apiTokenJSON {
	return apiTokenJSON{ID: t.ID, Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy,
		ExpiresAt: timePtr(t.ExpiresAt), RevokedAt: timePtr(t.RevokedAt), RevokedBy: t.RevokedBy,
		LastUsedAt: timePtr(t.LastUsedAt), Usable: t.Usable(s.Now()) == ""}
}

func (s *server) apiAPITokens(c echo.Context) error {
	ts, err := s.Store.APITokens(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]apiTokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, s.toAPITokenJSON(t))
	}
	return c.JSON(http.StatusOK, map[string]any{"tokens": out, "total": len(out)})
}

// apiTokenRequestJSON is the body of POST /api/tokens.
type apiTokenRequestJSON struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	ExpiresIn string `json:"expires_in"` // duration; "" = never
}

// tokenRequest checks the fields of a new API token, whichever form they came in.
func tokenRequest(name, role, expiresIn, by string) (auth.NewTokenRequest, []problem.Problem) {
	req := auth.NewTokenRequest{Name: name, By: by}
	var problems []problem.Problem
	var err error
	if expiresIn = strings.TrimSpace(expiresIn); expiresIn != "" && expiresIn != "never" {
		if req.ExpiresIn, err = auth.ParseLifetime(expiresIn); err != nil {
			problems = append(problems, problem.Problem{Field: "expires_in", Message: err.Error()})
		}
	}
	req.Role, _ = auth.ParseRole(role)
	for _, fe := range auth.FieldErrors(req.Validate()) {
		problems = append(problems, problem.Problem{Field: fe.Field, Message: fe.Message})
	}
	return req, problems
}

func (s *server) apiCreateAPIToken(c echo.Context) error {
	var body apiTokenRequestJSON
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req, problems := tokenRequest(body.Name, body.Role, body.ExpiresIn, actor(c))
	if len(problems) > 0 {
		return &problem.Error{Problems: problems}
	}
	t, secret, err := s.createAPIToken(c, req)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, map[string]any{"token": s.toAPITokenJSON(t), "secret": secret})
}

func (s *server) createAPIToken(c echo.Context, req auth.NewTokenRequest) (store.APIToken, string, error) {
	t, secret, err := auth.CreateToken(c.Request().Context(), s.Store, req, s.Now())
	if err != nil {
		return t, "", err
	}
	// The id is the store's, so the event follows the creation; a token
	// whose event cannot be recorded is revoked at once.
	if err := s.Audit.Record(c.Request().Context(), actor(c), audit.APITokenCreate, t.ID, map[string]any{"name": t.Name, "role": t.Role, "expires_at": timePtr(t.ExpiresAt)}); err != nil {
		if _, rerr := s.Store.RevokeAPIToken(context.WithoutCancel(c.Request().Context()), t.ID, actor(c), s.Now(), false); rerr != nil {
			s.Log.Error("cannot revoke an api token whose creation was not audited", "id", t.ID, "err", rerr)
		}
		return store.APIToken{}, "", err
	}
	s.Log.Info("api token created", "name", t.Name, "role", t.Role, "by", actor(c))
	return t, secret, nil
}

func (s *server) revokeAPIToken(c echo.Context) (store.APIToken, error) {
	id := c.Param("id")
	if err := s.Audit.Record(c.Request().Context(), actor(c), audit.APITokenRevoke, id, nil); err != nil {
		return store.APIToken{}, err
	}
	t, err := s.Store.RevokeAPIToken(c.Request().Context(), id, actor(c), s.Now(), false)
	if err != nil {
		s.Audit.Failed(c.Request().Context(), actor(c), audit.APITokenRevoke, id, err)
		return t, err
	}
	s.Log.Info("api token revoked", "name", t.Name, "by", actor(c))
	return t, nil
}

func (s *server) apiRevokeAPIToken(c echo.Context) error {
	t, err := s.revokeAPIToken(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.toAPITokenJSON(t))
}

// settingsPage lists API tokens with the form to create one.
// A new API token lasts 90 days unless the form says otherwise.
func (s *server) settingsPage(c echo.Context) error {
	return s.renderSettings(c, http.StatusOK, views.SettingsModel{ExpiresIn: "90d"})
}

func (s *server) renderSettings(c echo.Context, status int, m views.SettingsModel) error {
	ts, err := s.Store.APITokens(c.Request().Context())
	if err != nil {
		return err
	}
	now := s.Now()
	for _, t := range ts {
		r := views.APITokenRow{ID: t.ID, Name: t.Name, Role: t.Role, Created: timeText(t.CreatedAt, now), CreatedBy: t.CreatedBy,
			Expires: timeText(t.ExpiresAt, now), LastUsed: timeText(t.LastUsedAt, now), State: "active"}
		if why := t.Usable(now); why != "" {
			r.State = strings.TrimPrefix(why, "the API token ")
		}
		if t.RevokedAt.IsZero() {
			r.RevokeURL = "/settings/tokens/" + url.PathEscape(t.ID) + "/revoke"
			r.RevokeConfirm = fmt.Sprintf("Revoke API token %s (%s)? Scripts that use it are refused from their next request; it cannot be used again.", t.Name, t.Role)
		}
		m.Tokens = append(m.Tokens, r)
	}
	for _, r := range auth.Roles() {
		m.Roles = append(m.Roles, r.String())
	}
	return render(c, status, views.SettingsPage(s.layout(c, "Settings", "settings"), m))
}

func (s *server) formCreateAPIToken(c echo.Context) error {
	m := views.SettingsModel{Name: c.FormValue("name"), Role: c.FormValue("role"), ExpiresIn: c.FormValue("expires_in"), Errors: views.FieldErrors{}}
	req, problems := tokenRequest(m.Name, m.Role, m.ExpiresIn, actor(c))
	if len(problems) > 0 {
		for _, p := range problems {
			if m.Errors[p.Field] == "" {
				m.Errors[p.Field] = tokenWords(p)
			}
		}
		return s.renderSettings(c, http.StatusUnprocessableEntity, m)
	}
	t, secret, err := s.createAPIToken(c, req)
	if err != nil {
		status := s.formProblems(c, err, m.Errors, func(f string) string { return f }, tokenWords)
		return s.renderSettings(c, status, m)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusCreated, views.APITokenCreatedPage(s.layout(c, "New API token", "settings"),
		views.APITokenCreatedModel{Name: t.Name, Role: t.Role, Secret: secret}))
}

// tokenWords says a problem of the API token form for people.
func tokenWords(p problem.Problem) string {
	switch {
	case p.Field == "name" && strings.Contains(p.Message, "empty"):
		return "Enter a name, such as nightly-inventory."
	case p.Field == "role":
		return "Choose viewer, operator, approver or admin."
	case p.Field == "expires_in":
		return sentence(p.Message) + " Leave it empty for a token that never expires."
	case p.Field == "name":
		return "The name " + strings.TrimSuffix(p.Message, ".") + "."
	}
	return sentence(p.Message)
}

func (s *server) formRevokeAPIToken(c echo.Context) error {
	if _, err := s.revokeAPIToken(c); err != nil {
		status, msg := s.errorText(c, err)
		return s.renderSettings(c, status, views.SettingsModel{ExpiresIn: "90d", Errors: views.FieldErrors{"row": msg}})
	}
	return c.Redirect(http.StatusSeeOther, "/settings")
}
