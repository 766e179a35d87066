package web

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// auditFacts is what the store knows about the execution an event acted
// on, for the events whose detail does not say it (a kill, an approval).
// The zero value knows nothing; the sentence then names the execution only.
type auditFacts struct {
	JobID   string
	Targets int
	Waves   []string // wave names by index
}

// auditDetail is the part of an event's detail the sentences read; the
// actions write these keys (app/dispatch, app/enroll, app/rollout,
// app/web).
type auditDetail struct {
	JobID         string        `json:"job_id"`
	Version       string        `json:"version"`
	Title         string        `json:"title"`
	Target        *store.Target `json:"target"`
	Targets       *int          `json:"targets"`
	Waves         []int         `json:"waves"`
	Wave          *int          `json:"wave"`
	Reason        string        `json:"reason"`
	Role          string        `json:"role"`
	Name          string        `json:"name"`
	Groups        []string      `json:"groups"`
	DefaultGroups []string      `json:"default_groups"`
	Reenrollment  bool          `json:"reenrollment"`
	Hostname      string        `json:"hostname"`
	Cron          string        `json:"cron"`
	Timezone      string        `json:"timezone"`
	Enabled       *bool         `json:"enabled"`
	Error         string        `json:"error"`
	Via           string        `json:"via"`
	OS            string        `json:"os"`
	Arch          string        `json:"arch"`
	SHA256        string        `json:"sha256"`
}

// phrase builds a sentence from its parts.
type phrase []views.AuditPart

func (p *phrase) text(s string)    { *p = append(*p, views.AuditPart{Text: s}) }
func (p *phrase) id(s string)      { *p = append(*p, views.AuditPart{Text: s, Mono: true}) }
func (p *phrase) link(s, u string) { *p = append(*p, views.AuditPart{Text: s, URL: u, Mono: true}) }
func (p *phrase) quoted(s string)  { p.text("'" + s + "'") }
func (p *phrase) add(parts ...phrase) {
	for _, q := range parts {
		*p = append(*p, q...)
	}
}

func execLink(id string) phrase {
	return phrase{{Text: "execution "}, {Text: id, URL: "/executions/" + url.PathEscape(id), Mono: true}}
}

func jobLink(id string) phrase {
	return phrase{{Text: "job "}, {Text: id, URL: "/jobs/" + url.PathEscape(id), Mono: true}}
}

func agentLink(pc string) phrase {
	return phrase{{Text: pc, URL: "/agents/" + url.PathEscape(pc), Mono: true}}
}

// pcCount is "1 PC", "3 PCs", "5,213 PCs".
func pcCount(n int) string { return thousands(n) + " PC" + plural(n) }

// targetPhrase names what a run or deploy aimed at and, where that is not
// already a count, how many PCs it matched: "PC-042", "group lab (3 PCs)",
// "all agents (5,213 PCs)", "40 PCs".
func targetPhrase(t *store.Target, n *int) phrase {
	var p phrase
	count := func() {
		if n != nil {
			p.text(" (" + pcCount(*n) + ")")
		}
	}
	switch {
	case t == nil:
		if n != nil {
			p.text(pcCount(*n))
		} else {
			p.text("its targets")
		}
	case t.All:
		p.text("all agents")
		count()
	case len(t.Groups) > 0:
		p.text("group" + plural(len(t.Groups)) + " ")
		p.id(strings.Join(t.Groups, ", "))
		count()
	case len(t.PCs) == 1:
		p.add(agentLink(t.PCs[0]))
	case len(t.PCs) > 1 && len(t.PCs) <= 3:
		for i, pc := range t.PCs {
			if i > 0 {
				p.text(", ")
			}
			p.add(agentLink(pc))
		}
	default:
		p.text(pcCount(len(t.PCs)))
	}
	return p
}

// waveName is "wave 2 'office'": numbered from 1, as the execution page
// numbers its wave cards.
func waveName(idx int, f auditFacts) string {
	s := fmt.Sprintf("wave %d", idx+1)
	if idx >= 0 && idx < len(f.Waves) && f.Waves[idx] != "" {
		s += " '" + f.Waves[idx] + "'"
	}
	return s
}

// ofRollout is "of ux-patch (execution X)", or "of execution X" when the
// job is not known.
func ofRollout(exec string, f auditFacts) phrase {
	var p phrase
	if f.JobID == "" {
		p.text("of ")
		p.add(execLink(exec))
		return p
	}
	p.text("of ")
	p.link(f.JobID, "/jobs/"+url.PathEscape(f.JobID))
	p.text(" (")
	p.add(execLink(exec))
	p.text(")")
	return p
}

// rolloutName is "rollout ux-patch (execution X)" or "rollout X".
func rolloutName(exec string, f auditFacts) phrase {
	var p phrase
	p.text("rollout ")
	if f.JobID == "" {
		p.link(exec, "/executions/"+url.PathEscape(exec))
		return p
	}
	p.link(f.JobID, "/jobs/"+url.PathEscape(f.JobID))
	p.text(" (")
	p.add(execLink(exec))
	p.text(")")
	return p
}

// auditAction says one action: what the actor did (past tense), the same
// in the infinitive (for a failure: "could not kill"), and the rest of the
// sentence. ok is false for an action this function does not know.
func auditAction(action, target string, d auditDetail, f auditFacts) (did, do string, rest phrase, ok bool) {
	var p phrase
	switch action {
	case audit.Run:
		did, do = "ran", "run"
		p.text(" a script")
		if d.Title != "" {
			p.text(" ")
			p.quoted(d.Title)
		}
		p.text(" on ")
		p.add(targetPhrase(d.Target, d.Targets))
		p.text(": ")
		p.add(execLink(target))
	case audit.Deploy:
		did, do = "deployed", "deploy"
		if len(d.Waves) > 0 {
			did, do = "started a rollout of", "start a rollout of"
		}
		p.text(" ")
		p.add(jobLink(d.JobID))
		if d.Version != "" {
			p.text(" version ")
			p.id(d.Version)
		}
		if d.Title != "" {
			p.text(" ")
			p.quoted(d.Title)
		}
		p.text(" to ")
		p.add(targetPhrase(d.Target, d.Targets))
		if len(d.Waves) > 0 {
			p.text(fmt.Sprintf(" in %d wave%s", len(d.Waves), plural(len(d.Waves))))
		}
		p.text(": ")
		p.add(execLink(target))
	case audit.Kill:
		did, do = "killed", "kill"
		p.text(" ")
		p.add(execLink(target))
		n := f.Targets
		if d.Targets != nil {
			n = *d.Targets
		}
		job := d.JobID
		if job == "" {
			job = f.JobID
		}
		switch {
		case n > 0 && job != "":
			p.text(" (" + pcCount(n) + ", job ")
			p.id(job)
			p.text(")")
		case n > 0:
			p.text(" (" + pcCount(n) + ")")
		case job != "":
			p.text(" (job ")
			p.id(job)
			p.text(")")
		}
	case audit.Revoke:
		did, do = "revoked", "revoke"
		p.text(" ")
		p.add(jobLink(target))
		p.text(": agents no longer start it")
	case audit.Unrevoke:
		did, do = "unrevoked", "unrevoke"
		p.text(" ")
		p.add(jobLink(target))
		p.text(": agents may start it again")
	case audit.EmergencyStopOn:
		did, do = "turned the", "turn the"
		p.text(" ")
		p.link("emergency stop", "/emergency-stop")
		p.text(" on")
		if d.Reason != "" {
			p.text(": " + d.Reason)
		}
	case audit.EmergencyStopOff:
		did, do = "lifted the", "lift the"
		p.text(" ")
		p.link("emergency stop", "/emergency-stop")
	case audit.AgentRevoke:
		did, do = "revoked", "revoke"
		p.text(" agent ")
		p.add(agentLink(target))
	case audit.AgentGroups:
		did, do = "set the groups of", "set the groups of"
		p.text(" ")
		p.add(agentLink(target))
		if len(d.Groups) == 0 {
			p.text(" to none")
		} else {
			p.text(" to ")
			p.id(strings.Join(d.Groups, ", "))
		}
	case audit.EnrollmentApprove, audit.EnrollmentReject:
		did, do = "approved", "approve"
		if action == audit.EnrollmentReject {
			did, do = "rejected", "reject"
		}
		if d.Reenrollment {
			p.text(" the new key of ")
		} else {
			p.text(" the enrollment of ")
		}
		p.add(agentLink(target))
		if len(d.Groups) > 0 {
			p.text(" (groups ")
			p.id(strings.Join(d.Groups, ", "))
			p.text(")")
		}
	case audit.EnrollmentReenrollRequest:
		did, do = "asked to re-enroll", "ask to re-enroll"
		p.text(" ")
		p.add(agentLink(target))
		p.text(" with a new key; an admin decides on ")
		p.link("Pending agents", "/enrollments")
	case audit.TokenCreate:
		did, do = "created", "create"
		p.text(" enrollment token ")
		if d.Name != "" {
			p.quoted(d.Name)
			p.text(" ")
		}
		p.link(target, "/enrollments")
		if len(d.DefaultGroups) > 0 {
			p.text(" (groups ")
			p.id(strings.Join(d.DefaultGroups, ", "))
			p.text(")")
		}
	case audit.TokenRevoke:
		did, do = "revoked", "revoke"
		p.text(" enrollment token ")
		p.link(target, "/enrollments")
	case audit.TokenRotate:
		did, do = "rotated", "rotate"
		p.text(" the default enrollment credential (")
		p.id("DATA/agent-credentials")
		p.text(")")
	case audit.CommandKeysRotate:
		did, do = "rotated", "rotate"
		p.text(" the command signing key (it replaces ")
		p.id(target)
		p.text(")")
	case audit.ReleaseUpload, audit.ReleaseDelete:
		did, do = "uploaded", "upload"
		if action == audit.ReleaseDelete {
			did, do = "deleted", "delete"
		}
		p.text(" agent release ")
		p.link(d.Version, "/agent-versions")
		if d.OS != "" {
			p.text(" for ")
			p.id(d.OS + "/" + d.Arch)
		}
		if len(d.SHA256) >= 12 {
			p.text(" (sha256 ")
			p.id(d.SHA256[:12])
			p.text(")")
		}
	case audit.ReleaseKeysRotate:
		did, do = "rotated", "rotate"
		p.text(" the release signing key (it replaces ")
		p.id(target)
		p.text(")")
	case audit.Login:
		did, do = "signed in", "sign in"
		if d.Role != "" {
			p.text(" as " + d.Role)
		}
	case audit.LoginFailed:
		did, do = "could not sign in", "sign in"
		if d.Reason != "" {
			p.text(": " + strings.TrimPrefix(d.Reason, "sign-in failed: "))
		}
	case audit.Logout:
		did, do = "signed out", "sign out"
	case audit.APITokenCreate, audit.APITokenRevoke:
		did, do = "created", "create"
		if action == audit.APITokenRevoke {
			did, do = "revoked", "revoke"
		}
		p.text(" API token ")
		if d.Name != "" {
			p.quoted(d.Name)
			p.text(" ")
		}
		p.link(target, "/settings")
		if d.Role != "" {
			p.text(" (" + d.Role + ")")
		}
		if d.Via == "cli" {
			p.text(" on the server's command line")
		}
	case audit.WaveApprove:
		did, do = "approved", "approve"
		p.text(" ")
		if d.Wave != nil {
			p.text(waveName(*d.Wave, f) + " ")
		} else {
			p.text("a wave ")
		}
		p.add(ofRollout(target, f))
	case audit.RolloutHalt, audit.RolloutResume:
		did, do = "halted", "halt"
		if action == audit.RolloutResume {
			did, do = "resumed", "resume"
		}
		p.text(" ")
		p.add(rolloutName(target, f))
	case audit.RolloutAutoHalt:
		did, do = "halted", "halt"
		p.text(" ")
		p.add(rolloutName(target, f))
		if d.Reason != "" {
			p.text(": " + d.Reason)
		}
	case audit.ScheduleCreate, audit.ScheduleUpdate:
		did, do = "created", "create"
		if action == audit.ScheduleUpdate {
			did, do = "changed", "change"
		}
		p.text(" schedule ")
		p.link(target, "/schedules")
		if d.JobID != "" {
			p.text(": ")
			p.add(jobLink(d.JobID))
		}
		if d.Cron != "" {
			p.text(" at ")
			p.id(d.Cron)
			if d.Timezone != "" {
				p.text(" (" + d.Timezone + ")")
			}
		}
		if d.Target != nil {
			p.text(" on ")
			p.add(targetPhrase(d.Target, nil))
		}
		if d.Enabled != nil && !*d.Enabled {
			p.text(", disabled")
		}
	case audit.ScheduleDelete:
		did, do = "deleted", "delete"
		p.text(" schedule ")
		p.id(target)
	default:
		return "", "", nil, false
	}
	return did, do, p, true
}

// auditSentence says what an audit event did, in words, with links to
// what it acted on: "dev approved wave 2 'office' of ux-patch (execution
// X)", "alice killed execution X (3 PCs, job adhoc)". A "<action>.failed"
// event says that the action could not be carried out, and why. f holds
// what the store knows about the event's execution (the zero value when
// none). Unknown actions are said as "actor: action target".
func auditSentence(e store.AuditEvent, f auditFacts) views.AuditSentence {
	var d auditDetail
	if len(e.Detail) > 0 {
		_ = json.Unmarshal(e.Detail, &d) // a detail of another shape: the sentence says less
	}
	actor := e.Actor
	if actor == "" {
		actor = "someone"
	}
	action, failed := strings.CutSuffix(e.Action, audit.FailedSuffix)
	if e.Action == audit.LoginFailed { // a refused sign-in, not a failed sign-in event
		action, failed = e.Action, false
	}
	did, do, rest, ok := auditAction(action, e.Target, d, f)
	var p phrase
	p.text(actor + " ")
	switch {
	case !ok:
		p.text("did ")
		p.id(e.Action)
		if e.Target != "" {
			p.text(" on ")
			p.id(e.Target)
		}
	case failed:
		p.text("could not " + do)
		p.add(rest)
		if d.Error != "" {
			p.text(": " + d.Error)
		}
	default:
		p.text(did)
		p.add(rest)
	}
	return views.AuditSentence{Parts: p, Failed: failed}
}

// auditFactsFor reports whether an event's sentence needs its
// execution's facts from the store.
func auditFactsFor(action string) bool {
	action = strings.TrimSuffix(action, audit.FailedSuffix)
	switch action {
	case audit.Kill, audit.WaveApprove, audit.RolloutHalt, audit.RolloutResume, audit.RolloutAutoHalt:
		return true
	}
	return false
}
