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
