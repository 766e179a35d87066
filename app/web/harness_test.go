package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/oauth2-proxy/mockoidc"

	enrollagent "github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/agent/worker"
	"github.com/kanadehq/kanade/app/agentinstall"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/catalog"
	"github.com/kanadehq/kanade/app/commandkeys"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/enroll"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/fleet"
	"github.com/kanadehq/kanade/app/health"
	"github.com/kanadehq/kanade/app/projector"
	"github.com/kanadehq/kanade/app/release"
	"github.com/kanadehq/kanade/app/rollout"
	"github.com/kanadehq/kanade/app/schedule"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/app/web"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

// Roles a harness request can be sent as: anonymous sends no
// credentials, the others an API token of that role.
const (
	anonymous = "anonymous"
	viewer    = "viewer"
	operator  = "operator"
	approver  = "approver"
	admin     = "admin"
)

// harnessRoles are the callers every route is tried as, least first.
var harnessRoles = []string{anonymous, viewer, operator, approver, admin}

// Fixture names the harness creates; see newHarness.
const (
	agentPC    = "pc1"   // a real agent (agent/worker) on the broker, heartbeating, in the group lab
	helloJob   = "hello" // a job of the jobs directory, on pc1
	wavesJob   = "waves" // a job of the jobs directory, in two waves, the first needing approval
	pendingPC  = "pending-pc"
	revokedPC  = "gone-pc" // an approved PC no agent runs as, for revoking
	fixtureKey = "sched"   // prefix of the schedules the harness stores
)

// harness is the web app wired as serve() wires it: a store, the real
// broker (app/bus, embedded), dispatcher, rollout engine, enrollment,
// audit, schedules, and sign-in through an in-process OIDC issuer,
// served by httptest. One real agent, pc1, heartbeats and answers pings.
// Callers sign in with an API token of their role.
type harness struct {
	*httptest.Server
	e      *echo.Echo
	st     *store.Store
	b      *bus.Bus
	disp   *dispatch.Dispatcher
	tokens map[string]string // role → bearer secret ("" for anonymous)
	// ids are the fixture's generated ids that scenario URLs name as
	// {key}: "exec" (a run on pc1), "enroll-token[-form]" and
	// "api-token[-form]" (tokens to revoke), "rollout" and "rollout-api"
	// (awaiting approval of their only wave), "rollout-halt" and
	// "rollout-api-halt" (running, their second wave an hour away).
	ids    map[string]string
	client *http.Client
}

func newHarness(t *testing.T, st *store.Store) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("KANADE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b := bustest.Open(t)
	keys, err := sign.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	jobsDir := t.TempDir()
	writeFile(t, filepath.Join(jobsDir, helloJob+".yaml"), "id: hello\nversion: \"1\"\ntarget:\n  pcs: [pc1]\nexecute:\n  shell: sh\n  script: echo hello\n  timeout: 30s\n")
	writeFile(t, filepath.Join(jobsDir, wavesJob+".yaml"), "id: waves\nversion: \"1\"\ntarget:\n  groups: [lab]\nexecute:\n  shell: sh\n  script: echo waves\n  timeout: 30s\n"+
		"rollout:\n  waves:\n    - name: first\n      group: lab\n      approval: true\n")
	cat, err := catalog.New(jobsDir, log)
	if err != nil {
		t.Fatal(err)
	}
	ev := events.New()
	disp := dispatch.New(st, b.CmdNC, b.CmdJS, keys, ev, dispatch.Limits{
		DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultDeadline: time.Hour, OutputCap: 1 << 20, MaxFailures: "0", LostGrace: time.Minute}, log)
	provisioner := b.NewProvisioner(log)
	disp.Provisioner = provisioner
	disp.Catalog = func(id string) (jobs.Manifest, bool) {
		if e, ok := cat.Get(id); ok && e.Kind == jobs.KindJob && e.Valid && e.Manifest != nil {
			return *e.Manifest, true
		}
		return jobs.Manifest{}, false
	}
	recorder := audit.New(b.JS, log)
	recorder.Provisioner = provisioner
	disp.Audit = recorder
	if err := disp.EnsureEmergencyStop(ctx); err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewRealClock()
	rollouts := rollout.NewEngine(st, disp, ev, recorder, clock, log)
	disp.Rollouts = rollouts
	sched := schedule.New(st, cat, disp, time.Minute, clock, log)
	pongs := projector.NewPongs()
	enroller := enroll.New(st, b, keys, ev, log)
	enroller.Audit = recorder
	enroller.SecretsDir = t.TempDir()
	if _, err := enroller.WriteAgentCredentials(ctx, t.TempDir(), false, nil, nil); err != nil {
		t.Fatal(err)
	}
	monitor := health.New(health.Options{Bus: b, Store: st, Paths: map[string]string{"data": t.TempDir()}, WarnPercent: 90, Name: "kanade", Log: log})

	// The server's work: what the routes' answers rely on.
	done := make(chan struct{}, 8)
	work := []func(context.Context){
		func(ctx context.Context) { _ = projector.Results(ctx, b.JS, st, ev, log, nil) },
		func(ctx context.Context) {
			_ = projector.Heartbeats(ctx, b.NC, st, ev, log, 100*time.Millisecond, pongs)
		},
		func(ctx context.Context) { _ = audit.Project(ctx, b.JS, st, ev, log) },
		func(ctx context.Context) { _ = rollouts.Run(ctx) },
		func(ctx context.Context) { _ = enroller.Run(ctx) },
		func(ctx context.Context) { monitor.Run(ctx, time.Second) },
	}
	for _, w := range work {
		go func() { w(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range work {
			<-done
		}
	})

	// Sign-in: an OIDC issuer in this process; callers here use tokens.
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	mc := m.Config()
	o := auth.NewOIDC(auth.OIDCConfig{Issuer: m.Issuer(), ClientID: mc.ClientID, ClientSecret: mc.ClientSecret,
		RedirectURL: srv.URL + "/auth/callback", Scopes: []string{"openid", "profile", "email", "groups"}, RolesClaim: "groups",
		RoleMap: map[string]auth.Role{"it-admins": auth.Admin}})
	authKeys := make([]byte, auth.KeySize)
	for i := range authKeys {
		authKeys[i] = byte(i + 1)
	}
	a, err := auth.New(st, auth.Config{OIDC: o, Lifetime: time.Hour, IdleTimeout: time.Hour, Keys: authKeys, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	writeFile(t, filepath.Join(binDir, "windows-amd64", "kanade-agent.exe"), "MZ an agent binary")
	bins, err := agentinstall.NewBinaries(binDir)
	if err != nil {
		t.Fatal(err)
	}
	ctl := control.New(b.CmdNC, keys, nil)
	releaseKeys, err := sign.LoadRelease(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	releases := release.New(release.Options{Store: st, JS: b.JS, Provisioner: provisioner, Keys: releaseKeys, Control: ctl,
		Dispatcher: disp, Audit: recorder, Log: log})
	e := web.New(web.Deps{
		Store: st, Dispatcher: disp, Enroller: enroller, Audit: recorder, Events: ev, JS: b.JS, Catalog: cat, NATSHealthy: b.Healthy, Log: log, Version: "test",
		Auth: a, Fleet: fleet.New(st, ctl, pongs, log), CommandKeys: commandkeys.New(keys, ctl, disp, recorder, nil, log), Rollouts: rollouts,
		Schedules: schedule.NewService(sched, recorder, nil), OIDCIssuer: m.Issuer(), RolesClaim: "groups", LocalPC: agentPC, OutputCap: 1 << 20,
		SSEMaxLifetime: time.Minute, AgentBinaries: bins, BrokerURL: b.ClientURL(), Health: monitor, Releases: releases,
	})
	handler = e

	h := &harness{Server: srv, e: e, st: st, b: b, disp: disp, tokens: map[string]string{anonymous: ""}, ids: map[string]string{},
		client: &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	for _, role := range harnessRoles[1:] {
		r, err := auth.ParseRole(role)
		if err != nil {
			t.Fatal(err)
		}
		_, secret, err := auth.CreateToken(ctx, st, auth.NewTokenRequest{Name: role + "-token", Role: r, By: "harness"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h.tokens[role] = secret
	}
	h.startAgent(t, ctx, keys, log)
	h.seed(t, enroller)
	return h
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startAgent runs pc1 as a real agent with a credential minted by the
// broker's identity, recorded as an approved enrollment, and waits until
// its heartbeat is in the store.
func (h *harness) startAgent(t *testing.T, ctx context.Context, keys *sign.Keyring, log *slog.Logger) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	groups := []string{"lab"}
	jwt, err := h.b.ID.MintAgent(pub, agentPC, groups, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := h.st.PutAgentKey(ctx, store.AgentKey{PCID: agentPC, PublicKey: pub, Status: store.KeyApproved, Hostname: agentPC, Groups: groups,
		RequestedAt: now, DecidedAt: now, DecidedBy: "harness", JWTExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// What enrollment hands an agent: its credential and the command keys.
	dataDir := t.TempDir()
	trust := enrollagent.NewKeeper(kp, enrollagent.Credential{JWT: jwt, Groups: groups, Expiry: now.Add(time.Hour), CommandKeys: keys.Trusted()}, dataDir, agentPC, log)
	w, err := worker.New(worker.Config{PCID: agentPC, Hostname: agentPC, Groups: groups, DataDir: dataDir, HeartbeatInterval: 200 * time.Millisecond,
		AgentVersion: "test", Trust: trust, Logger: log.With("agent", agentPC)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx, h.b.ClientURL(), nats.UserJWT(func() (string, error) { return jwt, nil }, kp.Sign),
			nats.CustomInboxPrefix(wire.AgentInboxPrefix(agentPC)))
	}()
	// Before the cleanups registered earlier end the broker.
	t.Cleanup(func() {
		cancel()
		<-done
	})
	eventually.Within(t, 20*time.Second, func() error {
		a, err := h.st.Agent(ctx, agentPC)
		if err != nil {
			return err
		}
		if time.Since(a.LastSeen) > 5*time.Second {
			return fmt.Errorf("%s last seen %v", agentPC, a.LastSeen)
		}
		return nil
	})
}

// seed stores what the scenarios act on: a run, rollouts, runs for each
// role to kill, pending and revocable enrollments, and schedules.
func (h *harness) seed(t *testing.T, enroller *enroll.Service) {
	t.Helper()
	ctx := t.Context()
	// Tokens to revoke, an enrollment token and an API token for each of
	// the API and the form.
	for _, key := range []string{"enroll-token", "enroll-token-form"} {
		is, err := enroller.CreateToken(ctx, enroll.TokenRequest{Name: key, By: "harness"})
		if err != nil {
			t.Fatal(err)
		}
		h.ids[key] = is.Token.ID
	}
	for _, key := range []string{"api-token", "api-token-form"} {
		tok, _, err := auth.CreateToken(ctx, h.st, auth.NewTokenRequest{Name: key, Role: auth.Viewer, By: "harness"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h.ids[key] = tok.ID
	}
	e, err := h.disp.Run(ctx, dispatch.RunRequest{Target: store.Target{PCs: []string{agentPC}}, Shell: wire.ShellSh, Script: "echo hi", Actor: "harness"})
	if err != nil {
		t.Fatal(err)
	}
	h.ids["exec"] = e.ExecID
	// gone-pc is known and offline: its targets stay pending.
	if err := h.st.UpsertAgents(ctx, []store.Agent{{PCID: revokedPC, Hostname: revokedPC, OS: runtime.GOOS, Arch: runtime.GOARCH, Protocol: wire.ProtocolVersion,
		LastSeen: time.Now().Add(-time.Hour), Interval: 30 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	// Rollouts: two whose only wave awaits approval (one approved
	// through the form, one through the API), two whose second wave
	// waits an hour (one halted and resumed through the form, one
	// through the API).
	approval := "  waves:\n    - name: first\n      pcs: [pc1]\n      approval: true\n"
	delayed := "  waves:\n    - name: first\n      pcs: [pc1]\n    - name: later\n      pcs: [gone-pc]\n      delay: 1h\n"
	for key, waves := range map[string]string{"rollout": approval, "rollout-api": approval, "rollout-halt": delayed, "rollout-api-halt": delayed} {
		m, problems := jobs.Parse("waves.yaml", []byte("id: waves\nversion: \"1\"\ntarget:\n  pcs: [pc1, gone-pc]\nexecute:\n  shell: sh\n  script: echo waves\n  timeout: 30s\nrollout:\n"+waves))
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		r, err := h.disp.Deploy(ctx, dispatch.DeployRequest{Manifest: m, Actor: "harness"})
		if err != nil {
			t.Fatal(err)
		}
		h.ids[key] = r.ExecID
	}
	now := time.Now().UTC()
	for _, role := range harnessRoles {
		for _, kind := range []string{"kill", "fkill"} {
			id := kind + "-" + role
			if err := h.st.CreateExecution(ctx, store.Execution{ExecID: id, JobID: "adhoc", Shell: wire.ShellSh, Script: "sleep 600",
				Timeout: time.Hour, CreatedAt: now, DeadlineAt: now.Add(time.Hour), InitiatedBy: "harness"}, []string{revokedPC}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pk := func() string {
		kp, _ := nkeys.CreateUser()
		p, _ := kp.PublicKey()
		return p
	}
	for _, k := range []store.AgentKey{
		{PCID: pendingPC, PublicKey: pk(), Status: store.KeyPending, Hostname: pendingPC, RequestedAt: now},
		{PCID: pendingPC + "-2", PublicKey: pk(), Status: store.KeyPending, Hostname: pendingPC, RequestedAt: now},
		{PCID: pendingPC + "-3", PublicKey: pk(), Status: store.KeyPending, Hostname: pendingPC, RequestedAt: now},
		{PCID: pendingPC + "-4", PublicKey: pk(), Status: store.KeyPending, Hostname: pendingPC, RequestedAt: now},
		{PCID: revokedPC + "-2", PublicKey: pk(), Status: store.KeyApproved, Hostname: revokedPC, RequestedAt: now, DecidedAt: now, DecidedBy: "harness", JWTExpiresAt: now.Add(time.Hour)},
		{PCID: revokedPC, PublicKey: pk(), Status: store.KeyApproved, Hostname: revokedPC, RequestedAt: now, DecidedAt: now, DecidedBy: "harness", JWTExpiresAt: now.Add(time.Hour)},
	} {
		if err := h.st.PutAgentKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	for _, role := range harnessRoles {
		for _, kind := range []string{"toggle", "delete", "fdelete", "put"} {
			if err := h.st.CreateSchedule(ctx, store.Schedule{ID: fixtureKey + "-" + kind + "-" + role, Cron: "0 0 3 * * *", JobID: helloJob, Enabled: true,
				CreatedBy: "harness", CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The engine has looked at the rollouts: the first waves await
	// approval or have started.
	eventually.Within(t, 20*time.Second, func() error {
		for key, want := range map[string]store.Status{"rollout": store.StatusAwaitingApproval, "rollout-api": store.StatusAwaitingApproval,
			"rollout-halt": store.StatusRunning, "rollout-api-halt": store.StatusRunning} {
			ws, err := h.st.Waves(ctx, h.ids[key])
			if err != nil {
				return err
			}
			ex, err := h.st.Execution(ctx, h.ids[key])
			if err != nil {
				return err
			}
			if ex.Status != want || ws[0].State == store.WaveWaiting {
				return fmt.Errorf("rollout %s is %s, its first wave %s", key, ex.Status, ws[0].State)
			}
		}
		return nil
	})
}

// do sends one request as role and returns the response with its body
// read (an event stream's body is not read: it does not end).
func (h *harness) do(t *testing.T, role, method, url, body, ctype string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.URL+url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case ctype != "":
		req.Header.Set("Content-Type", ctype)
	case body == "":
	case strings.HasPrefix(body, "{"):
		req.Header.Set("Content-Type", "application/json")
	case strings.HasPrefix(body, "id:"):
		req.Header.Set("Content-Type", "application/yaml")
	default:
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if tok := h.tokens[role]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s as %s: %v", method, url, role, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
