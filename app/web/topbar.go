package web

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/views"
)

const (
	// topBarGap is the least time between two top-bar updates: the
	// executions topic fires with every batch of results, and the top bar
	// only shows approvals and the emergency stop.
	topBarGap = time.Second
	// topBarRefresh re-reads the top bar this often even without events
	// (an emergency stop set by another server of a cluster).
	topBarRefresh = 30 * time.Second
)

// approvals counts the rollout waves awaiting an approval p may give:
// approvers and admins, and not the waves of rollouts p started when
// four-eyes applies (the rule is app/rollout's CanApprove).
func (s *server) approvals(ctx context.Context, p *auth.Principal) int {
	if !p.Can(auth.Approver) || s.Store == nil {
		return 0
	}
	es, err := s.Store.ExecutionsAwaitingApproval(ctx)
	if err != nil {
		return 0 // the top bar must not fail a page; the pages that list executions say why
	}
	n := 0
	for _, e := range es {
		if rollout.CanApprove(e, rollout.Caller{Name: p.Name, Subject: p.Subject}) == nil {
			n++
		}
	}
	return n
}

// estopState is the emergency stop for the top bar and the banner (nil
// when it is off or cannot be read).
func (s *server) estopState(ctx context.Context) *views.EstopState {
	if s.Dispatcher == nil {
		return nil
	}
	es, err := s.Dispatcher.EmergencyStop(ctx)
	if err != nil || !es.Active {
		return nil
	}
	return &views.EstopState{Since: timeText(es.Since, s.Now()), By: es.By, Reason: es.Reason}
}

// topBarEvents streams the top bar's live part (the approvals chip and
// the emergency stop) and the emergency-stop banner as one "topbar"
// event: at once, then whenever they change. kanade.js holds the stream
// only while the tab is visible.
func (s *server) topBarEvents(c echo.Context) error {
	release, err := s.acquireSSE(c)
	if err != nil {
		return err
	}
	defer release()
	ch, cancel := s.Events.Subscribe(events.Executions)
	defer cancel()
	defer s.Metrics.TrackSSE()()
	out := startSSE(c)
	ctx := c.Request().Context()
	var last string
	send := func() error {
		l := s.layout(c, "", "")
		html, err := renderString(c, views.TopBarUpdate(l))
		if err != nil || html == last {
			return err
		}
		last = html
		return out.send("topbar", html)
	}
	if send() != nil {
		return nil
	}
	sent := time.Now()
	life := time.NewTimer(s.SSEMaxLifetime)
	defer life.Stop()
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	refresh := time.NewTicker(topBarRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-life.C:
			return nil
		case <-ping.C:
			if out.comment("ping") != nil {
				return nil
			}
		case <-refresh.C:
			if send() != nil {
				return nil
			}
		case <-ch:
			// Coalesce a burst: what arrives during the gap is one update.
			if !waitGap(ctx, sent, topBarGap) {
				return nil
			}
			sent = time.Now()
			if send() != nil {
				return nil
			}
		}
	}
}
