package web

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPIDoc is the OpenAPI 3.1 description of the JSON API (docs/API.md
// says the same in prose). TestOpenAPI_MatchesTheRouteTable keeps its
// operations equal to the /api routes of routes.go, and
// TestOpenAPI_RolesMatchTheRouteTable its x-kanade-role to their roles.
//
//go:embed openapi.json
var openAPIDoc []byte

// apiOpenAPI serves GET /api/openapi.json.
func (s *server) apiOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc)
}
