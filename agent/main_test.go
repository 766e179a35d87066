package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/service"
	"github.com/kanadehq/kanade/agent/status"
)

func TestPlanInstall(t *testing.T) {
	root := "/"
	if runtime.GOOS == "windows" {
		root = `C:\`
	}
	p := func(parts ...string) string { return filepath.Join(append([]string{root}, parts...)...) }
	cwd := p("home", "admin")
	exe := p("usr", "local", "bin", "kanade-agent")
	tests := []struct {
		name      string
		args, env []string
		wantArgs  []string
		wantCreds string
		wantConf  string
	}{
		{
			name: "minimal",
			args: []string{"--server", "tls://kanade:4222", "--credentials", "bundle", "--data", p("var", "lib", "kanade"), "--pc-id", "pc1"},
			wantArgs: []string{"service", "run", "--server", "tls://kanade:4222", "--credentials", p("var", "lib", "kanade", "enrollment-bundle"),
				"--data", p("var", "lib", "kanade"), "--pc-id", "pc1"},
			wantCreds: p("home", "admin", "bundle"),
		},
		{
			name: "relative data, groups, level, heartbeat; pc_id from the host name stays out",
			args: []string{"--server", "nats://a:4222,nats://b:4222", "--credentials", p("tmp", "agent-credentials"), "--data", "d",
				"--groups", "wave1, canary", "--log-level", "debug", "--heartbeat", "10s"},
			wantArgs: []string{"service", "run", "--server", "nats://a:4222,nats://b:4222", "--credentials", p("home", "admin", "d", "enrollment-bundle"),
				"--data", p("home", "admin", "d"), "--groups", "canary,wave1", "--log-level", "debug", "--heartbeat", "10s"},
			wantCreds: p("tmp", "agent-credentials"),
		},
		{
			name: "from the environment",
			env: []string{"KANADE_AGENT_SERVER=tls://env:4222", "KANADE_AGENT_CREDENTIALS=" + p("etc", "bundle"), "KANADE_AGENT_DATA=" + p("srv", "k"),
				"KANADE_AGENT_PC_ID=pc-env"},
			wantArgs: []string{"service", "run", "--server", "tls://env:4222", "--credentials", p("srv", "k", "enrollment-bundle"),
				"--data", p("srv", "k"), "--pc-id", "pc-env"},
			wantCreds: p("etc", "bundle"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig("test", tt.args, tt.env, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := planInstall(cfg, exe, cwd)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantArgs, plan.Spec.Args); diff != "" {
				t.Errorf("service arguments (-want +got):\n%s", diff)
			}
			if plan.Credentials != tt.wantCreds || plan.Config != tt.wantConf || plan.Spec.Executable != exe || plan.Spec.DataDir != plan.Data {
				t.Errorf("plan = %+v", plan)
			}
			// The service's arguments are a valid run configuration, and
			// the same one.
			run, err := loadConfig("test", plan.Spec.Args[len(service.RunCommand):], nil, io.Discard)
			if err != nil {
				t.Fatalf("the service's arguments do not load: %v", err)
			}
			if run.Server != cfg.Server || run.Data != plan.Data || strings.Join(run.Groups, ",") != strings.Join(cfg.Groups, ",") ||
				run.LogLevel != cfg.LogLevel || run.HeartbeatInterval != cfg.HeartbeatInterval || (cfg.pcIDSet && run.PCID != cfg.PCID) {
				t.Errorf("the service would run with %+v, the install was given %+v", run, cfg)
			}
		})
	}
}

func TestPlanInstallWithConfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(conf, []byte("server = \"tls://conf:4222\"\ncredentials = \"b\"\ndata = \""+filepath.ToSlash(filepath.Join(dir, "data"))+"\"\ninventory_interval = \"6h\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig("test", []string{"--config", conf}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planInstall(cfg, filepath.Join(dir, "kanade-agent"), dir)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	want := []string{"service", "run", "--server", "tls://conf:4222", "--credentials", filepath.Join(data, "enrollment-bundle"), "--data", data,
		"--config", filepath.Join(data, "agent.toml")}
	if diff := cmp.Diff(want, plan.Spec.Args); diff != "" {
		t.Errorf("service arguments (-want +got):\n%s", diff)
	}
	if plan.Config != conf || plan.Credentials != filepath.Join(dir, "b") {
		t.Errorf("plan copies %s and %s", plan.Config, plan.Credentials)
	}
}

func TestLoadConfigChecks(t *testing.T) {
	base := []string{"--server", "nats://x:4222", "--credentials", "c", "--data", t.TempDir()}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"good", nil, ""},
		{"bad log level", []string{"--log-level", "loud"}, `log_level: "loud" is not debug, info, warn or error`},
		{"data from the flag has no note", []string{"--log-level", "warn"}, ""},
	}
	for _, tt := range tests {
		cfg, err := loadConfig("test", append(append([]string(nil), base...), tt.args...), nil, io.Discard)
		if tt.wantErr == "" {
			if err != nil || cfg.dataNote != "" {
				t.Errorf("%s: loadConfig() = %v, note %q", tt.name, err, cfg.dataNote)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: loadConfig() = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	// Without --data the default (or an earlier release's directory)
	// applies.
	cfg, err := loadConfig("test", base[:4], nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	current, legacy := defaultDataDirs()
	if cfg.Data != current && cfg.Data != legacy {
		t.Errorf("data = %s, want %s or %s", cfg.Data, current, legacy)
	}
}

func TestStatusDataDir(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(conf, []byte("data = \"/from/config\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	def, _ := chooseDataDir()
	tests := []struct {
		name, flag, config, env, want string
	}{
		{"flag wins", "/from/flag", conf, "/from/env", "/from/flag"},
		{"environment", "", conf, "/from/env", "/from/env"},
		{"config", "", conf, "", "/from/config"},
		{"default", "", "", "", def},
	}
	for _, tt := range tests {
		got, err := statusDataDir(tt.flag, tt.config, tt.env)
		if err != nil || got != tt.want {
			t.Errorf("%s: statusDataDir() = %s, %v; want %s", tt.name, got, err, tt.want)
		}
	}
	if _, err := statusDataDir("", filepath.Join(t.TempDir(), "missing.toml"), ""); err == nil {
		t.Error("statusDataDir() with a missing config file succeeded")
	}
}

func TestServiceCommandErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"service"}, "missing command"},
		{[]string{"service", "restart"}, `unknown command "restart"`},
		{[]string{"service", "start", "now"}, `unexpected argument "now"`},
		{[]string{"service", "install", "--server", "nats://x:4222"}, "credentials: required"},
		{[]string{"status", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		err := run(tt.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestServiceInstallRefusesABadBundle: a credentials file that claims to
// be an enrollment bundle but is broken is refused before anything is
// written or registered.
func TestServiceInstallRefusesABadBundle(t *testing.T) {
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		t.Skip("service install stops earlier without root (uid", os.Geteuid(), ")")
	}
	dir := t.TempDir()
	bundle := filepath.Join(dir, "agent-credentials")
	if err := os.WriteFile(bundle, []byte("-----BEGIN KANADE ENROLLMENT TOKEN-----\nx\n------END KANADE ENROLLMENT TOKEN------\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	err := run([]string{"service", "install", "--server", "nats://x:4222", "--credentials", bundle, "--data", data, "--pc-id", "pc1"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "credentials "+bundle) {
		t.Fatalf("install with a broken bundle = %v", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused install created the data directory (%v)", err)
	}
}

// startBroker runs an embedded NATS server that admits one nkey user
// and returns its URL and the user's seed file.
func startBroker(t *testing.T) (url, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile = filepath.Join(t.TempDir(), "agent.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the broker did not start")
	}
	return s.ClientURL(), seedFile
}

// lockedBuffer is an io.Writer for the agent's stderr that a test may
// read while the agent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAgentRun runs the agent against an embedded broker: it keeps its
// data directory private, logs to DATA/logs/agent.log (and stderr), each
// line with the pc_id once, and `kanade-agent status` follows it from
// connected to stopped.
func TestAgentRun(t *testing.T) {
	url, seed := startBroker(t)
	data := filepath.Join(t.TempDir(), "kanade")
	cfg, err := loadConfig("test", []string{"--server", url, "--credentials", seed, "--data", data, "--pc-id", "pc-run", "--groups", "canary",
		"--heartbeat", "1s"}, []string{"KANADE_AGENT_INVENTORY_INTERVAL=0s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runLogged(ctx, cfg, &stderr, true) }()
	defer func() {
		cancel()
		<-done
	}()

	eventually.Within(t, 20*time.Second, func() error {
		st, err := status.Read(data)
		if err != nil {
			return err
		}
		if !st.Connected {
			return fmt.Errorf("status: not connected (%+v)", st)
		}
		return nil
	})
	var out strings.Builder
	if err := run([]string{"status", "--data", data}, &out, io.Discard); err != nil {
		t.Fatalf("status of a connected agent = %v\n%s", err, out.String())
	}
	for _, want := range []string{"connected:  yes, to " + url, "pc_id:      pc-run", "groups:     canary", "server:     " + url, "agent:      running (pid "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(data); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("data directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runLogged() = %v", err)
	}
	done <- nil // for the deferred receive
	out.Reset()
	err = run([]string{"status", "--data", data}, &out, io.Discard)
	var code exitCode
	if !errors.As(err, &code) || int(code) != status.ExitNotRunning || !strings.Contains(out.String(), "agent not running (it stopped at") {
		t.Errorf("status of a stopped agent = %v:\n%s", err, out.String())
	}

	log, err := os.ReadFile(filepath.Join(data, "logs", "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	connected := false
	for _, l := range lines {
		if n := strings.Count(l, "pc_id="); n > 1 {
			t.Errorf("log line with %d pc_id attributes: %s", n, l)
		}
		connected = connected || strings.Contains(l, `msg="connected to NATS" pc_id=pc-run`)
	}
	if !connected {
		t.Errorf("the log file has no connect line with the pc_id:\n%s", log)
	}
	if !strings.Contains(stderr.String(), `msg="kanade-agent stopped"`) {
		t.Errorf("an interactive run did not log to stderr:\n%s", stderr.String())
	}
}
