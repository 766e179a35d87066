package dialer

import (
	"testing"
	"time"
)

func TestOptionValue(t *testing.T) {
	tests := []struct {
		d, unit time.Duration
		want    int
	}{
		{2 * time.Minute, time.Millisecond, 120000},
		{2 * time.Minute, time.Second, 120},
		{1500 * time.Millisecond, time.Second, 2}, // rounded up: never shorter than asked
		{time.Nanosecond, time.Second, 1},
		{0, time.Millisecond, 1}, // 0 would mean "the system default" to the kernel
		{-time.Second, time.Second, 1},
		{1000 * time.Hour, time.Millisecond, 1<<31 - 1},
	}
	for _, tt := range tests {
		if got := optionValue(tt.d, tt.unit); got != tt.want {
			t.Errorf("optionValue(%v, %v) = %d, want %d", tt.d, tt.unit, got, tt.want)
		}
	}
}

func TestPingInterval(t *testing.T) {
	// Where the kernel bounds unacknowledged data, pings are rare; a ping
	// must still come well within the bound's reach elsewhere.
	if on, off := PingInterval(true), PingInterval(false); on <= off || off > 5*time.Minute {
		t.Errorf("PingInterval(true) = %v, PingInterval(false) = %v", on, off)
	}
}
