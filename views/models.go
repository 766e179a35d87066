package views

// The view models below are built by the handlers in app/web and only
// formatted by the templates: every string is already in its display form
// (times as TimeText, durations and exit codes as text), and every URL is
// ready to use.

// Layout is what every page shows around its content: the top bar, the
// banners and the footer.
type Layout struct {
	Title     string // page title, shown in the browser tab
	Nav       string // active section: "dashboard", "agents", "run", "jobs", "executions"
	DevMode   bool   // show the amber dev-mode banner
	CSRFToken string // sent by htmx in X-CSRF-Token and by forms in _csrf
	User      string // the caller's display name
	Role      string // viewer, operator, approver or admin
	SignedIn  bool   // a signed-in user (shows Sign out)
	// Approvals counts the rollout waves awaiting an approval the caller
	// may give (approvers and admins; the four-eyes rule applied).
	Approvals int
	Version   string
	// Estop is the emergency stop while it is on (nil when off): the top
	// bar and a red banner say so on every page.
	Estop *EstopState
	// LiveURL is the top bar's live stream (empty: not live).
	LiveURL string
	// Health, when not empty, shows a banner about the server's health:
	// red when HealthLevel is "unavailable" (it cannot store), amber for
	// "warning" (a disk filling up). HealthURL links it to the System page.
	Health, HealthLevel, HealthURL string
}

// EstopState is the emergency stop that is on: since when, who turned it
// on and why.
type EstopState struct {
	Since      TimeText
	By, Reason string
}

// roleRank orders the roles; the server enforces them, the views only
// hide what the caller's role cannot do.
var roleRank = map[string]int{"viewer": 1, "operator": 2, "approver": 3, "admin": 4}

// Can reports whether the caller has at least role.
func (l Layout) Can(role string) bool {
	return roleRank[l.Role] >= roleRank[role] && roleRank[role] > 0
}

// TimeText is a point in time formatted by the handler.
type TimeText struct {
	Rel string // "12s ago", "in 3m", or "—" when there is no time
	Abs string // RFC 3339; empty when there is no time
}

// Pager describes the current page of a list. The URLs are empty when there
// is no such page.
type Pager struct {
	Total, From, To  int
	PrevURL, NextURL string
}

// Counts is the number of targets of an execution in each state (N, keyed
// by the states of components.TargetStates) and in all (Total).
type Counts struct {
	N     map[string]int
	Total int
}

// AgentRow is one agent in a list.
type AgentRow struct {
	PCID, Hostname, OS, OSVersion, Arch, AgentVersion string
	Groups                                            []string
	Online                                            bool
	HeartbeatLate                                     bool // online, but its heartbeat is overdue
	LastSeen                                          TimeText
	URL                                               string // the agent's page
	// OfflineFor is how long an offline agent has been silent ("3h");
	// empty while it is online.
	OfflineFor string
	// IPs are its addresses from its newest inventory, IPv4 first (none
	// before it reported one).
	IPs []string
	// User is who is logged on at its console, as its last heartbeat
	// said ("" when nobody is or its agent does not say).
	User string
}

// AgentListModel is the agents page and its table partial.
type AgentListModel struct {
	Q, Status, Group  string // current filters; Status is "", "online" or "offline"
	Software, Version string // installed-software and agent-version filters
	OS                string // "", "windows", "linux" or "darwin"
	Sort              string // "pc", "-last_seen", …
	// SortURLs maps a column to the URL sorting by it (the current column
	// toggles its direction).
	SortURLs      map[string]string
	Groups        []string // every group, for the group filter
	Rows          []AgentRow
	Pager         Pager
	Online, Total int
	Pending       int // agents waiting for enrollment approval
	CSRFToken     string
}

// AgentModel is one agent's page.
type AgentModel struct {
	Agent     AgentRow
	Interval  string // heartbeat interval, e.g. "30s"
	Running   int    // executions running on it now
	FirstSeen TimeText
	Recent    []TargetRow // its latest results
	RunURL    string      // the Run page preset to this PC
	// Identity is the agent's enrollment (nil when it has none, e.g. with a
	// static credential on an external broker).
	Identity *AgentIdentity
	// Inventory is nil until the agent reported one.
	Inventory *InventoryView
	// RefreshURL asks the agent for a new inventory and PingURL measures
	// the round trip to it (empty: not allowed).
	RefreshURL, PingURL string
	// Blocked, when not empty, says why Run, Ping and Refresh cannot reach
	// this agent ("revoked by alice: stolen laptop"); they are shown
	// disabled.
	Blocked string
	// Shells and Shell fill the inline Run form (shown with RunURL).
	Shells    []string
	Shell     string
	CSRFToken string
}

// DashboardModel is the dashboard.
type DashboardModel struct {
	Online, Offline, Total int
	Recent                 []ExecRow
	// ByOS and ByVersion break the fleet down, most common first.
	ByOS, ByVersion []Breakdown
	// Failures are the newest targets that failed or timed out in the
	// last 24 hours; FailureTotal counts them all.
	Failures     []TargetRow
	FailureTotal int
}

// Breakdown is a value, how many agents have it, and the agents list
// filtered to them ("" when there is no such filter).
type Breakdown struct {
	Value string
	N     int
	URL   string
}

// ExecRow is one execution in a list.
type ExecRow struct {
	ExecID, JobID, Status, InitiatedBy string
	Created                            TimeText
	Counts                             Counts
	URL                                string // the execution's page
	// Outcome is what the execution's badge says (store.Outcome).
	Outcome string
	// What names it: its title, else the script's first line (a job: its
	// id); Detail is that line or job beside a title ("" without one).
	What, Detail string
	// Target is its target in words: "PC-042", "group canary, 40 PCs".
	Target string
}

// ExecListModel is the executions page and its table partial.
type ExecListModel struct {
	Status, JobID string // current filters; Status is a status or an outcome
	// PCID, Title and InitiatedBy are the other filters.
	PCID, Title, InitiatedBy string
	// Statuses are the choices of the status filter: the outcomes, then
	// "completed" (any outcome of an execution that ended by itself).
	Statuses []string
	Rows     []ExecRow
	Pager    Pager
}

// RunModel is the Run form, empty or re-rendered with errors.
type RunModel struct {
	TargetMode                          string // "pcs" | "groups" | "all"
	PCs, Groups, Shell, Script, Timeout string
	// Title is the optional title or ticket of the run.
	Title  string
	Shells []string
	// ShellHint asks for a shell when the target's PCs run different
	// systems (Shell is then "": none is chosen for them).
	ShellHint string
	// ShellChosen: the shell was asked for (Run again), so it does not
	// follow the target's systems.
	ShellChosen bool
	// Errors maps a field name ("target", "pcs", "groups", "shell",
	// "script", "timeout") to the message shown next to it; the "" key is
	// a form-level error.
	Errors  map[string]string
	Preview RunPreviewModel
}

// RunPreviewModel is the live "N agents match" line of the Run form.
type RunPreviewModel struct {
	Matched, Online int
	Error           string
	// Unknown are the PCs named that no agent has ever had (the run is
	// refused while there are any).
	Unknown []string
	// Shell is the shell the target's systems suggest ("" when they are
	// mixed; ShellHint then says so).
	Shell, ShellHint string
	// Confirm is the question to ask before acting on this target (""
	// for one PC).
	Confirm string
}

// ExecSummaryModel is the head of an execution page: its facts, progress and
// the Kill button.
type ExecSummaryModel struct {
	Exec               ExecRow
	Shell, Timeout     string
	Deadline, Finished TimeText
	Killable           bool
	KillURL            string
	KillConfirm        string // e.g. "Kill execution 7f3a on 1,240 PCs?"
	CSRFToken          string
	// Rollouts: why it halted, four-eyes, the wave cards, and the Halt or
	// Resume button (empty URL: not offered).
	HaltReason         string
	FourEyes           bool
	Waves              []WaveCard
	HaltURL, ResumeURL string
	ExecHead
	// Tally is the count of each state, linked to those targets.
	Tally []CountLink
}

// WaveCard is one wave of a rollout.
type WaveCard struct {
	Index                   int
	Name, State             string
	Targets                 int
	Counts                  Counts
	Approval                bool
	Delay                   string // "" when none
	MaxFailures, MinSuccess string
	StartsAt                TimeText // when the delay ends
	Started, Finished       TimeText
	ApprovedBy              string
	ApprovedAt              TimeText
	// ApproveURL is set when the caller may approve it now; ApproveNote
	// says why they cannot.
	ApproveURL, ApproveNote string
	Reason                  string
	RolloutView
}

// TargetRow is one target (PC) of an execution.
type TargetRow struct {
	ExecID, PCID, JobID string
	State, Reason       string
	ExitCode            string // "" when none
	Started             TimeText
	Duration            string
	Truncated           bool
	LogURL              string // the execution page with ?pc=; answers the LogPanel partial to htmx
	Selected            bool   // this target's output is shown in the log panel
	TargetWhy
}

// TargetTableModel is the targets table of an execution page.
type TargetTableModel struct {
	ExecID, State string // State is the current filter ("" for all)
	Rows          []TargetRow
	Pager         Pager
	// URL is this table's own URL including its filters and page; the
	// table re-fetches it on every change. Filter links are derived from
	// it by replacing the "state" query parameter and dropping "offset".
	URL string
	TargetWaves
}

// LogModel is the output panel of one target.
type LogModel struct {
	ExecID, PCID, State string
	Stdout, Stderr      string
	Truncated           bool
	Live                bool   // the target is still running: stream the rest
	StreamURL           string // SSE: "chunk" and "state" (LogState) events, then "done"
	PanelURL            string // answers this panel (the LogPanel partial); re-fetched on "done"
	Empty               bool   // no target selected
	// Duration is how long the target ran, or has been running (Tick).
	Duration Tick
	// DownloadURL answers the output as a text file (empty while live).
	DownloadURL string
	// Cap is the output cap in words ("1 MiB"), named when output was cut.
	Cap string
}

// ExecModel is one execution's page.
type ExecModel struct {
	Summary    ExecSummaryModel
	Script     string
	Targets    TargetTableModel
	Log        LogModel
	EventsURL  string // SSE: bare "changed" events, coalesced
	SummaryURL string // answers the ExecSummary partial
}

// ErrorModel is an error page.
type ErrorModel struct {
	Code           int
	Title, Message string
}

// JobRow is one file of the jobs directory (a job manifest or a schedule)
// in a list.
type JobRow struct {
	ID, Version, Description string
	Source                   string // the file, relative to the jobs directory
	Kind                     string // "job" or "schedule"
	Valid                    bool
	Errors                   int    // number of problems
	URL                      string // the job's page
}

// JobListModel is the jobs page and its table partial.
type JobListModel struct {
	Q, Status, Kind string // current filters; Status is "", "valid" or "invalid"; Kind "", "job" or "schedule"
	Rows            []JobRow
	Dir             string // the jobs directory, named by the empty state
	Total, Invalid  int    // files in the whole directory, and how many are invalid
}

// JobProblem is one mistake in a job file.
type JobProblem struct {
	Field, Message string
	Line           int    // 1-based; 0 when the problem has no line
	Anchor         string // id of the line in the YAML view ("L7"); "" without a line
}

// YAMLLine is one line of a job file's text.
type YAMLLine struct {
	N        int
	Text     string
	Anchor   string // its id, "L7"
	Problems string // the messages of the problems on this line ("" when none)
}

// WaveRow is one wave of a rollout.
type WaveRow struct {
	N                       int    // 1-based
	Name                    string // wave name
	Who                     string // "group canary", "2 PCs", "25 %", "5 PCs of the target"
	Delay                   string // "" when none
	Approval                bool
	MaxFailures, MinSuccess string // "" when not set
}

// JobModel is the page of one job manifest or schedule.
type JobModel struct {
	Job      JobRow
	Modified TimeText
	// Target (for a schedule: its override; TargetNone when it has none).
	TargetAll           bool
	TargetGroups        []string
	TargetPCs           []string
	TargetNone          string // shown when nothing is targeted, e.g. "the job's target"
	Shell, Timeout      string // job manifests
	Jitter, Deadline    string
	FourEyes            bool
	Waves               []WaveRow
	Cron, JobID, JobURL string // schedules
	Enabled             bool
	Problems            []JobProblem
	Lines               []YAMLLine // the file's text; empty when it could not be shown
	// Deploy is the deploy panel of a valid job manifest (nil otherwise).
	Deploy *JobDeploy
}

// JobDeploy is the Deploy form and the revoke switch of a job.
type JobDeploy struct {
	Status               string // ACTIVE or REVOKED
	Pinned               string // the version agents accept now ("" = none pinned)
	DeployURL, StatusURL string // StatusURL revokes an ACTIVE job, unrevokes a REVOKED one
	Preview              RunPreviewModel
	CSRFToken            string
	// The form as shown: TargetMode "" deploys to the job's own target.
	TargetMode, PCs, Groups, Version, Title string
	// Errors are the form's problems by field ("" for the form's own).
	Errors FieldErrors
	// RevokeConfirm is the question Revoke job asks.
	RevokeConfirm string
}
