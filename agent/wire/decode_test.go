package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sameAsJSON checks that decode(data) is what json.Unmarshal into a zero
// T gives, that the fast path, when it takes data, agrees, and reports
// whether it did.
func sameAsJSON[T any](t *testing.T, data []byte, decode func([]byte) (T, error), fastPath func([]byte, *T) bool) (fast bool) {
	t.Helper()
	var want, viaFast T
	wantErr := json.Unmarshal(data, &want)
	got, err := decode(data)
	fast = fastPath(data, &viaFast)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Errorf("decoding %q: error %v, json.Unmarshal's %v", data, err, wantErr)
	case fast && wantErr != nil:
		t.Errorf("the fast path decoded %q, which json.Unmarshal rejects: %v", data, wantErr)
	case err == nil:
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("decoding %q differs from json.Unmarshal (-want +got):\n%s", data, diff)
		}
		if diff := cmp.Diff(want, viaFast); fast && diff != "" {
			t.Errorf("the fast path's decoding of %q differs from json.Unmarshal (-want +got):\n%s", data, diff)
		}
	}
	return fast
}

func sameResultAsJSON(t *testing.T, data []byte) bool {
	t.Helper()
	return sameAsJSON(t, data, DecodeResult, decodeResultFast)
}

func sameCommandAsJSON(t *testing.T, data []byte) bool {
	t.Helper()
	return sameAsJSON(t, data, DecodeCommand, decodeCommandFast)
}

func TestDecodeResult(t *testing.T) {
	code, neg := 3, -1
	at := time.Date(2026, 12, 6, 3, 4, 5, 600700800, time.UTC)
	// What agents write (AppendJSON) takes the fast path.
	for i, r := range []Result{
		{},
		{Protocol: ProtocolVersion, ExecID: "e1", PCID: "pc-1", State: StateRunning, StartedAt: at},
		{Protocol: 2, ExecID: "e1", PCID: "pc1", State: StateSucceeded, ExitCode: &code, Stdout: "hi\n", Stderr: "warn",
			Truncated: true, StartedAt: at, FinishedAt: at.Add(time.Second)},
		{ExecID: "e", PCID: "p", State: StateFailed, Reason: `quote " backslash \ <b>&amp; /`, ExitCode: &neg},
		{Stdout: "日本語 \t\r\n\b\f\x00\x1f \u2028 \u2029 \x7f é", Stderr: strings.Repeat("line\n", 100)},
		{StartedAt: at.In(time.FixedZone("", 9*3600)), FinishedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(5*3600+30*60)))},
	} {
		b, err := r.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !sameResultAsJSON(t, b) {
			t.Errorf("%d: %s did not take the fast path", i, b)
		}
		if got, _ := DecodeResult(b); !cmp.Equal(got, r) {
			t.Errorf("%d: %s decoded as %+v, want %+v", i, b, got, r)
		}
	}
	// Everything else decodes (or fails) as encoding/json has it.
	for _, s := range []string{
		``, `null`, `[]`, `{`, `{}`, ` { } `, `{} x`, `{"exec_id":"e1",}`, `{"exec_id" "e1"}`,
		`{"exec_id":"e1","exec_id":"e2"}`, `{"EXEC_ID":"e1"}`, `{"exec\u005fid":"e1"}`, `{"other":1,"pc_id":"p"}`,
		`{"protocol":01}`, `{"protocol":-0}`, `{"protocol":1.0}`, `{"protocol":1e2}`, `{"protocol":-}`, `{"protocol":"2"}`,
		`{"protocol":99999999999999999999}`, `{"exit_code":null}`, `{"exit_code":0,"exit_code":7}`, `{"truncated":true}`,
		`{"truncated":false}`, `{"truncated":tru}`, `{"truncated":1}`, `{"state":null}`, `{"stdout":"a\u00e9\u20ac\/"}`,
		`{"stdout":"\ud83d\ude00"}`, `{"stdout":"\ud83d"}`, `{"stdout":"\u12"}`, `{"stdout":"\x"}`, "{\"stdout\":\"a\x01\"}",
		"{\"stdout\":\"\xff\"}", "{\"stdout\":\"\\n\xff\"}", "{\"stdout\":\"\xc3\\u00a9\"}", `{"stdout":"unterminated}`,
		`{"started_at":"2026-12-06T03:04:05Z"}`, `{"started_at":"2026-12-06 03:04:05Z"}`, `{"started_at":null}`,
		`{"started_at":"2026-12-06T03:04:05+25:00"}`, `{"finished_at":"2026-12-06T03:04:05.1\u0032Z"}`, `{"started_at":1}`,
		"\t{\n\"pc_id\" :\r\"p\" , \"exit_code\" : -12 }\n",
	} {
		sameResultAsJSON(t, []byte(s))
	}
}

func FuzzDecodeResult(f *testing.F) {
	code := 1
	at := time.Date(2026, 12, 6, 3, 4, 5, 6, time.UTC)
	r := Result{Protocol: 2, ExecID: "e1", PCID: "pc1", State: StateFailed, Reason: "exit code 1", ExitCode: &code,
		Stdout: "a <b> \"c\" \\ é\n", Stderr: "\x00", Truncated: true, StartedAt: at, FinishedAt: at}
	b, _ := r.AppendJSON(nil)
	f.Add(b)
	f.Add([]byte(`{"stdout":"\ud83d\ude00 \u00e9","protocol":-0,"exit_code":12}`))
	f.Add([]byte(" {\"state\" : \"x\" , \"truncated\":false}\n"))
	f.Fuzz(func(t *testing.T, data []byte) { sameResultAsJSON(t, data) })
}

// BenchmarkResultDecoding: a swarm target's final result, as the results
// projector decodes it, against json.Unmarshal.
func BenchmarkResultDecoding(b *testing.B) {
	code := 0
	at := time.Now().UTC()
	r := Result{Protocol: ProtocolVersion, ExecID: "01JEXAMPLE0000000000000000", PCID: "swarm-00042", State: StateSucceeded,
		ExitCode: &code, Stdout: strings.Repeat("simulated output of swarm-00042\n", 8), StartedAt: at, FinishedAt: at.Add(time.Millisecond)}
	data, err := r.AppendJSON(nil)
	if err != nil {
		b.Fatal(err)
	}
	benchDecoding(b, "DecodeResult", data, DecodeResult)
}

func TestDecodeCommand(t *testing.T) {
	at := time.Date(2026, 12, 6, 3, 4, 5, 600700800, time.UTC)
	// What the server publishes (json.Marshal) takes the fast path.
	for i, c := range []Command{
		{},
		{Protocol: ProtocolVersion, ExecID: "01JEXAMPLE", JobID: "adhoc", Shell: ShellPowerShell,
			Script:  "Get-Process | Where-Object { $_.CPU -gt 10 } > \"C:\\temp\\out.txt\" && echo <done>\r\n",
			Timeout: Duration(5 * time.Minute), IssuedAt: at, DeadlineAt: at.Add(time.Hour), OutputCap: 1 << 20},
		{Protocol: 2, ExecID: "e", JobID: "j", Version: "1.2.0", Shell: ShellSh, Script: "echo 日本 é\n\techo \x00",
			Timeout: Duration(90 * time.Second), Jitter: Duration(1500 * time.Millisecond), IssuedAt: at.In(time.FixedZone("", 3600))},
	} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if !sameCommandAsJSON(t, b) {
			t.Errorf("%d: %s did not take the fast path", i, b)
		}
		if got, _ := DecodeCommand(b); !cmp.Equal(got, c) {
			t.Errorf("%d: %s decoded as %+v, want %+v", i, b, got, c)
		}
	}
	// Everything else decodes (or fails) as encoding/json has it.
	for _, s := range []string{
		``, `{}`, `{"timeout":30}`, `{"timeout":1.5}`, `{"timeout":"soon"}`, `{"timeout":"1\u0068"}`, `{"jitter":null}`,
		`{"timeout":"-5s"}`, `{"output_cap":-1}`, `{"output_cap":1e3}`, `{"issued_at":"2026-12-06T03:04:05Z","issued_at":"bad"}`,
		`{"script":"\u003cb\u003e \u0026"}`, `{"Script":"x"}`, `{"script":"a","extra":[1,2]}`, `{"deadline_at":"2026-02-30T00:00:00Z"}`,
	} {
		sameCommandAsJSON(t, []byte(s))
	}
}

func FuzzDecodeCommand(f *testing.F) {
	at := time.Date(2026, 12, 6, 3, 4, 5, 6, time.UTC)
	b, _ := json.Marshal(Command{Protocol: 2, ExecID: "e1", JobID: "j", Version: "1", Shell: ShellSh, Script: "echo <a> & \"b\"\n",
		Timeout: Duration(time.Minute), Jitter: Duration(time.Second), IssuedAt: at, DeadlineAt: at, OutputCap: 10})
	f.Add(b)
	f.Add([]byte(`{"timeout":30,"jitter":"1m30s","script":"\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, data []byte) { sameCommandAsJSON(t, data) })
}

// BenchmarkCommandDecoding: an ad-hoc command as every agent decodes it,
// against json.Unmarshal.
func BenchmarkCommandDecoding(b *testing.B) {
	at := time.Now().UTC()
	data, err := json.Marshal(Command{Protocol: ProtocolVersion, ExecID: "01JEXAMPLE0000000000000000", JobID: "adhoc", Shell: ShellSh,
		Script: "echo profiled round", Timeout: Duration(5 * time.Minute), IssuedAt: at, DeadlineAt: at.Add(time.Hour), OutputCap: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	benchDecoding(b, "DecodeCommand", data, DecodeCommand)
}

// benchDecoding runs decode, named name, and json.Unmarshal on data.
func benchDecoding[T any](b *testing.B, name string, data []byte, decode func([]byte) (T, error)) {
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v T
			if err := json.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
