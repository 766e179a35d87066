package health

import (
	"context"
	"testing"
	"time"
)

func TestBounded(t *testing.T) {
	v, ok := bounded(context.Background(), time.Minute, func() int { return 7 })
	if v != 7 || !ok {
		t.Errorf("bounded(quick) = %d, %v", v, ok)
	}
	release := make(chan struct{})
	defer close(release)
	v, ok = bounded(context.Background(), 10*time.Millisecond, func() int { <-release; return 7 })
	if v != 0 || ok {
		t.Errorf("bounded(stuck) = %d, %v; want it to give up", v, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok := bounded(ctx, time.Minute, func() int { <-release; return 7 }); ok {
		t.Error("bounded with a cancelled context waited for fn")
	}
}
