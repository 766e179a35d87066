package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/metrics"
	"github.com/kanadehq/kanade/static"
)

// routes lists every route with the least role that may call it (API.md):
// viewer reads, operator runs/deploys/kills/revokes jobs, approver approves
// waves, admin does the rest. Routes without a role are public.
func (s *server) routes(e *echo.Echo) {
	viewer, operator, approver, admin := s.need(auth.Viewer), s.need(auth.Operator), s.need(auth.Approver), s.need(auth.Admin)

	// Public
	e.GET("/healthz", s.health)
	e.GET(metrics.MetricsPath, s.serveMetrics) // a token outside dev mode
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", staticHandler(static.FS))))
	e.GET("/login", s.loginPage)
	e.GET("/auth/start", s.loginStart)
	e.GET("/auth/callback", s.loginCallback)
	e.POST("/logout", s.logout)
	// An enrollment token that may still enroll, or any signed-in role
	// (checked in the handler: the caller is a PC being installed).
	e.GET("/download/agent/:platform", s.downloadAgent)

	// GUI
	e.GET("/", s.dashboard, viewer)
	e.GET("/agents", s.agentList, viewer)
	e.GET("/agents/:pc", s.agentShow, viewer)
	e.GET("/run", s.runForm, operator)
	e.GET("/run/preview", s.runPreview, operator)
	e.POST("/run", s.runCreate, operator)
	e.GET("/jobs", s.jobList, viewer)
	e.GET("/jobs/:id", s.jobShow, viewer)
	e.GET("/executions", s.execList, viewer)
	e.GET("/executions/:id", s.execShow, viewer)
	e.GET("/executions/:id/summary", s.execSummary, viewer)
	e.GET("/executions/:id/targets", s.execTargets, viewer)
	e.GET("/executions/:id/events", s.execEvents, viewer)
	e.GET("/executions/:id/log/:pc", s.logPanel, viewer)
	e.GET("/executions/:id/log/:pc/stream", s.logStream, viewer)
	e.POST("/executions/:id/kill", s.execKill, operator)
	e.POST("/executions/:id/waves/:n/approve", s.formRollout(s.approveWave), approver)
	e.POST("/executions/:id/halt", s.formRollout(s.haltRollout), operator)
	e.POST("/executions/:id/resume", s.formRollout(s.resumeRollout), operator)
	e.POST("/jobs/:id/deploy", s.formDeploy, operator)
	e.POST("/jobs/:id/revoke", s.formJobStatus(wire.StatusRevoked), operator)
	e.POST("/jobs/:id/unrevoke", s.formJobStatus(wire.StatusActive), operator)
	e.GET("/schedules", s.schedulesPage, viewer)
	e.POST("/schedules", s.formCreateSchedule, operator)
	e.POST("/schedules/:id/toggle", s.formToggleSchedule, operator)
	e.POST("/schedules/:id/delete", s.formDeleteSchedule, operator)
	e.GET("/emergency-stop", s.estopPage, viewer)
	e.POST("/emergency-stop", s.estopForm, admin)
	e.GET("/audit", s.auditPage, viewer)
	e.GET("/audit/export.csv", s.auditCSV, viewer)
	e.POST("/agents/:pc/inventory", s.refreshInventory, operator)
	e.POST("/agents/:pc/ping", s.pingAgent, operator)
	e.POST("/agents/:pc/revoke", s.formDecide("revoke", ""), admin)
	e.POST("/agents/:pc/groups", s.formSetGroups, admin)
	e.POST("/agents/groups/add", s.formAddToGroup, admin)
	e.GET("/enrollments", s.enrollmentsPage, admin)
	e.POST("/enrollments/:pc/approve", s.formDecide("approve", "/enrollments"), admin)
	e.POST("/enrollments/:pc/reject", s.formDecide("reject", "/enrollments"), admin)
	e.POST("/enrollments/tokens", s.tokenCreate, admin)
	e.POST("/enrollments/tokens/:id/revoke", s.tokenRevoke, admin)
	e.POST("/enrollments/tokens/default/rotate", s.tokenRotateDefault, admin)
	e.GET("/settings", s.settingsPage, admin)
	e.POST("/settings/tokens", s.formCreateAPIToken, admin)
	e.POST("/settings/tokens/:id/revoke", s.formRevokeAPIToken, admin)
	e.GET("/settings/add-agents", s.addAgentsPage, admin)
	e.POST("/settings/add-agents", s.addAgentsForm, admin)
	e.GET("/system", s.systemPage, admin)

	// JSON API (API.md)
	e.GET("/api/me", s.apiMe, viewer)
	e.GET("/api/agents", s.apiAgents, viewer)
	e.GET("/api/agents/:pc", s.apiAgent, viewer)
	e.POST("/api/run", s.apiRun, operator)
	e.POST("/api/deploy", s.apiDeploy, operator)
	e.POST("/api/jobs/:id/revoke", s.apiJobStatus(wire.StatusRevoked), operator)
	e.POST("/api/jobs/:id/unrevoke", s.apiJobStatus(wire.StatusActive), operator)
	e.GET("/api/jobs", s.apiJobs, viewer)
	e.GET("/api/jobs/:id", s.apiJob, viewer)
	e.GET("/api/schemas/manifest.json", s.apiManifestSchema, viewer)
	e.GET("/api/executions", s.apiExecutions, viewer)
	e.GET("/api/executions/:id", s.apiExecution, viewer)
	e.GET("/api/executions/:id/wait", s.apiExecutionWait, viewer)
	e.POST("/api/executions/:id/kill", s.apiKill, operator)
	e.POST("/api/executions/:id/waves/:n/approve", s.apiRollout(s.approveWave), approver)
	e.POST("/api/executions/:id/halt", s.apiRollout(s.haltRollout), operator)
	e.POST("/api/executions/:id/resume", s.apiRollout(s.resumeRollout), operator)
	e.GET("/api/results", s.apiResults, viewer)
	e.GET("/api/audit", s.apiAudit, viewer)
	e.GET("/api/schedules", s.apiSchedules, viewer)
	e.GET("/api/schedules/:id/fires", s.apiScheduleFires, viewer)
	e.POST("/api/schedules", s.apiCreateSchedule, operator)
	e.PUT("/api/schedules/:id", s.apiUpdateSchedule, operator)
	e.DELETE("/api/schedules/:id", s.apiDeleteSchedule, operator)
	e.GET("/api/emergency-stop", s.apiEstop, viewer)
	e.POST("/api/emergency-stop", s.apiEstopOn, admin)
	e.DELETE("/api/emergency-stop", s.apiEstopOff, admin)
	e.POST("/api/agents/:pc/inventory", s.refreshInventory, operator)
	e.POST("/api/agents/:pc/ping", s.pingAgent, operator)
	e.POST("/api/agents/:pc/revoke", s.apiDecide("revoke"), admin)
	e.PUT("/api/agents/:pc/groups", s.apiSetGroups, admin)
	e.GET("/api/enrollments", s.apiEnrollments, admin)
	e.POST("/api/enrollments/:pc/approve", s.apiDecide("approve"), admin)
	e.POST("/api/enrollments/:pc/reject", s.apiDecide("reject"), admin)
	e.GET("/api/enrollment-tokens", s.apiTokens, admin)
	e.POST("/api/enrollment-tokens", s.apiCreateToken, admin)
	e.POST("/api/enrollment-tokens/:id/revoke", s.apiRevokeToken, admin)
	e.POST("/api/enrollment-tokens/default/rotate", s.apiRotateDefaultToken, admin)
	e.POST("/api/agent-installs", s.apiAgentInstall, admin)
	e.GET("/api/command-keys", s.apiCommandKeys, viewer)
	e.POST("/api/command-keys/rotate", s.apiRotateCommandKeys, admin)
	e.GET("/api/tokens", s.apiAPITokens, admin)
	e.POST("/api/tokens", s.apiCreateAPIToken, admin)
	e.POST("/api/tokens/:id/revoke", s.apiRevokeAPIToken, admin)
	e.GET("/api/system", s.apiSystem, admin)
}
