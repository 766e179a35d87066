package dialer

import (
	"errors"
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

// TestProbe: the probe reports what the option setter says on a real
// socket, whatever the OS claims to support.
func TestProbe(t *testing.T) {
	refused := errors.New("WSAENOPROTOOPT")
	tests := []struct {
		name string
		set  func(fd uintptr) error
		want error
	}{
		{"refused", func(uintptr) error { return refused }, refused},
		{"accepted", func(uintptr) error { return nil }, nil},
	}
	for _, tt := range tests {
		called := false
		err := probe(func(fd uintptr) error { called = true; return tt.set(fd) })
		if !called || !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: probe = %v (setter called: %v), want %v", tt.name, err, called, tt.want)
		}
	}
	if !Supported {
		if err := Probe(UserTimeout); err == nil {
			t.Error("Probe succeeded on a system without the option")
		}
	}
}
