package runner

import (
	"errors"
	"testing"
	"time"
)

func TestAwaitEnd(t *testing.T) {
	exitErr := errors.New("exit status 3")
	tests := []struct {
		name                   string
		exited, killed, timeUp bool
		want                   endCause
	}{
		{"exit only", true, false, false, endExited},
		{"timeout only", false, false, true, endTimedOut},
		{"kill only", false, true, false, endKilled},
		{"exit and timeout both ready", true, false, true, endExited},
		{"exit and kill both ready", true, true, false, endExited},
		{"everything ready", true, true, true, endExited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// select picks at random among ready cases: repeat.
			for range 200 {
				waited := make(chan error, 1)
				done := make(chan struct{})
				timeout := make(chan time.Time, 1)
				if tt.exited {
					waited <- exitErr
				}
				if tt.killed {
					close(done)
				}
				if tt.timeUp {
					timeout <- time.Time{}
				}
				got, err := awaitEnd(waited, done, timeout)
				if got != tt.want || (got == endExited) != (err == exitErr) {
					t.Fatalf("awaitEnd = %v, %d; want cause %d", err, got, tt.want)
				}
			}
		})
	}
}
