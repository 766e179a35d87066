package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/views"
)

// backupsPage is Settings › Backups: the newest `kanade backup` of this
// server's data directory.
func (s *server) backupsPage(c echo.Context) error {
	m := views.BackupsModel{Driver: s.DBDriver}
	if s.LastBackup != nil {
		r, ok, err := s.LastBackup()
		switch {
		case err != nil:
			m.Problem = "The record of the last backup cannot be read: " + err.Error()
		case ok:
			m.Has, m.At, m.File, m.Size, m.Database = true, timeText(r.At, s.Now()), r.File, bus.SizeText(r.Size), r.Database
		}
	}
	return render(c, http.StatusOK, views.BackupsPage(s.layout(c, "Backups", "settings"), m))
}
