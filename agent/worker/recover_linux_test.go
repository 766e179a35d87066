package worker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// crashDirEnv names the data directory of a helper process that plays an
// agent which crashes mid-run (see TestHelperCrashingAgent).
const crashDirEnv = "KANADE_TEST_CRASHING_AGENT_DIR"

// TestHelperCrashingAgent is not a test: run by TestRecover_AgentCrash in
// a process of its own, it is an agent that claims an execution and runs
// its script (which leaves a background child), and is killed meanwhile.
// The script prints nothing: this agent has no broker for live output.
func TestHelperCrashingAgent(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("a helper process for TestRecover_AgentCrash")
	}
	w, err := New(Config{PCID: "pc1", DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := w.ledger.Claim("e1", time.Now()); !ok || err != nil {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	w.execute(context.Background(), wire.Command{ExecID: "e1", Shell: wire.ShellSh, DeadlineAt: time.Now().Add(time.Hour),
		Script: "echo $$ > leader.tmp; mv leader.tmp leader; sleep 300 & echo $! > child.tmp; mv child.tmp child; wait"})
	t.Error("the run ended; the helper should have been killed first")
}

// TestRecover_AgentCrash: an agent is killed -9 while a script runs. Its
// main process dies with the agent (parent-death signal); the child it
// started is killed by the next agent at start-up, which reports the
// target killed ("agent restarted") and never runs it again.
func TestRecover_AgentCrash(t *testing.T) {
	dir := t.TempDir()
	agent := exec.Command(os.Args[0], "-test.run=^TestHelperCrashingAgent$", "-test.count=1")
	agent.Dir = dir
	agent.Env = append(os.Environ(), crashDirEnv+"="+dir)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	var leader, child int
	eventually.Within(t, 10*time.Second, eventually.Holds("the script's pids", func() bool {
		leader, child = readPID(filepath.Join(dir, "leader")), readPID(filepath.Join(dir, "child"))
		return leader > 0 && child > 0
	}))
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL); _ = syscall.Kill(leader, syscall.SIGKILL) })
	eventually.Within(t, 10*time.Second, eventually.Holds("the process tree in the ledger", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "ledger.jsonl"))
		return bytes.Contains(b, []byte(`"pgid":`+strconv.Itoa(leader)))
	}))

	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	eventually.Within(t, 10*time.Second, eventually.Holds("the script's main process to die with the agent", func() bool { return !running(leader) }))
	if !running(child) {
		t.Fatalf("the child %d died with the agent: nothing left to recover", child)
	}

	w, err := New(Config{PCID: "pc1", DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.ledger.Close()
	w.recoverUnfinished()
	eventually.Within(t, 10*time.Second, eventually.Holds("the child to be killed", func() bool { return !running(child) }))
	r, ok := queuedResults(t, w)["e1"]
	if !ok || r.State != wire.StateKilled || r.Reason != ReasonAgentRestarted {
		t.Errorf("result of e1 = %+v (queued: %v), want killed: %s", r, ok, ReasonAgentRestarted)
	}
	if ok, _ := w.ledger.Claim("e1", time.Now()); ok {
		t.Error("e1 could be claimed again after the restart")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "scripts", "*")); len(left) != 0 {
		t.Errorf("script files left after the recovery: %q", left)
	}
}

// readPID reads a pid file; 0 until it is complete.
func readPID(file string) int {
	b, err := os.ReadFile(file)
	if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return syscall.Kill(pid, 0) == nil
}
