package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/views"
)

// isPartial reports whether htmx asked for a fragment rather than a page.
func isPartial(c echo.Context) bool {
	h := c.Request().Header
	return h.Get("HX-Request") == "true" && h.Get("HX-Boosted") != "true"
}

// render writes a templ component. Every URL that can answer both a page
// and a fragment varies on HX-Request.
func render(c echo.Context, status int, comp templ.Component) error {
	c.Response().Header().Add("Vary", "HX-Request")
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return comp.Render(c.Request().Context(), c.Response())
}

// page renders content inside the layout, or only the fragment for htmx.
func (s *server) page(c echo.Context, title, nav string, full, fragment templ.Component) error {
	if isPartial(c) && fragment != nil {
		return render(c, http.StatusOK, fragment)
	}
	return render(c, http.StatusOK, full)
}

func (s *server) layout(c echo.Context, title, nav string) views.Layout {
	l := views.Layout{Title: title, Nav: nav, DevMode: s.DevMode, CSRFToken: csrfToken(c), Version: s.Version}
	if p := principal(c); p != nil {
		l.User, l.Role, l.SignedIn = p.Display, p.Role.String(), p.Kind == auth.KindUser
		l.Estop, l.Approvals = s.estopState(c.Request().Context()), s.approvals(c.Request().Context(), p)
		l.LiveURL = "/events/topbar"
		if s.Health != nil {
			if r := s.Health.Last(); healthBanner(r) != "" {
				l.Health, l.HealthLevel = healthBanner(r), string(r.Status)
				if p.Can(auth.Admin) {
					l.HealthURL = "/system"
				}
			}
		}
	}
	return l
}

func (s *server) renderError(c echo.Context, status int, msg string) error {
	m := views.ErrorModel{Code: status, Title: http.StatusText(status), Message: msg}
	if isPartial(c) {
		// htmx swaps no error response: static/kanade.js shows this
		// fragment as a toast, and the page stays as it was.
		c.Response().Header().Set("HX-Reswap", "none")
		return render(c, status, views.ErrorToast(m))
	}
	return render(c, status, views.ErrorPage(s.layout(c, http.StatusText(status), ""), m))
}

// seeOther answers a form post with the page to show next: a 303 for a
// plain form; for htmx, HX-Redirect, since htmx would follow a redirect
// itself and swap the whole page into the element that posted.
func seeOther(c echo.Context, to string) error {
	if isPartial(c) {
		c.Response().Header().Set("HX-Redirect", to)
		return c.NoContent(http.StatusNoContent)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// staticHandler serves the embedded assets with content-hash ETags;
// versioned vendor files are cached for a year.
func staticHandler(fsys fs.FS) http.Handler {
	etags := map[string]string{}
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := fs.ReadFile(fsys, p); err == nil {
				sum := sha256.Sum256(b)
				etags[p] = `"` + hex.EncodeToString(sum[:8]) + `"`
			}
		}
		return nil
	})
	files := http.FileServer(http.FS(fsys))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		tag, ok := etags[name]
		if !ok || strings.HasSuffix(name, ".go") || strings.HasSuffix(name, ".md") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", tag)
		if strings.Contains(name, "-2.") { // htmx-2.0.11.min.js, htmx-ext-sse-2.2.4.min.js
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// sse is a server-sent-events writer.
type sse struct {
	c  echo.Context
	rc *http.ResponseController
}

func startSSE(c echo.Context) *sse {
	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w.Writer)
	_ = rc.SetWriteDeadline(time.Time{})
	s := &sse{c: c, rc: rc}
	s.comment("connected")
	return s
}

// send writes one event; every line of data gets its own "data:" field.
// SSE also ends lines at a bare CR, so CRs become line feeds.
func (s *sse) send(event, data string) error {
	data = strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\n", event)
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	if _, err := s.c.Response().Write(b.Bytes()); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sse) comment(text string) error {
	if _, err := fmt.Fprintf(s.c.Response(), ": %s\n\n", text); err != nil {
		return err
	}
	return s.rc.Flush()
}

func renderString(c echo.Context, comp templ.Component) (string, error) {
	var b strings.Builder
	err := comp.Render(c.Request().Context(), &b)
	return b.String(), err
}
