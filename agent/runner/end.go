package runner

import "time"

// endCause is what ended the wait for a script's main process.
type endCause int

const (
	endExited endCause = iota
	endKilled
	endTimedOut
)

// awaitEnd waits until the main process exits (waited), done closes (a
// kill) or the timeout fires, and says which came first. When the exit is
// ready too, the exit wins: an agent that was frozen (a suspended VM, a
// stopped process) wakes to find the exit and the timer both ready, and a
// random pick would report a script that ended in time as timed out.
func awaitEnd(waited <-chan error, done <-chan struct{}, timeout <-chan time.Time) (endCause, error) {
	var cause endCause
	select {
	case err := <-waited:
		return endExited, err
	case <-done:
		cause = endKilled
	case <-timeout:
		cause = endTimedOut
	}
	select {
	case err := <-waited:
		return endExited, err
	default:
		return cause, nil
	}
}
