package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/worker"
	"github.com/kanadehq/kanade/app/config"
)

// syncBuffer is a log sink for a running agent.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runAgent runs an agent like kanade-agent does, with its enrollment
// bundle at bundle and its log in logs.
func runAgent(t *testing.T, url, bundle, pc, dataDir string, logs *syncBuffer) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("pc_id", pc)
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	id, err := enroll.Setup(sctx, url, bundle, dataDir, enroll.Request{PCID: pc, Hostname: pc}, log)
	if err != nil {
		t.Fatalf("enroll %s: %v", pc, err)
	}
	w, err := worker.New(worker.Config{PCID: pc, Groups: id.Groups, DataDir: dataDir, HeartbeatInterval: time.Second,
		AgentVersion: "test", Tasks: []func(context.Context, *nats.Conn){id.Renew}, Trust: id.Keeper, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, url, id.Option) }()
	t.Cleanup(func() { cancel(); <-done })
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAgent_RecoversFromServerReset: the server is reinstalled (new
// broker identity, new TLS CA) on the same address while an agent runs.
// The agent says why it cannot connect, and once an admin puts the new
// enrollment bundle in place it enrolls again with its own key and comes
// back online, without a restart.
func TestAgent_RecoversFromServerReset(t *testing.T) {
	skipIfShort(t)
	listen := freeAddr(t)
	withTLS := func(c *config.Config) { c.NATS.TLS = "auto" }
	s := startServerWith(t, t.TempDir(), listen, withTLS)
	bundle := filepath.Join(t.TempDir(), "enrollment-bundle")
	copyFile(t, s.Creds, bundle)
	agentData := t.TempDir()
	logs := &syncBuffer{}
	runAgent(t, s.NATSURL, bundle, "reset-pc", agentData, logs)
	s.waitOnline(t, "reset-pc")
	key, _ := os.ReadFile(filepath.Join(agentData, "identity.nk"))

	s.stop()
	s = startServerWith(t, t.TempDir(), listen, withTLS) // a fresh DATA: new accounts, new CA
	checkFor(t, 60*time.Second, func() error {
		if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "what_to_do") {
			return errString("no ERROR naming what to do yet:\n" + l)
		}
		return nil
	})
	if l := logs.String(); !strings.Contains(l, "enrollment bundle") {
		t.Fatalf("the error does not point at the enrollment bundle:\n%s", l)
	}
	// The admin replaces the bundle with the new server's.
	copyFile(t, s.Creds, bundle)
	s.waitOnline(t, "reset-pc")
	e := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"reset-pc"}}, "shell": "sh", "script": "echo back"})
	if got := s.waitExec(t, e.ExecID, completed).Targets[0]; got.State != "succeeded" {
		t.Fatalf("run after re-enrollment: %+v", got)
	}
	if after, _ := os.ReadFile(filepath.Join(agentData, "identity.nk")); !bytes.Equal(key, after) {
		t.Fatal("the agent made a new key; it must enroll again with its own")
	}
}

// TestAgent_RevokedSaysSo: a revoked agent is cut off and says, in an
// ERROR, that it was revoked; it does not come back.
func TestAgent_RevokedSaysSo(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, t.TempDir(), "")
	logs := &syncBuffer{}
	runAgent(t, s.NATSURL, s.Creds, "gone-pc", t.TempDir(), logs)
	s.waitOnline(t, "gone-pc")
	if code := s.post(t, "/api/agents/gone-pc/revoke", nil, nil); code != 200 && code != 204 {
		t.Fatalf("revoke = %d", code)
	}
	checkFor(t, 60*time.Second, func() error {
		if !strings.Contains(logs.String(), "was revoked") {
			return errString("no revocation error in the agent's log yet")
		}
		return nil
	})
	checkFor(t, 30*time.Second, func() error {
		var a struct {
			Online bool `json:"online"`
		}
		s.get(t, "/api/agents/gone-pc", &a)
		if a.Online {
			return errString("a revoked agent is still online")
		}
		return nil
	})
}

type errString string

func (e errString) Error() string { return string(e) }
