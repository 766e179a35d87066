package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// testDispatcher is a dispatcher on a real embedded broker and store, with
// pc1 and pc2 recorded (online) and an audit recorder on the server's
// connection.
func testDispatcher(t *testing.T) (*Dispatcher, *bus.Bus, *store.Store) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	limits := bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
		ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20, AuditMaxBytes: 64 << 20}
	b, err := bus.Open(ctx, bus.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20, Logger: log, Streams: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	st := storetest.New(t)
	now := time.Now().UTC()
	var agents []store.Agent
	for _, pc := range []string{"pc1", "pc2"} {
		agents = append(agents, store.Agent{PCID: pc, Hostname: pc, OS: "linux", Arch: "amd64", Protocol: wire.ProtocolVersion,
			Interval: 30 * time.Second, LastSeen: now, OfflineAfter: now.Add(time.Hour)})
	}
	if err := st.UpsertAgents(ctx, agents); err != nil {
		t.Fatal(err)
	}
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := New(st, b.CmdNC, b.CmdJS, keys, events.New(), Limits{DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultDeadline: time.Hour}, log)
	d.Audit = audit.New(b.JS, log)
	d.Provisioner = bus.NewProvisioner(b.CmdJS, limits, log)
	// As the server does at start: agents and the server read a missing
	// emergency stop as on.
	if err := d.EnsureEmergencyStop(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d, b, st
}

// lastCommand is the newest message on subject in EXEC.
func lastCommand(t *testing.T, b *bus.Bus, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := b.CmdJS.Stream(ctx, wire.StreamExec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatalf("last message on %s: %v", subject, err)
	}
	return m
}

func execMsgs(t *testing.T, b *bus.Bus) uint64 {
	t.Helper()
	st, err := b.CmdJS.Stream(context.Background(), wire.StreamExec)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.Msgs
}

// lastAudit is the detail of the newest event of action in AUDIT.
func lastAudit(t *testing.T, b *bus.Bus, action string) audit.Event {
	t.Helper()
	ctx := context.Background()
	st, err := b.JS.Stream(ctx, wire.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, wire.AuditSubject(action))
	if err != nil {
		t.Fatalf("last %s event: %v", action, err)
	}
	var ev audit.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func job(id, version, shell, script string) jobs.Manifest {
	return jobs.Manifest{ID: id, Version: version, Target: jobs.Target{PCs: []string{"pc1"}},
		Execute: jobs.Execute{Shell: shell, Script: script, Timeout: wire.Duration(time.Minute)}}
}

// A kill replaces a command that is still the newest on its subject with
// a withdrawal (EXEC refuses purges), so PCs that were offline never get
// it; a newer deployment of the job stays.
func TestKill_WithdrawsTheNewestCommand(t *testing.T) {
	d, b, _ := testDispatcher(t)
	ctx := context.Background()
	run, err := d.Run(ctx, RunRequest{Target: store.Target{PCs: []string{"pc1"}}, Shell: "sh", Script: "true", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := d.Deploy(ctx, DeployRequest{Manifest: job("j", "1", "sh", "echo 1"), Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := d.Deploy(ctx, DeployRequest{Manifest: job("j", "2", "sh", "echo 2"), Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{run.ExecID, v1.ExecID} {
		if err := d.Kill(ctx, id, "bob"); err != nil {
			t.Fatalf("Kill(%s): %v", id, err)
		}
	}
	tests := []struct {
		name, subject string
		withdrawn     string // exec_id in the withdrawal header, "" for a command
		command       string // exec_id of the command
	}{
		{"killed ad-hoc run", wire.CommandPCSubject("pc1", adhocToken(run.ExecID)), run.ExecID, ""},
		{"newer deployment of a killed one", wire.CommandPCSubject("pc1", "j"), "", v2.ExecID},
	}
	for _, tt := range tests {
		m := lastCommand(t, b, tt.subject)
		if got := m.Header.Get(wire.HeaderWithdrawn); got != tt.withdrawn {
			t.Errorf("%s: withdrawal header %q, want %q", tt.name, got, tt.withdrawn)
		}
		if tt.command != "" {
			var cmd wire.Command
			if err := json.Unmarshal(m.Data, &cmd); err != nil || cmd.ExecID != tt.command {
				t.Errorf("%s: newest message %s, want the command of %s", tt.name, m.Data, tt.command)
			}
		} else if len(m.Data) != 0 {
			t.Errorf("%s: a withdrawal with a body: %s", tt.name, m.Data)
		}
	}
	// Killing v2 now withdraws it too.
	if err := d.Kill(ctx, v2.ExecID, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := lastCommand(t, b, wire.CommandPCSubject("pc1", "j")).Header.Get(wire.HeaderWithdrawn); got != v2.ExecID {
		t.Errorf("after killing v2: withdrawal header %q, want %s", got, v2.ExecID)
	}
}

// With the audit log unavailable a run, a deploy and a kill are refused
// with ErrUnavailable and change nothing: no execution, no command, the
// killed execution still running with its command in place.
func TestActions_RefusedWhenTheAuditLogIsUnavailable(t *testing.T) {
	d, b, st := testDispatcher(t)
	ctx := context.Background()
	e, err := d.Run(ctx, RunRequest{Target: store.Target{PCs: []string{"pc1"}}, Shell: "sh", Script: "true", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	before := execMsgs(t, b)
	b.NC.Close() // the recorder's connection; the dispatcher's stays up

	actions := []struct {
		name string
		do   func() error
	}{
		{"run", func() error {
			_, err := d.Run(ctx, RunRequest{Target: store.Target{PCs: []string{"pc1"}}, Shell: "sh", Script: "true", Actor: "alice"})
			return err
		}},
		{"deploy", func() error {
			_, err := d.Deploy(ctx, DeployRequest{Manifest: job("j", "1", "sh", "true"), Actor: "alice"})
			return err
		}},
		{"kill", func() error { return d.Kill(ctx, e.ExecID, "alice") }},
		{"revoke", func() error { return d.SetJobStatus(ctx, "j", wire.StatusRevoked, "alice") }},
		{"lift the emergency stop", func() error { _, err := d.SetEmergencyStop(ctx, false, "", "alice"); return err }},
	}
	for _, a := range actions {
		if err := a.do(); !errors.Is(err, audit.ErrUnavailable) {
			t.Errorf("%s = %v, want ErrUnavailable", a.name, err)
		}
	}
	if _, n, err := st.Executions(ctx, store.ExecFilter{Limit: 10}); err != nil || n != 1 {
		t.Errorf("%d executions (%v), want 1", n, err)
	}
	if got, err := st.Execution(ctx, e.ExecID); err != nil || got.Status != store.StatusRunning {
		t.Errorf("execution after the refused kill: %+v, %v; want running", got.Status, err)
	}
	if n := execMsgs(t, b); n != before {
		t.Errorf("EXEC holds %d messages, want %d", n, before)
	}
	if m := lastCommand(t, b, wire.CommandPCSubject("pc1", adhocToken(e.ExecID))); m.Header.Get(wire.HeaderWithdrawn) != "" {
		t.Error("the refused kill withdrew the command")
	}
	if status, err := d.JobStatus(ctx, "j"); err != nil || status != wire.StatusActive {
		t.Errorf("job status after the refused revoke: %s, %v", status, err)
	}
}

// A deploy of an id and version the jobs directory has must run the same
// shell and script, unless allowed; runs and deploys record the script's
// SHA-256.
func TestDeploy_CatalogMismatch(t *testing.T) {
	d, b, _ := testDispatcher(t)
	ctx := context.Background()
	d.Catalog = func(id string) (jobs.Manifest, bool) {
		if id == "j" {
			return job("j", "1", "sh", "echo catalog"), true
		}
		return jobs.Manifest{}, false
	}
	tests := []struct {
		name    string
		m       jobs.Manifest
		version string
		allow   bool
		want    []string // fields of the problems
	}{
		{"same script", job("j", "1", "sh", "echo catalog"), "", false, nil},
		{"another script", job("j", "1", "sh", "echo other"), "", false, []string{"execute.script"}},
		{"another shell and script", job("j", "1", "pwsh", "echo other"), "", false, []string{"execute.shell", "execute.script"}},
		{"version override to the catalog's", job("j", "9", "sh", "echo other"), "1", false, []string{"execute.script"}},
		{"allowed", job("j", "1", "sh", "echo other"), "", true, nil},
		{"another version", job("j", "2", "sh", "echo other"), "", false, nil},
		{"not in the catalog", job("k", "1", "sh", "echo other"), "", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := d.Deploy(ctx, DeployRequest{Manifest: tt.m, Version: tt.version, AllowMismatch: tt.allow, Actor: "alice"})
			var ve *problem.Error
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Deploy = %v, want success", err)
			case tt.want != nil && !errors.As(err, &ve):
				t.Fatalf("Deploy = %v, want a validation error on %v", err, tt.want)
			case tt.want != nil:
				var got []string
				for _, p := range ve.Problems {
					got = append(got, p.Field)
				}
				if len(got) != len(tt.want) || got[0] != tt.want[0] || got[len(got)-1] != tt.want[len(tt.want)-1] {
					t.Errorf("problems on %v, want %v", got, tt.want)
				}
				return
			}
			ev := lastAudit(t, b, audit.Deploy)
			var detail map[string]any
			_ = json.Unmarshal(ev.Detail, &detail)
			if ev.Target != e.ExecID || detail["script_sha256"] != ScriptSHA256(tt.m.Execute.Script) {
				t.Errorf("deploy event %s %v, want %s with the script's sha256", ev.Target, detail, e.ExecID)
			}
		})
	}
	e, err := d.Run(ctx, RunRequest{Target: store.Target{PCs: []string{"pc1"}}, Shell: "sh", Script: "echo run", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	ev := lastAudit(t, b, audit.Run)
	var detail map[string]any
	_ = json.Unmarshal(ev.Detail, &detail)
	if ev.Target != e.ExecID || detail["script_sha256"] != ScriptSHA256("echo run") {
		t.Errorf("run event %s %v, want %s with the script's sha256", ev.Target, detail, e.ExecID)
	}
}
