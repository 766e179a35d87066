package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/worker"
	"github.com/kanadehq/kanade/app/config"
)

func skipIfShort(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
}

// checkFor polls fn until it returns nil or total passes.
func checkFor(t testing.TB, total time.Duration, fn func() error) {
	t.Helper()
	eventually.Within(t, total, fn)
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("KANADE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testServer is serve() running in this process on random ports.
type testServer struct {
	t       testing.TB
	data    string
	URL     string // http://127.0.0.1:port
	NATSURL string
	Creds   string
	cancel  context.CancelFunc
	done    chan error
	// token, when set, is sent by get and post (a server with sign-in).
	token string
	// db is the PostgreSQL DSN the server runs on ("" for SQLite in data).
	db string
}

// dbFlags are the flags that give a command (kanade token …) the
// server's database.
func (s *testServer) dbFlags() []string {
	if s.db == "" {
		return nil
	}
	return []string{"--db", s.db}
}

// startServer runs a server with its data in dataDir. natsListen may pin
// the broker's port so agents can reconnect after a restart.
func startServer(t testing.TB, dataDir, natsListen string) *testServer {
	t.Helper()
	return startServerWith(t, dataDir, natsListen, nil)
}

// startServerWith is startServer with a chance to adjust the configuration.
func startServerWith(t testing.TB, dataDir, natsListen string, adjust func(*config.Config)) *testServer {
	t.Helper()
	return startServerLogged(t, dataDir, natsListen, adjust, testLogger(t))
}

// startServerLogged is startServerWith logging to log.
func startServerLogged(t testing.TB, dataDir, natsListen string, adjust func(*config.Config), log *slog.Logger) *testServer {
	t.Helper()
	return startServerOpts(t, dataDir, natsListen, adjust, serveOptions{Log: log})
}

// startServerOpts is startServerWith with run options: a log (nil: the
// test log), a clock for the schedules (nil: the real one). It learns the
// server's addresses from the ready callback.
func startServerOpts(t testing.TB, dataDir, natsListen string, adjust func(*config.Config), opts serveOptions) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Data = dataDir
	cfg.Server.HTTP = "127.0.0.1:0"
	cfg.NATS.Listen = natsListen
	if natsListen == "" {
		cfg.NATS.Listen = "127.0.0.1:0"
	}
	if adjust != nil {
		adjust(&cfg)
	}
	// Under TestPostgres (postgres_test.go) a server whose test left the
	// database alone runs on PostgreSQL, in a schema of its data
	// directory's own.
	if cfg.DB.Driver == config.DriverSQLite && cfg.DB.DSN == "" {
		if dsn := postgresFor(t, cfg.Server.Data); dsn != "" {
			cfg.DB.Driver, cfg.DB.DSN = config.DriverPostgres, dsn
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{t: t, data: dataDir, cancel: cancel, done: make(chan error, 1)}
	if cfg.DB.Driver == config.DriverPostgres {
		s.db = cfg.DB.DSN
	}
	ready := make(chan Listening, 1)
	opts.Stdout, opts.Ready = io.Discard, func(l Listening) { ready <- l }
	if opts.Log == nil {
		opts.Log = testLogger(t)
	}
	go func() { s.done <- serve(ctx, cfg, opts) }()
	select {
	case l := <-ready:
		s.URL, s.NATSURL, s.Creds = l.URL, l.NATS, l.Credentials
	case err := <-s.done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("server: %v", err)
		}
	case <-time.After(30 * time.Second):
		s.t.Error("server did not stop within 30s")
	}
	s.cancel = nil
}

// testAgent is a worker running in this process.
type testAgent struct {
	W      *worker.Worker
	PC     string
	Data   string
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t testing.TB, s *testServer, pc string, groups []string, dataDir string) *testAgent {
	t.Helper()
	return startAgentWith(t, s, pc, groups, dataDir, nil)
}

// startAgentWith lets a test adjust the worker's configuration.
func startAgentWith(t testing.TB, s *testServer, pc string, groups []string, dataDir string, adjust func(*worker.Config)) *testAgent {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	log := testLogger(t).With("agent", pc)
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	id, err := enroll.Setup(sctx, s.NATSURL, s.Creds, dataDir, enroll.Request{PCID: pc, Hostname: pc, Groups: groups}, log)
	if err != nil {
		t.Fatalf("enroll %s: %v", pc, err)
	}
	var tasks []func(context.Context, *nats.Conn)
	var trust worker.Trust
	if id.Renew != nil {
		tasks, trust = append(tasks, id.Renew), id.Keeper
	}
	cfg := worker.Config{PCID: pc, Groups: id.Groups, DataDir: dataDir, HeartbeatInterval: time.Second,
		AgentVersion: "test", Tasks: tasks, Trust: trust, Logger: log}
	if adjust != nil {
		adjust(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opt := id.Option
	ctx, cancel := context.WithCancel(context.Background())
	a := &testAgent{W: w, PC: pc, Data: dataDir, cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- w.Run(ctx, s.NATSURL, opt) }()
	t.Cleanup(a.stop)
	return a
}

func (a *testAgent) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.cancel = nil
}

// waitOnline waits until the server lists every pc as online.
func (s *testServer) waitOnline(t testing.TB, pcs ...string) {
	t.Helper()
	checkFor(t, 20*time.Second, func() error {
		for _, pc := range pcs {
			var a struct {
				Online bool `json:"online"`
			}
			if code := s.get(t, "/api/agents/"+pc, &a); code != http.StatusOK || !a.Online {
				return fmt.Errorf("agent %s not online (status %d)", pc, code)
			}
		}
		return nil
	})
}

// open GETs path (with the token, if any) until ctx is done; the caller
// closes the body.
func (s *testServer) open(t testing.TB, ctx context.Context, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// get decodes a JSON response into v and returns the status.
func (s *testServer) get(t testing.TB, path string, v any) int {
	t.Helper()
	resp := s.open(t, context.Background(), path)
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil && resp.StatusCode < 300 {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// post sends body as JSON and decodes the response into v.
func (s *testServer) post(t testing.TB, path string, body, v any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		_ = json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

// apiErrorBody is the API's error response: a code and, for validation
// errors, the fields at fault.
type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Details []struct {
			Field string `json:"field"`
		} `json:"details"`
	} `json:"error"`
}

type execution struct {
	ExecID      string         `json:"exec_id"`
	JobID       string         `json:"job_id"`
	Status      string         `json:"status"`
	TargetCount int            `json:"target_count"`
	Counts      map[string]int `json:"counts"`
	Targets     []targetResult `json:"targets"`
}

type targetResult struct {
	PCID      string `json:"pc_id"`
	State     string `json:"state"`
	Reason    string `json:"reason"`
	ExitCode  *int   `json:"exit_code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Truncated bool   `json:"truncated"`
}

func (s *testServer) run(t testing.TB, req map[string]any) execution {
	t.Helper()
	var e execution
	if code := s.post(t, "/api/run", req, &e); code != http.StatusAccepted {
		t.Fatalf("POST /api/run = %d, want 202 (%+v)", code, e)
	}
	return e
}

// waitExec polls an execution until cond holds.
func (s *testServer) waitExec(t testing.TB, id string, cond func(e execution) error) execution {
	t.Helper()
	var e execution
	checkFor(t, 60*time.Second, func() error {
		e = execution{}
		if code := s.get(t, "/api/executions/"+id, &e); code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		return cond(e)
	})
	return e
}

func completed(e execution) error {
	if e.Status != "completed" && e.Status != "killed" {
		return fmt.Errorf("status %s, counts %v", e.Status, e.Counts)
	}
	for _, tr := range e.Targets {
		if tr.State == "pending" || tr.State == "running" {
			return fmt.Errorf("target %s is %s", tr.PCID, tr.State)
		}
	}
	return nil
}

func targetIn(pc string, states ...string) func(e execution) error {
	return func(e execution) error {
		for _, tr := range e.Targets {
			if tr.PCID == pc {
				for _, s := range states {
					if tr.State == s {
						return nil
					}
				}
				return fmt.Errorf("target %s is %s, want %v", pc, tr.State, states)
			}
		}
		return fmt.Errorf("no target %s", pc)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func lines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
