//go:build !windows

package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		// pid (comm) state ...; comm may hold spaces and parentheses.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
			return s[i+2] != 'Z' && s[i+2] != 'X'
		}
		return true
	}
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat("/proc/self/stat"); serr == nil {
			return false
		}
	}
	return syscall.Kill(pid, 0) == nil
}

// waitGone waits until pid is gone.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	eventually.Within(t, 5*time.Second, func() error {
		if alive(pid) {
			return fmt.Errorf("process %d is still alive", pid)
		}
		return nil
	})
}

// readPID waits until file holds a pid and returns it.
func readPID(t *testing.T, file string) int {
	t.Helper()
	var pid int
	eventually.Within(t, hangBound, func() error {
		b, err := os.ReadFile(file)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return fmt.Errorf("pid file %s was not written", file)
		}
		if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			t.Fatalf("pid file %s: %v", file, err)
		}
		return nil
	})
	return pid
}

// killLater makes sure a stray process from a failed test does not outlive it.
func killLater(t *testing.T, pid int) {
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
}

func TestRun_Exit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		want   summary
	}{
		{"exit 0", "echo hello\nexit 0\n", summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: "hello\n"}},
		{"no exit", "echo hello", summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: "hello\n"}},
		{"exit 3", "echo out; echo err >&2; exit 3", summary{State: wire.StateFailed, Reason: "exit code 3", ExitCode: new(3), Stdout: "out\n", Stderr: "err\n"}},
		{"streams apart", "printf a; printf b >&2; printf c; printf d >&2", summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: "ac", Stderr: "bd"}},
		{"signal", "kill -TERM $$", summary{State: wire.StateFailed, Reason: "ended without an exit code (signal: terminated)"}},
		{"cp932 bytes", `printf '\223\372\226\173ok'`, summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: "\uFFFD\uFFFD\uFFFD{ok"}},
		{"utf-8 kept", "echo 日本語", summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: "日本語\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			o := runBounded(t, t.Context(), Spec{Shell: wire.ShellSh, Script: tt.script, Dir: t.TempDir()})
			if diff := cmp.Diff(tt.want, summarize(o)); diff != "" {
				t.Errorf("Run(%q) mismatch (-want +got):\n%s", tt.script, diff)
			}
			if o.StartedAt.Before(start) || o.FinishedAt.Before(o.StartedAt) {
				t.Errorf("StartedAt %v, FinishedAt %v: want start ≤ StartedAt ≤ FinishedAt", o.StartedAt, o.FinishedAt)
			}
		})
	}
}

func TestRun_Env(t *testing.T) {
	t.Parallel()
	o := runBounded(t, t.Context(), Spec{Shell: wire.ShellSh, Script: `printf '%s' "$KANADE_TEST_X"`, Dir: t.TempDir(), Env: []string{"KANADE_TEST_X=a b"}})
	if o.Stdout != "a b" {
		t.Errorf("Stdout = %q, want %q", o.Stdout, "a b")
	}
}

// treeScript starts a grandchild, writes its pid and waits for it.
func treeScript(pidFile string) string {
	return "sleep 300 &\necho $! > '" + pidFile + "'\nwait\n"
}

func TestRun_TimeoutKillsTree(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	o := runBounded(t, t.Context(), Spec{Shell: wire.ShellSh, Script: treeScript(pidFile), Timeout: 300 * time.Millisecond, Dir: t.TempDir()})
	pid := readPID(t, pidFile)
	killLater(t, pid)
	want := summary{State: wire.StateTimedOut, Reason: "timed out after 300ms"}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	waitGone(t, pid)
}

func TestRun_CancelKillsTree(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	done := make(chan Outcome, 1)
	go func() {
		done <- Run(ctx, Spec{Shell: wire.ShellSh, Script: "echo started\n" + treeScript(pidFile), Timeout: time.Hour, Dir: t.TempDir()})
	}()
	pid := readPID(t, pidFile)
	killLater(t, pid)
	cancel(errors.New("killed by alice"))
	var o Outcome
	select {
	case o = <-done:
	case <-time.After(hangBound):
		t.Fatalf("Run did not return within %s of the cancel", hangBound)
	}
	want := summary{State: wire.StateKilled, Reason: "killed: killed by alice", Stdout: "started\n"}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	waitGone(t, pid)
}

func TestRun_CancelledBeforeStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errors.New("emergency stop"))
	o := runBounded(t, ctx, Spec{Shell: wire.ShellSh, Script: "touch '" + marker + "'", Dir: dir})
	want := summary{State: wire.StateKilled, Reason: "killed: emergency stop"}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	if !o.StartedAt.IsZero() {
		t.Errorf("StartedAt = %v, want zero", o.StartedAt)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the script ran (stat %s: %v)", marker, err)
	}
}

func TestRun_LeftoverChildKilledAfterExit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string // %s is the pid file
	}{
		{"holding stdout", "sleep 300 &\necho $! > '%s'\necho done\n"},
		{"output redirected", "sleep 300 >/dev/null 2>&1 &\necho $! > '%s'\necho done\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			o := runBounded(t, t.Context(), Spec{Shell: wire.ShellSh, Script: strings.ReplaceAll(tt.script, "%s", pidFile), Dir: t.TempDir()})
			pid := readPID(t, pidFile)
			killLater(t, pid)
			want := summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: "done\n"}
			if diff := cmp.Diff(want, summarize(o)); diff != "" {
				t.Errorf("Run mismatch (-want +got):\n%s", diff)
			}
			waitGone(t, pid)
		})
	}
}

func TestRun_EscapedProcessDoesNotHang(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid is not installed")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	// setsid leaves the process group; the escaped sleep keeps stdout open.
	script := "setsid sh -c 'echo $$ > \"$1\"; exec sleep 300' sh '" + pidFile + "' &\n" +
		"while [ ! -s '" + pidFile + "' ]; do :; done\necho done\n"
	o := runBounded(t, t.Context(), Spec{Shell: wire.ShellSh, Script: script, Dir: t.TempDir()})
	pid := readPID(t, pidFile)
	killLater(t, pid)
	want := summary{
		State:    wire.StateSucceeded,
		Reason:   "output cut off 1s after exit: a process outside the tree still held the pipes",
		ExitCode: new(0),
		Stdout:   "done\n",
	}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
}

func TestRun_OutputCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		script        string
		limit         int
		wantOut       string
		wantErr       string
		wantTruncated bool
	}{
		{"under the cap", "printf 12345; printf abc >&2", 10, "12345", "abc", false},
		{"exactly the cap", "printf 1234567890", 10, "1234567890", "", false},
		{"stdout over: its head and its tail", "printf 12345678901234", 10, "12345" + CutMarker(4) + "01234", "", true},
		// 4 MiB on stderr: the child must never block on a full pipe.
		{"stderr far over", "printf ok; head -c 4194304 /dev/zero | tr '\\0' x >&2", 1000, "ok",
			strings.Repeat("x", 500) + CutMarker(4194304-1000) + strings.Repeat("x", 500), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			got := map[string][]byte{}
			onOutput := func(stream string, p []byte) {
				mu.Lock()
				defer mu.Unlock()
				got[stream] = append(got[stream], p...)
			}
			o := runBounded(t, t.Context(), Spec{Shell: wire.ShellSh, Script: tt.script, OutputCap: tt.limit, OnOutput: onOutput, Dir: t.TempDir()})
			if o.State != wire.StateSucceeded {
				t.Fatalf("State = %s (%s), want succeeded", o.State, o.Reason)
			}
			if o.Stdout != tt.wantOut || o.Stderr != tt.wantErr || o.Truncated != tt.wantTruncated {
				t.Errorf("Stdout %q, Stderr %d bytes, Truncated %v; want %q, %d bytes, %v",
					o.Stdout, len(o.Stderr), o.Truncated, tt.wantOut, len(tt.wantErr), tt.wantTruncated)
			}
			mu.Lock()
			defer mu.Unlock()
			// Live output is what was kept while all of it fit, then a note.
			for stream, kept := range map[string]string{wire.Stdout: o.Stdout, wire.Stderr: o.Stderr} {
				live, over := strings.CutSuffix(string(got[stream]), liveCapNote)
				if over && (len(live) != tt.limit || !strings.HasPrefix(kept, live[:tt.limit-tt.limit/2])) || !over && live != kept {
					t.Errorf("OnOutput got %s %q (over the cap: %v); kept %q", stream, live, over, kept)
				}
			}
		})
	}
}

func TestRun_DefaultOutputCap(t *testing.T) {
	t.Parallel()
	o := runBounded(t, t.Context(), Spec{Shell: wire.ShellSh, Script: "head -c 1048600 /dev/zero | tr '\\0' x", Dir: t.TempDir()})
	if want := DefaultOutputCap + len(CutMarker(24)); len(o.Stdout) != want || !o.Truncated || !strings.Contains(o.Stdout, CutMarker(24)) {
		t.Errorf("len(Stdout) = %d, Truncated = %v; want %d (the cap and a marker), true", len(o.Stdout), o.Truncated, want)
	}
}

// TestRun_CannotRun: a shell of another OS (or unknown) skips the run; one
// that belongs here but is missing fails it. Neither writes a file.
func TestRun_CannotRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		shell string
		state wire.State
		want  string
	}{
		{wire.ShellCmd, wire.StateSkipped, "shell cmd is not available on " + runtime.GOOS},
		{wire.ShellPowerShell, wire.StateSkipped, "shell powershell is not available on " + runtime.GOOS + " (use pwsh)"},
		{wire.ShellPwsh, wire.StateFailed, "pwsh is not installed"},
		{"bash", wire.StateSkipped, `unknown shell "bash"`},
		{"", wire.StateSkipped, `unknown shell ""`},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			t.Parallel()
			if tt.shell == wire.ShellPwsh {
				if _, err := exec.LookPath("pwsh"); err == nil {
					t.Skip("pwsh is installed (see TestRun_Pwsh)")
				}
			}
			dir := t.TempDir()
			o := runBounded(t, t.Context(), Spec{Shell: tt.shell, Script: "echo hi", Dir: dir})
			want := summary{State: tt.state, Reason: tt.want}
			if diff := cmp.Diff(want, summarize(o)); diff != "" {
				t.Errorf("Run(shell %q) mismatch (-want +got):\n%s", tt.shell, diff)
			}
			if !o.StartedAt.IsZero() {
				t.Errorf("StartedAt = %v, want zero", o.StartedAt)
			}
			if ok, reason := Available(tt.shell); ok || reason != tt.want {
				t.Errorf("Available(%q) = %v, %q; want false, %q", tt.shell, ok, reason, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a run that could not start left %d files in Dir", len(entries))
			}
		})
	}
}

// TestRun_LauncherNeverRan: an interpreter that exits without running the
// launcher (a stub, like Wine's powershell.exe, which prints nothing and
// exits 0) fails the run; one that runs it does not. The interpreters here
// stand in for PowerShell: they take the launcher as their last argument.
func TestRun_LauncherNeverRan(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	// Runs the launcher's first line, which deletes the marker.
	runs := filepath.Join(bin, "runs")
	if err := os.WriteFile(runs, []byte("#!/bin/sh\nfor f; do :; done\n"+
		"m=$(sed -n \"1s/.*Delete('\\(.*\\)').*/\\1/p\" \"$f\")\nrm -f \"$m\" && echo ran\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		prog string
		want summary
	}{
		{"stub exits 0", "/bin/true", summary{State: wire.StateFailed, ExitCode: new(0),
			Reason: "pwsh did not run the script: it exited with code 0 without starting it (a stub, or a broken or blocked install)"}},
		{"exits 1 without running it", "/bin/false", summary{State: wire.StateFailed, ExitCode: new(1),
			Reason: "pwsh did not run the script: it exited with code 1 without starting it (a stub, or a broken or blocked install); exit code 1"}},
		{"runs it", runs, summary{State: wire.StateSucceeded, ExitCode: new(0), Stdout: "ran\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := plan{goos: runtime.GOOS, shell: wire.ShellPwsh, prog: tt.prog, ext: ".ps1", content: []byte(utf8BOM + "exit 0"), launch: true}
			dir := t.TempDir()
			o := runPlan(t.Context(), Spec{Dir: dir}, p)
			if diff := cmp.Diff(tt.want, summarize(o)); diff != "" {
				t.Errorf("run with %s mismatch (-want +got):\n%s", tt.prog, diff)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the run left %d files in Dir", len(entries))
			}
		})
	}
}

func TestAvailable_Sh(t *testing.T) {
	t.Parallel()
	if ok, reason := Available(wire.ShellSh); !ok || reason != "" {
		t.Errorf("Available(sh) = %v, %q; want true, \"\"", ok, reason)
	}
}

func TestRun_ScriptFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dir     func(t *testing.T) string // Spec.Dir
		created bool                      // Run must create Dir (0700)
	}{
		{"existing dir", func(t *testing.T) string { return t.TempDir() }, false},
		{"missing dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "a", "b") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.dir(t)
			o := runBounded(t, t.Context(), Spec{Shell: wire.ShellSh, Script: `echo "$0"; ls -ln "$0" | cut -c1-10`, Dir: dir})
			checkScriptFile(t, o, dir)
			if !tt.created {
				return
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o700 {
				t.Errorf("created Dir has mode %v, want 0700", got)
			}
		})
	}
}

// TestRun_EmptyDir changes TMPDIR, so it cannot run in parallel.
func TestRun_EmptyDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	o := runBounded(t, t.Context(), Spec{Shell: wire.ShellSh, Script: `echo "$0"; ls -ln "$0" | cut -c1-10`})
	checkScriptFile(t, o, tmp)
}

// checkScriptFile checks the output of a script that printed its own path
// and mode: the file was in dir, 0600, and is gone now.
func checkScriptFile(t *testing.T, o Outcome, dir string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(o.Stdout), "\n")
	if o.State != wire.StateSucceeded || len(lines) != 2 {
		t.Fatalf("Run = %s (%s), stdout %q; want succeeded with two lines", o.State, o.Reason, o.Stdout)
	}
	file, mode := lines[0], lines[1]
	if got := filepath.Dir(file); got != dir {
		t.Errorf("script file in %s, want %s", got, dir)
	}
	if !strings.HasPrefix(filepath.Base(file), "kanade-") || filepath.Ext(file) != ".sh" {
		t.Errorf("script file %s, want kanade-*.sh", filepath.Base(file))
	}
	if mode != "-rw-------" {
		t.Errorf("script file mode %s, want -rw-------", mode)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("script file %s still exists after the run (%v)", file, err)
	}
}

func TestRun_Pwsh(t *testing.T) {
	t.Parallel()
	if ok, reason := Available(wire.ShellPwsh); !ok {
		t.Skip(reason)
	}
	o := runBounded(t, t.Context(), Spec{Shell: wire.ShellPwsh, Script: "Write-Output 'héllo'\nexit 4\n", Dir: t.TempDir()})
	want := summary{State: wire.StateFailed, Reason: "exit code 4", ExitCode: new(4), Stdout: "héllo\n"}
	if diff := cmp.Diff(want, summarize(o)); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
}
