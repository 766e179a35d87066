// Package eventually is the tests' one poll helper: it retries a check
// until it holds or a deadline passes, with no fixed sleeps to tune. The
// server's and the agent's tests both use it.
package eventually

import (
	"errors"
	"testing"
	"time"
)

// Within calls cond until it returns nil, and fails the test with cond's
// last error once d has passed. The pause between calls grows from 10 ms
// to 200 ms.
func Within(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	step := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", d, err)
		}
		time.Sleep(step)
		step = min(step*2, 200*time.Millisecond)
	}
}

// Holds turns a yes-or-no check into a condition for Within: when cond
// is false, the error says what was awaited.
func Holds(what string, cond func() bool) func() error {
	return func() error {
		if !cond() {
			return errors.New("waiting for " + what)
		}
		return nil
	}
}
