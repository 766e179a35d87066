package web

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/views"
)

// rolloutAction parses the execution (and wave) and calls the engine.
type rolloutAction func(ctx context.Context, id string, wave int, actor string) error

func (s *server) approveWave(ctx context.Context, id string, wave int, actor string) error {
	return s.Rollouts.Approve(ctx, id, wave, actor)
}

func (s *server) haltRollout(ctx context.Context, id string, _ int, actor string) error {
	return s.Rollouts.Halt(ctx, id, actor)
}

func (s *server) resumeRollout(ctx context.Context, id string, _ int, actor string) error {
	return s.Rollouts.Resume(ctx, id, actor)
}

func (s *server) doRollout(c echo.Context, fn rolloutAction) (string, error) {
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return "", err
	}
	if _, err := s.Store.Execution(c.Request().Context(), id); err != nil {
		return "", err
	}
	wave := 0
	if v := c.Param("n"); v != "" {
		if wave, err = strconv.Atoi(v); err != nil || wave < 0 {
			return "", &dispatch.ValidationError{Problems: []dispatch.Problem{{Field: "n", Message: "must be a wave index: 0, 1, 2…"}}}
		}
	}
	if s.Rollouts == nil {
		return "", echo.NewHTTPError(http.StatusConflict, "this server runs no rollouts")
	}
	return id, fn(c.Request().Context(), id, wave, actor(c))
}

// apiRollout answers an approve/halt/resume call with the execution.
func (s *server) apiRollout(fn rolloutAction) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := s.doRollout(c, fn)
		if err != nil {
			return err
		}
		e, err := s.Store.Execution(c.Request().Context(), id)
		if err != nil {
			return err
		}
		j, err := s.executionJSON(c.Request().Context(), e)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, j)
	}
}

// formRollout is the same from the rollout page's buttons.
func (s *server) formRollout(fn rolloutAction) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := s.doRollout(c, fn)
		if err != nil {
			return err
		}
		if isPartial(c) {
			e, err := s.Store.Execution(c.Request().Context(), id)
			if err != nil {
				return err
			}
			m, err := s.summaryModel(c, e)
			if err != nil {
				return err
			}
			return render(c, http.StatusOK, views.ExecSummary(m))
		}
		return c.Redirect(http.StatusSeeOther, "/executions/"+id)
	}
}
