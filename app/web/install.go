package web

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/agentinstall"
	"github.com/kanadehq/kanade/app/enroll"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// installRequest asks for an install command.
type installRequest struct {
	OS, Arch string
	Groups   []string
	// Token is "default" (DATA/agent-credentials) or "new" (a token made
	// for this install from Name, ExpiresIn, MaxUses and AutoApprove).
	Token       string
	Name        string
	ExpiresIn   time.Duration
	MaxUses     int
	AutoApprove bool
}

// installJSON is an install command and what it carries (POST /api/agent-installs).
type installJSON struct {
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Command     string `json:"command"`
	PowerShell  string `json:"powershell,omitempty"`
	Shell       string `json:"shell,omitempty"`
	SHA256      string `json:"sha256"`
	DownloadURL string `json:"download_url"`
	AgentURL    string `json:"agent_url"`
	TokenID     string `json:"token_id"`
	// Token is the token the command enrolls with (never its secret, which
	// is inside the command).
	Token tokenJSON `json:"token"`
	// Groups are what the command asks for.
	Groups []string `json:"groups"`
}

// installOS are the systems install commands exist for.
var installOS = []string{"windows", "linux"}

// installProblems checks a request; it changes nothing.
func installProblems(r *installRequest) []problem.Problem {
	var ps []problem.Problem
	r.OS, r.Arch, r.Token = strings.ToLower(strings.TrimSpace(r.OS)), strings.ToLower(strings.TrimSpace(r.Arch)), strings.TrimSpace(r.Token)
	if r.Arch == "" {
		r.Arch = "amd64"
	}
	switch r.OS {
	case "windows", "linux":
	case "":
		ps = append(ps, problem.Problem{Field: "os", Message: "pick the PC's operating system: windows or linux"})
	default:
		ps = append(ps, problem.Problem{Field: "os", Message: fmt.Sprintf("%q: install commands exist for windows and linux", r.OS)})
	}
	if r.Arch != "amd64" && r.Arch != "arm64" {
		ps = append(ps, problem.Problem{Field: "arch", Message: fmt.Sprintf("%q is not amd64 or arm64", r.Arch)})
	}
	r.Groups = wire.NormalizeGroups(r.Groups)
	for _, g := range r.Groups {
		if err := wire.ValidateGroup(g); err != nil {
			ps = append(ps, problem.Problem{Field: "groups", Message: err.Error()})
		}
	}
	switch r.Token {
	case "default":
	case "new":
		if len(strings.TrimSpace(r.Name)) > 100 {
			ps = append(ps, problem.Problem{Field: "name", Message: "at most 100 characters"})
		}
		if r.ExpiresIn < 0 {
			ps = append(ps, problem.Problem{Field: "expires_in", Message: "must not be negative"})
		}
		if r.MaxUses < 0 {
			ps = append(ps, problem.Problem{Field: "max_uses", Message: "must be 0 (any number of PCs) or more"})
		}
	default:
		ps = append(ps, problem.Problem{Field: "token", Message: fmt.Sprintf("%q is not \"default\" or \"new\"", r.Token)})
	}
	return ps
}

// agentURL is the broker URL for a request that reached this server at host.
func (s *server) agentURL(host string) string {
	listen, tls := agentinstall.ListenOf(s.BrokerURL)
	return agentinstall.AgentURL(s.AgentURL, listen, tls, host)
}

// baseURL is this server as the caller reached it.
func baseURL(c echo.Context) string {
	return c.Scheme() + "://" + c.Request().Host
}

// makeInstall checks a request, finds the agent binary, makes the token
// when a new one is asked for (CreateToken audits it), and builds the
// command. Nothing is created unless the command can be made.
func (s *server) makeInstall(c echo.Context, r installRequest) (installJSON, error) {
	e, err := s.enroller()
	if err != nil {
		return installJSON{}, err
	}
	if ps := installProblems(&r); len(ps) > 0 {
		return installJSON{}, &problem.Error{Problems: ps}
	}
	if s.AgentBinaries == nil {
		return installJSON{}, apiErr(http.StatusNotFound, "agent_not_built", "this server serves no agent downloads", nil)
	}
	p := agentinstall.Platform{OS: r.OS, Arch: r.Arch}
	bin, err := s.AgentBinaries.Stat(p)
	if errors.Is(err, agentinstall.ErrNotBuilt) {
		return installJSON{}, apiErr(http.StatusNotFound, "agent_not_built", err.Error(), nil)
	}
	if err != nil {
		return installJSON{}, err
	}
	in := agentinstall.Install{Platform: p, DownloadURL: baseURL(c) + "/download/agent/" + p.String(), SHA256: bin.SHA256,
		AgentURL: s.agentURL(c.Request().Host), Groups: r.Groups}
	// Check what comes from the request (its Host) before a token exists.
	probe := in
	probe.Secret, probe.Bundle = "kanade-enroll-probe", []byte("probe")
	if _, err := probe.Command(); err != nil {
		return installJSON{}, apiErr(http.StatusBadRequest, "invalid_request", err.Error(), nil)
	}
	ctx := c.Request().Context()
	var tok store.EnrollmentToken
	if r.Token == "default" {
		if tok, err = s.Store.EnrollmentToken(ctx, enroll.DefaultTokenID); err != nil {
			return installJSON{}, err
		}
		if why := tok.Usable(s.Now()); why != "" {
			return installJSON{}, validation("token", why+"; rotate it on Pending agents, or make a new token here")
		}
		if in.Bundle, err = e.DefaultBundle(); err != nil {
			return installJSON{}, err
		}
	} else {
		name := strings.TrimSpace(r.Name)
		if name == "" {
			name = fmt.Sprintf("Add agents %s %s", p, s.Now().Format("2006-01-02 15:04"))
		}
		is, err := e.CreateToken(ctx, enroll.TokenRequest{Name: name, DefaultGroups: r.Groups, ExpiresIn: r.ExpiresIn,
			MaxUses: r.MaxUses, AutoApprove: r.AutoApprove, By: actor(c)})
		if err != nil {
			return installJSON{}, err
		}
		tok, in.Bundle = is.Token, is.Bundle
	}
	if in.Secret, err = enroll.BundleSecret(in.Bundle); err != nil {
		return installJSON{}, err
	}
	cmd, err := in.Command()
	if err != nil {
		return installJSON{}, err
	}
	out := installJSON{OS: p.OS, Arch: p.Arch, Command: cmd, SHA256: bin.SHA256, DownloadURL: in.DownloadURL, AgentURL: in.AgentURL,
		TokenID: tok.ID, Token: s.toTokenJSON(tok), Groups: r.Groups}
	if out.Groups == nil {
		out.Groups = []string{}
	}
	if p.OS == "windows" {
		out.PowerShell = cmd
	} else {
		out.Shell = cmd
	}
	s.Log.Info("agent install command made", "platform", p.String(), "token", tok.ID, "groups", r.Groups, "by", actor(c))
	return out, nil
}

// installRequestJSON is the body of POST /api/agent-installs.
type installRequestJSON struct {
	OS          string   `json:"os"`
	Arch        string   `json:"arch"`
	Groups      []string `json:"groups"`
	Token       string   `json:"token"`      // "default" (the default) or "new"
	Name        string   `json:"name"`       // of a new token
	ExpiresIn   string   `json:"expires_in"` // of a new token; "" = never
	MaxUses     int      `json:"max_uses"`   // of a new token; 0 = any number of PCs
	AutoApprove bool     `json:"auto_approve"`
}

// apiAgentInstall answers POST /api/agent-installs: 201 when it made a
// token, 200 with the default one.
func (s *server) apiAgentInstall(c echo.Context) error {
	var req installRequestJSON
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	r := installRequest{OS: req.OS, Arch: req.Arch, Groups: req.Groups, Token: req.Token, Name: req.Name, MaxUses: req.MaxUses, AutoApprove: req.AutoApprove}
	if r.Token == "" {
		r.Token = "default"
	}
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return validation("expires_in", fmt.Sprintf("%q is not a positive duration like \"24h\"", req.ExpiresIn))
		}
		r.ExpiresIn = d
	}
	out, err := s.makeInstall(c, r)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	status := http.StatusOK
	if r.Token == "new" {
		status = http.StatusCreated
	}
	return c.JSON(status, out)
}

// addAgentsPage is Settings › Add agents with its form's defaults: a new
// token for one PC, valid a day, approved by an admin.
func (s *server) addAgentsPage(c echo.Context) error {
	m := views.AddAgentsModel{OS: "windows", Arch: "amd64", Token: "new", ExpiresIn: "24h", MaxUses: "1"}
	return s.renderAddAgents(c, http.StatusOK, m)
}

func (s *server) renderAddAgents(c echo.Context, status int, m views.AddAgentsModel) error {
	m.AgentURL = s.agentURL(c.Request().Host)
	switch {
	case s.Enroller == nil:
		m.Unavailable = "Install commands need the embedded broker: this server uses an external NATS ([nats] url), where agents start with static credentials."
	case s.AgentBinaries == nil:
		m.Unavailable = "This server serves no agent downloads."
	}
	if s.AgentBinaries != nil {
		m.Downloads = s.AgentBinaries.Dir()
		built := map[agentinstall.Platform]bool{}
		for _, p := range s.AgentBinaries.Available() {
			built[p] = true
		}
		for _, goos := range installOS {
			for _, arch := range []string{"amd64", "arm64"} {
				p := agentinstall.Platform{OS: goos, Arch: arch}
				m.Platforms = append(m.Platforms, views.PlatformOption{OS: goos, Arch: arch, Label: p.String(), Built: built[p]})
			}
		}
	}
	if s.Store != nil {
		if t, err := s.Store.EnrollmentToken(c.Request().Context(), enroll.DefaultTokenID); err == nil {
			m.DefaultApproves = t.AutoApprove
		}
	}
	return render(c, status, views.AddAgentsPage(s.layout(c, "Add agents", "settings"), m))
}

// addAgentsForm makes the command from the form and shows it (with the
// form as it was sent), or shows the form with what is wrong next to each
// field.
func (s *server) addAgentsForm(c echo.Context) error {
	m := views.AddAgentsModel{OS: c.FormValue("os"), Arch: c.FormValue("arch"), Groups: c.FormValue("groups"), Token: c.FormValue("token"),
		Name: c.FormValue("name"), ExpiresIn: strings.TrimSpace(c.FormValue("expires_in")), MaxUses: strings.TrimSpace(c.FormValue("max_uses")),
		AutoApprove: c.FormValue("auto_approve") == "true", Errors: views.FieldErrors{}}
	r := installRequest{OS: m.OS, Arch: m.Arch, Groups: splitIDs(m.Groups), Token: m.Token, Name: m.Name, AutoApprove: m.AutoApprove}
	var err error
	if m.Token == "new" && m.ExpiresIn != "" {
		if r.ExpiresIn, err = time.ParseDuration(m.ExpiresIn); err != nil || r.ExpiresIn <= 0 {
			m.Errors["expires_in"] = "Expires in: use a duration such as 24h or 168h, or leave it empty for never."
		}
	}
	if m.Token == "new" && m.MaxUses != "" {
		if r.MaxUses, err = strconv.Atoi(m.MaxUses); err != nil || r.MaxUses < 0 {
			m.Errors["max_uses"] = "Max PCs: a whole number, 0 for any number of PCs."
		}
	}
	if len(m.Errors) > 0 {
		return s.renderAddAgents(c, http.StatusUnprocessableEntity, m)
	}
	out, err := s.makeInstall(c, r)
	if err != nil {
		if ps := enrollProblems(err); len(ps) > 0 {
			err = &problem.Error{Problems: ps}
		}
		status := s.formProblems(c, err, m.Errors, func(f string) string {
			switch f {
			case "os", "arch", "groups", "token", "name", "expires_in", "max_uses":
				return f
			case "default_groups":
				return "groups"
			}
			return ""
		}, func(p problem.Problem) string {
			if p.Field == "" {
				return sentence(p.Message)
			}
			return fieldLabel(p.Field) + ": " + strings.TrimSuffix(p.Message, ".") + "."
		})
		return s.renderAddAgents(c, status, m)
	}
	res := &views.InstallResult{OS: out.OS, Platform: out.OS + "-" + out.Arch, Command: out.Command, SHA256: out.SHA256,
		DownloadURL: out.DownloadURL, AgentURL: out.AgentURL, TokenID: out.TokenID, TokenName: out.Token.Name, Groups: out.Groups,
		AutoApprove: out.Token.AutoApprove, Uses: "any number of PCs", InstallPath: `%ProgramFiles%\kanade\kanade-agent.exe`}
	if out.OS != "windows" {
		res.InstallPath = path.Join("/usr/local/bin", "kanade-agent")
	}
	if out.Token.MaxUses > 0 {
		res.Uses = fmt.Sprintf("%d of %d used", out.Token.Uses, out.Token.MaxUses)
	}
	res.Expires = views.TimeText{Rel: "never"}
	if out.Token.ExpiresAt != nil {
		res.Expires = timeText(*out.Token.ExpiresAt, s.Now())
	}
	m.Result = res
	c.Response().Header().Set("Cache-Control", "no-store")
	status := http.StatusOK
	if r.Token == "new" {
		status = http.StatusCreated
	}
	return s.renderAddAgents(c, status, m)
}

// fieldLabel names a form field the way the page does.
func fieldLabel(f string) string {
	switch f {
	case "os":
		return "Operating system"
	case "arch":
		return "Architecture"
	case "groups":
		return "Groups"
	case "token":
		return "Enrollment token"
	case "name":
		return "Name"
	case "expires_in":
		return "Expires in"
	case "max_uses":
		return "Max PCs"
	}
	return f
}
