package main

import (
	"context"
	"testing"
	"time"
)

// The background load stops when it is told to.
func TestBurnStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { burn(ctx, 0.5, time.Millisecond); close(done) }()
	cancel()
	<-done
}
