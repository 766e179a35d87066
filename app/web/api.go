package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/health"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/store"
)

// agentJSON is docs/API.md's Agent.
type agentJSON struct {
	PCID              string     `json:"pc_id"`
	Hostname          string     `json:"hostname"`
	OS                string     `json:"os"`
	OSVersion         string     `json:"os_version"`
	Arch              string     `json:"arch"`
	AgentVersion      string     `json:"agent_version"`
	Groups            []string   `json:"groups"`
	Online            bool       `json:"online"`
	HeartbeatLate     bool       `json:"heartbeat_late"` // online, but the next heartbeat is overdue (store.Agent.HeartbeatLate)
	LastSeen          *time.Time `json:"last_seen"`
	FirstSeen         *time.Time `json:"first_seen,omitempty"`
	HeartbeatInterval string     `json:"heartbeat_interval,omitempty"`
	Running           int        `json:"running"`
	RunningExecs      []string   `json:"running_execs,omitempty"` // the exec_ids it runs, when it lists them all
	// AgentRSSBytes and AgentCPUPercent are the agent process's own
	// resident memory and CPU use (100 = one core); absent until reported.
	AgentRSSBytes   int64   `json:"agent_rss_bytes,omitempty"`
	AgentCPUPercent float64 `json:"agent_cpu_percent,omitempty"`
	// User is who is logged on at the PC, as its last heartbeat said.
	User      string         `json:"user,omitempty"`
	Inventory *inventoryJSON `json:"inventory,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func toAgentJSON(a store.Agent, now time.Time) agentJSON {
	groups := a.Groups
	if groups == nil {
		groups = []string{}
	}
	return agentJSON{PCID: a.PCID, Hostname: a.Hostname, OS: a.OS, OSVersion: a.OSVersion, Arch: a.Arch,
		AgentVersion: a.AgentVersion, Groups: groups, Online: a.Online(now), HeartbeatLate: a.HeartbeatLate(now), LastSeen: timePtr(a.LastSeen),
		FirstSeen: timePtr(a.FirstSeen), HeartbeatInterval: a.Interval.String(), Running: a.Running, RunningExecs: a.RunningExecs,
		AgentRSSBytes: a.RSSBytes, AgentCPUPercent: a.CPUPercent, User: a.User}
}

type countsJSON struct {
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	TimedOut  int `json:"timed_out"`
	Killed    int `json:"killed"`
	Skipped   int `json:"skipped"`
	Expired   int `json:"expired"`
	Lost      int `json:"lost"`
}

// toCountsJSON is c in the API's words. countsJSON keeps one field per
// state, not a map, so that the keys come in wire.States order as
// docs/API.md and openapi.json show them.
func toCountsJSON(c store.Counts) countsJSON {
	return countsJSON{c.Pending, c.Running, c.Succeeded, c.Failed, c.TimedOut, c.Killed, c.Skipped, c.Expired, c.Lost}
}

// executionJSON is docs/API.md's Execution.
type executionJSON struct {
	ExecID  string       `json:"exec_id"`
	JobID   string       `json:"job_id"`
	Version string       `json:"version"`
	Status  store.Status `json:"status"`
	// Outcome is store.Outcome: what a person reads ("failed"), where
	// status is the life cycle ("completed").
	Outcome     store.Outcome `json:"outcome"`
	Title       string        `json:"title,omitempty"`
	InitiatedBy string        `json:"initiated_by"`
	CreatedAt   time.Time     `json:"created_at"`
	DeadlineAt  *time.Time    `json:"deadline_at,omitempty"`
	FinishedAt  *time.Time    `json:"finished_at,omitempty"`
	TargetCount int           `json:"target_count"`
	Counts      countsJSON    `json:"counts"`
	Target      store.Target  `json:"target"`
	Shell       string        `json:"shell,omitempty"`
	Script      string        `json:"script,omitempty"`
	Timeout     string        `json:"timeout,omitempty"`
	Targets     []resultJSON  `json:"targets,omitempty"`
	KillRequest *killReqJSON  `json:"kill_requested,omitempty"`
	HaltReason  string        `json:"halt_reason,omitempty"`
	FourEyes    bool          `json:"four_eyes,omitempty"`
	Waves       []waveJSON    `json:"waves,omitempty"`
}

// waveJSON is docs/API.md's Wave.
type waveJSON struct {
	Index       int        `json:"index"`
	Name        string     `json:"name"`
	State       string     `json:"state"`
	TargetCount int        `json:"target_count"`
	Counts      countsJSON `json:"counts"`
	Approval    bool       `json:"approval"`
	Delay       string     `json:"delay,omitempty"`
	MaxFailures string     `json:"max_failures,omitempty"`
	MinSuccess  string     `json:"min_success,omitempty"`
	ApprovedBy  string     `json:"approved_by,omitempty"`
	ApprovedAt  *time.Time `json:"approved_at,omitempty"`
	StartsAt    *time.Time `json:"starts_at,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	DeadlineAt  *time.Time `json:"deadline_at,omitempty"`
	Reason      string     `json:"reason,omitempty"`
}

// executionJSON is an execution with its waves (a rollout's).
func (s *server) executionJSON(ctx context.Context, e store.Execution) (executionJSON, error) {
	j := toExecutionJSON(e)
	ws, err := s.Store.Waves(ctx, e.ExecID)
	if err != nil {
		return j, err
	}
	if len(ws) > 0 {
		j.Waves = toWavesJSON(ws)
	}
	return j, nil
}

func toWavesJSON(ws []store.Wave) []waveJSON {
	out := make([]waveJSON, 0, len(ws))
	for _, w := range ws {
		c := w.Counts
		j := waveJSON{Index: w.Index, Name: w.Name, State: w.State, TargetCount: w.TargetCount,
			Counts:   toCountsJSON(c),
			Approval: w.Approval, MaxFailures: w.MaxFailures, MinSuccess: w.MinSuccess, ApprovedBy: w.ApprovedBy,
			ApprovedAt: timePtr(w.ApprovedAt), StartedAt: timePtr(w.StartedAt), FinishedAt: timePtr(w.FinishedAt),
			DeadlineAt: timePtr(w.DeadlineAt), Reason: w.Reason}
		if w.Delay > 0 {
			j.Delay = w.Delay.String()
		}
		if w.StartedAt.IsZero() {
			j.StartsAt = timePtr(w.ReadyAt)
		}
		out = append(out, j)
	}
	return out
}

type killReqJSON struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

func toExecutionJSON(e store.Execution) executionJSON {
	c := e.Counts
	j := executionJSON{ExecID: e.ExecID, JobID: e.JobID, Version: e.Version, Status: e.Status, Outcome: e.Outcome(), Title: e.Title, InitiatedBy: e.InitiatedBy,
		CreatedAt: e.CreatedAt.UTC(), DeadlineAt: timePtr(e.DeadlineAt), FinishedAt: timePtr(e.FinishedAt),
		TargetCount: c.Total(), Target: e.Target, Shell: e.Shell, Script: e.Script, Timeout: e.Timeout.String(),
		Counts: toCountsJSON(c)}
	if !e.KillRequestedAt.IsZero() {
		j.KillRequest = &killReqJSON{By: e.KillRequestedBy, At: e.KillRequestedAt.UTC()}
	}
	j.HaltReason, j.FourEyes = e.HaltReason, e.FourEyes
	return j
}

// resultJSON is docs/API.md's TargetResult.
type resultJSON struct {
	ExecID     string     `json:"exec_id"`
	PCID       string     `json:"pc_id"`
	State      wire.State `json:"state"`
	Reason     string     `json:"reason,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	Stdout     string     `json:"stdout"`
	Stderr     string     `json:"stderr"`
	Truncated  bool       `json:"truncated"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Wave       *int       `json:"wave,omitempty"`
}

func toResultJSON(r store.Result) resultJSON {
	return resultJSON{ExecID: r.ExecID, PCID: r.PCID, State: r.State, Reason: r.Reason, ExitCode: r.ExitCode,
		Stdout: r.Stdout, Stderr: r.Stderr, Truncated: r.Truncated, StartedAt: timePtr(r.StartedAt), FinishedAt: timePtr(r.FinishedAt), Wave: r.Wave}
}

func (s *server) apiAgents(c echo.Context) error {
	f, err := s.agentFilter(c)
	if err != nil {
		return err
	}
	agents, total, err := s.Store.Agents(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]agentJSON, 0, len(agents))
	for _, a := range agents {
		out = append(out, toAgentJSON(a, f.Now))
	}
	return c.JSON(http.StatusOK, map[string]any{"agents": out, "total": total})
}

func (s *server) apiAgent(c echo.Context) error {
	pc, err := idParam(c, "pc", "agent")
	if err != nil {
		return err
	}
	a, err := s.Store.Agent(c.Request().Context(), pc)
	if err != nil {
		return err
	}
	j := toAgentJSON(a, s.Now())
	inv, err := s.Store.AgentInventory(c.Request().Context(), pc)
	switch {
	case err == nil:
		j.Inventory = toInventoryJSON(inv)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	return c.JSON(http.StatusOK, j)
}

// inventoryJSON is docs/API.md's inventory: the flat facts it names plus every
// section the agent reported.
type inventoryJSON struct {
	CPUModel    string         `json:"cpu_model,omitempty"`
	CPUCores    int            `json:"cpu_cores,omitempty"`
	RAMBytes    int64          `json:"ram_bytes,omitempty"`
	Disks       []wire.Disk    `json:"disks"`
	CollectedAt time.Time      `json:"collected_at"`
	ReceivedAt  time.Time      `json:"received_at"`
	OS          wire.OSInfo    `json:"os"`
	Hardware    wire.Hardware  `json:"hardware"`
	Network     []wire.NIC     `json:"network"`
	Software    []wire.Package `json:"software"`
	Hotfixes    []wire.Hotfix  `json:"hotfixes"`
	Errors      []string       `json:"errors,omitempty"`
	Truncated   bool           `json:"truncated,omitempty"`
}

func toInventoryJSON(inv store.Inventory) *inventoryJSON {
	j := &inventoryJSON{CPUModel: inv.Hardware.CPUModel, CPUCores: inv.Hardware.CPUCores, RAMBytes: inv.Hardware.RAMBytes,
		Disks: inv.Disks, CollectedAt: inv.CollectedAt, ReceivedAt: inv.ReceivedAt, OS: inv.OS, Hardware: inv.Hardware,
		Network: inv.Network, Software: inv.Software, Hotfixes: inv.Hotfixes, Errors: inv.Errors, Truncated: inv.Truncated}
	if j.Disks == nil {
		j.Disks = []wire.Disk{}
	}
	if j.Network == nil {
		j.Network = []wire.NIC{}
	}
	if j.Software == nil {
		j.Software = []wire.Package{}
	}
	if j.Hotfixes == nil {
		j.Hotfixes = []wire.Hotfix{}
	}
	return j
}

// runRequestJSON is the body of POST /api/run.
type runRequestJSON struct {
	Target   *store.Target `json:"target"`
	Shell    string        `json:"shell"`
	Script   string        `json:"script"`
	Timeout  string        `json:"timeout"`
	Deadline string        `json:"deadline"`
	Title    string        `json:"title"`
}

// decodeJSON reads a strict JSON body: unknown fields and wrong types are
// errors that name the field.
func decodeJSON(c echo.Context, v any) error {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if ct != echo.MIMEApplicationJSON {
		return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json", nil)
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &te):
			return validation(te.Field, fmt.Sprintf("must be %s, not %s", jsonKind(te.Type.Kind().String()), te.Value))
		case errors.As(err, &se):
			return apiErr(http.StatusBadRequest, "invalid_json", fmt.Sprintf("the body is not valid JSON (at byte %d)", se.Offset), nil)
		case errors.As(err, &mbe):
			return apiErr(http.StatusRequestEntityTooLarge, "too_large", "the body is larger than 1 MiB", nil)
		case errors.Is(err, io.EOF):
			return apiErr(http.StatusBadRequest, "invalid_json", "the body is empty", nil)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return validation(f, "is not a known field")
		default:
			return apiErr(http.StatusBadRequest, "invalid_json", err.Error(), nil)
		}
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, "invalid_json", "the body has more than one JSON value", nil)
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "slice":
		return "a list"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	default:
		return "a number"
	}
}

func validation(field, msg string) error {
	return problem.New(field, msg)
}

func (s *server) apiRun(c echo.Context) error {
	var req runRequestJSON
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	r := dispatch.RunRequest{Shell: req.Shell, Script: req.Script, Actor: actor(c), ActorSubject: actorSubject(c), Title: req.Title}
	var ps []problem.Problem
	if req.Target == nil {
		ps = append(ps, problem.Problem{Field: "target", Message: "is required: {\"all\": true}, {\"groups\": [...]} or {\"pcs\": [...]}"})
	} else {
		r.Target = *req.Target
	}
	for _, d := range []struct {
		field, v string
		dst      *time.Duration
	}{{"timeout", req.Timeout, &r.Timeout}, {"deadline", req.Deadline, &r.Deadline}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			ps = append(ps, problem.Problem{Field: d.field, Message: fmt.Sprintf("%q is not a duration like \"30s\", \"10m\" or \"1h30m\"", d.v)})
			continue
		}
		*d.dst = max(v, -1) // 0s is an explicit, invalid value, not "use the default"
		if v == 0 {
			*d.dst = -1
		}
	}
	if len(ps) > 0 {
		// Report every problem at once, in the order of the fields.
		seen := map[string]bool{}
		for _, p := range ps {
			seen[p.Field] = true
		}
		for _, p := range s.Dispatcher.Check(&r) {
			if !seen[p.Field] {
				ps = append(ps, p)
			}
		}
		sortProblems(ps)
		return &problem.Error{Problems: ps}
	}
	e, err := s.Dispatcher.Run(c.Request().Context(), r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, toExecutionJSON(e))
}

func (s *server) apiExecutions(c echo.Context) error {
	f, err := execFilter(c)
	if err != nil {
		return err
	}
	execs, total, err := s.Store.Executions(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]executionJSON, 0, len(execs))
	for _, e := range execs {
		j := toExecutionJSON(e)
		j.Script = "" // lists stay small; GET /api/executions/{id} has it
		out = append(out, j)
	}
	return c.JSON(http.StatusOK, map[string]any{"executions": out, "total": total})
}

func (s *server) apiExecution(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return err
	}
	// Targets first, then the execution, and the counts from the very
	// targets returned: a response never has counts that disagree with its
	// targets, nor a status older than them.
	var targets []store.Result
	for offset := 0; ; {
		rs, total, err := s.Store.Results(ctx, store.ResultFilter{ExecID: id, Limit: 1000, Offset: offset})
		if err != nil {
			return err
		}
		targets = append(targets, rs...)
		offset += len(rs)
		if len(rs) == 0 || offset >= total {
			break
		}
	}
	e, err := s.Store.Execution(ctx, id)
	if err != nil {
		return err
	}
	e.Counts = store.CountResults(targets)
	j, err := s.executionJSON(ctx, e)
	if err != nil {
		return err
	}
	j.Targets = make([]resultJSON, 0, len(targets))
	for _, r := range targets {
		j.Targets = append(j.Targets, toResultJSON(r))
	}
	return c.JSON(http.StatusOK, j)
}

// maxWait is the longest GET /api/executions/{id}/wait holds a request.
const maxWait = 5 * time.Minute

// apiExecutionWait answers with the execution (counts, no targets) once
// it is no longer running — completed, killed, halted or awaiting an
// approval — or when timeout (default 30s, at most 5m) is over, whichever
// comes first; the caller tells by its status. It wakes on the
// execution's events and checks once a second besides (another server
// process may have written it).
func (s *server) apiExecutionWait(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return err
	}
	timeout := 30 * time.Second
	if v := c.QueryParam("timeout"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil || timeout < 0 || timeout > maxWait {
			return validation("timeout", "must be a duration from 0s to 5m, such as 30s")
		}
	}
	// The server's write timeout (2 minutes) would cut a longer wait.
	_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Now().Add(timeout + time.Minute))
	changed, unsubscribe := s.Events.Subscribe(events.Execution(id))
	defer unsubscribe()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		status, err := s.Store.ExecutionStatus(ctx, id)
		if err != nil {
			return err
		}
		if status != store.StatusRunning {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
		case <-changed:
			continue
		case <-tick.C:
			continue
		}
		break
	}
	e, err := s.Store.Execution(ctx, id)
	if err != nil {
		return err
	}
	j, err := s.executionJSON(ctx, e)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, j)
}

func (s *server) apiKill(c echo.Context) error {
	id, err := idParam(c, "id", "execution")
	if err != nil {
		return err
	}
	if err := s.Dispatcher.Kill(c.Request().Context(), id, actor(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"exec_id": id, "killed_requested": true})
}

func (s *server) apiResults(c echo.Context) error {
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	exec, err := optionalID(c, "exec_id")
	if err != nil {
		return err
	}
	pc, err := optionalID(c, "pc_id")
	if err != nil {
		return err
	}
	state, err := stateParam(c)
	if err != nil {
		return err
	}
	rs, total, err := s.Store.Results(c.Request().Context(), store.ResultFilter{ExecID: exec, PCID: pc, State: state, Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	out := make([]resultJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, toResultJSON(r))
	}
	return c.JSON(http.StatusOK, map[string]any{"results": out, "total": total})
}

// health answers /healthz: 200 while the server can do its work (the
// broker stores, the database writes, the volumes have room; a volume
// filling up is a warning in "disk"), else 503 with the problems in
// "nats", "db" and "disk". Every value is a string.
func (s *server) health(c echo.Context) error {
	ctx := c.Request().Context()
	if s.Health != nil {
		r := s.Health.Check(ctx)
		body := map[string]string{"status": "ok", "nats": r.NATS, "db": r.DB, "disk": r.Disk}
		if r.Status == health.Unavailable {
			body["status"] = "unavailable"
			return c.JSON(http.StatusServiceUnavailable, body)
		}
		return c.JSON(http.StatusOK, body)
	}
	body := map[string]string{"status": "ok", "nats": "ok", "db": "ok"}
	status := http.StatusOK
	if err := s.NATSHealthy(ctx); err != nil {
		body["nats"], body["status"], status = "error: "+err.Error(), "unavailable", http.StatusServiceUnavailable
	}
	if err := s.Store.Ping(ctx); err != nil {
		body["db"], body["status"], status = "error: "+err.Error(), "unavailable", http.StatusServiceUnavailable
	}
	return c.JSON(status, body)
}

var fieldRank = map[string]int{"target": 0, "target.all": 1, "target.groups": 2, "target.pcs": 3, "shell": 4, "script": 5, "timeout": 6, "deadline": 7, "title": 8}

func sortProblems(ps []problem.Problem) {
	sort.SliceStable(ps, func(i, j int) bool { return fieldRank[ps[i].Field] < fieldRank[ps[j].Field] })
}
