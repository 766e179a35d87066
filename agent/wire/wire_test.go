package wire

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		name, id string
		wantErr  bool
	}{
		{"simple", "pc-01_A", false},
		{"max length", strings.Repeat("a", 64), false},
		{"empty", "", true},
		{"too long", strings.Repeat("a", 65), true},
		{"dot", "pc1.corp", true},
		{"wildcard", "pc*", true},
		{"gt", "pc>", true},
		{"space", "pc 1", true},
		{"unicode", "pcé", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateID("pc_id", tt.id)
			if (err != nil) != tt.wantErr {
				t.Errorf("ValidateID(%q) = %v, wantErr %v", tt.id, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "pc_id") {
				t.Errorf("error %q does not name the field", err)
			}
		})
	}
}

func TestPCIDFromHostname(t *testing.T) {
	for in, want := range map[string]string{"pc1.corp.example": "pc1", "PC-7": "PC-7", "": ""} {
		if got := PCIDFromHostname(in); got != want {
			t.Errorf("PCIDFromHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCommandSubject(t *testing.T) {
	tests := []struct {
		subject string
		want    CommandAddress
		ok      bool
	}{
		{CommandAllSubject("job1"), CommandAddress{Scope: ScopeAll, Job: "job1"}, true},
		{CommandGroupSubject("canary", "job1"), CommandAddress{Scope: ScopeGroup, Name: "canary", Job: "job1"}, true},
		{CommandPCSubject("pc1", "job1"), CommandAddress{Scope: ScopePC, Name: "pc1", Job: "job1"}, true},
		{"commands.all", CommandAddress{}, false},
		{"commands.group.g", CommandAddress{}, false},
		{"commands.pc.pc1.job.extra", CommandAddress{}, false},
		{"commands.other.x.y", CommandAddress{}, false},
		{"results.x.y", CommandAddress{}, false},
		{"commands.pc.p*.job", CommandAddress{}, false},
		{"commands.all.job1.extra", CommandAddress{}, false},
		{"commands.pc.pc1.job1.extra.more", CommandAddress{}, false},
		{"commands.all.", CommandAddress{}, false},
		{"commands..job1", CommandAddress{}, false},
		{"commands.group..job1", CommandAddress{}, false},
		{"", CommandAddress{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseCommandSubject(tt.subject)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseCommandSubject(%q) = %+v, %v; want %+v, %v", tt.subject, got, ok, tt.want, tt.ok)
		}
	}
	// Every agent parses the subject of every command.
	subject := CommandGroupSubject("canary", "job1")
	if n := testing.AllocsPerRun(100, func() { ParseCommandSubject(subject) }); n != 0 {
		t.Errorf("ParseCommandSubject allocates %.0f times, want 0", n)
	}
}

func TestCommandAddress_For(t *testing.T) {
	groups := []string{"canary", "lab"}
	tests := []struct {
		a    CommandAddress
		want bool
	}{
		{CommandAddress{Scope: ScopeAll}, true},
		{CommandAddress{Scope: ScopePC, Name: "pc1"}, true},
		{CommandAddress{Scope: ScopePC, Name: "pc2"}, false},
		{CommandAddress{Scope: ScopeGroup, Name: "lab"}, true},
		{CommandAddress{Scope: ScopeGroup, Name: "finance"}, false},
	}
	for _, tt := range tests {
		if got := tt.a.For("pc1", groups); got != tt.want {
			t.Errorf("%+v.For(pc1, %v) = %v, want %v", tt.a, groups, got, tt.want)
		}
	}
}

func TestSubjectsMatchWildcards(t *testing.T) {
	// Every publisher subject must have exactly the token count its
	// subscriber wildcard expects; a mismatch would silently lose messages.
	pairs := []struct{ subject, wildcard string }{
		{HeartbeatSubject("pc1"), HeartbeatWildcard},
		{KillSubject("e1"), KillWildcard},
		{CommandPCSubject("pc1", "j"), CommandPCWildcard("pc1")},
		{CommandGroupSubject("g", "j"), CommandGroupWildcard("g")},
		{CommandAllSubject("j"), CommandAllWildcard},
		{ResultSubject("pc1"), StreamResultsSubjects},
		{OutputSubject("pc1"), StreamOutputSubjects},
		{CatchupSubject("pc1"), CatchupWildcard},
	}
	for _, p := range pairs {
		if !matches(p.wildcard, p.subject) {
			t.Errorf("%q does not match %q", p.subject, p.wildcard)
		}
	}
}

func matches(pattern, subject string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) || (p != "*" && p != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

func TestDuration_JSON(t *testing.T) {
	var v struct{ D Duration }
	for in, want := range map[string]time.Duration{`{"D":"90s"}`: 90 * time.Second, `{"D":"1h30m"}`: 90 * time.Minute, `{"D":2.5}`: 2500 * time.Millisecond,
		`{"D":"9\u0030s"}`: 90 * time.Second, `{"D":"1.5µs"}`: 1500 * time.Nanosecond, `{"D": "2s" }`: 2 * time.Second} {
		if err := json.Unmarshal([]byte(in), &v); err != nil || v.D.D() != want {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", in, v.D, err, want)
		}
	}
	if err := json.Unmarshal([]byte(`{"D":"soon"}`), &v); err == nil {
		t.Error("invalid duration accepted")
	}
	for _, bad := range []string{`{"D":"soon"}`, `{"D":"\"}`, `{"D":"1s\"}`, `{"D":true}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
	for _, d := range []time.Duration{time.Minute, 1500 * time.Nanosecond, -90 * time.Minute, 0} {
		b, err := json.Marshal(struct{ D Duration }{Duration(d)})
		want, _ := json.Marshal(struct{ D string }{d.String()})
		if err != nil || string(b) != string(want) {
			t.Errorf("Marshal(%v) = %s, %v; want %s", d, b, err, want)
		}
	}
}

func TestCommand_Validate(t *testing.T) {
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	ok := Command{ExecID: "e1", JobID: "j", Shell: ShellSh, Script: "echo", Timeout: Duration(time.Second), IssuedAt: now, DeadlineAt: now.Add(time.Hour)}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid command: %v", err)
	}
	bad := Command{ExecID: "e.1", JobID: "", Shell: "bash", Timeout: 0, IssuedAt: now, DeadlineAt: now}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid command accepted")
	}
	for _, want := range []string{"exec_id", "job_id", "shell", "script", "timeout", "deadline_at"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestResult_LenientReader(t *testing.T) {
	// Readers ignore unknown fields: an agent newer than the server still reports.
	var r Result
	in := `{"exec_id":"e1","pc_id":"pc1","state":"succeeded","exit_code":0,"future_field":{"x":1}}`
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	zero := 0
	want := Result{ExecID: "e1", PCID: "pc1", State: StateSucceeded, ExitCode: &zero}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if err := r.Validate(); err != nil {
		t.Error(err)
	}
	for _, st := range []State{StatePending, StateLost} {
		r.State = st
		if r.Validate() == nil {
			t.Errorf("an agent must not report %s", st)
		}
	}
}

func TestStates(t *testing.T) {
	final := map[State]bool{StateSucceeded: true, StateFailed: true, StateTimedOut: true, StateKilled: true, StateSkipped: true, StateExpired: true, StateLost: true}
	for _, s := range States {
		if s.Final() != final[s] || !s.Valid() {
			t.Errorf("%s: Final=%v Valid=%v", s, s.Final(), s.Valid())
		}
	}
	if State("done").Valid() {
		t.Error("unknown state valid")
	}
}

func TestHeartbeat_RunningExecs(t *testing.T) {
	many := make([]string, MaxRunningExecs+1)
	for i := range many {
		many[i] = fmt.Sprintf("e%d", i)
	}
	tests := []struct {
		name  string
		execs []string
		ok    bool
	}{
		{"none", nil, true},
		{"some", []string{"e1", "e2"}, true},
		{"at the limit", many[:MaxRunningExecs], true},
		{"over the limit", many, false},
		{"not an id", []string{"e1", "a.b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := Heartbeat{PCID: "pc1", Interval: Duration(time.Second), Running: len(tt.execs), RunningExecs: tt.execs}
			if err := hb.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			b, _ := json.Marshal(hb)
			var back Heartbeat
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.execs, back.RunningExecs); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHeartbeat_User: the logged-on user is printable text of at most
// MaxUserLen bytes; anything else fails the heartbeat.
func TestHeartbeat_User(t *testing.T) {
	tests := []struct {
		name, user string
		ok         bool
	}{
		{"none", "", true},
		{"domain user", `CORP\alice`, true},
		{"remote", "bob (remote)", true},
		{"non-ASCII", "józef", true},
		{"at the limit", strings.Repeat("a", MaxUserLen), true},
		{"over the limit", strings.Repeat("a", MaxUserLen+1), false},
		{"a newline", "alice\nadmin", false},
		{"invalid UTF-8", "al\xffice", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := Heartbeat{PCID: "pc1", Interval: Duration(time.Second), User: tt.user}
			if err := hb.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate(user %q) = %v, want ok=%v", tt.user, err, tt.ok)
			}
		})
	}
}

func TestResult_AppendJSON(t *testing.T) {
	code, neg := 3, -1
	at := time.Date(2026, 12, 6, 3, 4, 5, 600700800, time.UTC)
	tests := []Result{
		{},
		{Protocol: ProtocolVersion, ExecID: "e1", PCID: "pc-1", State: StateRunning, StartedAt: at},
		{Protocol: 2, ExecID: "e1", PCID: "pc1", State: StateSucceeded, ExitCode: &code, Stdout: "hi\n", Stderr: "warn",
			Truncated: true, StartedAt: at, FinishedAt: at.Add(time.Second)},
		{ExecID: "e", PCID: "p", State: StateFailed, Reason: `quote " backslash \ <b>&amp;`, ExitCode: &neg},
		{Stdout: "日本語 \t\r\n\b\f\x00\x1f \u2028 \u2029 \x7f", Stderr: "bad \xff\xfe utf-8"},
		{StartedAt: at.In(time.FixedZone("", 9*3600)), FinishedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(5*3600+30*60)))},
		{StartedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},                    // json.Marshal fails: no year 10000 in RFC 3339
		{FinishedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 25*3600))}, // nor an offset beyond a day
	}
	for i, r := range tests {
		want, wantErr := json.Marshal(r)
		got, err := r.AppendJSON([]byte("x"))
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%d: AppendJSON error %v, json.Marshal's %v", i, err, wantErr)
		} else if err == nil && string(got) != "x"+string(want) {
			t.Errorf("%d: AppendJSON\n got %s\nwant x%s", i, got, want)
		}
	}
}

func FuzzResult_AppendJSON(f *testing.F) {
	f.Add("e1", "pc1", "succeeded", "reason", "out\n", "err", int64(0), 0, true)
	f.Add("", "", "", "<&>", "日本\xff", "\x00", int64(-62135596800), 2, false)
	f.Fuzz(func(t *testing.T, exec, pc, state, reason, stdout, stderr string, unix int64, code int, trunc bool) {
		at := time.Unix(unix%(400*365*86400), unix%1e9).UTC()
		r := Result{Protocol: code, ExecID: exec, PCID: pc, State: State(state), Reason: reason, Stdout: stdout, Stderr: stderr,
			Truncated: trunc, StartedAt: at, FinishedAt: at.Add(time.Duration(code) * time.Millisecond)}
		if code%3 == 0 {
			r.ExitCode = &code
		}
		want, wantErr := json.Marshal(r)
		got, err := r.AppendJSON(nil)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("AppendJSON error %v, json.Marshal's %v", err, wantErr)
		} else if err == nil && string(got) != string(want) {
			t.Errorf("AppendJSON\n got %s\nwant %s", got, want)
		}
	})
}

// BenchmarkResultEncoding: a swarm target's final result, as the worker
// encodes it, against json.Marshal.
func BenchmarkResultEncoding(b *testing.B) {
	code := 0
	at := time.Now().UTC()
	r := Result{Protocol: ProtocolVersion, ExecID: "01JEXAMPLE0000000000000000", PCID: "swarm-00042", State: StateSucceeded,
		ExitCode: &code, Stdout: strings.Repeat("x", 255) + "\n", StartedAt: at, FinishedAt: at.Add(time.Millisecond)}
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.AppendJSON(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestParseResultSubject(t *testing.T) {
	tests := []struct {
		subject      string
		wantPC, exec string
		ok           bool
	}{
		{ResultSubject("pc1"), "pc1", "", true},
		{"results.e1.pc1", "pc1", "e1", true},
		{"results.", "", "", false},
		{"results", "", "", false},
		{"results.e1.", "", "", false},
		{"results..pc1", "", "", false},
		{"results.e1.pc1.x", "", "", false},
		{"output.pc1", "", "", false},
		{HeartbeatSubject("pc1"), "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		pc, exec, ok := ParseResultSubject(tt.subject)
		if pc != tt.wantPC || exec != tt.exec || ok != tt.ok {
			t.Errorf("ParseResultSubject(%q) = %q, %q, %v; want %q, %q, %v", tt.subject, pc, exec, ok, tt.wantPC, tt.exec, tt.ok)
		}
	}
	// The protocol 1 form is what the stream's transform maps.
	if !matches(ResultV1Wildcard, "results.e1.pc1") || matches(ResultV1Wildcard, ResultSubject("pc1")) {
		t.Errorf("ResultV1Wildcard %q matches the wrong form", ResultV1Wildcard)
	}
}

// Each family's predicate holds for exactly the subjects its functions
// build (and its wildcards match).
func TestSubjectFamilies(t *testing.T) {
	is := map[string]func(string) bool{"commands": IsCommandSubject, "kill": IsKillSubject, "control": IsControlSubject, "results": IsResultSubject}
	subjects := []struct{ family, subject string }{
		{"commands", CommandAllSubject("j")},
		{"commands", CommandGroupSubject("g", "j")},
		{"commands", CommandPCSubject("pc1", "j")},
		{"kill", KillSubject("e1")},
		{"control", ControlAll},
		{"control", ControlPCSubject("pc1")},
		{"results", ResultSubject("pc1")},
		{"results", "results.e1.pc1"},
		{"", OutputSubject("pc1")},
		{"", HeartbeatSubject("pc1")},
		{"", CatchupSubject("pc1")},
		{"", "commandsx.all.j"},
		{"", "killer.e1"},
		{"", ""},
	}
	patterns := map[string]string{"commands": StreamExecSubjects, "kill": KillWildcard, "control": ControlWildcard, "results": StreamResultsSubjects}
	for _, s := range subjects {
		for family, f := range is {
			if got, want := f(s.subject), family == s.family; got != want {
				t.Errorf("Is %s subject(%q) = %v, want %v", family, s.subject, got, want)
			}
		}
		if s.family != "" && !matches(patterns[s.family], s.subject) {
			t.Errorf("%q does not match its family's pattern %q", s.subject, patterns[s.family])
		}
	}
}
