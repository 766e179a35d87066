package runner

import (
	"context"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// hangBound is far above how long any run here may take; reaching it means
// Run hung.
const hangBound = 10 * time.Second

// runBounded runs s and fails the test if Run does not return within hangBound.
func runBounded(t *testing.T, ctx context.Context, s Spec) Outcome {
	t.Helper()
	done := make(chan Outcome, 1)
	go func() { done <- Run(ctx, s) }()
	select {
	case o := <-done:
		return o
	case <-time.After(hangBound):
		t.Fatalf("Run did not return within %s", hangBound)
		return Outcome{}
	}
}

// summary is the part of an Outcome the tests compare.
type summary struct {
	State          wire.State
	Reason         string
	ExitCode       *int
	Stdout, Stderr string
	Truncated      bool
}

func summarize(o Outcome) summary {
	return summary{o.State, o.Reason, o.ExitCode, o.Stdout, o.Stderr, o.Truncated}
}
