package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// rolloutAction parses the execution (and wave) and calls the engine.
type rolloutAction func(ctx context.Context, id string, wave int, actor rollout.Caller) error

func (s *server) approveWave(ctx context.Context, id string, wave int, actor rollout.Caller) error {
	return s.Rollouts.Approve(ctx, id, wave, actor)
}

func (s *server) haltRollout(ctx context.Context, id string, _ int, actor rollout.Caller) error {
	return s.Rollouts.Halt(ctx, id, actor.Name)
}

func (s *server) resumeRollout(ctx context.Context, id string, _ int, actor rollout.Caller) error {
	return s.Rollouts.Resume(ctx, id, actor.Name)
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
			return "", problem.New("n", "must be a wave index: 0, 1, 2…")
		}
	}
	if s.Rollouts == nil {
		return "", echo.NewHTTPError(http.StatusConflict, "this server runs no rollouts")
	}
	return id, fn(c.Request().Context(), id, wave, rollout.Caller{Name: actor(c), Subject: actorSubject(c)})
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

// haltedApproveNote is what the card of a wave awaiting approval says
// while its rollout is halted: the engine refuses the approval then
// (rollout.Approve), so the card offers no Approve button.
const haltedApproveNote = "Resume the rollout first: the wave of a halted rollout cannot be approved. After Resume it awaits approval again."

// waveView is what a wave's card says beyond its state: a wave that
// succeeded with failures within its limit "passed with 2 failed (limit
// 2)" (amber, never a plain success), whether the rollout is halted, and
// its counts linked to those targets.
func waveView(e store.Execution, w store.Wave) views.RolloutView {
	v := views.RolloutView{Halted: e.Status == store.StatusHalted, Tally: countLinks(e.ExecID, w.Counts, w.Index+1)}
	if fails := rollout.Failures(w.Counts); w.State == store.WaveSucceeded && fails > 0 {
		v.Outcome = "passed_with_failures"
		v.OutcomeText = fmt.Sprintf("passed with %d failed", fails) + failureLimit(w)
	}
	return v
}

// failureLimit is " (limit 2)" for a wave's max_failures, " (limit 10%:
// 3)" for a percentage of its targets, "" without one.
func failureLimit(w store.Wave) string {
	if w.MaxFailures == "" {
		return ""
	}
	t, err := jobs.ParseThreshold(w.MaxFailures)
	if err != nil {
		return ""
	}
	if t.Percent {
		return fmt.Sprintf(" (limit %s: %d)", t, t.Of(w.TargetCount))
	}
	return fmt.Sprintf(" (limit %d)", t.N)
}

// countLinks is the count of each target state of an execution (of its
// wave n, 1-based; 0: all its targets), each linked to the targets table
// filtered to that state (and wave).
func countLinks(execID string, c store.Counts, wave int) []views.CountLink {
	out := make([]views.CountLink, 0, len(wire.States))
	for _, st := range wire.States {
		l := views.CountLink{State: string(st), N: c.Of(st)}
		if l.N > 0 {
			q := url.Values{"state": {string(st)}}
			if wave > 0 {
				q.Set("wave", strconv.Itoa(wave))
			}
			page := "/executions/" + url.PathEscape(execID)
			l.URL, l.TableURL = page+"?"+q.Encode(), page+"/targets?"+q.Encode()
		}
		out = append(out, l)
	}
	return out
}
