package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/commandkeys"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/enroll"
	"github.com/kanadehq/kanade/app/problem"
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
	// Reenrollment is a request of this known PC to be bound to a new key.
	Reenrollment *reenrollmentJSON `json:"reenrollment,omitempty"`
}

type reenrollmentJSON struct {
	PublicKey   string    `json:"public_key"`
	Hostname    string    `json:"hostname"`
	OS          string    `json:"os"`
	Arch        string    `json:"arch"`
	TokenID     string    `json:"token_id"`
	RequestedAt time.Time `json:"requested_at"`
}

func toEnrollmentJSON(k store.AgentKey) enrollmentJSON {
	groups := k.Groups
	if groups == nil {
		groups = []string{}
	}
	return enrollmentJSON{PCID: k.PCID, PublicKey: k.PublicKey, Status: k.Status, Hostname: k.Hostname, OS: k.OS, Arch: k.Arch,
		Groups: groups, TokenID: k.TokenID, RequestedAt: k.RequestedAt, DecidedAt: timePtr(k.DecidedAt), DecidedBy: k.DecidedBy,
		Reason: k.Reason, JWTExpiresAt: timePtr(k.JWTExpiresAt), Reenrollment: toReenrollmentJSON(k.Reenroll)}
}

func toReenrollmentJSON(r *store.Reenrollment) *reenrollmentJSON {
	if r == nil {
		return nil
	}
	return &reenrollmentJSON{PublicKey: r.PublicKey, Hostname: r.Hostname, OS: r.OS, Arch: r.Arch, TokenID: r.TokenID, RequestedAt: r.RequestedAt}
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
		if err != nil && back == "/enrollments" && !isPartial(c) {
			// Approve and Reject: the page again, saying why not.
			status, msg := s.errorText(c, err)
			return s.renderEnrollments(c, status, views.TokenForm{MaxUses: "0"}, views.FieldErrors{"row": capitalize(action) + " " + c.Param("pc") + ": " + msg})
		}
		if err != nil {
			return err
		}
		to := back
		if to == "" {
			to = "/agents/" + url.PathEscape(pc)
		}
		return seeOther(c, to)
	}
}

func (s *server) enrollmentsPage(c echo.Context) error {
	return s.renderEnrollments(c, http.StatusOK, views.TokenForm{MaxUses: "0"}, nil)
}

// renderEnrollments shows the Pending agents page with the New token form
// as given and errs (the form's problems, or "row": a button's).
func (s *server) renderEnrollments(c echo.Context, code int, form views.TokenForm, errs views.FieldErrors) error {
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
			r.RejectConfirm = fmt.Sprintf("Reject %s (%s)? It gets no identity and receives no commands; it stays listed under All, where it can still be approved.", k.PCID, k.Hostname)
		}
		if re := k.Reenroll; re != nil {
			r.BoundKey, r.PublicKey, r.Hostname, r.OS, r.Arch, r.TokenID = k.PublicKey, re.PublicKey, re.Hostname, re.OS, re.Arch, re.TokenID
			r.Status, r.Requested, r.ApproveURL, r.RejectURL = store.KeyPending, timeText(re.RequestedAt, now), base+"/approve", base+"/reject"
			r.RejectConfirm = fmt.Sprintf("Reject the new key of %s (%s)? That key is refused for good; the PC keeps working with the key it has.", k.PCID, re.Hostname)
		}
		m.Rows = append(m.Rows, r)
	}
	m.Pager = pager(*c.Request().URL, total, offset, 100, len(keys))
	if m.Tokens, err = s.tokenRows(c); err != nil {
		return err
	}
	m.TokenForm, m.Errors = form, errs
	return render(c, code, views.EnrollmentsPage(s.layout(c, "Pending agents", "agents"), m))
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
		DecidedBy: k.DecidedBy, Reason: k.Reason, CSRFToken: csrfToken(c)}
	if !principal(c).Can(auth.Admin) {
		return id, nil // only admins change identities
	}
	if s.Enroller != nil && k.Status == store.KeyApproved {
		id.GroupsURL, id.Groups = "/agents/"+url.PathEscape(pc)+"/groups", strings.Join(k.Groups, ", ")
		if msg, _ := c.Get(groupsErrorKey).(string); msg != "" {
			id.Groups, id.GroupsError = c.FormValue("groups"), msg // what was typed, and why it was not saved
		}
	}
	if s.Enroller != nil && k.Status != store.KeyRevoked {
		id.RevokeURL = "/agents/" + url.PathEscape(pc) + "/revoke"
		id.RevokeAsk = fmt.Sprintf("Revoke %s? It is disconnected now and its key can never connect or enroll again.", pc)
	}
	return id, nil
}

// commandKeysService is the service of the command keys (501 without).
func (s *server) commandKeysService() (*commandkeys.Service, error) {
	if s.CommandKeys == nil {
		return nil, apiErr(http.StatusNotImplemented, "not_available", "this server signs no commands", nil)
	}
	return s.CommandKeys, nil
}

// apiCommandKeys lists the keys agents trust for signed commands (newest last).
func (s *server) apiCommandKeys(c echo.Context) error {
	k, err := s.commandKeysService()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": commandKeysJSON(k.Trusted())})
}

func commandKeysJSON(keys []wire.CommandKey) []map[string]string {
	out := []map[string]string{}
	for _, k := range keys {
		out = append(out, map[string]string{"kid": k.Kid, "public_key": base64.StdEncoding.EncodeToString(k.Key)})
	}
	return out
}

// apiRotateCommandKeys makes a new signing key and announces it to the
// fleet.
func (s *server) apiRotateCommandKeys(c echo.Context) error {
	k, err := s.commandKeysService()
	if err != nil {
		return err
	}
	trusted, err := k.Rotate(c.Request().Context(), actor(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": commandKeysJSON(trusted)})
}

// tokenJSON is an enrollment token in the API (never its secret).
type tokenJSON struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	DefaultGroups []string   `json:"default_groups"`
	AllowGroups   []string   `json:"allow_groups"`
	AutoApprove   bool       `json:"auto_approve"`
	MaxUses       int        `json:"max_uses"`
	Uses          int        `json:"uses"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	CreatedBy     string     `json:"created_by"`
	Usable        bool       `json:"usable"`
}

func (s *server) toTokenJSON(t store.EnrollmentToken) tokenJSON {
	groups := t.DefaultGroups
	if groups == nil {
		groups = []string{}
	}
	allow := t.AllowGroups
	if allow == nil {
		allow = []string{}
	}
	return tokenJSON{ID: t.ID, Name: t.Name, DefaultGroups: groups, AllowGroups: allow, AutoApprove: t.AutoApprove, MaxUses: t.MaxUses, Uses: t.Uses,
		ExpiresAt: timePtr(t.ExpiresAt), RevokedAt: timePtr(t.RevokedAt), CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy,
		Usable: t.Usable(s.Now()) == ""}
}

func (s *server) apiTokens(c echo.Context) error {
	ts, err := s.Store.EnrollmentTokens(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]tokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, s.toTokenJSON(t))
	}
	return c.JSON(http.StatusOK, map[string]any{"tokens": out})
}

// tokenRequestJSON is the body of POST /api/enrollment-tokens.
type tokenRequestJSON struct {
	Name          string   `json:"name"`
	DefaultGroups []string `json:"default_groups"`
	AllowGroups   []string `json:"allow_groups"` // groups a PC may ask for; "*" = any
	ExpiresIn     string   `json:"expires_in"`   // duration; "" = never
	MaxUses       int      `json:"max_uses"`
	AutoApprove   bool     `json:"auto_approve"`
}

func (s *server) apiCreateToken(c echo.Context) error {
	e, err := s.enroller()
	if err != nil {
		return err
	}
	var req tokenRequestJSON
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var expires time.Duration
	if req.ExpiresIn != "" {
		if expires, err = time.ParseDuration(req.ExpiresIn); err != nil || expires <= 0 {
			return validation("expires_in", fmt.Sprintf("%q is not a positive duration like \"24h\"", req.ExpiresIn))
		}
	}
	is, err := e.CreateToken(c.Request().Context(), enroll.TokenRequest{Name: req.Name, DefaultGroups: req.DefaultGroups,
		AllowGroups: req.AllowGroups, ExpiresIn: expires, MaxUses: req.MaxUses, AutoApprove: req.AutoApprove, By: actor(c)})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"token": s.toTokenJSON(is.Token), "secret": is.Secret, "agent_credentials": string(is.Bundle)})
}

func (s *server) apiRevokeToken(c echo.Context) error {
	e, err := s.enroller()
	if err != nil {
		return err
	}
	id := c.Param("id")
	if err := e.RevokeToken(c.Request().Context(), id, actor(c)); err != nil {
		return err
	}
	t, err := s.Store.EnrollmentToken(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.toTokenJSON(t))
}

// apiRotateDefaultToken gives DATA/agent-credentials a new secret and a
// new broker user; the old file stops working at once.
func (s *server) apiRotateDefaultToken(c echo.Context) error {
	e, err := s.enroller()
	if err != nil {
		return err
	}
	if err := e.RotateDefault(c.Request().Context(), actor(c)); err != nil {
		return err
	}
	t, err := s.Store.EnrollmentToken(c.Request().Context(), enroll.DefaultTokenID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.toTokenJSON(t))
}

func (s *server) tokenRows(c echo.Context) ([]views.TokenRow, error) {
	ts, err := s.Store.EnrollmentTokens(c.Request().Context())
	if err != nil {
		return nil, err
	}
	now := s.Now()
	var rows []views.TokenRow
	for _, t := range ts {
		r := views.TokenRow{ID: t.ID, Name: t.Name, Groups: t.DefaultGroups, AutoApprove: t.AutoApprove,
			Expires: timeText(t.ExpiresAt, now), Created: timeText(t.CreatedAt, now), CreatedBy: t.CreatedBy, State: "usable"}
		r.Uses = fmt.Sprintf("%d", t.Uses)
		if t.MaxUses > 0 {
			r.Uses += fmt.Sprintf(" of %d", t.MaxUses)
		}
		if why := t.Usable(now); why != "" {
			r.State = why
		}
		r.AllowGroups = t.AllowGroups
		if t.RevokedAt.IsZero() && s.Enroller != nil {
			r.RevokeURL = "/enrollments/tokens/" + url.PathEscape(t.ID) + "/revoke"
			r.RevokeConfirm = fmt.Sprintf("Revoke enrollment token %s? PCs can no longer enroll with it; agents that enrolled with it keep working.", t.Name)
			if t.ID == enroll.DefaultTokenID {
				r.RotateURL = "/enrollments/tokens/default/rotate"
				r.RotateConfirm = "Rotate DATA/agent-credentials? The file gets a new secret: PCs set up with the old file can no longer connect to enroll. Enrolled agents keep working."
				r.RevokeConfirm = "Revoke the DEFAULT enrollment token? Every PC set up with DATA/agent-credentials, and every install command made with the default token, can no longer enroll; new PCs then need a token made here. Enrolled agents keep working."
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (s *server) tokenCreate(c echo.Context) error {
	e, err := s.enroller()
	if err != nil {
		return err
	}
	form := views.TokenForm{Name: c.FormValue("name"), Groups: c.FormValue("groups"), AllowGroups: c.FormValue("allow_groups"),
		ExpiresIn: strings.TrimSpace(c.FormValue("expires_in")), MaxUses: strings.TrimSpace(c.FormValue("max_uses")), AutoApprove: c.FormValue("auto_approve") == "true"}
	req := enroll.TokenRequest{Name: form.Name, DefaultGroups: splitIDs(form.Groups), AllowGroups: splitIDs(form.AllowGroups),
		AutoApprove: form.AutoApprove, By: actor(c)}
	errs := views.FieldErrors{}
	if v := form.ExpiresIn; v != "" {
		if req.ExpiresIn, err = time.ParseDuration(v); err != nil || req.ExpiresIn <= 0 {
			errs["expires_in"] = "Use a duration such as 24h or 168h, or leave it empty for a token that never expires."
		}
	}
	if v := form.MaxUses; v != "" {
		if _, err := fmt.Sscan(v, &req.MaxUses); err != nil || req.MaxUses < 0 {
			errs["max_uses"] = "A whole number: how many PCs may enroll with it, 0 for any number."
		}
	}
	status := http.StatusUnprocessableEntity
	if len(errs) == 0 {
		is, err := e.CreateToken(c.Request().Context(), req)
		if err == nil {
			c.Response().Header().Set("Cache-Control", "no-store")
			return render(c, http.StatusCreated, views.TokenCreatedPage(s.layout(c, "New enrollment token", "agents"),
				views.TokenCreatedModel{Name: is.Token.Name, Secret: is.Secret, Credentials: string(is.Bundle)}))
		}
		if ps := enrollProblems(err); len(ps) > 0 {
			err = &problem.Error{Problems: ps}
		}
		status = s.formProblems(c, err, errs, func(f string) string {
			if f == "default_groups" {
				return "groups"
			}
			return f
		}, func(p problem.Problem) string { return sentence(p.Message) })
	}
	return s.renderEnrollments(c, status, form, errs)
}

// enrollProblems reads the problems of an enroll.ErrInvalid error
// ("invalid: name: …; allow_groups: …") by field.
func enrollProblems(err error) []problem.Problem {
	if !errors.Is(err, enroll.ErrInvalid) {
		return nil
	}
	var ps []problem.Problem
	rest := strings.TrimPrefix(err.Error(), enroll.ErrInvalid.Error()+": ")
	for _, part := range strings.Split(rest, "; ") {
		field, msg, ok := strings.Cut(part, ": ")
		if !ok || strings.Contains(field, " ") {
			field, msg = "", part
		}
		ps = append(ps, problem.Problem{Field: field, Message: msg})
	}
	return ps
}

// tokenRotateDefault gives DATA/agent-credentials a new secret and broker
// user; the old file stops working at once.
func (s *server) tokenRotateDefault(c echo.Context) error {
	e, err := s.enroller()
	if err != nil {
		return err
	}
	if err := e.RotateDefault(c.Request().Context(), actor(c)); err != nil {
		return s.tokenRowFailed(c, "Rotate", err)
	}
	return c.Redirect(http.StatusSeeOther, "/enrollments#enrollment-tokens")
}

func (s *server) tokenRevoke(c echo.Context) error {
	e, err := s.enroller()
	if err != nil {
		return err
	}
	if err := e.RevokeToken(c.Request().Context(), c.Param("id"), actor(c)); err != nil {
		return s.tokenRowFailed(c, "Revoke", err)
	}
	return c.Redirect(http.StatusSeeOther, "/enrollments#enrollment-tokens")
}

// tokenRowFailed shows the Pending agents page again with why a token's
// button did nothing.
func (s *server) tokenRowFailed(c echo.Context, what string, err error) error {
	status, msg := s.errorText(c, err)
	id := c.Param("id")
	if id == "" {
		id = enroll.DefaultTokenID
	}
	return s.renderEnrollments(c, status, views.TokenForm{MaxUses: "0"}, views.FieldErrors{"row": what + " token " + id + ": " + msg})
}

// groupsRequestJSON is the body of PUT /api/agents/{pc}/groups.
type groupsRequestJSON struct {
	Groups []string `json:"groups"`
}

func (s *server) setGroups(c echo.Context, groups []string) (string, error) {
	e, err := s.enroller()
	if err != nil {
		return "", err
	}
	pc, err := idParam(c, "pc", "agent")
	if err != nil {
		return "", err
	}
	_, err = e.SetGroups(c.Request().Context(), pc, groups, actor(c))
	return pc, err
}

func (s *server) apiSetGroups(c echo.Context) error {
	var req groupsRequestJSON
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Groups == nil {
		return validation("groups", "is required (an empty list removes every group)")
	}
	pc, err := s.setGroups(c, req.Groups)
	if err != nil {
		return err
	}
	return s.apiAgent(echoWithParam(c, "pc", pc))
}

// echoWithParam keeps the request's context for reuse by another handler.
func echoWithParam(c echo.Context, name, value string) echo.Context {
	c.SetParamNames(name)
	c.SetParamValues(value)
	return c
}

// groupsErrorKey carries why the groups form failed to the agent page.
const groupsErrorKey = "groups_error"

// formSetGroups saves an agent's groups from its page; a refusal shows
// next to the field, with what was typed.
func (s *server) formSetGroups(c echo.Context) error {
	pc, err := s.setGroups(c, splitIDs(c.FormValue("groups")))
	if err == nil {
		return c.Redirect(http.StatusSeeOther, "/agents/"+url.PathEscape(pc))
	}
	status, msg := s.errorText(c, err)
	if errors.Is(err, enroll.ErrInvalid) {
		status, msg = http.StatusUnprocessableEntity, "Group "+strings.TrimPrefix(strings.TrimPrefix(err.Error(), enroll.ErrInvalid.Error()+": "), "group ")+"."
	}
	if status == http.StatusNotFound {
		return err
	}
	c.Set(groupsErrorKey, msg)
	c.Response().Writer = &statusWriter{ResponseWriter: c.Response().Writer, status: status}
	if err := s.agentShow(c); err != nil {
		return err
	}
	c.Response().Status = status // as sent, for the access log and metrics
	return nil
}

// statusWriter answers status where the page says 200: a form's page
// shown again with its error is not a success.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if code == http.StatusOK {
		code = w.status
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// formAddToGroup adds the agents selected on the agents page to a group.
func (s *server) formAddToGroup(c echo.Context) error {
	e, err := s.enroller()
	if err != nil {
		return err
	}
	group := strings.ToLower(strings.TrimSpace(c.FormValue("group")))
	if err := wire.ValidateGroup(group); err != nil {
		return apiErr(http.StatusBadRequest, "invalid_parameter", err.Error(), nil)
	}
	form, _ := c.FormParams()
	pcs := form["pc"]
	if len(pcs) == 0 {
		return apiErr(http.StatusBadRequest, "invalid_parameter", "select at least one agent", nil)
	}
	if err := e.AddToGroup(c.Request().Context(), group, pcs, actor(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/agents?group="+url.QueryEscape(group))
}
