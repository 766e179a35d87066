package runner

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	held := "output cut off 1s after exit: a process outside the tree still held the pipes"
	tests := []struct {
		name string
		in   ending
		want Outcome
	}{
		{"exit 0", ending{exitCode: 0}, Outcome{State: wire.StateSucceeded, ExitCode: new(0)}},
		{"exit 3", ending{exitCode: 3}, Outcome{State: wire.StateFailed, Reason: "exit code 3", ExitCode: new(3)}},
		{"windows ntstatus", ending{exitCode: 0xC0000005}, Outcome{State: wire.StateFailed, Reason: "exit code 3221225477", ExitCode: new(0xC0000005)}},
		{"signal", ending{exitCode: -1, status: "signal: segmentation fault"},
			Outcome{State: wire.StateFailed, Reason: "ended without an exit code (signal: segmentation fault)"}},
		{"no status", ending{exitCode: -1}, Outcome{State: wire.StateFailed, Reason: "ended without an exit code"}},
		{"timeout", ending{timedOut: true, timeout: time.Minute, exitCode: -1, status: "signal: killed"},
			Outcome{State: wire.StateTimedOut, Reason: "timed out after 1m0s"}},
		// TerminateJobObject leaves an exit code; a timeout still has none.
		{"timeout on windows", ending{timedOut: true, timeout: 90 * time.Second, exitCode: 137},
			Outcome{State: wire.StateTimedOut, Reason: "timed out after 1m30s"}},
		{"killed", ending{killed: "killed: killed by alice", exitCode: -1},
			Outcome{State: wire.StateKilled, Reason: "killed: killed by alice"}},
		{"wait error", ending{waitErr: errors.New("boom"), exitCode: -1},
			Outcome{State: wire.StateFailed, Reason: "wait for process: boom"}},
		{"success, pipes held", ending{exitCode: 0, pipesHeld: true, pipeGrace: time.Second},
			Outcome{State: wire.StateSucceeded, Reason: held, ExitCode: new(0)}},
		{"failure, pipes held", ending{exitCode: 2, pipesHeld: true, pipeGrace: time.Second},
			Outcome{State: wire.StateFailed, Reason: "exit code 2; " + held, ExitCode: new(2)}},
		{"read error", ending{exitCode: 0, readErr: errors.New("read stdout: broken")},
			Outcome{State: wire.StateSucceeded, Reason: "read stdout: broken", ExitCode: new(0)}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, classify(tt.in)); diff != "" {
			t.Errorf("%s: classify(%+v) mismatch (-want +got):\n%s", tt.name, tt.in, diff)
		}
	}
}
