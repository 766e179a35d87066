package eventually

import (
	"errors"
	"testing"
	"time"
)

func TestWithin(t *testing.T) {
	calls := 0
	Within(t, 10*time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

func TestHolds(t *testing.T) {
	ok := false
	cond := Holds("the flag", func() bool { return ok })
	if err := cond(); err == nil || err.Error() != "waiting for the flag" {
		t.Errorf("Holds while false = %v, want \"waiting for the flag\"", err)
	}
	ok = true
	if err := cond(); err != nil {
		t.Errorf("Holds while true = %v", err)
	}
}
