//go:build windows

package runner

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/windows"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// These tests run on Windows, or under Wine with
// GOOS=windows go test -exec wine ./agent/runner/.

func TestRunWindows_Cmd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		want   summary
	}{
		{"exit 0", "@echo off\necho hello\n", summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: "hello\r\n"}},
		{"exit 3", "@echo off\necho out\necho err 1>&2\nexit /b 3\n", summary{State: wire.StateFailed, Reason: "exit code 3", ExitCode: new(3), Stdout: "out\r\n", Stderr: "err \r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := runBounded(t, t.Context(), Spec{Shell: wire.ShellCmd, Script: tt.script, Dir: t.TempDir()})
			if diff := cmp.Diff(tt.want, summarize(o)); diff != "" {
				t.Errorf("Run(%q) mismatch (-want +got):\n%s", tt.script, diff)
			}
		})
	}
}

// A grandchild (ping) that the tree kill missed would hold the pipes, and
// Run would say so in Reason after pipeGrace.
func TestRunWindows_TreeKilled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		want    wire.State
	}{
		{"timeout", "@echo off\nstart /b ping -n 300 127.0.0.1\nping -n 300 127.0.0.1 >nul\n", 500 * time.Millisecond, wire.StateTimedOut},
		{"leftover after exit", "@echo off\nstart /b ping -n 300 127.0.0.1\nexit /b 0\n", time.Minute, wire.StateSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			o := runBounded(t, t.Context(), Spec{Shell: wire.ShellCmd, Script: tt.script, Timeout: tt.timeout, Dir: t.TempDir()})
			if o.State != tt.want || strings.Contains(o.Reason, "held the pipes") {
				t.Errorf("Run = %s (%s), want %s and no held pipes", o.State, o.Reason, tt.want)
			}
			if d := time.Since(start); d > tt.timeout+5*time.Second && tt.want == wire.StateTimedOut {
				t.Errorf("Run took %s", d)
			}
		})
	}
}

func TestRunWindows_PowerShell(t *testing.T) {
	t.Parallel()
	if ok, reason := Available(wire.ShellPowerShell); !ok {
		t.Skip(reason)
	}
	o := runBounded(t, t.Context(), Spec{Shell: wire.ShellPowerShell, Script: "Write-Output 'こんにちは'\nexit 5\n", Dir: t.TempDir()})
	want := summary{State: wire.StateFailed, Reason: "exit code 5", ExitCode: new(5), Stdout: "こんにちは\r\n"}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
}

func TestRunWindows_ShSkipped(t *testing.T) {
	t.Parallel()
	o := Run(t.Context(), Spec{Shell: wire.ShellSh, Script: "echo hi", Dir: t.TempDir()})
	want := summary{State: wire.StateSkipped, Reason: "shell sh is not available on windows"}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
}

// underWine reports whether the tests run under Wine.
func underWine() bool { return procWineVersion.Find() == nil }

// TestRunWindows_PowerShellStub: Wine's powershell.exe prints nothing and
// exits 0. It is refused by name, and a run that gets past that check
// anyway fails because the launcher's marker is still there.
func TestRunWindows_PowerShellStub(t *testing.T) {
	t.Parallel()
	if !underWine() {
		t.Skip("needs Wine's powershell.exe stub")
	}
	o := Run(t.Context(), Spec{Shell: wire.ShellPowerShell, Script: "Write-Output hi", Dir: t.TempDir()})
	want := summary{State: wire.StateFailed, Reason: "powershell is a stub under Wine (it prints nothing and exits 0)"}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	h := localHost()
	h.stub = nil
	p, no := makePlan(h, wire.ShellPowerShell, "Write-Output hi")
	if no.state != "" {
		t.Skip(no.reason)
	}
	o = runPlan(t.Context(), Spec{Dir: t.TempDir()}, p)
	if o.State != wire.StateFailed || !strings.HasPrefix(o.Reason, "powershell did not run the script: it exited with code 0") {
		t.Errorf("the stub past the name check: %s (%s), want failed: did not run the script", o.State, o.Reason)
	}
}

// TestRunWindows_CmdNonASCIILiteral: cmd reads the script as UTF-8 after
// the chcp 65001 preamble. Wine's cmd reads batch files in the OEM code
// page whatever chcp says, so this needs a real Windows.
func TestRunWindows_CmdNonASCIILiteral(t *testing.T) {
	t.Parallel()
	if underWine() {
		t.Skip("Wine's cmd reads batch files in the OEM code page")
	}
	o := runBounded(t, t.Context(), Spec{Shell: wire.ShellCmd, Script: "@echo off\necho 日本語 ü é\n", Dir: t.TempDir()})
	want := summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: "日本語 ü é\r\n"}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
}

// TestRunWindows_LegacyOutput: a script that prints in the system's OEM
// code page (here cmd's type after chcp back to it) is decoded, not turned
// into U+FFFD. Under Wine the code page follows LANG: 437 with C.UTF-8, 932
// with ja_JP.UTF-8.
func TestRunWindows_LegacyOutput(t *testing.T) {
	t.Parallel()
	fixtures := map[encoding.Encoding]struct {
		codePage int
		bytes    []byte
		want     string
	}{
		japanese.ShiftJIS:   {932, dirCP932, "日本語.txt\r\n\u3000\u3000umlaut.txt\r\n"},
		charmap.CodePage437: {437, treeCP437, "C:.\r\n├───Program Files\r\n│   └───Common Files\r\n└───Windows\r\n"},
		charmap.CodePage850: {850, dirCP850, "Größe\r\nVerzeichnis von C:\\Übung\r\n"},
	}
	f, ok := fixtures[systemLegacy()]
	if !ok {
		t.Skipf("no fixture for the system's code page (%v)", systemLegacy())
	}
	t.Logf("the system's code page: %d", f.codePage)
	file := filepath.Join(t.TempDir(), "legacy.txt")
	if err := os.WriteFile(file, f.bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("@echo off\nchcp %d >nul\ntype \"%s\"\n", f.codePage, file)
	o := runBounded(t, t.Context(), Spec{Shell: wire.ShellCmd, Script: script, Dir: t.TempDir()})
	want := summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: f.want}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
}

// helperDirEnv names the directory of a test helper that plays an agent
// which crashes while a run is under way (see TestHelperAgentWindows).
const helperDirEnv = "KANADE_TEST_RUNNER_AGENT_DIR"

// TestHelperAgentWindows is not a test: run by TestRunWindows_AgentCrash
// in a process of its own, it starts a run (cmd running ping) and is
// killed while the run goes on.
func TestHelperAgentWindows(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("a helper process for TestRunWindows_AgentCrash")
	}
	Run(t.Context(), Spec{
		Shell:  wire.ShellCmd,
		Script: "@echo off\nping -n 300 127.0.0.1 >nul\n",
		Dir:    filepath.Join(dir, "scripts"),
	})
	t.Error("the run ended; the helper should have been killed first")
}

// childrenOf lists the live processes whose parent is pid.
func childrenOf(t *testing.T, pid uint32) []uint32 {
	t.Helper()
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(snap)
	var out []uint32
	e := windows.ProcessEntry32{Size: uint32(unsafe.Sizeof(windows.ProcessEntry32{}))}
	for err = windows.Process32First(snap, &e); err == nil; err = windows.Process32Next(snap, &e) {
		if e.ParentProcessID == pid && e.ProcessID != pid {
			out = append(out, e.ProcessID)
		}
	}
	return out
}

// TestRunWindows_AgentCrash kills an "agent" (a helper process running
// Run) mid-run: the Job Object kills the run's tree, cmd and its ping,
// with it (KILL_ON_JOB_CLOSE).
func TestRunWindows_AgentCrash(t *testing.T) {
	t.Parallel()
	agent := exec.Command(os.Args[0], "-test.run=^TestHelperAgentWindows$", "-test.count=1")
	agent.Env = append(os.Environ(), helperDirEnv+"="+t.TempDir())
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	// The tree: the agent → cmd → ping.
	var tree []uint32
	eventually.Within(t, hangBound, func() error {
		tree = tree[:0]
		for _, c := range childrenOf(t, uint32(agent.Process.Pid)) {
			tree = append(tree, c)
			tree = append(tree, childrenOf(t, c)...)
		}
		if len(tree) < 2 {
			return fmt.Errorf("the run's cmd and ping did not start (processes under the agent: %v)", tree)
		}
		return nil
	})
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	for _, pid := range tree {
		eventually.Within(t, hangBound, func() error {
			if live(pid) {
				return fmt.Errorf("process %d of the run outlived the agent", pid)
			}
			return nil
		})
	}
}

// live reports whether process pid runs.
func live(pid uint32) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return false
	}
	defer windows.CloseHandle(h)
	var code uint32
	return windows.GetExitCodeProcess(h, &code) == nil && code == 259 // STILL_ACTIVE
}
