//go:build !windows

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinaries builds both binaries once per test binary, as `make
// build` does (CGO_ENABLED=0).
var buildBinaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kanade-e2e-bin")
	if err != nil {
		return "", err
	}
	builtDir = dir
	for _, b := range []struct{ out, pkg string }{{"kanade", "."}, {"kanade-agent", "../agent"}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return dir, nil
})

// builtDir is where buildBinaries put the binaries ("" until it ran);
// TestMain removes it.
var builtDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		_ = os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// proc is a running binary whose output is kept for failure reports.
type proc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out strings.Builder
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...)}
	p.cmd.Env = os.Environ()
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		p.stop(t)
		pw.Close()
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(bin), p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited with %v", p.cmd.Path, err)
		}
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop within 20s of SIGTERM", p.cmd.Path)
	}
}

// TestE2E_Binaries starts the real binaries as the operations contract
// says and drives the JSON API with an HTTP client.
func TestE2E_Binaries(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (-short)")
	}
	bin, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	srv := startProc(t, filepath.Join(bin, "kanade"), "serve", "--data", data, "--http", httpAddr, "--nats-listen", natsAddr)
	creds := filepath.Join(data, "agent-credentials")
	s := &testServer{t: t, URL: "http://" + httpAddr}
	checkFor(t, 30*time.Second, func() error {
		if _, err := os.Stat(creds); err != nil {
			return err
		}
		resp, err := http.Get(s.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})
	if !strings.Contains(srv.output(), "kanade is running: open http://"+httpAddr) {
		t.Errorf("server did not print its URL:\n%s", srv.output())
	}

	agentData := t.TempDir()
	agent := func(pc, groups, dir string) *proc {
		return startProc(t, filepath.Join(bin, "kanade-agent"), "--server", "nats://"+natsAddr, "--credentials", creds,
			"--pc-id", pc, "--groups", groups, "--data", dir, "--heartbeat", "1s")
	}
	a1 := agent("e2e-1", "lab", agentData)
	agent("e2e-2", "lab,canary", t.TempDir())
	s.waitOnline(t, "e2e-1", "e2e-2")

	var list struct {
		Agents []struct {
			PCID   string   `json:"pc_id"`
			Groups []string `json:"groups"`
			Online bool     `json:"online"`
		} `json:"agents"`
		Total int `json:"total"`
	}
	if code := s.get(t, "/api/agents?group=canary", &list); code != http.StatusOK || list.Total != 1 || list.Agents[0].PCID != "e2e-2" {
		t.Errorf("GET /api/agents?group=canary = %d %+v", code, list)
	}

	marker := filepath.Join(t.TempDir(), "runs")
	e := s.run(t, map[string]any{"target": map[string]any{"groups": []string{"lab"}}, "shell": "sh",
		"script": "echo \"hi from $KANADE_PC_ID\"; echo $KANADE_PC_ID >> " + shQuote(marker), "timeout": "30s"})
	got := s.waitExec(t, e.ExecID, completed)
	if got.Counts["succeeded"] != 2 || got.TargetCount != 2 {
		t.Fatalf("execution = %+v", got)
	}
	for _, tr := range got.Targets {
		if tr.Stdout != "hi from "+tr.PCID+"\n" {
			t.Errorf("target %s stdout = %q", tr.PCID, tr.Stdout)
		}
	}

	// The agent process restarts: it replays its commands and runs none again.
	a1.stop(t)
	agent("e2e-1", "lab", agentData)
	s.waitOnline(t, "e2e-1")
	e2 := s.run(t, map[string]any{"target": map[string]any{"pcs": []string{"e2e-1"}}, "shell": "sh", "script": "echo after"})
	s.waitExec(t, e2.ExecID, completed)
	if runs := lines(t, marker); len(runs) != 2 {
		t.Errorf("runs after agent restart = %v, want one per PC", runs)
	}

	// Kill from curl.
	e3 := s.run(t, map[string]any{"target": map[string]any{"all": true}, "shell": "sh", "script": "sleep 120"})
	s.waitExec(t, e3.ExecID, func(e execution) error {
		if e.Counts["running"] != 2 {
			return fmt.Errorf("counts %v", e.Counts)
		}
		return nil
	})
	if code := s.post(t, "/api/executions/"+e3.ExecID+"/kill", nil, nil); code != http.StatusAccepted {
		t.Fatalf("kill = %d", code)
	}
	got = s.waitExec(t, e3.ExecID, completed)
	if got.Counts["killed"] != 2 || got.Status != "killed" {
		t.Errorf("after kill: %s %v", got.Status, got.Counts)
	}

	var execs struct {
		Executions []execution `json:"executions"`
		Total      int         `json:"total"`
	}
	if code := s.get(t, "/api/executions?limit=2", &execs); code != http.StatusOK || execs.Total != 3 || len(execs.Executions) != 2 || execs.Executions[0].ExecID != e3.ExecID {
		t.Errorf("GET /api/executions?limit=2 = %d total=%d n=%d", code, execs.Total, len(execs.Executions))
	}
	// The version subcommand works for both binaries.
	for _, b := range []string{"kanade", "kanade-agent"} {
		out, err := exec.CommandContext(context.Background(), filepath.Join(bin, b), "version").Output()
		if err != nil || !strings.HasPrefix(string(out), b+" ") {
			t.Errorf("%s version = %q, %v", b, out, err)
		}
	}
}
