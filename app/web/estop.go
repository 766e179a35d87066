package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// estopJSON is docs/API.md's emergency-stop state, with what the stop (or,
// once lifted, the last one) did.
type estopJSON struct {
	Active  bool              `json:"active"`
	Since   *time.Time        `json:"since,omitempty"`
	By      string            `json:"by,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Effects *estopEffectsJSON `json:"effects,omitempty"`
}

// estopEffectsJSON is what one stop did: the executions it killed, the
// rollouts it halted, and how many agents acknowledged it of those online.
type estopEffectsJSON struct {
	Since              time.Time `json:"since"`
	By                 string    `json:"by"`
	Reason             string    `json:"reason"`
	ExecutionsKilled   []string  `json:"executions_killed"`
	RolloutsHalted     []string  `json:"rollouts_halted"`
	AgentsAcknowledged int       `json:"agents_acknowledged"`
	AgentsOnline       int       `json:"agents_online"`
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
	return s.estopAnswer(c, es)
}

// estopAnswer answers an emergency-stop call with the stop and its effects.
func (s *server) estopAnswer(c echo.Context, es wire.EmergencyStop) error {
	j := toEstopJSON(es)
	rec, acks, err := s.estopRecord(c.Request().Context(), es)
	if err != nil {
		return err
	}
	if rec != nil {
		j.Effects = &estopEffectsJSON{Since: rec.Since, By: rec.By, Reason: rec.Reason,
			ExecutionsKilled: append([]string{}, rec.Killed...), RolloutsHalted: append([]string{}, rec.Halted...),
			AgentsAcknowledged: acks.Acked, AgentsOnline: acks.Online}
	}
	return c.JSON(http.StatusOK, j)
}

// estopRecord returns what the stop es did — or, once it is lifted, the
// last stop — and how the agents acknowledged it (nil when the stop was
// not recorded, as a stop read from an unverifiable value is not).
func (s *server) estopRecord(ctx context.Context, es wire.EmergencyStop) (*store.EmergencyStop, store.StopAcks, error) {
	since := es.Since
	if !es.Active {
		since = es.LastStopAt
	}
	if since.IsZero() {
		return nil, store.StopAcks{}, nil
	}
	rec, err := s.Store.EmergencyStopRecord(ctx, since)
	if errors.Is(err, store.ErrNotFound) {
		return nil, store.StopAcks{}, nil
	}
	if err != nil {
		return nil, store.StopAcks{}, err
	}
	acks, err := s.Store.EmergencyStopAcks(ctx, since, s.Now())
	if err != nil {
		return nil, store.StopAcks{}, err
	}
	return &rec, acks, nil
}

// estopLinksShown is the most executions (and rollouts) the page links.
const estopLinksShown = 20

// estopEffects is the page's account of what the stop es did (nil: none
// recorded).
func (s *server) estopEffects(ctx context.Context, es wire.EmergencyStop) (*views.EstopEffects, error) {
	rec, acks, err := s.estopRecord(ctx, es)
	if err != nil || rec == nil {
		return nil, err
	}
	links := func(ids []string) ([]views.Link, int) {
		var out []views.Link
		for _, id := range ids[:min(len(ids), estopLinksShown)] {
			out = append(out, views.Link{Text: id, URL: "/executions/" + url.PathEscape(id)})
		}
		return out, len(ids) - len(out)
	}
	e := &views.EstopEffects{Lifted: !es.Active, Since: timeText(rec.Since, s.Now()), By: rec.By, Reason: rec.Reason,
		Acked: acks.Acked, Online: acks.Online}
	e.Killed, e.KilledMore = links(rec.Killed)
	e.Halted, e.HaltedMore = links(rec.Halted)
	for _, pc := range acks.Silent {
		e.Silent = append(e.Silent, views.Link{Text: pc, URL: "/agents/" + url.PathEscape(pc)})
	}
	e.SilentMore = max(0, acks.Online-acks.Acked-len(acks.Silent))
	return e, nil
}

// estopEffectsPanel answers the page's effects panel (polled while the
// stop is on); empty when nothing was recorded.
func (s *server) estopEffectsPanel(c echo.Context) error {
	es, err := s.Dispatcher.EmergencyStop(c.Request().Context())
	if err != nil {
		return err
	}
	e, err := s.estopEffects(c.Request().Context(), es)
	if err != nil || e == nil {
		if err == nil {
			return c.NoContent(http.StatusNoContent)
		}
		return err
	}
	return render(c, http.StatusOK, views.EstopEffectsPanel(*e))
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
	return s.estopAnswer(c, es)
}

func (s *server) apiEstopOff(c echo.Context) error {
	es, err := s.Dispatcher.SetEmergencyStop(c.Request().Context(), false, "", actor(c))
	if err != nil {
		return err
	}
	return s.estopAnswer(c, es)
}

// estopPage asks for the reason (on) or offers to lift the stop.
func (s *server) estopPage(c echo.Context) error {
	es, err := s.Dispatcher.EmergencyStop(c.Request().Context())
	if err != nil {
		return err
	}
	m := views.EstopModel{Active: es.Active, By: es.By, Reason: es.Reason, Since: timeText(es.Since, s.Now()), CSRFToken: csrfToken(c),
		EffectsURL: "/emergency-stop/effects"}
	if m.Effects, err = s.estopEffects(c.Request().Context(), es); err != nil {
		return err
	}
	return render(c, http.StatusOK, views.EstopPage(s.layout(c, "Emergency stop", ""), m))
}

func (s *server) estopForm(c echo.Context) error {
	on := c.FormValue("action") != "lift"
	if _, err := s.Dispatcher.SetEmergencyStop(c.Request().Context(), on, c.FormValue("reason"), actor(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/emergency-stop")
}
