//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// agentBuild builds kanade-agent of version (with fault, "" for none:
// the test-only failure the agent's main knows, see agent/update_test.go)
// once per test binary, as `make build VERSION=…` does.
func agentBuild(t *testing.T, version, fault string) string {
	t.Helper()
	agentBuilds.mu.Lock()
	defer agentBuilds.mu.Unlock()
	if agentBuilds.dir == "" {
		agentBuilds.dir = t.TempDir()
		agentBuilds.made = map[string]string{}
	}
	key := version + "-" + fault
	if p, ok := agentBuilds.made[key]; ok {
		return p
	}
	p := filepath.Join(agentBuilds.dir, "kanade-agent-"+key)
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, "-ldflags", "-X main.version="+version+" -X main.fault="+fault, "../agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build kanade-agent %s: %v\n%s", key, err, out)
	}
	agentBuilds.made[key] = p
	return p
}

var agentBuilds struct {
	mu   sync.Mutex
	dir  string
	made map[string]string
}

// agentProcess is a kanade-agent process run from a binary of its own
// (an update replaces it) as a plain process: it re-executes itself after
// a swap, keeping its process ID.
type agentProcess struct {
	cmd  *exec.Cmd
	exe  string
	data string
	out  *bytes.Buffer
	done chan struct{}
}

func startAgentProcess(t *testing.T, s *testServer, pc, bin string) *agentProcess {
	t.Helper()
	root := t.TempDir()
	a := &agentProcess{exe: filepath.Join(root, "bin", "kanade-agent"), data: filepath.Join(root, "data"), out: &bytes.Buffer{}, done: make(chan struct{})}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(a.exe), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(a.exe, "--server", s.NATSURL, "--credentials", s.Creds, "--data", a.data, "--pc-id", pc, "--heartbeat", "1s")
	a.cmd.Env = append(os.Environ(), "KANADE_AGENT_INVENTORY_INTERVAL=0s")
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return a.out.Write(p) })
	a.cmd.Stdout, a.cmd.Stderr = w, w
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			mu.Lock()
			log, _ := os.ReadFile(filepath.Join(a.data, "logs", "agent.log"))
			t.Logf("%s output:\n%s\nlog:\n%s", pc, a.out.String(), log)
			mu.Unlock()
		}
	})
	return a
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// uploadRelease sends a binary to POST /api/agent-releases.
func (s *testServer) uploadRelease(t *testing.T, version, bin string) {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/agent-releases?version="+version+"&os="+runtime.GOOS+"&arch="+runtime.GOARCH, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload %s = %d %s", version, resp.StatusCode, body)
	}
}

// versions are the agent versions the server lists, by pc.
func (s *testServer) versions(t *testing.T, pcs ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, pc := range pcs {
		var a struct {
			Online       bool   `json:"online"`
			AgentVersion string `json:"agent_version"`
		}
		if code := s.get(t, "/api/agents/"+pc, &a); code != http.StatusOK {
			return nil, fmt.Errorf("agent %s: status %d", pc, code)
		}
		if !a.Online {
			return nil, fmt.Errorf("agent %s is offline", pc)
		}
		out[pc] = a.AgentVersion
	}
	return out, nil
}

func allOn(version string, vs map[string]string) error {
	for pc, v := range vs {
		if v != version {
			return fmt.Errorf("%s runs %s, not %s", pc, v, version)
		}
	}
	return nil
}

// TestUpdateE2E: real agent processes of v1 on a real server. A release
// whose binary exits at once is refused by every agent's trial and they
// stay on v1, online; then v2, uploaded through the API, rolls out in two
// waves with an approval, and every agent reports v2 and the execution
// succeeded.
func TestUpdateE2E(t *testing.T) {
	skipIfShort(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool to build agents with")
	}
	v1, v2 := agentBuild(t, "v1.0.0", ""), agentBuild(t, "v2.0.0", "")
	bad := filepath.Join(t.TempDir(), "kanade-agent")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho 'cannot start: missing library' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "")
	pcs := []string{"upd-1", "upd-2", "upd-3"}
	for _, pc := range pcs {
		startAgentProcess(t, s, pc, v1)
	}
	checkFor(t, 60*time.Second, func() error {
		vs, err := s.versions(t, pcs...)
		if err != nil {
			return err
		}
		return allOn("v1.0.0", vs)
	})

	// A binary that exits at once: every trial fails, nobody swaps.
	s.uploadRelease(t, "v1.5.0", bad)
	var ro struct {
		ExecID   string `json:"exec_id"`
		Targets  int    `json:"targets"`
		Excluded []any  `json:"excluded"`
	}
	if code := s.post(t, "/api/agent-releases/v1.5.0/rollout", map[string]any{}, &ro); code != http.StatusAccepted || ro.Targets != 3 {
		t.Fatalf("rollout of v1.5.0 = %d %+v", code, ro)
	}
	e := s.waitExec(t, ro.ExecID, completed)
	for _, tr := range e.Targets {
		if tr.State != "failed" || tr.Reason != "trial run failed: exit status 3: cannot start: missing library" {
			t.Errorf("%s: %s %q; want failed: trial run failed: exit status 3: …", tr.PCID, tr.State, tr.Reason)
		}
	}
	if vs, err := s.versions(t, pcs...); err != nil || allOn("v1.0.0", vs) != nil {
		t.Errorf("after the refused release: %v, %v; want every agent on v1.0.0, online", vs, err)
	}

	// v2 in two waves: one canary, then the rest after an approval.
	s.uploadRelease(t, "v2.0.0", v2)
	req := map[string]any{"rollout": map[string]any{"waves": []map[string]any{{"name": "canary", "count": 1}, {"name": "rest", "percent": 100, "approval": true}}}}
	if code := s.post(t, "/api/agent-releases/v2.0.0/rollout", req, &ro); code != http.StatusAccepted || ro.Targets != 3 {
		t.Fatalf("rollout of v2.0.0 = %d %+v", code, ro)
	}
	var rollout struct {
		Status string `json:"status"`
		Waves  []struct {
			State string `json:"state"`
		} `json:"waves"`
	}
	checkFor(t, 90*time.Second, func() error {
		rollout.Waves = nil
		s.get(t, "/api/executions/"+ro.ExecID, &rollout)
		if len(rollout.Waves) != 2 || rollout.Waves[1].State != "awaiting_approval" {
			return fmt.Errorf("rollout %+v; want the canary done and the rest awaiting approval", rollout)
		}
		return nil
	})
	checkFor(t, 30*time.Second, func() error {
		vs, err := s.versions(t, pcs...)
		if err != nil {
			return err
		}
		n := 0
		for _, v := range vs {
			if v == "v2.0.0" {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("after the canary wave: %v; want one agent on v2.0.0", vs)
		}
		return nil
	})
	if code := s.post(t, "/api/executions/"+ro.ExecID+"/waves/1/approve", nil, nil); code != http.StatusOK {
		t.Fatalf("approve = %d", code)
	}
	checkFor(t, 90*time.Second, func() error {
		var e struct {
			Status  string `json:"status"`
			Outcome string `json:"outcome"`
		}
		s.get(t, "/api/executions/"+ro.ExecID, &e)
		if e.Status != "completed" || e.Outcome != "succeeded" {
			return fmt.Errorf("execution %s %s", e.Status, e.Outcome)
		}
		return nil
	})
	checkFor(t, 30*time.Second, func() error {
		vs, err := s.versions(t, pcs...)
		if err != nil {
			return err
		}
		return allOn("v2.0.0", vs)
	})
}
