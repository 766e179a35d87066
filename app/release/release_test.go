package release_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/agentinstall"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/release"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// fixture is a release service over a real store, an embedded broker, a
// dispatcher and a rollout engine on a fake clock.
type fixture struct {
	st      *store.Store
	b       *bus.Bus
	disp    *dispatch.Dispatcher
	engine  *rollout.Engine
	svc     *release.Service
	keys    *sign.Keyring // command keys
	relKeys *sign.Keyring
}

const maxSize = 64 << 10

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st := storetest.New(t)
	b := bustest.Open(t)
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	relKeys, err := sign.LoadRelease(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ev := events.New()
	rec := audit.New(b.JS, log)
	disp := dispatch.New(st, b.CmdNC, b.CmdJS, keys, ev, dispatch.Limits{
		DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultDeadline: time.Hour, MaxFailures: "0"}, log)
	disp.Audit = rec
	if err := disp.EnsureEmergencyStop(ctx); err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(time.Now().Add(time.Minute).Truncate(time.Second))
	engine := rollout.NewEngine(st, disp, ev, rec, clock, log)
	disp.Rollouts = engine
	svc := release.New(release.Options{Store: st, JS: b.JS, Keys: relKeys, Control: control.New(b.CmdNC, keys, nil), Dispatcher: disp,
		Audit: rec, Log: log, MaxSize: maxSize})
	return &fixture{st: st, b: b, disp: disp, engine: engine, svc: svc, keys: keys, relKeys: relKeys}
}

// agents records heartbeats of agents: pc → "os/arch protocol version".
func (f *fixture) agents(t *testing.T, as map[string]string) {
	t.Helper()
	var rows []store.Agent
	now := time.Now().UTC()
	for pc, desc := range as {
		var platform, version string
		var protocol int
		parts := strings.Fields(desc)
		platform, version = parts[0], parts[2]
		protocol = map[string]int{"2": 2, "3": 3}[parts[1]]
		osName, arch, _ := strings.Cut(platform, "/")
		rows = append(rows, store.Agent{PCID: pc, OS: osName, Arch: arch, Protocol: protocol, AgentVersion: version,
			Interval: 30 * time.Second, LastSeen: now, OfflineAfter: now.Add(time.Hour)})
	}
	if err := f.st.UpsertAgents(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) upload(t *testing.T, version, osName, arch string, body []byte) store.Release {
	t.Helper()
	rel, err := f.svc.Upload(t.Context(), release.UploadRequest{Version: version, OS: osName, Arch: arch, Body: bytes.NewReader(body), Actor: "alice"})
	if err != nil {
		t.Fatalf("Upload(%s %s/%s): %v", version, osName, arch, err)
	}
	return rel
}

// object reads a release's binary back from the bucket.
func (f *fixture) object(t *testing.T, name string) ([]byte, error) {
	t.Helper()
	obs, err := f.b.JS.ObjectStore(t.Context(), wire.ReleaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	return obs.GetBytes(t.Context(), name)
}

func verify(t *testing.T, keys []wire.CommandKey, r wire.SignedRelease) error {
	t.Helper()
	return wire.VerifyRelease(func(pub ed25519.PublicKey, msg, sig []byte) bool { return ed25519.Verify(pub, msg, sig) }, keys, r)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestUpload_StoresSignsAndRefusesOverwrite(t *testing.T) {
	f := newFixture(t)
	bin := bytes.Repeat([]byte("kanade-agent v2\n"), 1000)
	rel := f.upload(t, "v2.0.0", "linux", "amd64", bin)
	want := wire.Release{Version: "v2.0.0", OS: "linux", Arch: "amd64", SHA256: sum(bin), Size: int64(len(bin)), Object: "kanade-agent/v2.0.0/linux-amd64"}
	if diff := cmp.Diff(want, rel.Signed.Release); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	if err := verify(t, f.svc.TrustedKeys(), rel.Signed); err != nil {
		t.Errorf("the record does not verify with the trusted release keys: %v", err)
	}
	if err := verify(t, f.keys.Trusted(), rel.Signed); err == nil {
		t.Error("the record verifies with the command keys: it must be signed by a release key")
	}
	got, err := f.object(t, rel.Signed.Object)
	if err != nil || !bytes.Equal(got, bin) {
		t.Errorf("object = %d bytes, %v; want the binary back", len(got), err)
	}
	stored, err := f.st.Release(t.Context(), "v2.0.0", "linux", "amd64")
	if err != nil || stored.UploadedBy != "alice" || stored.Source != store.ReleaseUploaded {
		t.Errorf("stored = %+v, %v", stored, err)
	}
	// The same version and platform again: refused, the first one stays.
	_, err = f.svc.Upload(t.Context(), release.UploadRequest{Version: "v2.0.0", OS: "linux", Arch: "amd64", Body: strings.NewReader("other"), Actor: "bob"})
	if !errors.Is(err, dispatch.ErrConflict) {
		t.Errorf("second upload = %v; want ErrConflict", err)
	}
	if got, _ := f.object(t, rel.Signed.Object); !bytes.Equal(got, bin) {
		t.Error("a refused upload replaced the binary")
	}
}

func TestUpload_HostileInputChangesNothing(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, version, os, arch string
		body                    io.Reader
		field                   string
		tooLarge                bool
	}{
		{name: "path in the version", version: "../x", os: "linux", arch: "amd64", body: strings.NewReader("x"), field: "version"},
		{name: "slash in the version", version: "v1/../../etc", os: "linux", arch: "amd64", body: strings.NewReader("x"), field: "version"},
		{name: "empty version", version: "", os: "linux", arch: "amd64", body: strings.NewReader("x"), field: "version"},
		{name: "path in the os", version: "v1", os: "windows/../", arch: "amd64", body: strings.NewReader("x"), field: "os"},
		{name: "unknown arch", version: "v1", os: "linux", arch: "mips", body: strings.NewReader("x"), field: "os"},
		{name: "upper-case os", version: "v1", os: "Linux", arch: "amd64", body: strings.NewReader("x"), field: "os"},
		{name: "empty body", version: "v1", os: "linux", arch: "amd64", body: strings.NewReader(""), field: "body"},
		{name: "too large", version: "v1", os: "linux", arch: "amd64", body: io.LimitReader(zeros{}, maxSize+1), tooLarge: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Upload(t.Context(), release.UploadRequest{Version: tt.version, OS: tt.os, Arch: tt.arch, Body: tt.body, Actor: "mallory"})
			var ve *problem.Error
			switch {
			case tt.tooLarge:
				if !errors.Is(err, release.ErrTooLarge) {
					t.Errorf("Upload = %v; want ErrTooLarge", err)
				}
			case !errors.As(err, &ve) || ve.Problems[0].Field != tt.field:
				t.Errorf("Upload = %v; want a problem with %s", err, tt.field)
			}
		})
	}
	if rs, _ := f.svc.List(t.Context()); len(rs) != 0 {
		t.Errorf("releases after refused uploads: %+v", rs)
	}
	obs, _ := f.b.JS.ObjectStore(t.Context(), wire.ReleaseBucket)
	if objs, err := obs.List(t.Context()); !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Errorf("objects after refused uploads: %d, %v", len(objs), err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestOfferBuiltIn_Idempotent(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("linux-arm64/kanade-agent", "agent for linux arm64")
	write("windows-amd64/kanade-agent.exe", "agent for windows")
	bins, err := agentinstall.NewBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.OfferBuiltIn(t.Context(), bins, "v0.50.0"); err != nil {
		t.Fatal(err)
	}
	first, _ := f.svc.List(t.Context())
	if len(first) != 2 || first[0].Source != store.ReleaseBuiltIn || first[0].UploadedBy != release.BuiltInActor {
		t.Fatalf("built-in releases = %+v", first)
	}
	// Again with the same binaries: nothing to do.
	if err := f.svc.OfferBuiltIn(t.Context(), bins, "v0.50.0"); err != nil {
		t.Fatal(err)
	}
	again, _ := f.svc.List(t.Context())
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("a second offer changed the releases (-first +again):\n%s", diff)
	}
	// A rebuild of the same version replaces the built-in release.
	write("linux-arm64/kanade-agent", "agent for linux arm64, rebuilt")
	if err := f.svc.OfferBuiltIn(t.Context(), bins, "v0.50.0"); err != nil {
		t.Fatal(err)
	}
	rel, _ := f.st.Release(t.Context(), "v0.50.0", "linux", "arm64")
	if rel.Signed.SHA256 != sum([]byte("agent for linux arm64, rebuilt")) {
		t.Errorf("rebuilt release sha256 = %s", rel.Signed.SHA256)
	}
	if got, _ := f.object(t, rel.Signed.Object); string(got) != "agent for linux arm64, rebuilt" {
		t.Errorf("rebuilt object = %q", got)
	}
}

// A rollout goes to the agents that can take it; each gets the signed
// record of its platform on its own subject; a second rollout supersedes
// the first and withdraws its command; deleting the version is refused
// until no rollout of it is open.
func TestRollout_TargetsCommandsAndSupersedes(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.agents(t, map[string]string{
		"lin1": "linux/amd64 3 v1", "lin2": "linux/amd64 3 v1", "win1": "windows/amd64 3 v1",
		"old1": "linux/amd64 2 v0.9", "mac1": "darwin/arm64 3 v1", "new1": "linux/amd64 3 v2",
	})
	linux := f.upload(t, "v2", "linux", "amd64", []byte("linux v2"))
	windows := f.upload(t, "v2", "windows", "amd64", []byte("windows v2"))

	js := f.b.JS

	e, excluded, err := f.svc.Rollout(ctx, dispatch.UpdateRequest{Version: "v2", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Title != "Agent update to v2" {
		t.Errorf("title = %q; want the default, naming the version", e.Title)
	}
	gotEx := map[string]string{}
	for _, x := range excluded {
		gotEx[x.PCID] = x.Reason
	}
	wantEx := map[string]string{
		"old1": "runs protocol 2; agents update themselves from protocol 3 (update this one by hand)",
		"mac1": "is darwin/arm64; version v2 has no release for it",
		"new1": "already runs v2",
	}
	if diff := cmp.Diff(wantEx, gotEx); diff != "" {
		t.Errorf("excluded (-want +got):\n%s", diff)
	}
	if e.JobID != wire.UpdateJobID || e.Version != "v2" || e.Counts.Total() != 3 {
		t.Errorf("execution = %+v", e)
	}
	// The engine starts the one wave.
	runEngine(t, f.engine)
	stream, err := js.Stream(ctx, wire.StreamExec)
	if err != nil {
		t.Fatal(err)
	}
	cmdOf := func(pc string) (wire.UpdateCommand, *jetstream.RawStreamMsg) {
		t.Helper()
		var m *jetstream.RawStreamMsg
		poll(t, "the update command for "+pc, func() bool {
			m, err = stream.GetLastMsgForSubject(ctx, wire.CommandPCSubject(pc, wire.UpdateJobID))
			return err == nil
		})
		if _, err := wire.Verify(f.keys.Trusted(), m.Subject, m.Header.Get, m.Data, time.Now(), time.Hour); err != nil && m.Header.Get(wire.HeaderWithdrawn) == "" {
			t.Errorf("the command for %s does not verify with the command keys: %v", pc, err)
		}
		cmd, _ := wire.DecodeUpdateCommand(m.Data)
		return cmd, m
	}
	for pc, want := range map[string]store.Release{"lin1": linux, "lin2": linux, "win1": windows} {
		cmd, _ := cmdOf(pc)
		if err := cmd.Validate(); err != nil {
			t.Errorf("%s: command does not validate: %v", pc, err)
		}
		if cmd.ExecID != e.ExecID || cmd.Kind != wire.KindUpdate || cmd.Update.Release.SHA256 != want.Signed.SHA256 {
			t.Errorf("%s: command %+v; want the %s/%s release of %s", pc, cmd, want.Signed.OS, want.Signed.Arch, e.ExecID)
		}
		if err := verify(t, f.svc.TrustedKeys(), cmd.Update.Release); err != nil {
			t.Errorf("%s: release record in the command: %v", pc, err)
		}
	}
	for _, pc := range []string{"old1", "mac1", "new1"} {
		if _, err := stream.GetLastMsgForSubject(ctx, wire.CommandPCSubject(pc, wire.UpdateJobID)); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Errorf("%s got an update command (%v)", pc, err)
		}
	}
	if _, err := f.svc.Delete(ctx, "v2", "", "", "alice"); !errors.Is(err, dispatch.ErrConflict) {
		t.Errorf("Delete during the rollout = %v; want ErrConflict", err)
	}

	// A second rollout (of lin2 only, in waves with approval) supersedes the first.
	f.upload(t, "v3", "linux", "amd64", []byte("linux v3"))
	e2, _, err := f.svc.Rollout(ctx, dispatch.UpdateRequest{Version: "v3", Target: store.Target{PCs: []string{"lin2"}}, Actor: "alice",
		Waves: []jobs.Wave{{Name: "canary", Count: 1, Approval: true}}})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := f.st.Execution(ctx, e.ExecID)
	if first.Status != store.StatusKilled {
		t.Errorf("the superseded rollout is %s; want killed", first.Status)
	}
	if _, m := cmdOf("lin1"); m.Header.Get(wire.HeaderWithdrawn) != e.ExecID {
		t.Errorf("lin1's pending update was not withdrawn (header %q)", m.Header.Get(wire.HeaderWithdrawn))
	}
	if ids, _ := f.st.OpenExecutionsOf(ctx, wire.UpdateJobID, ""); !cmp.Equal(ids, []string{e2.ExecID}) {
		t.Errorf("open updates = %v; want only %s", ids, e2.ExecID)
	}
	// v2's rollout is over: its releases may go, with their binaries.
	gone, err := f.svc.Delete(ctx, "v2", "windows", "amd64", "alice")
	if err != nil || len(gone) != 1 {
		t.Fatalf("Delete(v2 windows) = %v, %v", gone, err)
	}
	if _, err := f.object(t, windows.Signed.Object); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("the deleted release's object: %v", err)
	}
	if _, err := f.svc.Delete(ctx, "v2", "windows", "amd64", "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete = %v; want ErrNotFound", err)
	}
	if _, err := f.svc.Delete(ctx, "v3", "", "", "alice"); !errors.Is(err, dispatch.ErrConflict) {
		t.Errorf("Delete of v3 during its rollout = %v; want ErrConflict", err)
	}
	// A target that matches nobody who can take it is refused, saying why.
	_, _, err = f.svc.Rollout(ctx, dispatch.UpdateRequest{Version: "v3", Target: store.Target{PCs: []string{"old1"}}, Actor: "alice"})
	var ve *problem.Error
	if !errors.As(err, &ve) || !strings.Contains(ve.Error(), "runs protocol 2") {
		t.Errorf("rollout to old1 only = %v", err)
	}
	if _, _, err := f.svc.Rollout(ctx, dispatch.UpdateRequest{Version: "v9", Actor: "alice"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rollout of an unknown version = %v; want ErrNotFound", err)
	}
}

func TestParseRollout(t *testing.T) {
	tests := []struct {
		name, body string
		target     store.Target
		waves      int
		field      string // a problem with this field; "" = none
	}{
		{name: "empty body: all agents, one wave", body: ``, target: store.Target{All: true}},
		{name: "target and waves", body: `{"target": {"groups": ["lab"]}, "rollout": {"waves": [{"name": "canary", "count": 1}, {"name": "rest", "percent": 100, "approval": true}]}, "four_eyes": true}`,
			target: store.Target{Groups: []string{"lab"}}, waves: 2},
		{name: "unknown field", body: `{"targets": {}}`, field: "body"},
		{name: "bad wave", body: `{"rollout": {"waves": [{"name": "x"}]}}`, field: "rollout.waves[0]"},
		{name: "bad pc", body: `{"target": {"pcs": ["../x"]}}`, field: "target.pcs[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, waves, _, _, err := release.ParseRollout([]byte(tt.body))
			if tt.field != "" {
				var ve *problem.Error
				if !errors.As(err, &ve) || !strings.HasPrefix(ve.Problems[0].Field, tt.field) {
					t.Errorf("ParseRollout = %v; want a problem with %s", err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.target, target); diff != "" || len(waves) != tt.waves {
				t.Errorf("target (-want +got):\n%s\nwaves %d, want %d", diff, len(waves), tt.waves)
			}
		})
	}
}

// A rotation signs new releases with the new key, keeps the old trusted,
// and announces the keys to the agents.
func TestRotateKeys_Announces(t *testing.T) {
	f := newFixture(t)
	agent, _ := bustest.Agent(t, f.b, "pc1", nil)
	sub, err := agent.SubscribeSync(wire.ControlAll)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	before := f.upload(t, "v1", "linux", "amd64", []byte("v1"))
	trusted, err := f.svc.RotateKeys(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	after := f.upload(t, "v2", "linux", "amd64", []byte("v2"))
	if before.Signed.Kid == after.Signed.Kid || after.Signed.Kid != trusted[len(trusted)-1].Kid {
		t.Errorf("kids: before %s, after %s, trusted %v", before.Signed.Kid, after.Signed.Kid, trusted)
	}
	if err := verify(t, trusted, before.Signed); err != nil {
		t.Errorf("a release signed before the rotation: %v", err)
	}
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.Verify(f.keys.Trusted(), m.Subject, m.Header.Get, m.Data, time.Now(), wire.MaxControlAge); err != nil {
		t.Fatalf("the announcement does not verify with the command keys: %v", err)
	}
	var c wire.Control
	if err := json.Unmarshal(m.Data, &c); err != nil || c.Kind != wire.ControlReleaseKeys || !cmp.Equal(c.ReleaseKeys, trusted) {
		t.Errorf("announcement = %+v, %v; want the trusted release keys", c, err)
	}
}

// runEngine runs the engine until the test ends.
func runEngine(t *testing.T, e *rollout.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	e.Kick()
}

// poll waits for cond, failing the test after a deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
