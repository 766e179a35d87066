package limit

import (
	"slices"
	"testing"
)

// One key's events are bounded; other keys are not affected.
func TestKeyed(t *testing.T) {
	l := NewKeyed(1, 3)
	var got []bool
	for range 5 {
		got = append(got, l.Allow("flood"))
	}
	if want := []bool{true, true, true, false, false}; !slices.Equal(got, want) {
		t.Errorf("flood: %v, want %v", got, want)
	}
	if !l.Allow("other") {
		t.Error("another key was limited by the flood")
	}
}
