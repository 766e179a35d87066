package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/agentinstall"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/enroll"
)

// downloadAgent serves GET /download/agent/{os}-{arch} (the binary) and
// /download/agent/{os}-{arch}.sha256 (its SHA-256, as sha256sum prints
// it). The caller is a PC holding an enrollment token that may still
// enroll (Authorization: Bearer kanade-enroll-…, or ?token=), or anyone
// signed in. Every answer carries the hash in Kanade-SHA256; errors are
// JSON (handleError), since the callers are scripts.
func (s *server) downloadAgent(c echo.Context) error {
	who, err := s.downloadCaller(c)
	if err != nil {
		return err
	}
	name, wantSum := strings.CutSuffix(c.Param("platform"), ".sha256")
	p, err := agentinstall.ParsePlatform(name)
	if err != nil {
		return apiErr(http.StatusNotFound, "unknown_platform", err.Error(), nil)
	}
	if s.AgentBinaries == nil {
		return apiErr(http.StatusNotFound, "agent_not_built", "this server serves no agent downloads", nil)
	}
	bin, err := s.AgentBinaries.Open(p)
	if errors.Is(err, agentinstall.ErrNotBuilt) {
		return apiErr(http.StatusNotFound, "agent_not_built", err.Error(), nil)
	}
	if err != nil {
		return err
	}
	defer bin.File.Close()
	h := c.Response().Header()
	h.Set("Kanade-SHA256", bin.SHA256)
	h.Set("Cache-Control", "private, no-cache")
	if wantSum {
		return c.String(http.StatusOK, bin.SHA256+"  "+p.BinaryName()+"\n")
	}
	h.Set(echo.HeaderContentType, "application/octet-stream")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="`+p.BinaryName()+`"`)
	s.Log.Info("agent download", "platform", p.String(), "by", who, "sha256", bin.SHA256, "ip", c.RealIP())
	// The server's write timeout (2 minutes) would cut a download over a
	// slow link; allow it down to minDownloadRate.
	_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Now().Add(2*time.Minute + time.Duration(bin.Size/minDownloadRate)*time.Second))
	http.ServeContent(c.Response(), c.Request(), p.BinaryName(), bin.ModTime, bin.File)
	return nil
}

// downloadCaller names who may download: "token <id>" for an enrollment
// token, or the signed-in caller. Anyone else gets a JSON 401 or 403.
func (s *server) downloadCaller(c echo.Context) (string, error) {
	secret := c.QueryParam("token")
	if h := c.Request().Header.Get(echo.HeaderAuthorization); h != "" {
		scheme, v, _ := strings.Cut(h, " ")
		if v = strings.TrimSpace(v); strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(v, "kanade-enroll-") {
			secret = v
		}
	}
	if secret != "" {
		if s.Enroller == nil {
			return "", apiErr(http.StatusUnauthorized, "invalid_token", "this server has no enrollment tokens (it uses an external broker); sign in to download", nil)
		}
		tok, err := s.Enroller.CheckSecret(c.Request().Context(), secret)
		switch {
		case errors.Is(err, enroll.ErrUnknownToken):
			// Debug: anyone can send unknown tokens, as often as they like.
			s.Log.Debug("agent download refused: unknown enrollment token", "ip", c.RealIP())
			return "", apiErr(http.StatusUnauthorized, "invalid_token", "the enrollment token is not valid: copy a fresh install command from Settings › Add agents", nil)
		case errors.Is(err, enroll.ErrTokenUnusable):
			s.Log.Info("agent download refused", "token", tok.ID, "err", err, "ip", c.RealIP())
			why := strings.TrimPrefix(err.Error(), enroll.ErrTokenUnusable.Error()+": ")
			return "", apiErr(http.StatusForbidden, "token_unusable", why+": make a new install command on Settings › Add agents", nil)
		case err != nil:
			return "", err
		}
		return "token " + tok.ID, nil
	}
	if p := principal(c); p != nil {
		return p.Name, nil
	}
	msg := "send the enrollment token as \"Authorization: Bearer kanade-enroll-…\" (the install command from Settings › Add agents does), or sign in"
	if err, _ := c.Get(authErrKey).(error); err != nil {
		msg = strings.TrimPrefix(err.Error(), auth.ErrUnauthorized.Error()+": ") + "; " + msg
	}
	return "", apiErr(http.StatusUnauthorized, "unauthorized", msg, nil)
}

// minDownloadRate (bytes a second) bounds how long one download may take.
const minDownloadRate = 32 << 10

// isDownload reports a /download/ path, whose errors are JSON like the API's.
func isDownload(c echo.Context) bool {
	return strings.HasPrefix(c.Request().URL.Path, "/download/")
}
