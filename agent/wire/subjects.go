package wire

import "strings"

// Streams (JetStream) and their subject filters.
const (
	// StreamExec holds commands; it keeps one message per subject so that
	// a newer command for a job replaces the stale one (stop-the-bleed layer 1).
	StreamExec         = "EXEC"
	StreamExecSubjects = "commands.>"

	// StreamResults holds per-target result messages (running, then final).
	StreamResults         = "RESULTS"
	StreamResultsSubjects = "results.>"

	// StreamOutput holds live output chunks for a short time so that a
	// late viewer can replay what a running target already printed.
	StreamOutput         = "OUTPUT"
	StreamOutputSubjects = "output.>"

	// StreamAudit holds the audit trail (server → server; agents have no
	// access), kept long.
	StreamAudit         = "AUDIT"
	StreamAuditSubjects = "audit.>"

	// StreamHealth holds the server's canary: one small message per
	// server, rewritten by the health check to prove that the broker can
	// still store (server → server; agents have no access).
	StreamHealth         = "HEALTH"
	StreamHealthSubjects = "health.>"
)

// KV buckets. script_current pins the version of each job (set before a
// command is published); script_status is ACTIVE or REVOKED per job.
// Agents read both right before starting a manifest job (stop-the-bleed
// layer 2).
const (
	KVScriptCurrent = "script_current"
	KVScriptStatus  = "script_status"
	StatusActive    = "ACTIVE"
	StatusRevoked   = "REVOKED"

	// KVFleet holds fleet-wide switches; KeyEmergencyStop is the
	// EmergencyStop record.
	KVFleet          = "fleet"
	KeyEmergencyStop = "emergency_stop"
)

// KVDirectGetSubject asks the broker for the newest value of key in a
// KV bucket (JetStream direct get by subject; the bucket's stream is
// KV_<bucket> and its subjects $KV.<bucket>.<key>).
func KVDirectGetSubject(bucket, key string) string {
	return KVDirectGetPrefix(bucket) + ".$KV." + bucket + "." + key
}

// KVDirectGetPrefix is what every direct get of a bucket's keys starts
// with (agents may read the buckets above with it, and nothing else).
func KVDirectGetPrefix(bucket string) string { return "$JS.API.DIRECT.GET.KV_" + bucket }

// AuditSubject is where an audit event of action is recorded.
func AuditSubject(action string) string { return "audit." + action }

// HealthSubject is where the health check of the named server writes its canary.
func HealthSubject(server string) string { return "health." + server }

// Wildcards the server subscribes to.
const (
	HeartbeatWildcard = "heartbeat.*"
	KillWildcard      = "kill.*"
	ControlAll        = "control.all"
	// ControlWildcard matches every control subject (control.all and
	// control.pc.<pc>).
	ControlWildcard = "control.>"
	// ResultWildcard and OutputWildcard match every agent's results and
	// output chunks.
	ResultWildcard = "results.*"
	OutputWildcard = "output.*"
)

// Command scopes: the second token of a command subject.
const (
	ScopeAll   = "all"
	ScopeGroup = "group"
	ScopePC    = "pc"
)

// CommandAllSubject is the subject of a command for every agent.
func CommandAllSubject(job string) string { return "commands.all." + job }

// CommandGroupSubject is the subject of a command for the members of group.
func CommandGroupSubject(group, job string) string { return "commands.group." + group + "." + job }

// CommandPCSubject is the subject of a command for one PC.
func CommandPCSubject(pc, job string) string { return "commands.pc." + pc + "." + job }

// CommandAllWildcard matches every command for all agents.
const CommandAllWildcard = "commands.all.>"

// CommandGroupWildcard matches every command for the members of group.
func CommandGroupWildcard(group string) string { return "commands.group." + group + ".>" }

// CommandPCWildcard matches every command addressed to pc.
func CommandPCWildcard(pc string) string { return "commands.pc." + pc + ".>" }

// CommandAddress is what a command subject says about its addressees.
type CommandAddress struct {
	Scope string // ScopeAll, ScopeGroup or ScopePC
	Name  string // the group or pc; empty for ScopeAll
	Job   string
}

// ParseCommandSubject splits a command subject. ok is false when the
// subject is not a well-formed command subject.
func ParseCommandSubject(subject string) (a CommandAddress, ok bool) {
	// Split into at most 4 tokens without allocating (every agent parses
	// the subject of every command).
	var t [4]string
	n, rest := 0, subject
	for more := true; more; n++ {
		if n == len(t) {
			return a, false // more tokens than any command subject has
		}
		t[n], rest, more = strings.Cut(rest, ".")
	}
	if n < 3 || t[0] != "commands" {
		return a, false
	}
	switch {
	case t[1] == ScopeAll && n == 3:
		a = CommandAddress{Scope: ScopeAll, Job: t[2]}
	case (t[1] == ScopeGroup || t[1] == ScopePC) && n == 4:
		a = CommandAddress{Scope: t[1], Name: t[2], Job: t[3]}
	default:
		return a, false
	}
	if ValidateID("job", a.Job) != nil || (a.Scope != ScopeAll && ValidateID(a.Scope, a.Name) != nil) {
		return CommandAddress{}, false
	}
	return a, true
}

// For reports whether a command with this address is meant for an agent
// with the given pc_id and groups.
func (a CommandAddress) For(pc string, groups []string) bool {
	switch a.Scope {
	case ScopeAll:
		return true
	case ScopePC:
		return a.Name == pc
	case ScopeGroup:
		for _, g := range groups {
			if g == a.Name {
				return true
			}
		}
	}
	return false
}

// KillSubject is the subject that kills the process trees of an execution.
func KillSubject(execID string) string { return "kill." + execID }

// IsCommandSubject reports whether subject is in the commands family
// (commands.>); ParseCommandSubject says whom it addresses.
func IsCommandSubject(subject string) bool { return strings.HasPrefix(subject, "commands.") }

// IsKillSubject reports whether subject is a kill's (kill.<exec>).
func IsKillSubject(subject string) bool { return strings.HasPrefix(subject, "kill.") }

// IsControlSubject reports whether subject is a control message's
// (control.all, control.pc.<pc>).
func IsControlSubject(subject string) bool { return strings.HasPrefix(subject, "control.") }

// IsResultSubject reports whether subject is a result report's
// (results.<pc>, or results.<exec>.<pc> from protocol 1 agents).
func IsResultSubject(subject string) bool { return strings.HasPrefix(subject, "results.") }

// ResultSubject is the subject an agent reports the state of its targets
// on; the body names the execution. One subject per agent, not one per
// execution: the broker caches the outcome of its permission check for
// each subject a connection publishes on (up to 128 per connection), and
// a subject per execution made that cache churn and hold ~25 KB per agent.
func ResultSubject(pc string) string { return "results." + pc }

// Protocol 1 agents published each result on results.<exec>.<pc>; the
// RESULTS stream stores those under results.<pc> too, by a JetStream
// subject transform from ResultV1Wildcard to ResultV1Stored.
const (
	ResultV1Wildcard = "results.*.*"
	ResultV1Stored   = "results.{{wildcard(2)}}"
)

// ParseResultSubject reads who reports on a result subject: pc from
// results.<pc>, and also exec from results.<exec>.<pc> (protocol 1). ok
// is false for any other subject.
func ParseResultSubject(subject string) (pc, exec string, ok bool) {
	rest, found := strings.CutPrefix(subject, "results.")
	if !found {
		return "", "", false
	}
	first, second, two := strings.Cut(rest, ".")
	switch {
	case !two && first != "":
		return first, "", true
	case two && first != "" && second != "" && !strings.Contains(second, "."):
		return second, first, true
	}
	return "", "", false
}

// OutputSubject carries the live output chunks of an agent's targets; the
// body names the execution (one subject per agent, as ResultSubject).
func OutputSubject(pc string) string { return "output." + pc }

// HeartbeatSubject is the subject an agent sends its heartbeats on.
func HeartbeatSubject(pc string) string { return "heartbeat." + pc }

// ControlPCSubject carries control messages for one PC.
func ControlPCSubject(pc string) string { return "control.pc." + pc }

// LastToken returns the last dot-separated token of a subject.
func LastToken(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return subject
}

// CatchupSubject is where an agent asks the server, after each
// (re)connect, for the newest command of each subject addressed to it
// (its own, everyone's and its groups' in the EXEC stream). The server
// sends them to the request's reply subject, which must be in the agent's
// inbox, one message each with the command's headers and HeaderSubject,
// then an empty message with HeaderCatchupEnd (the number sent) or
// HeaderCatchupError.
func CatchupSubject(pc string) string { return "catchup." + pc }

// CatchupWildcard matches every agent's catch-up request.
const CatchupWildcard = "catchup.*"

// Headers of catch-up replies.
const (
	HeaderSubject      = "Kanade-Subject" // the subject the command was published on
	HeaderCatchupEnd   = "Kanade-Catchup-End"
	HeaderCatchupError = "Kanade-Catchup-Error"
)

// HeaderWithdrawn marks a withdrawal: an empty message on a command
// subject, naming the exec_id whose command it replaces. A kill withdraws
// a command that is still the newest on its subject (the EXEC stream
// keeps one message per subject and refuses purges), so agents that were
// offline never receive it; agents ignore withdrawals, live and in
// catch-up.
const HeaderWithdrawn = "Kanade-Withdrawn"

// AgentInboxPrefix is the inbox prefix agents use for replies (JetStream
// acks, consumer deliveries), so that NATS permissions can keep agents out
// of the server's inbox (_INBOX.>).
func AgentInboxPrefix(pc string) string { return "_AGENT_INBOX." + pc }

// AgentInboxWildcard matches every agent's inbox.
const AgentInboxWildcard = "_AGENT_INBOX.>"
