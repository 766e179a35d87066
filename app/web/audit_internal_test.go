package web

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/store"
)

func jsonOf(t *testing.T, v any) json.RawMessage {
	t.Helper()
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuditSentence says every action the code records in words, with
// links to what it acted on; waves are numbered from 1 as on the
// execution page, and a failed action says that it did not happen.
func TestAuditSentence(t *testing.T) {
	const x = "01kb3n4q5r6s7t8v9w0xyz1234"
	xURL := "/executions/" + x
	office := auditFacts{JobID: "ux-patch", Targets: 3, Waves: []string{"canary", "office"}}
	tests := []struct {
		name          string
		actor, action string
		target        string
		detail        any
		facts         auditFacts
		want          string
		links         []string // the sentence's links, in order
		failed        bool
	}{
		{"run on groups", "alice", audit.Run, x,
			map[string]any{"job_id": "adhoc", "target": store.Target{Groups: []string{"lab"}}, "targets": 3, "shell": "sh", "script": "hostname"}, auditFacts{},
			"alice ran a script on group lab (3 PCs): execution " + x, []string{xURL}, false},
		{"run on one PC with a title", "alice", audit.Run, x,
			map[string]any{"title": "INC-42 printer", "target": store.Target{PCs: []string{"PC-042"}}, "targets": 1}, auditFacts{},
			"alice ran a script 'INC-42 printer' on PC-042: execution " + x, []string{"/agents/PC-042", xURL}, false},
		{"run on many PCs", "alice", audit.Run, x,
			map[string]any{"target": store.Target{PCs: []string{"a", "b", "c", "d"}}, "targets": 4}, auditFacts{},
			"alice ran a script on 4 PCs: execution " + x, []string{xURL}, false},
		{"run on all", "ops", audit.Run, x,
			map[string]any{"target": store.Target{All: true}, "targets": 5213}, auditFacts{},
			"ops ran a script on all agents (5,213 PCs): execution " + x, []string{xURL}, false},
		{"deploy", "bo", audit.Deploy, x,
			map[string]any{"job_id": "chrome-update", "version": "3", "target": store.Target{PCs: []string{"a", "b"}}, "targets": 2}, auditFacts{},
			"bo deployed job chrome-update version 3 to a, b: execution " + x, []string{"/jobs/chrome-update", "/agents/a", "/agents/b", xURL}, false},
		{"deploy a rollout", "scheduler", audit.Deploy, x,
			map[string]any{"job_id": "ux-patch", "version": "1", "target": store.Target{All: true}, "targets": 40, "waves": []int{1, 39}, "four_eyes": true}, auditFacts{},
			"scheduler started a rollout of job ux-patch version 1 to all agents (40 PCs) in 2 waves: execution " + x, []string{"/jobs/ux-patch", xURL}, false},
		{"kill", "alice", audit.Kill, x, map[string]any{"job_id": "adhoc"}, auditFacts{JobID: "adhoc", Targets: 3},
			"alice killed execution " + x + " (3 PCs, job adhoc)", []string{xURL}, false},
		{"kill of an execution the store no longer has", "alice", audit.Kill, x, nil, auditFacts{},
			"alice killed execution " + x, []string{xURL}, false},
		{"kill failed", "alice", audit.Kill + audit.FailedSuffix, x, map[string]any{"error": "publish: nats: timeout"}, auditFacts{JobID: "adhoc", Targets: 1},
			"alice could not kill execution " + x + " (1 PC, job adhoc): publish: nats: timeout", []string{xURL}, true},
		{"revoke job", "alice", audit.Revoke, "chrome-update", nil, auditFacts{},
			"alice revoked job chrome-update: agents no longer start it", []string{"/jobs/chrome-update"}, false},
		{"unrevoke job", "alice", audit.Unrevoke, "chrome-update", nil, auditFacts{},
			"alice unrevoked job chrome-update: agents may start it again", []string{"/jobs/chrome-update"}, false},
		{"emergency stop on", "root", audit.EmergencyStopOn, "fleet", map[string]any{"reason": "ransomware on PC-7"}, auditFacts{},
			"root turned the emergency stop on: ransomware on PC-7", []string{"/emergency-stop"}, false},
		{"emergency stop off", "root", audit.EmergencyStopOff, "fleet", map[string]any{"reason": ""}, auditFacts{},
			"root lifted the emergency stop", []string{"/emergency-stop"}, false},
		{"emergency stop off failed", "root", audit.EmergencyStopOff + audit.FailedSuffix, "fleet", map[string]any{"error": "kv: timeout"}, auditFacts{},
			"root could not lift the emergency stop: kv: timeout", []string{"/emergency-stop"}, true},
		{"agent revoke", "root", audit.AgentRevoke, "PC-7", map[string]any{"public_key": "UABC"}, auditFacts{},
			"root revoked agent PC-7", []string{"/agents/PC-7"}, false},
		{"agent groups", "root", audit.AgentGroups, "PC-7", map[string]any{"groups": []string{"canary", "lab"}}, auditFacts{},
			"root set the groups of PC-7 to canary, lab", []string{"/agents/PC-7"}, false},
		{"agent groups cleared", "root", audit.AgentGroups, "PC-7", map[string]any{"groups": []string{}}, auditFacts{},
			"root set the groups of PC-7 to none", []string{"/agents/PC-7"}, false},
		{"enrollment approve", "root", audit.EnrollmentApprove, "PC-8", map[string]any{"public_key": "U1", "groups": []string{"lab"}, "hostname": "pc8"}, auditFacts{},
			"root approved the enrollment of PC-8 (groups lab)", []string{"/agents/PC-8"}, false},
		{"re-enrollment approve", "root", audit.EnrollmentApprove, "PC-8", map[string]any{"reenrollment": true, "public_key": "U2"}, auditFacts{},
			"root approved the new key of PC-8", []string{"/agents/PC-8"}, false},
		{"enrollment reject", "root", audit.EnrollmentReject, "PC-9", map[string]any{"public_key": "U3", "hostname": "pc9"}, auditFacts{},
			"root rejected the enrollment of PC-9", []string{"/agents/PC-9"}, false},
		{"re-enrollment request", "agent:PC-8", audit.EnrollmentReenrollRequest, "PC-8", map[string]any{"public_key": "U2"}, auditFacts{},
			"agent:PC-8 asked to re-enroll PC-8 with a new key; an admin decides on Pending agents", []string{"/agents/PC-8", "/enrollments"}, false},
		{"enrollment token create", "root", audit.TokenCreate, "tok1", map[string]any{"name": "branch-office", "default_groups": []string{"branch"}}, auditFacts{},
			"root created enrollment token 'branch-office' tok1 (groups branch)", []string{"/enrollments"}, false},
		{"enrollment token revoke", "root", audit.TokenRevoke, "tok1", nil, auditFacts{},
			"root revoked enrollment token tok1", []string{"/enrollments"}, false},
		{"default credential rotate", "root", audit.TokenRotate, "default", map[string]any{"old_user": "UX"}, auditFacts{},
			"root rotated the default enrollment credential (DATA/agent-credentials)", nil, false},
		{"command keys rotate", "root", audit.CommandKeysRotate, "k1", map[string]any{"replaces": "k1"}, auditFacts{},
			"root rotated the command signing key (it replaces k1)", nil, false},
		{"login", "ana", audit.Login, "ana", map[string]any{"role": "operator", "ip": "10.0.0.5", "subject": "id1"}, auditFacts{},
			"ana signed in as operator", nil, false},
		{"login refused", "cy@example.com", audit.LoginFailed, "cy@example.com", map[string]any{"reason": "sign-in failed: no kanade role for this user"}, auditFacts{},
			"cy@example.com could not sign in: no kanade role for this user", nil, false},
		{"logout", "ana", audit.Logout, "ana", nil, auditFacts{},
			"ana signed out", nil, false},
		{"api token create", "bo", audit.APITokenCreate, "t123", map[string]any{"name": "nightly-report", "role": "operator"}, auditFacts{},
			"bo created API token 'nightly-report' t123 (operator)", []string{"/settings"}, false},
		{"api token create on the command line", "cli:root@srv", audit.APITokenCreate, "t124", map[string]any{"name": "ci", "role": "admin", "via": "cli"}, auditFacts{},
			"cli:root@srv created API token 'ci' t124 (admin) on the server's command line", []string{"/settings"}, false},
		{"api token revoke", "bo", audit.APITokenRevoke, "t123", nil, auditFacts{},
			"bo revoked API token t123", []string{"/settings"}, false},
		{"wave approve", "dev", audit.WaveApprove, x, map[string]any{"wave": 1}, office,
			"dev approved wave 2 'office' of ux-patch (execution " + x + ")", []string{"/jobs/ux-patch", xURL}, false},
		{"wave approve of a rollout the store no longer has", "dev", audit.WaveApprove, x, map[string]any{"wave": 0}, auditFacts{},
			"dev approved wave 1 of execution " + x, []string{xURL}, false},
		{"wave approve failed", "dev", audit.WaveApprove + audit.FailedSuffix, x, map[string]any{"error": "store: busy"}, office,
			"dev could not approve a wave of ux-patch (execution " + x + "): store: busy", []string{"/jobs/ux-patch", xURL}, true},
		{"rollout halt", "bo", audit.RolloutHalt, x, nil, office,
			"bo halted rollout ux-patch (execution " + x + ")", []string{"/jobs/ux-patch", xURL}, false},
		{"rollout resume", "bo", audit.RolloutResume, x, nil, office,
			"bo resumed rollout ux-patch (execution " + x + ")", []string{"/jobs/ux-patch", xURL}, false},
		{"rollout auto halt", "kanade", audit.RolloutAutoHalt, x, map[string]any{"reason": "halted automatically: wave office: 2 of 3 targets failed"}, auditFacts{},
			"kanade halted rollout " + x + ": halted automatically: wave office: 2 of 3 targets failed", []string{xURL}, false},
		{"schedule create", "bo", audit.ScheduleCreate, "nightly", map[string]any{"cron": "0 3 * * *", "job_id": "cleanup", "target": store.Target{Groups: []string{"lab"}}, "enabled": true, "timezone": "Europe/Paris"}, auditFacts{},
			"bo created schedule nightly: job cleanup at 0 3 * * * (Europe/Paris) on group lab", []string{"/schedules", "/jobs/cleanup"}, false},
		{"schedule update disabled", "bo", audit.ScheduleUpdate, "nightly", map[string]any{"cron": "0 4 * * *", "job_id": "cleanup", "enabled": false}, auditFacts{},
			"bo changed schedule nightly: job cleanup at 0 4 * * *, disabled", []string{"/schedules", "/jobs/cleanup"}, false},
		{"schedule delete", "bo", audit.ScheduleDelete, "nightly", nil, auditFacts{},
			"bo deleted schedule nightly", nil, false},
		{"release upload", "root", audit.ReleaseUpload, "kanade-agent/v2/linux-amd64", map[string]any{"version": "v2", "os": "linux", "arch": "amd64", "sha256": strings.Repeat("ab", 32), "size": 12}, auditFacts{},
			"root uploaded agent release v2 for linux/amd64 (sha256 abababababab)", []string{"/agent-versions"}, false},
		{"release delete failed", "root", audit.ReleaseDelete + audit.FailedSuffix, "kanade-agent/v2/linux-amd64", map[string]any{"version": "v2", "os": "linux", "arch": "amd64", "error": "boom"}, auditFacts{},
			"root could not delete agent release v2 for linux/amd64: boom", []string{"/agent-versions"}, true},
		{"release keys rotate", "root", audit.ReleaseKeysRotate, "k1", map[string]any{"replaces": "k1"}, auditFacts{},
			"root rotated the release signing key (it replaces k1)", nil, false},
		{"an action this version does not know", "bo", "frobnicate", "x1", nil, auditFacts{},
			"bo did frobnicate on x1", nil, false},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := store.AuditEvent{Actor: tt.actor, Action: tt.action, Target: tt.target, Detail: jsonOf(t, tt.detail)}
			got := auditSentence(e, tt.facts)
			if got.Text() != tt.want {
				t.Errorf("auditSentence(%s).Text() =\n  %q\nwant\n  %q", tt.action, got.Text(), tt.want)
			}
			var links []string
			for _, p := range got.Parts {
				if p.URL != "" {
					links = append(links, p.URL)
				}
			}
			if diff := cmp.Diff(tt.links, links); diff != "" {
				t.Errorf("auditSentence(%s) links (-want +got):\n%s", tt.action, diff)
			}
			if got.Failed != tt.failed {
				t.Errorf("auditSentence(%s).Failed = %v, want %v", tt.action, got.Failed, tt.failed)
			}
		})
		covered[tt.action], covered[strings.TrimSuffix(tt.action, audit.FailedSuffix)] = true, true
	}
	for _, a := range audit.Actions {
		if !covered[a] {
			t.Errorf("no case for the audit action %q", a)
		}
		if _, _, _, ok := auditAction(a, "x", auditDetail{}, auditFacts{}); !ok {
			t.Errorf("auditSentence does not know the audit action %q", a)
		}
	}
}
