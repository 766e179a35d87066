package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/enroll"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// enrollmentJSON is an agent key in the API.
type enrollmentJSON struct {
	PCID         string     `json:"pc_id"`
	PublicKey    string     `json:"public_key"`
	Status       string     `json:"status"`
	Hostname     string     `json:"hostname"`
	OS           string     `json:"os"`
	Arch         string     `json:"arch"`
	Groups       []string   `json:"groups"`
	TokenID      string     `json:"token_id"`
	RequestedAt  time.Time  `json:"requested_at"`
	DecidedAt    *time.Time `json:"decided_at,omitempty"`
	DecidedBy    string     `json:"decided_by,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	JWTExpiresAt *time.Time `json:"credential_expires_at,omitempty"`
}

func toEnrollmentJSON(k store.AgentKey) enrollmentJSON {
	groups := k.Groups
	if groups == nil {
		groups = []string{}
	}
	return enrollmentJSON{PCID: k.PCID, PublicKey: k.PublicKey, Status: k.Status, Hostname: k.Hostname, OS: k.OS, Arch: k.Arch,
		Groups: groups, TokenID: k.TokenID, RequestedAt: k.RequestedAt, DecidedAt: timePtr(k.DecidedAt), DecidedBy: k.DecidedBy,
		Reason: k.Reason, JWTExpiresAt: timePtr(k.JWTExpiresAt)}
}

func (s *server) enroller() (*enroll.Service, error) {
	if s.Enroller == nil {
		return nil, apiErr(http.StatusNotImplemented, "not_available", "agent enrollment needs the embedded NATS broker", nil)
	}
	return s.Enroller, nil
}

// enrollStatus reads ?status= (default pending; "all" for every status).
func enrollStatus(c echo.Context) (string, error) {
	v, err := oneOf(c, "status", store.KeyPending, store.KeyApproved, store.KeyRejected, store.KeyRevoked, "all")
	if err != nil {
		return "", err
	}
	switch v {
	case "":
		return store.KeyPending, nil
	case "all":
		return "", nil
	}
	return v, nil
}

func (s *server) apiEnrollments(c echo.Context) error {
	status, err := enrollStatus(c)
	if err != nil {
		return err
	}
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	keys, total, err := s.Store.AgentKeys(c.Request().Context(), status, limit, offset)
	if err != nil {
		return err
	}
	out := make([]enrollmentJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, toEnrollmentJSON(k))
	}
	return c.JSON(http.StatusOK, map[string]any{"enrollments": out, "total": total})
}

// decide runs approve, reject or revoke for a pc.
func (s *server) decide(c echo.Context, action string) (string, error) {
	e, err := s.enroller()
	if err != nil {
		return "", err
	}
	pc, err := idParam(c, "pc", "agent")
	if err != nil {
		return "", err
	}
	ctx := c.Request().Context()
	switch action {
	case "approve":
		err = e.Approve(ctx, pc, actor(c))
	case "reject":
		err = e.Reject(ctx, pc, actor(c))
	case "revoke":
		err = e.Revoke(ctx, pc, actor(c))
	}
	if errors.Is(err, enroll.ErrState) {
		return "", fmt.Errorf("%w: %s", dispatch.ErrConflict, err.Error())
	}
	return pc, err
}

func (s *server) apiDecide(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		pc, err := s.decide(c, action)
		if err != nil {
			return err
		}
		k, err := s.Store.AgentKey(c.Request().Context(), pc)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toEnrollmentJSON(k))
	}
}

// formDecide answers the GUI's Approve / Reject / Revoke buttons: back to
// the page the button was on.
func (s *server) formDecide(action, back string) echo.HandlerFunc {
	return func(c echo.Context) error {
		pc, err := s.decide(c, action)
		if err != nil {
			return err
		}
		to := back
		if to == "" {
			to = "/agents/" + url.PathEscape(pc)
		}
		if isPartial(c) {
			c.Response().Header().Set("HX-Redirect", to)
			return c.NoContent(http.StatusNoContent)
		}
		return c.Redirect(http.StatusSeeOther, to)
	}
}

func (s *server) enrollmentsPage(c echo.Context) error {
	status, err := enrollStatus(c)
	if err != nil {
		return err
	}
	_, offset, err := paging(c)
	if err != nil {
		return err
	}
	ctx, now := c.Request().Context(), s.Now()
	keys, total, err := s.Store.AgentKeys(ctx, status, 100, offset)
	if err != nil {
		return err
	}
	_, pending, err := s.Store.AgentKeys(ctx, store.KeyPending, 1, 0)
	if err != nil {
		return err
	}
	m := views.EnrollmentsModel{Status: status, Pending: pending, CSRFToken: csrfToken(c)}
	for _, k := range keys {
		r := views.EnrollmentRow{PCID: k.PCID, Hostname: k.Hostname, OS: k.OS, Arch: k.Arch, PublicKey: k.PublicKey, Status: k.Status,
			TokenID: k.TokenID, DecidedBy: k.DecidedBy, Reason: k.Reason, Groups: k.Groups, Requested: timeText(k.RequestedAt, now)}
		base := "/enrollments/" + url.PathEscape(k.PCID)
		if k.Status == store.KeyPending || k.Status == store.KeyRejected {
			r.ApproveURL = base + "/approve"
		}
		if k.Status == store.KeyPending {
			r.RejectURL = base + "/reject"
		}
		m.Rows = append(m.Rows, r)
	}
	m.Pager = pager(*c.Request().URL, total, offset, 100, len(keys))
	return render(c, http.StatusOK, views.EnrollmentsPage(s.layout(c, "Pending agents", "agents"), m))
}

// agentIdentity is the identity panel of an agent page.
func (s *server) agentIdentity(c echo.Context, pc string) (*views.AgentIdentity, error) {
	k, err := s.Store.AgentKey(c.Request().Context(), pc)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	id := &views.AgentIdentity{Status: k.Status, PublicKey: k.PublicKey, Expires: timeText(k.JWTExpiresAt, s.Now()),
		DecidedBy: k.DecidedBy, Reason: k.Reason, CSRFToken: csrfToken(c), PendingURL: "/enrollments"}
	if s.Enroller != nil && k.Status != store.KeyRevoked {
		id.RevokeURL = "/agents/" + url.PathEscape(pc) + "/revoke"
		id.RevokeAsk = fmt.Sprintf("Revoke %s? It is disconnected now and its key can never connect or enroll again.", pc)
	}
	return id, nil
}

// apiCommandKeys lists the keys agents trust for signed commands (newest last).
func (s *server) apiCommandKeys(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"keys": s.commandKeysJSON()})
}

func (s *server) commandKeysJSON() []map[string]string {
	out := []map[string]string{}
	for _, k := range s.Keys.Trusted() {
		out = append(out, map[string]string{"kid": k.Kid, "public_key": base64.StdEncoding.EncodeToString(k.Key)})
	}
	return out
}

// apiRotateCommandKeys makes a new signing key and announces it to the
// fleet, signed by the previous key; agents that miss the announcement
// fetch the keys when they next see an unknown key id.
func (s *server) apiRotateCommandKeys(c echo.Context) error {
	msg, err := s.Keys.RotateMsg(s.Now())
	if err != nil {
		return err
	}
	if err := s.NC.PublishMsg(msg); err != nil {
		return fmt.Errorf("announce new command key: %w", err)
	}
	s.Log.Info("command signing key rotated", "by", actor(c))
	return c.JSON(http.StatusOK, map[string]any{"keys": s.commandKeysJSON()})
}
