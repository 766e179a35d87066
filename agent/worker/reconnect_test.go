package worker

import (
	"testing"
	"time"
)

// Reconnect waits stay within their attempt's window (half of it at
// least, so that attempts are spread but never bunch up at zero), grow
// to 8 s over the first attempts and to 30 s after about a minute.
func TestReconnectDelay(t *testing.T) {
	tests := []struct {
		attempts int
		window   time.Duration
	}{
		{1, 2 * time.Second},
		{2, 3 * time.Second},
		{6, 7 * time.Second},
		{7, 8 * time.Second},
		{reconnectQuick, 8 * time.Second},
		{reconnectQuick + 1, 30 * time.Second},
		{1000, 30 * time.Second},
	}
	for _, tt := range tests {
		lo, hi := tt.window, time.Duration(0)
		for range 2000 {
			d := reconnectDelay(tt.attempts)
			if d < tt.window/2 || d > tt.window {
				t.Fatalf("reconnectDelay(%d) = %v, want within [%v, %v]", tt.attempts, d, tt.window/2, tt.window)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Spread over the window, not one value: a fleet does not reconnect in step.
		if hi-lo < tt.window/4 {
			t.Errorf("reconnectDelay(%d) spans only %v..%v in 2,000 draws", tt.attempts, lo, hi)
		}
	}
}
