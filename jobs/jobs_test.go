package jobs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

const validYAML = `id: disk-report
version: 1.0.0
target:
  groups: [linux]
execute:
  shell: sh
  script: df -h
  timeout: 1m
`

func TestParse_ThreeMistakes(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []Problem
	}{
		{
			name: "duration, group, percent",
			yaml: `id: clean-temp
version: 1.0.0
target:
  groups: [Finance]
execute:
  shell: powershell
  script: Remove-Item $env:TEMP\* -Recurse
  timeout: 10 minutes
rollout:
  waves:
    - name: canary
      count: 5
    - name: rest
      percent: 150
`,
			want: []Problem{
				{Field: "target.groups[0]", Line: 4, Message: `"Finance" must be lower-case`},
				{Field: "execute.timeout", Line: 8, Message: `"10 minutes" is not a duration: write one such as "30s", "10m" or "1h30m"`},
				{Field: "rollout.waves[1].percent", Line: 14, Message: "must be from 1 to 100, not 150"},
			},
		},
		{
			name: "unknown key, empty script, bad id",
			yaml: `id: clean temp
version: 1.0.0
target:
  all: true
execute:
  shell: sh
  script: "  "
  timeout: 1m
  retries: 3
`,
			want: []Problem{
				{Field: "id", Line: 1, Message: `"clean temp" has ' ' at position 6: use only letters, digits, '-' and '_'`},
				{Field: "execute.script", Line: 7, Message: "is empty: write the commands to run"},
				{Field: "execute.retries", Line: 9, Message: `unknown field "retries"; the fields here are shell, script, timeout, jitter`},
			},
		},
		{
			name: "wrong types",
			yaml: `id: types
version: 1.0.0
target:
  all: yes
  pcs: pc1
execute:
  shell: sh
  script: uptime
  timeout: 60
`,
			want: []Problem{
				{Field: "target.all", Line: 4, Message: `must be true or false, not the text "yes"`},
				{Field: "target.pcs", Line: 5, Message: `must be a list, not the text "pc1" (write [pc1])`},
				{Field: "execute.timeout", Line: 9, Message: `60 has no unit: write a duration such as "60s", "10m" or "1h30m"`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := Parse("job.yaml", []byte(tt.yaml))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParse_Valid(t *testing.T) {
	m, ps := Parse("disk-report.yaml", []byte(validYAML))
	if len(ps) > 0 {
		t.Fatalf("Parse: %v", ps)
	}
	want := Manifest{
		ID: "disk-report", Version: "1.0.0", Target: Target{Groups: []string{"linux"}},
		Execute: Execute{Shell: "sh", Script: "df -h", Timeout: wire.Duration(time.Minute)},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseJSON(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []Problem
	}{
		{"valid", `{"id":"disk-report","version":"1.0.0","target":{"groups":["linux"]},"execute":{"shell":"sh","script":"df -h","timeout":"1m"}}`, nil},
		{"same rules, no lines", `{"id":"disk-report","version":"1.0.0","target":{"groups":["linux"]},"execute":{"shell":"bash","script":"df -h","timeout":60},"extra":1}`, []Problem{
			{Field: "extra", Message: `unknown field "extra"; the fields here are id, version, description, target, execute, deadline, rollout, four_eyes`},
			{Field: "execute.shell", Message: `"bash" is not one of sh, cmd, powershell, pwsh`},
			{Field: "execute.timeout", Message: `60 has no unit: write a duration such as "60s", "10m" or "1h30m"`},
		}},
		{"duplicate key", `{"id":"a","id":"b","version":"1","target":{"all":true},"execute":{"shell":"sh","script":"x","timeout":"1s"}}`, []Problem{
			{Field: "id", Message: "is set twice"},
		}},
		{"thresholds", `{"id":"a","version":"1","target":{"all":true},"execute":{"shell":"sh","script":"x","timeout":"1s"},"rollout":{"waves":[{"name":"w","percent":50,"max_failures":"10%","min_success":2.5}]}}`, []Problem{
			{Field: "rollout.waves[0].min_success", Message: `must be a number of targets such as 3, or a percentage from 0% to 100% such as "10%", not the number 2.5`},
		}},
		{"syntax", `{"id":`, []Problem{{Message: "invalid JSON: unexpected EOF"}}},
		{"two values", `{} {}`, []Problem{{Message: "invalid JSON: more than one value: send one manifest"}}},
		{"empty", ``, []Problem{{Message: "the body is empty: send a manifest with id, version, target and execute"}}},
		{"schedule", `{"id":"s","cron":"@daily","job_id":"a"}`, []Problem{{Field: "kind", Line: 1, Message: "this file is a schedule, not a job manifest"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := ParseJSON([]byte(tt.body))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseJSON(%s) problems (-want +got):\n%s", tt.body, diff)
			}
		})
	}
}

// TestParseJSON_SameAsYAML parses every sample as YAML, writes it as JSON
// and reads that back: the same manifest, without a problem.
func TestParseJSON_SameAsYAML(t *testing.T) {
	for _, name := range []string{"echo-test.yaml", "wave-test.yaml", "windows-clean-temp.yaml", "windows-restart-spooler.yaml", "linux-clean-tmp.yaml"} {
		m, ps := Parse(name, mustRead(t, name))
		if len(ps) > 0 {
			t.Fatalf("Parse(%s): %v", name, ps)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, ps := ParseJSON(b)
		if len(ps) > 0 {
			t.Errorf("ParseJSON(%s as JSON): %v", name, ps)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("ParseJSON(%s as JSON) (-yaml +json):\n%s", name, diff)
		}
	}
}

func TestParseFile_Kinds(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       Kind
	}{
		{"job", validYAML, KindJob},
		{"cron makes a schedule", "id: s\ncron: '@daily'\njob_id: disk-report\n", KindSchedule},
		{"explicit schedule", "kind: schedule\nid: s\ncron: '0 3 * * *'\njob_id: disk-report\n", KindSchedule},
		{"explicit job wins over cron", "kind: job\n" + validYAML + "cron: x\n", KindJob},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if f, _ := ParseFile("x.yaml", []byte(tt.yaml)); f.Kind != tt.want {
				t.Errorf("ParseFile kind = %q, want %q", f.Kind, tt.want)
			}
		})
	}
	if _, ps := ParseSchedule("x.yaml", []byte(validYAML)); len(ps) != 1 || ps[0].Field != "kind" {
		t.Errorf("ParseSchedule(job) problems = %v, want one about kind", ps)
	}
	s, ps := ParseSchedule("x.yaml", []byte("id: s\ncron: '@daily'\njob_id: disk-report\n"))
	if len(ps) > 0 || !s.Enabled || s.JobID != "disk-report" {
		t.Errorf("ParseSchedule = %+v, %v; want enabled by default", s, ps)
	}
}

func TestParseFile_TooLarge(t *testing.T) {
	data := []byte(validYAML + "description: " + strings.Repeat("x", MaxSize) + "\n")
	_, ps := ParseFile("big.yaml", data)
	if len(ps) != 1 || !strings.Contains(ps[0].Message, "at most 262144") {
		t.Errorf("ParseFile(big) = %v, want one size problem", ps)
	}
}

func TestParseFile_PartialManifest(t *testing.T) {
	// An invalid file still yields what could be read, for display.
	f, ps := ParseFile("x.yaml", []byte("id: half\nversion: 2.1.0\ndescription: half a job\n"))
	if len(ps) != 2 {
		t.Errorf("problems = %v, want target and execute missing", ps)
	}
	if f.Manifest == nil || f.Manifest.ID != "half" || f.Manifest.Version != "2.1.0" || f.Manifest.Description != "half a job" {
		t.Errorf("manifest = %+v", f.Manifest)
	}
}

func TestManifest_Validate(t *testing.T) {
	m, _ := Parse("x.yaml", []byte(validYAML))
	if ps := m.Validate(); len(ps) > 0 {
		t.Errorf("Validate(valid) = %v", ps)
	}
	m.Version = "2.0 rc1"
	m.Execute.Timeout = 0
	want := []Problem{
		{Field: "version", Message: `"2.0 rc1" must not contain spaces or control characters`},
		{Field: "execute.timeout", Message: "must be longer than 0s"},
	}
	if diff := cmp.Diff(want, m.Validate()); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
}

func TestThreshold_JSON(t *testing.T) {
	tests := []struct {
		json string
		want Threshold
	}{
		{`3`, Threshold{N: 3}},
		{`"10%"`, Threshold{N: 10, Percent: true}},
		{`"0%"`, Threshold{N: 0, Percent: true}},
	}
	for _, tt := range tests {
		var got Threshold
		if err := json.Unmarshal([]byte(tt.json), &got); err != nil {
			t.Fatalf("Unmarshal(%s): %v", tt.json, err)
		}
		if got != tt.want {
			t.Errorf("Unmarshal(%s) = %+v, want %+v", tt.json, got, tt.want)
		}
		b, _ := json.Marshal(got)
		if string(b) != tt.json {
			t.Errorf("Marshal(%+v) = %s, want %s", got, b, tt.json)
		}
	}
	for _, bad := range []string{`"101%"`, `"ten"`, `1.5`, `"-1%"`} {
		var th Threshold
		if err := json.Unmarshal([]byte(bad), &th); err == nil {
			t.Errorf("Unmarshal(%s) = %+v, want an error", bad, th)
		}
	}
}

func TestProblem_String(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Field: "execute.timeout", Line: 7, Message: "bad"}, "line 7: execute.timeout: bad"},
		{Problem{Field: "id", Message: "bad"}, "id: bad"},
		{Problem{Line: 1, Message: "empty"}, "line 1: empty"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestCheckCron(t *testing.T) {
	tests := []struct {
		cron string
		ok   bool
	}{
		{"*/10 * * * * *", true},
		{"0 3 * * *", true},
		{"0 0 3 ? * MON-FRI", true},
		{"0 0 3 * * * 2030", true},
		{"@daily", true},
		{"@every 5m", false},
		{"0 3 * *", false},
		{"0 3 * * * * * *", false},
		{"0 3 * * $", false},
		{" ", false},
	}
	for _, tt := range tests {
		if err := checkCron(tt.cron); (err == nil) != tt.ok {
			t.Errorf("checkCron(%q) = %v, want ok=%v", tt.cron, err, tt.ok)
		}
	}
}

func TestTarget_String(t *testing.T) {
	tests := []struct {
		t    Target
		want string
	}{
		{Target{All: true}, "all"},
		{Target{Groups: []string{"a", "b"}, PCs: []string{"pc1"}}, "groups a, b; pcs pc1"},
		{Target{}, "nothing"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.t, got, tt.want)
		}
	}
}
