package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// auditFilter reads actor, action, since, until (RFC 3339 or a duration
// back from now, e.g. "24h"), limit and offset.
func (s *server) auditFilter(c echo.Context) (store.AuditFilter, error) {
	limit, offset, err := paging(c)
	if err != nil {
		return store.AuditFilter{}, err
	}
	f := store.AuditFilter{Actor: strings.TrimSpace(c.QueryParam("actor")), Action: strings.TrimSpace(c.QueryParam("action")), Limit: limit, Offset: offset}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := strings.TrimSpace(c.QueryParam(p.name))
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*p.dst = t
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			*p.dst = s.Now().Add(-d)
		} else {
			return f, badParam(p.name, "must be an RFC 3339 time (2026-11-28T09:00:00Z) or a duration back from now (24h)")
		}
	}
	return f, nil
}

type auditJSON struct {
	ID     uint64    `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Detail any       `json:"detail"`
}

func (s *server) apiAudit(c echo.Context) error {
	f, err := s.auditFilter(c)
	if err != nil {
		return err
	}
	evs, total, err := s.Store.AuditEvents(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]auditJSON, 0, len(evs))
	for _, e := range evs {
		out = append(out, auditJSON{ID: e.Seq, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: e.Detail})
	}
	return c.JSON(http.StatusOK, map[string]any{"events": out, "total": total})
}

// auditFactsOf reads, for the events whose sentence needs them, what the
// store knows about their executions (an execution that is gone has none).
func (s *server) auditFactsOf(ctx context.Context, evs []store.AuditEvent) (map[string]auditFacts, error) {
	out := map[string]auditFacts{}
	for _, e := range evs {
		if !auditFactsFor(e.Action) {
			continue
		}
		if _, ok := out[e.Target]; ok {
			continue
		}
		var f auditFacts
		x, err := s.Store.Execution(ctx, e.Target)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			f.JobID, f.Targets = x.JobID, x.Counts.Total()
			ws, err := s.Store.Waves(ctx, e.Target)
			if err != nil {
				return nil, err
			}
			for _, w := range ws {
				f.Waves = append(f.Waves, w.Name)
			}
		}
		out[e.Target] = f
	}
	return out, nil
}

// indentJSON returns an event's detail indented for people ("" when none).
func indentJSON(raw []byte) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

func (s *server) auditPage(c echo.Context) error {
	f, err := s.auditFilter(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	evs, total, err := s.Store.AuditEvents(ctx, f)
	if err != nil {
		return err
	}
	facts, err := s.auditFactsOf(ctx, evs)
	if err != nil {
		return err
	}
	now := s.Now()
	m := views.AuditModel{Actor: f.Actor, Action: f.Action, Since: c.QueryParam("since")}
	for _, e := range evs {
		m.Rows = append(m.Rows, views.AuditRow{Seq: e.Seq, At: timeText(e.At, now), Actor: e.Actor, Action: e.Action,
			Target: e.Target, Sentence: auditSentence(e, facts[e.Target]), Detail: indentJSON(e.Detail)})
	}
	m.Pager = pager(*c.Request().URL, total, f.Offset, f.Limit, len(evs))
	q := c.Request().URL.Query()
	q.Del("offset")
	q.Del("limit")
	m.ExportURL = "/audit/export.csv?" + q.Encode()
	return s.page(c, "Audit log", "audit", views.AuditPage(s.layout(c, "Audit log", "audit"), m), views.AuditTable(m))
}

// auditCSV exports every event matching the filters (newest first), in pages.
func (s *server) auditCSV(c echo.Context) error {
	f, err := s.auditFilter(c)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="kanade-audit-%s.csv"`, s.Now().Format("20060102-150405")))
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write([]string{"id", "at", "actor", "action", "target", "detail"})
	f.Limit, f.Offset = 1000, 0
	for {
		evs, total, err := s.Store.AuditEvents(c.Request().Context(), f)
		if err != nil {
			return err
		}
		for _, e := range evs {
			_ = w.Write([]string{strconv.FormatUint(e.Seq, 10), e.At.Format(time.RFC3339Nano), csvSafe(e.Actor), csvSafe(e.Action), csvSafe(e.Target), csvSafe(string(e.Detail))})
		}
		f.Offset += len(evs)
		if len(evs) == 0 || f.Offset >= total {
			break
		}
	}
	w.Flush()
	return w.Error()
}

// csvSafe defuses values a spreadsheet would run as a formula.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
