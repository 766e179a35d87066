package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/status"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/sign"
)

// Agent self-update with real agent processes: the server's broker (its
// accounts and the agents' permission template), its signing keys, an
// enrolled agent's data directory, and kanade-agent binaries of two
// versions. The test plays the server: it puts binaries into the
// agent_releases bucket, signs their records, publishes signed update
// commands, answers download permits and reads heartbeats and results.

// testAgentEnv makes this test binary run as kanade-agent (see TestMain).
const testAgentEnv = "KANADE_TEST_AGENT"

// trailerMark starts the line appended to a copy of this test binary that
// stands in for an agent build: it names the version and the fault.
const trailerMark = "\n#kanade-test-agent "

func TestMain(m *testing.M) {
	if os.Getenv(testAgentEnv) != "" {
		// A copy of this binary standing in for a kanade-agent build where
		// the go tool is missing (the Windows tests under Wine): the agent's
		// own main, with the version and fault of the copy's trailer.
		v, f, err := readTrailer()
		if err != nil {
			fmt.Fprintln(os.Stderr, "kanade-agent test build:", err)
			os.Exit(2)
		}
		version, fault = v, f
		main()
		os.Exit(0)
	}
	code := m.Run()
	builds.mu.Lock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	builds.mu.Unlock()
	os.Exit(code)
}

func readTrailer() (version, fault string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", err
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		return "", "", err
	}
	i := bytes.LastIndex(b, []byte(trailerMark))
	if i < 0 {
		return "", "", fmt.Errorf("%s has no trailer", exe)
	}
	for _, f := range strings.Fields(string(b[i+len(trailerMark):])) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "version":
			version = v
		case "fault":
			fault = v
		}
	}
	return version, fault, nil
}

var builds struct {
	mu   sync.Mutex
	dir  string
	made map[string]string
}

// agentBinary returns a kanade-agent binary of version, built with fault
// ("" for none): `go build -ldflags "-X main.version=… -X main.fault=…"`
// of this package, or where there is no go tool, a copy of this test
// binary with a trailer (TestMain).
func agentBinary(t *testing.T, version, fault string) []byte {
	t.Helper()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "kanade-agent-builds-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir, builds.made = dir, map[string]string{}
	}
	key := version + "-" + fault
	path, ok := builds.made[key]
	if !ok {
		path = filepath.Join(builds.dir, "kanade-agent-"+key+exeSuffix())
		if _, err := exec.LookPath("go"); err == nil {
			cmd := exec.Command("go", "build", "-trimpath", "-o", path, "-ldflags", "-X main.version="+version+" -X main.fault="+fault, ".")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
		} else {
			self, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(self)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, fmt.Sprintf("%sversion=%s fault=%s\n", trailerMark, version, fault)...)
			if err := os.WriteFile(path, b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		builds.made[key] = path
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func exeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}

// rig is one enrolled agent and the server side of its updates.
type rig struct {
	t        *testing.T
	b        *bus.Bus
	cmdKeys  *sign.Keyring
	relKeys  *sign.Keyring
	obs      jetstream.ObjectStore
	pc       string
	exe      string // the installed kanade-agent
	data     string
	args     []string // the flags of a run
	output   string   // the agent processes' stdout and stderr
	notNow   int      // download permit requests to answer "not now" first
	service  bool     // run under a stand-in service manager
	stopping chan struct{}
	exited   chan struct{}

	mu         sync.Mutex
	heartbeats []heartbeatSeen
	results    map[string]wire.Result
	permits    map[string]int // "asked", "not now", "granted", "done"
	starts     int
}

type heartbeatSeen struct {
	at      time.Time
	version string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	root := t.TempDir()
	r := &rig{t: t, b: openBroker(t), pc: "pc1", exe: filepath.Join(root, "bin", "kanade-agent"+exeSuffix()),
		data: filepath.Join(root, "data"), output: filepath.Join(root, "agent-output.log"),
		results: map[string]wire.Result{}, permits: map[string]int{}}
	var err error
	if r.cmdKeys, err = sign.Load(filepath.Join(root, "secrets", "command-keys")); err != nil {
		t.Fatal(err)
	}
	if r.relKeys, err = sign.LoadRelease(filepath.Join(root, "secrets", "release-keys")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The server's signed emergency stop value (off): without one agents
	// run nothing.
	body, _ := json.Marshal(wire.EmergencyStop{})
	if _, err := r.b.JS.PublishMsg(ctx, r.cmdKeys.Msg(wire.KVSubject(wire.KVFleet, wire.KeyEmergencyStop), body, time.Now())); err != nil {
		t.Fatal(err)
	}
	// The broker provisions the bucket; the test binaries want more room than its default.
	if r.obs, err = r.b.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.ReleaseBucket, MaxBytes: releaseBytes}); err != nil {
		t.Fatal(err)
	}

	// The agent's enrolled identity: its key, the credential the server
	// minted for it with the trusted keys, and the enrollment bundle.
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	if err := os.MkdirAll(r.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.data, "identity.nk"), append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(24 * time.Hour)
	j, err := r.b.ID.MintAgent(pub, r.pc, nil, expiry)
	if err != nil {
		t.Fatal(err)
	}
	if err := enroll.SaveCredential(r.data, enroll.Credential{JWT: j, Expiry: expiry, CommandKeys: r.cmdKeys.Trusted(), ReleaseKeys: r.relKeys.Trusted()}); err != nil {
		t.Fatal(err)
	}
	bundleUser, _ := nkeys.CreateUser()
	creds, err := r.b.ID.EnrollCreds(bundleUser, "default", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(root, "agent-credentials")
	creds = append(creds, "\n-----BEGIN KANADE ENROLLMENT TOKEN-----\ntoken\n------END KANADE ENROLLMENT TOKEN------\n"...)
	if err := os.WriteFile(bundle, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	r.args = []string{"--server", r.b.ClientURL(), "--credentials", bundle, "--data", r.data, "--pc-id", r.pc, "--heartbeat", "1s"}

	r.subscribe(wire.HeartbeatSubject(r.pc), func(m *nats.Msg) {
		var hb wire.Heartbeat
		if json.Unmarshal(m.Data, &hb) == nil && !hb.Stopping {
			r.mu.Lock()
			r.heartbeats = append(r.heartbeats, heartbeatSeen{at: time.Now(), version: hb.AgentVersion})
			r.mu.Unlock()
		}
	})
	r.subscribe(wire.ResultSubject(r.pc), func(m *nats.Msg) {
		res, err := wire.DecodeResult(m.Data)
		if err == nil && res.State.Final() {
			r.mu.Lock()
			r.results[res.ExecID] = res
			r.mu.Unlock()
		}
	})
	r.subscribe(wire.UpdatePermitSubject(r.pc), func(m *nats.Msg) {
		var req wire.PermitRequest
		if json.Unmarshal(m.Data, &req) != nil || req.PCID != r.pc {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if req.Done {
			r.permits["done"]++
			return
		}
		r.permits["asked"]++
		rep := wire.PermitReply{Granted: true}
		if r.permits["not now"] < r.notNow {
			r.permits["not now"]++
			rep = wire.PermitReply{RetryAfter: wire.Duration(100 * time.Millisecond), Reason: "too many downloads under way"}
		} else {
			r.permits["granted"]++
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			out, _ := os.ReadFile(r.output)
			log, _ := os.ReadFile(filepath.Join(r.data, "logs", "agent.log"))
			t.Logf("agent output:\n%s\nagent log:\n%s", out, log)
		}
	})
	return r
}

// releaseBytes is the release bucket's size in these tests.
const releaseBytes = 512 << 20

// openBroker starts the server's broker as bustest.Open does, with room
// for the release bucket: every stream's max_bytes is reserved against
// JetStream's max_store, which the server's storage plan sizes to its own
// streams, so the AUDIT stream is planned larger and shrunk once the broker
// runs.
func openBroker(t *testing.T) *bus.Bus {
	t.Helper()
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Options{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20, AuditMaxBytes: 64<<20 + releaseBytes},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	st, err := b.JS.Stream(ctx, wire.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxBytes = 64 << 20
	if _, err := b.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *rig) subscribe(subject string, fn nats.MsgHandler) {
	r.t.Helper()
	if _, err := r.b.NC.Subscribe(subject, fn); err != nil {
		r.t.Fatal(err)
	}
	if err := r.b.NC.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// install puts an agent binary where the agent runs from.
func (r *rig) install(bin []byte) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.exe), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(r.exe, bin, 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// start runs the installed agent: as a plain process (it re-executes
// itself after an update), or with service under a stand-in for systemd's
// Restart=always (`kanade-agent service run`, started again whenever it
// exits).
func (r *rig) start(service bool) {
	r.t.Helper()
	r.service, r.stopping, r.exited = service, make(chan struct{}), make(chan struct{})
	out, err := os.OpenFile(r.output, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	args := r.args
	if service {
		args = append([]string{"service", "run"}, args...)
	}
	env := append(os.Environ(), "KANADE_AGENT_INVENTORY_INTERVAL=0s")
	if _, err := exec.LookPath("go"); err != nil {
		env = append(env, testAgentEnv+"=1")
	}
	first := make(chan error, 1)
	go func() {
		defer close(r.exited)
		defer out.Close()
		for n := 0; ; n++ {
			cmd := exec.Command(r.exe, args...)
			cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
			err := cmd.Start()
			if n == 0 {
				first <- err
			}
			if err != nil {
				return
			}
			r.mu.Lock()
			r.starts++
			r.mu.Unlock()
			_ = cmd.Wait()
			select {
			case <-r.stopping:
				return
			default:
			}
			if !service {
				return
			}
		}
	}()
	if err := <-first; err != nil {
		r.t.Fatal(err)
	}
}

// stop ends the agent: the running process (its pid in the agent's status,
// which follows a Windows re-execution) is told to stop, and the stand-in
// service manager does not start it again.
func (r *rig) stop() {
	if r.stopping == nil {
		return
	}
	select {
	case <-r.stopping:
		return
	default:
	}
	close(r.stopping)
	eventually.Within(r.t, 60*time.Second, func() error {
		st, err := status.Read(r.data)
		if err == nil && st.PID > 0 && st.Phase != status.PhaseStopped && status.ProcessAlive(st.PID) {
			if p, err := os.FindProcess(st.PID); err == nil {
				_ = stopProcess(p)
			}
			return fmt.Errorf("agent process %d still runs", st.PID)
		}
		select {
		case <-r.exited:
			return nil
		default:
			return errors.New("waiting for the agent process to exit")
		}
	})
}

func stopProcess(p *os.Process) error {
	if runtime.GOOS == "windows" {
		return p.Kill()
	}
	return p.Signal(os.Interrupt)
}

// release puts bin into the bucket as version and returns its record
// signed by the server's release key.
func (r *rig) release(version string, bin []byte) wire.SignedRelease {
	r.t.Helper()
	sum := sha256.Sum256(bin)
	rel := wire.Release{Version: version, OS: runtime.GOOS, Arch: runtime.GOARCH, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(bin)),
		Object: wire.ReleaseObject(version, runtime.GOOS, runtime.GOARCH)}
	if _, err := r.obs.PutBytes(context.Background(), rel.Object, bin); err != nil {
		r.t.Fatal(err)
	}
	sr, err := r.relKeys.SignRelease(rel, time.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	return sr
}

// sendUpdate publishes a signed update command for the agent into the
// EXEC stream, with the rollback window given.
func (r *rig) sendUpdate(execID string, sr wire.SignedRelease, window time.Duration) {
	r.t.Helper()
	now := time.Now().UTC()
	uc := wire.UpdateCommand{Command: wire.Command{Protocol: wire.ProtocolVersion, ExecID: execID, JobID: wire.UpdateJobID, Kind: wire.KindUpdate,
		Timeout: wire.Duration(3 * time.Minute), IssuedAt: now, DeadlineAt: now.Add(10 * time.Minute)},
		Update: wire.Update{Release: sr, RollbackWindow: wire.Duration(window)}}
	if err := uc.Validate(); err != nil {
		r.t.Fatal(err)
	}
	body, _ := json.Marshal(uc)
	if _, err := r.b.JS.PublishMsg(context.Background(), r.cmdKeys.Msg(wire.CommandPCSubject(r.pc, wire.UpdateJobID), body, now)); err != nil {
		r.t.Fatal(err)
	}
}

// waitVersion waits for a heartbeat of version sent after since.
func (r *rig) waitVersion(version string, since time.Time) {
	r.t.Helper()
	eventually.Within(r.t, 90*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		var seen []string
		for _, hb := range r.heartbeats {
			if hb.at.After(since) {
				if hb.version == version {
					return nil
				}
				seen = append(seen, hb.version)
			}
		}
		return fmt.Errorf("no heartbeat of version %s since %s (seen %v)", version, since.Format(time.StampMilli), seen)
	})
}

// result waits for the final result of an execution.
func (r *rig) result(execID string) wire.Result {
	r.t.Helper()
	var res wire.Result
	eventually.Within(r.t, 90*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		var ok bool
		if res, ok = r.results[execID]; !ok {
			return errors.New("waiting for the final result of " + execID)
		}
		return nil
	})
	return res
}

// installed checks which binary is in place, and that nothing of the
// update is left beside it or in the data directory.
func (r *rig) installed(want []byte, name string) {
	r.t.Helper()
	got, err := os.ReadFile(r.exe)
	if err != nil {
		r.t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		r.t.Errorf("the installed binary is not %s", name)
	}
	eventually.Within(r.t, 10*time.Second, func() error {
		var left []string
		for _, dir := range []string{filepath.Dir(r.exe), filepath.Join(r.data, "update")} {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if n := e.Name(); n != filepath.Base(r.exe) && n != "last.json" {
					left = append(left, filepath.Join(dir, n))
				}
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("left after the update: %v", left)
		}
		return nil
	})
}

// TestUpdate_NewVersionReports: an agent running v1 as a plain process
// waits out a "not now" for its download permit, downloads v2, tries it,
// swaps it in, re-executes itself, and v2 reports the update and its
// version. On Windows (under Wine) the running binary is renamed aside
// and the new one started in its place.
func TestUpdate_NewVersionReports(t *testing.T) {
	r := newRig(t)
	v1, v2 := agentBinary(t, "v1", ""), agentBinary(t, "v2", "")
	r.install(v1)
	r.notNow = 2
	since := time.Now()
	r.start(false)
	r.waitVersion("v1", since)

	sent := time.Now()
	r.sendUpdate("up-1", r.release("v2", v2), wire.DefaultRollbackWindow)
	res := r.result("up-1")
	if res.State != wire.StateSucceeded || res.Stdout != "updated from v1 to v2" {
		t.Fatalf("update result %+v", res)
	}
	r.waitVersion("v2", sent)
	r.installed(v2, "v2")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.permits["not now"] != 2 || r.permits["granted"] != 1 || r.permits["done"] != 1 {
		t.Errorf("download permits %v, want 2 not now, 1 granted, 1 done", r.permits)
	}
}

// TestUpdate_NoConnectionRollsBack: a v2 that never reaches the broker
// (it hangs at its start) is replaced by v1 once its window is over; v1
// reports the rollback and keeps running.
func TestUpdate_NoConnectionRollsBack(t *testing.T) {
	r := newRig(t)
	v1, v2 := agentBinary(t, "v1", ""), agentBinary(t, "v2", "hang")
	r.install(v1)
	since := time.Now()
	r.start(false)
	r.waitVersion("v1", since)

	r.sendUpdate("up-hang", r.release("v2", v2), 3*time.Second)
	res := r.result("up-hang")
	if res.State != wire.StateFailed || res.Reason != "rolled back: no connection within 3s" {
		t.Fatalf("update result %+v", res)
	}
	r.waitVersion("v1", time.Now())
	r.installed(v1, "v1")
}

// TestUpdate_CrashesRollBack: under a service manager, a v2 that exits
// right after each start is started again until it used up its starts;
// its fourth start puts v1 back, which reports the rollback.
func TestUpdate_CrashesRollBack(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("`service run` needs the Service Control Manager; the Windows service's restart is its recovery actions")
	}
	r := newRig(t)
	v1, v2 := agentBinary(t, "v1", ""), agentBinary(t, "v2", "exit")
	r.install(v1)
	since := time.Now()
	r.start(true)
	r.waitVersion("v1", since)

	r.sendUpdate("up-crash", r.release("v2", v2), time.Minute)
	res := r.result("up-crash")
	if res.State != wire.StateFailed || res.Reason != "rolled back: version v2 stopped 3 times before it reached the broker" {
		t.Fatalf("update result %+v", res)
	}
	r.waitVersion("v1", time.Now())
	r.installed(v1, "v1")
	r.mu.Lock()
	defer r.mu.Unlock()
	// v1, three starts of v2 that crashed, the one that rolled back, v1.
	if r.starts != 6 {
		t.Errorf("the service manager started the agent %d times, want 6", r.starts)
	}
}

// TestUpdate_Refused: what must never be installed is refused before the
// swap, with the reason the server shows, and the agent stays on v1,
// online.
func TestUpdate_Refused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the checks are the same on every OS; the Windows run covers the swap and its rollback")
	}
	r := newRig(t)
	v1, v2 := agentBinary(t, "v1", ""), agentBinary(t, "v2", "")
	r.install(v1)
	since := time.Now()
	r.start(false)
	r.waitVersion("v1", since)

	good := r.release("v2", v2)
	other, err := sign.LoadRelease(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		release func() wire.SignedRelease
		reason  string
	}{
		{"a binary that exits at once", func() wire.SignedRelease {
			return r.release("v3", []byte("#!/bin/sh\necho 'cannot start: missing library' >&2\nexit 3\n"))
		}, "trial run failed: exit status 3: cannot start: missing library"},
		{"a tampered object", func() wire.SignedRelease {
			sr := good
			sr.Version, sr.Object = "v4", wire.ReleaseObject("v4", runtime.GOOS, runtime.GOARCH)
			tampered := bytes.Clone(v2)
			tampered[len(tampered)/2] ^= 0xff
			if _, err := r.obs.PutBytes(context.Background(), sr.Object, tampered); err != nil {
				t.Fatal(err)
			}
			sr, err := r.relKeys.SignRelease(sr.Release, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return sr
		}, "hash mismatch: the object's SHA-256 is "},
		{"a record signed by an unknown key", func() wire.SignedRelease {
			sr, err := other.SignRelease(good.Release, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return sr
		}, "signature invalid: the release record is signed with a key this agent does not trust"},
		{"an altered record", func() wire.SignedRelease {
			sr := good
			sr.SHA256 = strings.Repeat("0", 64)
			return sr
		}, "signature invalid: the release record's signature does not match"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("refused-%d", i)
			r.sendUpdate(id, tt.release(), wire.DefaultRollbackWindow)
			res := r.result(id)
			if res.State != wire.StateFailed || !strings.HasPrefix(res.Reason, tt.reason) {
				t.Errorf("result %s %q, want failed with %q", res.State, res.Reason, tt.reason)
			}
			r.waitVersion("v1", time.Now())
		})
	}
	r.installed(v1, "v1")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.starts != 1 {
		t.Errorf("the agent was started %d times, want once", r.starts)
	}
}
