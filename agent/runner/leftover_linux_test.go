package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// startGroup starts script with sh as the leader of a new process group
// whose environment holds TreeEnv=token, the way Run starts a tree, and
// returns the leader's pid; the test reaps the leader and kills the group
// when it ends.
func startGroup(t *testing.T, dir, script, token string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), TreeEnv+"="+token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	return cmd
}

// TestKillLeftover: real process groups, left as a crashed agent leaves
// them, are killed only when they are still the recorded tree.
func TestKillLeftover(t *testing.T) {
	t.Parallel()
	const tagged = "sleep 300 & echo $! > child; wait"
	const untagged = "env -u " + TreeEnv + " sleep 300 & echo $! > child; wait"
	tests := []struct {
		name       string
		script     string
		leaderDies bool             // the main process is killed (and reaped) first
		edit       func(*Tree)      // how the recorded tree differs from the real one
		wantKilled bool             // the child is killed
		wantN      func(n int) bool // how many processes KillLeftover reports
	}{
		{"main process alive", tagged, false, nil, true, func(n int) bool { return n == 2 }},
		{"main process gone, tagged child", tagged, true, nil, true, func(n int) bool { return n == 1 }},
		{"main process gone, untagged child", untagged, true, nil, false, func(n int) bool { return n == 0 }},
		{"main process alive, untagged child", untagged, false, nil, true, func(n int) bool { return n == 2 }},
		{"another start time: the pid was reused", tagged, false, func(t *Tree) { t.Start++ }, false, func(n int) bool { return n == 0 }},
		{"another boot", tagged, false, func(t *Tree) { t.Boot = "another-boot" }, false, func(n int) bool { return n == 0 }},
		{"another run's token, main process gone", tagged, true, func(t *Tree) { t.Token = "another-run" }, false, func(n int) bool { return n == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			token, err := newTreeToken()
			if err != nil {
				t.Fatal(err)
			}
			cmd := startGroup(t, dir, tt.script, token)
			leader := cmd.Process.Pid
			child := readPID(t, filepath.Join(dir, "child"))
			killLater(t, child)
			// $! names the child as soon as sh forks it, while it may still
			// be sh (with the token) on its way to exec sleep.
			eventually.Within(t, hangBound, func() error {
				if comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(child), "comm")); string(comm) != "sleep\n" {
					return fmt.Errorf("child %d is %q, not sleep yet", child, comm)
				}
				return nil
			})
			id := (&tree{pgid: leader, proc: cmd.Process}).identity(token)
			if id.Start == 0 || id.Boot == "" {
				t.Fatalf("identity = %+v, want a start time and a boot id", id)
			}
			if tt.leaderDies {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			} else {
				go func() { _ = cmd.Wait() }()
			}
			if tt.edit != nil {
				tt.edit(&id)
			}
			n, err := KillLeftover(id)
			if err != nil || !tt.wantN(n) {
				t.Errorf("KillLeftover = %d, %v", n, err)
			}
			if tt.wantKilled {
				waitGone(t, child)
				waitGone(t, leader)
			} else if !alive(child) {
				t.Errorf("child %d was killed, want it left alone", child)
			}
		})
	}
	if n, err := KillLeftover(Tree{}); n != 0 || err != nil {
		t.Errorf("KillLeftover(empty) = %d, %v; want 0, nil", n, err)
	}
}

// helperDirEnv names the directory of a test helper that plays an agent
// which crashes while a run is under way (see TestHelperAgent).
const helperDirEnv = "KANADE_TEST_RUNNER_AGENT_DIR"

// TestHelperAgent is not a test: run by TestRun_AgentCrash in a process of
// its own, it starts a run that leaves a background child and records the
// tree, like an agent, and is killed while the run goes on.
func TestHelperAgent(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("a helper process for TestRun_AgentCrash")
	}
	Run(t.Context(), Spec{
		Shell:  wire.ShellSh,
		Script: "echo $$ > leader.tmp; mv leader.tmp leader; sleep 300 & echo $! > child.tmp; mv child.tmp child; wait",
		Dir:    filepath.Join(dir, "scripts"),
		OnStart: func(tr Tree) {
			b, _ := json.Marshal(tr)
			_ = os.WriteFile(filepath.Join(dir, "tree.tmp"), b, 0o600)
			_ = os.Rename(filepath.Join(dir, "tree.tmp"), filepath.Join(dir, "tree.json"))
		},
	})
	t.Error("the run ended; the helper should have been killed first")
}

// TestRun_AgentCrash kills -9 an "agent" (a helper process running Run)
// mid-run: the parent-death signal kills the run's main process at once,
// and the recorded tree lets KillLeftover kill the child it left.
func TestRun_AgentCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	agent := exec.Command(os.Args[0], "-test.run=^TestHelperAgent$", "-test.count=1")
	agent.Dir = dir
	agent.Env = append(os.Environ(), helperDirEnv+"="+dir)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	leader := readPID(t, filepath.Join(dir, "leader"))
	child := readPID(t, filepath.Join(dir, "child"))
	killLater(t, child)
	killLater(t, leader)
	var tr Tree
	eventually.Within(t, hangBound, func() error {
		b, err := os.ReadFile(filepath.Join(dir, "tree.json"))
		if errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err != nil {
			t.Fatalf("tree.json: %v", err)
		}
		if err := json.Unmarshal(b, &tr); err != nil {
			t.Fatal(err)
		}
		return nil
	})
	if tr.PGID != leader || tr.Start == 0 || tr.Token == "" {
		t.Fatalf("recorded tree %+v, want group %d with a start time and a token", tr, leader)
	}

	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	waitGone(t, leader) // the parent-death signal
	if !alive(child) {
		t.Fatalf("the child %d died with the agent: nothing left to test", child)
	}
	n, err := KillLeftover(tr)
	if n != 1 || err != nil {
		t.Errorf("KillLeftover = %d, %v; want 1, nil", n, err)
	}
	waitGone(t, child)
}

// TestRun_StartingThreadEnds: the parent-death signal follows the thread
// that started the child. Threads that end while the run goes on (a
// goroutine that exits locked to its thread ends it) must not kill it.
func TestRun_StartingThreadEnds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	started := make(chan struct{})
	done := make(chan Outcome, 1)
	go func() {
		done <- Run(t.Context(), Spec{
			Shell:   wire.ShellSh,
			Script:  "while [ ! -e " + filepath.Join(dir, "go") + " ]; do sleep 0.01; done; echo ok",
			Dir:     t.TempDir(),
			OnStart: func(Tree) { close(started) },
		})
	}()
	<-started
	for range 20 {
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() { runtime.LockOSThread() }) // ends its thread
		}
		wg.Wait()
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-done:
		if o.State != wire.StateSucceeded || o.Stdout != "ok\n" {
			t.Errorf("Run = %s (%s), stdout %q; want succeeded, ok", o.State, o.Reason, o.Stdout)
		}
	case <-time.After(hangBound):
		t.Fatal("Run did not return")
	}
}
