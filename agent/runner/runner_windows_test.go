//go:build windows

package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
