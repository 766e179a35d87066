package web

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/health"
	"github.com/kanadehq/kanade/views"
	"github.com/kanadehq/kanade/views/components"
)

// apiSystem answers GET /api/system: the health report, every stream and
// bucket against its limit with its consumers' backlog, the volumes, the
// database's size and which replica leads what.
func (s *server) apiSystem(c echo.Context) error {
	if s.Health == nil {
		return apiErr(http.StatusNotFound, "not_found", "this server has no health monitor", nil)
	}
	sys, err := s.Health.System(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sys)
}

// systemPage is Admin › System.
func (s *server) systemPage(c echo.Context) error {
	if s.Health == nil {
		return echo.NewHTTPError(http.StatusNotFound, "this server has no health monitor")
	}
	sys, err := s.Health.System(c.Request().Context())
	m := views.SystemModel{Status: string(sys.Health.Status), CheckedAt: timeText(sys.Health.At, s.Now()), Problems: sys.Health.Problems,
		Warnings: sys.Health.Warnings, WarnPercent: s.Health.WarnPercent()}
	if err != nil {
		m.Error = err.Error()
	}
	for _, v := range sys.Health.Volumes {
		m.Volumes = append(m.Volumes, views.VolumeRow{Path: v.Path, Roles: strings.Join(v.Roles, ", "), Total: bytesText(v.Total),
			Free: bytesText(v.Free), UsedPercent: v.UsedPercent, Status: string(v.Status)})
	}
	for _, st := range sys.Streams {
		r := views.StreamRow{Name: st.Name, Kind: "stream", Messages: components.Number(int(st.Messages)), Bytes: bytesText(int64(st.Bytes)),
			Limit: "none", Setting: st.Key, Leader: st.Leader, WriteError: st.WriteError, Consumers: len(st.Consumers)}
		if st.Bucket != "" {
			r.Kind = "bucket"
		}
		if st.MaxBytes > 0 {
			r.Limit = bytesText(st.MaxBytes)
			r.UsedPercent = int(min(100, int64(st.Bytes)*100/st.MaxBytes))
		}
		if r.Setting != "" {
			r.Setting = "[streams] " + r.Setting
			if st.Auto {
				r.Setting += " (auto)"
			}
		}
		m.Streams = append(m.Streams, r)
		for _, co := range st.Consumers {
			m.Consumers = append(m.Consumers, views.ConsumerRow{Stream: st.Name, Name: co.Name, Pending: components.Number(int(co.Pending)),
				AckPending: components.Number(co.AckPending), Leader: co.Leader})
		}
	}
	b := sys.Broker
	m.Broker = views.BrokerFacts{Embedded: b.Embedded, StoreDir: b.StoreDir, Reserved: bytesText(b.Reserved), MaxStore: bytesText(b.MaxStore),
		Headroom: bytesText(b.Headroom), Restarts: b.Restarts, LastRestartError: b.LastRestartError}
	if b.LastRestart != nil {
		m.Broker.LastRestart = timeText(*b.LastRestart, s.Now())
	}
	m.Database = views.DatabaseFacts{Driver: sys.Database.Driver, Size: bytesText(sys.Database.Bytes), Error: sys.Database.Error}
	for _, l := range sys.Leaders {
		m.Leaders = append(m.Leaders, views.LeaderRow{Work: l.Work, Replica: l.Replica})
	}
	return render(c, http.StatusOK, views.SystemPage(s.layout(c, "System", "system"), m))
}

// healthBanner is the text of the banner every page shows while the
// server cannot store, or while a disk fills up ("" when all is well).
func healthBanner(r health.Report) string {
	switch r.Status {
	case health.Unavailable:
		return strings.Join(r.Problems, "; ") + ". Runs, results and audited actions wait until this is fixed; the server recovers by itself once there is space."
	case health.Warning:
		return strings.Join(r.Warnings, "; ") + ". Free space, or lower the [streams] sizes."
	}
	return ""
}

// unavailable turns a failure while the server cannot store (a full disk:
// the broker or the database refuses writes) into 503 with the reason and
// a Retry-After, instead of a 500 that reads like a bug.
func (s *server) unavailable(c echo.Context, status int, code, msg string) (int, string, string) {
	if s.Health == nil {
		return status, code, msg
	}
	r := s.Health.Check(c.Request().Context())
	if r.Status != health.Unavailable {
		return status, code, msg
	}
	c.Response().Header().Set("Retry-After", "10")
	return http.StatusServiceUnavailable, "unavailable", "the server cannot store right now (" + strings.Join(r.Problems, "; ") +
		"); try again once GET /healthz answers 200"
}
