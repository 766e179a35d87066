package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/metrics"
	"github.com/kanadehq/kanade/static"
)

func (s *server) routes(e *echo.Echo) {
	e.GET("/healthz", s.health)
	e.GET(metrics.MetricsPath, echo.WrapHandler(s.Metrics.Handler()))
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", staticHandler(static.FS))))

	// GUI
	e.GET("/", s.dashboard)
	e.GET("/agents", s.agentList)
	e.GET("/agents/:pc", s.agentShow)
	e.GET("/run", s.runForm)
	e.GET("/run/preview", s.runPreview)
	e.POST("/run", s.runCreate)
	e.GET("/jobs", s.jobList)
	e.GET("/jobs/:id", s.jobShow)
	e.GET("/executions", s.execList)
	e.GET("/executions/:id", s.execShow)
	e.GET("/executions/:id/summary", s.execSummary)
	e.GET("/executions/:id/targets", s.execTargets)
	e.GET("/executions/:id/events", s.execEvents)
	e.GET("/executions/:id/log/:pc", s.logPanel)
	e.GET("/executions/:id/log/:pc/stream", s.logStream)
	e.POST("/executions/:id/kill", s.execKill)
	e.POST("/jobs/:id/deploy", s.formDeploy)
	e.POST("/jobs/:id/revoke", s.formJobStatus(wire.StatusRevoked))
	e.POST("/jobs/:id/unrevoke", s.formJobStatus(wire.StatusActive))
	e.GET("/emergency-stop", s.estopPage)
	e.POST("/emergency-stop", s.estopForm)
	e.GET("/audit", s.auditPage)
	e.GET("/audit/export.csv", s.auditCSV)
	e.POST("/agents/:pc/revoke", s.formDecide("revoke", ""))
	e.POST("/agents/:pc/groups", s.formSetGroups)
	e.POST("/agents/groups/add", s.formAddToGroup)
	e.GET("/enrollments", s.enrollmentsPage)
	e.POST("/enrollments/:pc/approve", s.formDecide("approve", "/enrollments"))
	e.POST("/enrollments/:pc/reject", s.formDecide("reject", "/enrollments"))
	e.POST("/enrollments/tokens", s.tokenCreate)
	e.POST("/enrollments/tokens/:id/revoke", s.tokenRevoke)

	// JSON API (API.md)
	e.GET("/api/agents", s.apiAgents)
	e.GET("/api/agents/:pc", s.apiAgent)
	e.POST("/api/run", s.apiRun)
	e.POST("/api/deploy", s.apiDeploy)
	e.POST("/api/jobs/:id/revoke", s.apiJobStatus(wire.StatusRevoked))
	e.POST("/api/jobs/:id/unrevoke", s.apiJobStatus(wire.StatusActive))
	e.GET("/api/jobs", s.apiJobs)
	e.GET("/api/jobs/:id", s.apiJob)
	e.GET("/api/schemas/manifest.json", s.apiManifestSchema)
	e.GET("/api/executions", s.apiExecutions)
	e.GET("/api/executions/:id", s.apiExecution)
	e.POST("/api/executions/:id/kill", s.apiKill)
	e.GET("/api/results", s.apiResults)
	e.GET("/api/audit", s.apiAudit)
	e.GET("/api/emergency-stop", s.apiEstop)
	e.POST("/api/emergency-stop", s.apiEstopOn)
	e.DELETE("/api/emergency-stop", s.apiEstopOff)
	e.POST("/api/agents/:pc/revoke", s.apiDecide("revoke"))
	e.PUT("/api/agents/:pc/groups", s.apiSetGroups)
	e.GET("/api/enrollments", s.apiEnrollments)
	e.GET("/api/enrollment-tokens", s.apiTokens)
	e.POST("/api/enrollment-tokens", s.apiCreateToken)
	e.POST("/api/enrollment-tokens/:id/revoke", s.apiRevokeToken)
	e.GET("/api/command-keys", s.apiCommandKeys)
	e.POST("/api/command-keys/rotate", s.apiRotateCommandKeys)
	e.POST("/api/enrollments/:pc/approve", s.apiDecide("approve"))
	e.POST("/api/enrollments/:pc/reject", s.apiDecide("reject"))
}
