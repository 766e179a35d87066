package jobs

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kanadehq/kanade/agent/wire"
)

// Keys of each mapping, in the order the documentation lists them.
var (
	manifestKeys = []string{"kind", "id", "version", "description", "target", "execute", "deadline", "rollout", "four_eyes"}
	scheduleKeys = []string{"kind", "id", "description", "cron", "job_id", "target", "enabled", "timezone"}
	targetKeys   = []string{"all", "groups", "pcs"}
	executeKeys  = []string{"shell", "script", "timeout", "jitter"}
	rolloutKeys  = []string{"strategy", "waves"}
	waveKeys     = []string{"name", "group", "pcs", "percent", "count", "delay", "approval", "max_failures", "min_success"}
)

// Hints for keys that are commonly misplaced or come from the original
// kanade.
var (
	manifestHints = map[string]string{
		"shell":            "it belongs under execute",
		"script":           "it belongs under execute",
		"timeout":          "it belongs under execute",
		"jitter":           "it belongs under execute",
		"all":              "it belongs under target",
		"groups":           "it belongs under target",
		"pcs":              "it belongs under target",
		"waves":            "it belongs under rollout",
		"name":             "a job is named by its id",
		"require_approval": "is not supported: ask for approval on a wave (rollout.waves[].approval: true)",
		"cron":             "a schedule is its own file (with id, cron and job_id)",
	}
	scheduleHints = map[string]string{
		"manifest": "inline manifests are not supported: put the job in a file of its own and name it here with job_id",
		"execute":  "a schedule runs a job: put execute in the job's manifest and name the job with job_id",
		"job":      "write job_id",
		"when":     "write the time as cron",
		"version":  "a schedule runs the job's current version",
	}
	targetHints = map[string]string{
		"group": "write groups: [name]",
		"pc":    "write pcs: [name]",
	}
	executeHints = map[string]string{
		"command":          "write the commands as script",
		"script_file":      "is not supported: write the script inline under script",
		"run_as":           "is not supported: scripts run as the agent's service account",
		"cwd":              "is not supported: change directory in the script",
		"deadline":         "it belongs at the top level of the manifest",
		"require_approval": "is not supported: ask for approval on a wave (rollout.waves[].approval: true)",
	}
	waveHints = map[string]string{
		"groups":           "a wave takes one group (group: name); list PCs with pcs",
		"require_approval": "write approval: true",
		"wait":             "write delay",
	}
)

// kind decides whether root is a job manifest or a schedule: an explicit
// kind wins, otherwise a top-level cron key makes a schedule.
func (d *decoder) kind(root *yaml.Node) Kind {
	if root.Kind != yaml.MappingNode {
		return KindJob
	}
	var kindNode, cron *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "kind":
			if kindNode == nil {
				kindNode = root.Content[i+1]
			}
		case "cron":
			cron = root.Content[i]
		}
	}
	if kindNode != nil && !isNull(kindNode) {
		if s, ok := d.text("kind", kindNode); ok {
			switch Kind(s) {
			case KindJob, KindSchedule:
				return Kind(s)
			}
			d.add("kind", kindNode.Line, "%q is not job or schedule", s)
		}
	}
	if cron != nil {
		return KindSchedule
	}
	return KindJob
}

// manifest decodes a job manifest.
func (d *decoder) manifest(root *yaml.Node) Manifest {
	var m Manifest
	f := d.mapping("", root, max(root.Line, 1), manifestKeys, manifestHints)
	if v := d.require(f, "id", "name the job (letters, digits, '-' and '_')"); v != nil {
		m.ID = d.id("id", v)
	}
	if v := d.require(f, "version", "give the job a version such as \"1.0.0\""); v != nil {
		if s, ok := d.text("version", v); ok {
			m.Version = s
			if err := checkVersion(s); err != nil {
				d.add("version", v.Line, "%s", err.Error())
			}
		}
	}
	if v := f.get("description"); v != nil {
		m.Description, _ = d.text("description", v)
	}
	if v := d.require(f, "target", "say which PCs run the job (all, groups or pcs)"); v != nil {
		m.Target = d.target("target", v, f.keys["target"])
	}
	if v := d.require(f, "execute", "give the shell, the script and the timeout"); v != nil {
		m.Execute = d.execute("execute", v, f.keys["execute"])
	}
	if v := f.get("deadline"); v != nil {
		if dl, ok := d.duration("deadline", v); ok {
			m.Deadline = dl
			switch {
			case dl == 0:
				d.add("deadline", v.Line, "must be longer than 0s (leave it out for the server's default)")
			case m.Execute.Jitter >= dl:
				d.add("deadline", v.Line, "%s is not longer than execute.jitter (%s): PCs could expire while they wait", dl, m.Execute.Jitter)
			}
		}
	}
	if v := f.get("rollout"); v != nil {
		r := d.rollout("rollout", v, f.keys["rollout"])
		m.Rollout = &r
	}
	if v := f.get("four_eyes"); v != nil {
		before := len(d.problems)
		if b := d.boolean("four_eyes", v); len(d.problems) == before && !skipped(v) {
			m.FourEyes = &b
		}
	}
	return m
}

// id reads an id (a subject token).
func (d *decoder) id(field string, v *yaml.Node) string {
	s, ok := d.text(field, v)
	if !ok {
		return ""
	}
	if err := checkID(s); err != nil {
		d.add(field, v.Line, "%s", err.Error())
	}
	return s
}

// target decodes a target; it must select something.
func (d *decoder) target(field string, v *yaml.Node, line int) Target {
	var t Target
	before := len(d.problems)
	f := d.mapping(field, v, line, targetKeys, targetHints)
	if f.vals == nil {
		return t
	}
	if v := f.get("all"); v != nil {
		t.All = d.boolean(f.field("all"), v)
	}
	if v := f.get("groups"); v != nil {
		t.Groups = d.idList(f.field("groups"), v, checkGroup)
	}
	if v := f.get("pcs"); v != nil {
		t.PCs = d.idList(f.field("pcs"), v, checkID)
	}
	if t.IsZero() && len(d.problems) == before {
		d.add(field, line, "selects no PC: set all: true, or list groups or pcs")
	}
	return t
}

// execute decodes the script and how to run it.
func (d *decoder) execute(field string, v *yaml.Node, line int) Execute {
	var e Execute
	f := d.mapping(field, v, line, executeKeys, executeHints)
	if v := d.require(f, "shell", "one of "+strings.Join(wire.Shells, ", ")); v != nil {
		if s, ok := d.text(f.field("shell"), v); ok {
			e.Shell = s
			switch {
			case wire.ValidShell(s):
			case wire.ValidShell(strings.ToLower(s)):
				d.add(f.field("shell"), v.Line, "write the shell in lower case: %q", strings.ToLower(s))
			default:
				d.add(f.field("shell"), v.Line, "%q is not one of %s", s, strings.Join(wire.Shells, ", "))
			}
		}
	}
	if v := d.require(f, "script", "write the commands to run"); v != nil {
		if s, ok := d.text(f.field("script"), v); ok {
			e.Script = s
			if strings.TrimSpace(s) == "" {
				d.add(f.field("script"), v.Line, "is empty: write the commands to run")
			}
		}
	}
	if v := d.require(f, "timeout", "how long the script may run, such as \"5m\""); v != nil {
		if t, ok := d.duration(f.field("timeout"), v); ok {
			e.Timeout = t
			if t == 0 {
				d.add(f.field("timeout"), v.Line, "must be longer than 0s")
			}
		}
	}
	if v := f.get("jitter"); v != nil {
		e.Jitter, _ = d.duration(f.field("jitter"), v)
	}
	return e
}

// rollout decodes the waves of a rollout.
func (d *decoder) rollout(field string, v *yaml.Node, line int) Rollout {
	var r Rollout
	f := d.mapping(field, v, line, rolloutKeys, nil)
	if v := f.get("strategy"); v != nil {
		if s, ok := d.text(f.field("strategy"), v); ok && s != "wave" {
			d.add(f.field("strategy"), v.Line, "%q is not a strategy: the only one is wave (and it is the default)", s)
		}
	}
	v = d.require(f, "waves", "list the waves, each with a name and one of group, pcs, percent or count")
	if v == nil || skipped(v) {
		return r
	}
	if v.Kind != yaml.SequenceNode {
		d.add(f.field("waves"), v.Line, "must be a list of waves, not %s", describe(v))
		return r
	}
	if len(v.Content) == 0 {
		d.add(f.field("waves"), v.Line, "is empty: list at least one wave")
		return r
	}
	names := map[string]int{}
	for i, wn := range v.Content {
		wf := index(f.field("waves"), i)
		w := d.wave(wf, wn)
		if w.Name != "" {
			if first, dup := names[w.Name]; dup {
				d.add(wf+".name", wn.Line, "%q is also the name of waves[%d]: wave names must be unique", w.Name, first)
			} else {
				names[w.Name] = i
			}
		}
		r.Waves = append(r.Waves, w)
	}
	return r
}

// wave decodes one wave.
func (d *decoder) wave(field string, v *yaml.Node) Wave {
	var w Wave
	f := d.mapping(field, v, v.Line, waveKeys, waveHints)
	if f.vals == nil {
		return w
	}
	if v := d.require(f, "name", "name the wave (letters, digits, '-' and '_')"); v != nil {
		w.Name = d.id(f.field("name"), v)
	}
	var who []string
	for _, k := range []string{"group", "pcs", "percent", "count"} {
		v := f.get(k)
		if v == nil {
			continue
		}
		if len(who) > 0 {
			d.add(f.field(k), v.Line, "set only one of group, pcs, percent or count (this wave already has %s)", strings.Join(who, " and "))
		}
		who = append(who, k)
		switch k {
		case "group":
			if s, ok := d.text(f.field(k), v); ok {
				w.Group = s
				if err := checkGroup(s); err != nil {
					d.add(f.field(k), v.Line, "%s", err.Error())
				}
			}
		case "pcs":
			w.PCs = d.idList(f.field(k), v, checkID)
			if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
				d.add(f.field(k), v.Line, "is empty: list the PCs of this wave")
			}
		case "percent":
			if n, ok := d.integer(f.field(k), v); ok {
				w.Percent = n
				if n < 1 || n > 100 {
					d.add(f.field(k), v.Line, "must be from 1 to 100, not %d", n)
				}
			}
		case "count":
			if n, ok := d.integer(f.field(k), v); ok {
				w.Count = n
				if n < 1 {
					d.add(f.field(k), v.Line, "must be at least 1, not %d", n)
				}
			}
		}
	}
	if len(who) == 0 {
		d.add(field, v.Line, "say who is in the wave: set one of group, pcs, percent or count")
	}
	if v := f.get("delay"); v != nil {
		w.Delay, _ = d.duration(f.field("delay"), v)
	}
	if v := f.get("approval"); v != nil {
		w.Approval = d.boolean(f.field("approval"), v)
	}
	if v := f.get("max_failures"); v != nil {
		w.MaxFailures = d.threshold(f.field("max_failures"), v, 0)
	}
	if v := f.get("min_success"); v != nil {
		w.MinSuccess = d.threshold(f.field("min_success"), v, 1)
		if size := w.fixedSize(); w.MinSuccess != nil && !w.MinSuccess.Percent && size > 0 && w.MinSuccess.N > size {
			d.add(f.field("min_success"), v.Line, "asks for %d successes but the wave has only %d target%s", w.MinSuccess.N, size, pluralS(size))
		}
	}
	return w
}

// fixedSize is the number of targets of a wave when the manifest says it
// (count or pcs), else 0.
func (w Wave) fixedSize() int {
	if w.Count > 0 {
		return w.Count
	}
	return len(w.PCs)
}

func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// schedule decodes a schedule.
func (d *decoder) schedule(root *yaml.Node) Schedule {
	s := Schedule{Enabled: true}
	f := d.mapping("", root, max(root.Line, 1), scheduleKeys, scheduleHints)
	if v := d.require(f, "id", "name the schedule (letters, digits, '-' and '_')"); v != nil {
		s.ID = d.id("id", v)
	}
	if v := f.get("description"); v != nil {
		s.Description, _ = d.text("description", v)
	}
	if v := d.require(f, "cron", "when to fire, such as \"0 3 * * *\" (every day at 03:00)"); v != nil {
		if c, ok := d.text("cron", v); ok {
			s.Cron = c
			if err := checkCron(c); err != nil {
				d.add("cron", v.Line, "%s", err.Error())
			}
		}
	}
	if v := d.require(f, "job_id", "the id of the job to run"); v != nil {
		s.JobID = d.id("job_id", v)
	}
	if v := f.get("target"); v != nil {
		t := d.target("target", v, f.keys["target"])
		s.Target = &t
	}
	if v := f.get("enabled"); v != nil {
		s.Enabled = d.boolean("enabled", v)
	}
	if v := f.get("timezone"); v != nil {
		if tz, ok := d.text("timezone", v); ok {
			if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
				d.add("timezone", v.Line, "%q is not an IANA time zone such as \"Europe/Berlin\" or \"UTC\"", tz)
			} else {
				s.Timezone = tz
			}
		}
	}
	return s
}

// cronDescriptors are the @ forms a cron may take.
var cronDescriptors = []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

// checkCron checks the shape of a cron expression: 5 fields (minute
// first), 6 or 7 (seconds first, optional year), or a descriptor.
func checkCron(c string) error {
	c = strings.TrimSpace(c)
	if c == "" {
		return fmt.Errorf("is empty: write when to fire, such as \"0 3 * * *\"")
	}
	if strings.HasPrefix(c, "@") {
		if !contains(cronDescriptors, c) {
			return fmt.Errorf("%q is not one of %s", c, strings.Join(cronDescriptors, ", "))
		}
		return nil
	}
	fs := strings.Fields(c)
	if len(fs) < 5 || len(fs) > 7 {
		return fmt.Errorf("%q has %d field%s: write 5 (minute hour day month weekday) or 6 with seconds first", c, len(fs), pluralS(len(fs)))
	}
	for _, f := range fs {
		for _, r := range f {
			if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || strings.ContainsRune("*/,-?#", r)) {
				return fmt.Errorf("%q has %q, which no cron field uses", c, r)
			}
		}
	}
	return nil
}
