// Package jobs defines kanade's job manifests and schedules — the YAML files
// operators keep in Git — and parses them strictly: unknown keys, wrong
// types, bad durations and bad ids are problems that name the field and the
// YAML line, and every problem of a file is reported at once.
//
// A file holds one document of one of two kinds:
//
//   - a job manifest (kind: job): id, version, description, target,
//     execute, deadline, rollout and four_eyes;
//   - a schedule (kind: schedule): id, description, cron, job_id, target
//     and enabled.
//
// The kind key is optional: a file with a top-level cron key is a schedule,
// any other file a job manifest. The rules, all enforced by the parser:
//
//   - One document per file: a second document (after ---) is a problem.
//   - Anchors (&a), aliases (*a) and merge keys (<<) are refused, so that a
//     file reads the same to a person as to the parser (and so that alias
//     expansion cannot blow up).
//   - YAML tags other than the standard ones are refused.
//   - A file is at most MaxSize bytes.
//   - Durations are Go durations ("30s", "10m", "1h30m"); a bare number is
//     refused because its unit would be a guess.
//   - Text fields take any scalar as written: version: 1.0 is the text
//     "1.0". true/false and empty values are not text.
//   - List indexes in field paths count from 0: rollout.waves[1] is the
//     second wave.
//
// The original kanade's spelling rollout.strategy: wave (its only strategy)
// is accepted and dropped. Its require_approval and inline schedule
// manifests are not: approval is asked per wave, and a schedule names a job
// by job_id.
//
// The package imports only the standard library, agent/wire and the YAML
// parser.
package jobs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/kanadehq/kanade/agent/wire"
)

// MaxSize is the largest manifest file accepted, in bytes.
const MaxSize = 256 << 10

// Kind is what a file describes.
type Kind string

// Kinds of files.
const (
	KindJob      Kind = "job"
	KindSchedule Kind = "schedule"
)

// Problem is one mistake in a manifest. Field is a path such as
// "execute.timeout" or "rollout.waves[1].percent" ("" for the whole file);
// Line is the 1-based YAML line, 0 when unknown (JSON input).
type Problem struct {
	Field   string `json:"field"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// String formats p as "line 7: execute.timeout: message".
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString("line " + strconv.Itoa(p.Line) + ": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Manifest is a job: what to run, where, and how to roll it out.
type Manifest struct {
	// ID names the job; it is a subject token (wire.ValidateID).
	ID string `json:"id"`
	// Version is pinned before a deploy; agents skip stale versions.
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	Target      Target `json:"target"`
	// Execute is the script and how to run it.
	Execute Execute `json:"execute"`
	// Deadline is how long a PC that is offline may still pick the job
	// up; 0 means the server's default.
	Deadline wire.Duration `json:"deadline,omitempty"`
	// Rollout, when set, releases the job in waves.
	Rollout *Rollout `json:"rollout,omitempty"`
	// FourEyes forbids the person who started a rollout to approve its
	// waves (nil: the server's default, [rollout] four_eyes).
	FourEyes *bool `json:"four_eyes,omitempty"`
}

// Target selects PCs: every agent, members of groups, or listed PCs (the
// union of what is set; at least one is).
type Target struct {
	All    bool     `json:"all,omitempty"`
	Groups []string `json:"groups,omitempty"`
	PCs    []string `json:"pcs,omitempty"`
}

// IsZero reports whether t selects nothing.
func (t Target) IsZero() bool { return !t.All && len(t.Groups) == 0 && len(t.PCs) == 0 }

// String describes t for people: "all", "groups canary, wave1; pcs pc1".
func (t Target) String() string {
	var parts []string
	if t.All {
		parts = append(parts, "all")
	}
	if len(t.Groups) > 0 {
		parts = append(parts, "groups "+strings.Join(t.Groups, ", "))
	}
	if len(t.PCs) > 0 {
		parts = append(parts, "pcs "+strings.Join(t.PCs, ", "))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

// Execute is the script of a job and how agents run it.
type Execute struct {
	// Shell is one of wire.Shells.
	Shell  string `json:"shell"`
	Script string `json:"script"`
	// Timeout counts from the script's real start (after the jitter).
	Timeout wire.Duration `json:"timeout"`
	// Jitter is the longest random wait before starting, which spreads a
	// fleet-wide start.
	Jitter wire.Duration `json:"jitter,omitempty"`
}

// Rollout releases a job in waves, one after the other.
type Rollout struct {
	Waves []Wave `json:"waves"`
}

// Wave is one step of a rollout. Exactly one of Group, PCs, Percent and
// Count says who is in it; Percent and Count are shares of the job's
// target.
type Wave struct {
	Name    string   `json:"name"`
	Group   string   `json:"group,omitempty"`
	PCs     []string `json:"pcs,omitempty"`
	Percent int      `json:"percent,omitempty"`
	Count   int      `json:"count,omitempty"`
	// Delay is the wait after the previous wave before this one starts.
	Delay wire.Duration `json:"delay,omitempty"`
	// Approval makes the wave wait for an approver.
	Approval bool `json:"approval,omitempty"`
	// MaxFailures halts the rollout when more targets of the wave fail.
	MaxFailures *Threshold `json:"max_failures,omitempty"`
	// MinSuccess must succeed before the next wave starts.
	MinSuccess *Threshold `json:"min_success,omitempty"`
}

// Threshold is a number of targets, or a percentage of a wave's targets
// when Percent is set. It is written as 3 or "10%".
type Threshold struct {
	N       int
	Percent bool
}

// ParseThreshold reads "3" or "10%".
func ParseThreshold(s string) (Threshold, error) {
	s = strings.TrimSpace(s)
	if n, ok := parsePercent(s); ok {
		return Threshold{N: n, Percent: true}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return Threshold{}, fmt.Errorf("%q is not a count or a percentage like \"10%%\"", s)
	}
	return Threshold{N: n}, nil
}

// Of returns the threshold as a number of targets out of total (a
// percentage rounds down).
func (t Threshold) Of(total int) int {
	if t.Percent {
		return t.N * total / 100
	}
	return t.N
}

// String formats t as "3" or "10%".
func (t Threshold) String() string {
	if t.Percent {
		return strconv.Itoa(t.N) + "%"
	}
	return strconv.Itoa(t.N)
}

// MarshalJSON writes a count as a number and a percentage as "N%".
func (t Threshold) MarshalJSON() ([]byte, error) {
	if t.Percent {
		return json.Marshal(t.String())
	}
	return []byte(strconv.Itoa(t.N)), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Threshold) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, ok := parsePercent(s)
		if !ok {
			return fmt.Errorf("threshold %q is not a count or a percentage like \"10%%\"", s)
		}
		*t = Threshold{N: v, Percent: true}
		return nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return fmt.Errorf("threshold %s is not a count or a percentage like \"10%%\"", b)
	}
	*t = Threshold{N: n}
	return nil
}

// Schedule fires a job from a cron expression.
type Schedule struct {
	ID          string `json:"id"`
	Description string `json:"description,omitempty"`
	// Cron has 5 fields (minute first) or 6–7 (seconds first), or is a
	// descriptor such as @daily. Only its shape is checked here; the
	// scheduler parses it.
	Cron string `json:"cron"`
	// JobID names the job manifest to run.
	JobID string `json:"job_id"`
	// Target, when set, replaces the job's target.
	Target *Target `json:"target,omitempty"`
	// Enabled defaults to true.
	Enabled bool `json:"enabled"`
	// Timezone is the IANA zone the cron is read in ("" = UTC).
	Timezone string `json:"timezone,omitempty"`
}

// File is a parsed file of either kind.
type File struct {
	Kind     Kind      `json:"kind"`
	Manifest *Manifest `json:"manifest,omitempty"`
	Schedule *Schedule `json:"schedule,omitempty"`
}

// ID returns the id of the file's manifest or schedule ("" when none).
func (f File) ID() string {
	switch {
	case f.Manifest != nil:
		return f.Manifest.ID
	case f.Schedule != nil:
		return f.Schedule.ID
	}
	return ""
}

// Validate checks a manifest built in code (for example after a version
// override) with the same rules as the parser.
func (m Manifest) Validate() []Problem {
	b, err := json.Marshal(m)
	if err != nil {
		return []Problem{{Message: "cannot encode the manifest: " + err.Error()}}
	}
	_, ps := ParseJSON(b)
	return ps
}
