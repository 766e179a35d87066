package runner

import (
	"fmt"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// ending is what Run observed about how a child ended.
type ending struct {
	timedOut  bool          // the timeout fired before the main process exited
	timeout   time.Duration // the timeout, for the Reason
	killed    string        // non-empty: killed through the context; the Reason to report
	exitCode  int           // the main process's exit code, -1 if it has none
	status    string        // the process state as text ("signal: killed")
	waitErr   error         // an error from waiting other than a non-zero exit
	readErr   error         // an error reading the output pipes
	pipesHeld bool          // reading stopped after pipeGrace: an escaped process held the pipes
	pipeGrace time.Duration // for the Reason
}

// classify turns an ending into the state, reason and exit code of an
// Outcome. A kill or a timeout wins over whatever status the killed process
// reports, and then there is no exit code.
func classify(e ending) Outcome {
	var o Outcome
	switch {
	case e.timedOut:
		o.State = wire.StateTimedOut
		o.Reason = "timed out after " + e.timeout.String()
	case e.killed != "":
		o.State = wire.StateKilled
		o.Reason = e.killed
	case e.waitErr != nil:
		o.State = wire.StateFailed
		o.Reason = "wait for process: " + e.waitErr.Error()
	case e.exitCode == 0:
		o.State = wire.StateSucceeded
		o.ExitCode = new(0)
	case e.exitCode > 0:
		o.State = wire.StateFailed
		o.Reason = fmt.Sprintf("exit code %d", e.exitCode)
		o.ExitCode = new(e.exitCode)
	default:
		o.State = wire.StateFailed
		o.Reason = "ended without an exit code"
		if e.status != "" {
			o.Reason += " (" + e.status + ")"
		}
	}
	if e.pipesHeld {
		o.Reason = join(o.Reason, fmt.Sprintf("output cut off %s after exit: a process outside the tree still held the pipes", e.pipeGrace))
	}
	if e.readErr != nil {
		o.Reason = join(o.Reason, e.readErr.Error())
	}
	return o
}

// join appends a note to a reason.
func join(reason, note string) string {
	if reason == "" {
		return note
	}
	return reason + "; " + note
}
