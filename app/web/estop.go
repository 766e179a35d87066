package web

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/views"
)

// estopJSON is API.md's emergency-stop state.
type estopJSON struct {
	Active bool       `json:"active"`
	Since  *time.Time `json:"since,omitempty"`
	By     string     `json:"by,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

func toEstopJSON(es wire.EmergencyStop) estopJSON {
	j := estopJSON{Active: es.Active}
	if es.Active {
		j.Since, j.By, j.Reason = timePtr(es.Since), es.By, es.Reason
	}
	return j
}

func (s *server) apiEstop(c echo.Context) error {
	es, err := s.Dispatcher.EmergencyStop(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toEstopJSON(es))
}

func (s *server) apiEstopOn(c echo.Context) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	es, err := s.Dispatcher.SetEmergencyStop(c.Request().Context(), true, req.Reason, actor(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toEstopJSON(es))
}

func (s *server) apiEstopOff(c echo.Context) error {
	es, err := s.Dispatcher.SetEmergencyStop(c.Request().Context(), false, "", actor(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toEstopJSON(es))
}

// estopPage asks for the reason (on) or offers to lift the stop.
func (s *server) estopPage(c echo.Context) error {
	es, err := s.Dispatcher.EmergencyStop(c.Request().Context())
	if err != nil {
		return err
	}
	m := views.EstopModel{Active: es.Active, By: es.By, Reason: es.Reason, Since: timeText(es.Since, s.Now()), CSRFToken: csrfToken(c)}
	return render(c, http.StatusOK, views.EstopPage(s.layout(c, "Emergency stop", ""), m))
}

func (s *server) estopForm(c echo.Context) error {
	on := c.FormValue("action") != "lift"
	if _, err := s.Dispatcher.SetEmergencyStop(c.Request().Context(), on, c.FormValue("reason"), actor(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/emergency-stop")
}

// emergencyBanner is the red banner text while the stop is on ("" when off).
func (s *server) emergencyBanner(c echo.Context) string {
	if s.Dispatcher == nil {
		return ""
	}
	es, err := s.Dispatcher.EmergencyStop(c.Request().Context())
	if err != nil || !es.Active {
		return ""
	}
	return fmt.Sprintf("is on since %s by %s: %s. Agents refuse new work and the server refuses new executions until an admin lifts it.",
		es.Since.Format("2006-01-02 15:04 MST"), es.By, es.Reason)
}
