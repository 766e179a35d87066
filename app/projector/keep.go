package projector

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Pauses after a failed fetch or a projector that stopped: doubling from
// MinPause up to MaxPause, so a stream that is gone costs one warning per
// pause, not one per fetch attempt (thousands a second).
const (
	MinPause = time.Second
	MaxPause = 30 * time.Second
)

// Backoff is a doubling pause; the zero value starts at MinPause.
type Backoff struct{ next time.Duration }

// Next returns the pause to wait now and doubles the following one.
func (b *Backoff) Next() time.Duration {
	d := max(b.next, MinPause)
	b.next = min(2*d, MaxPause)
	return d
}

// Reset starts again from MinPause.
func (b *Backoff) Reset() { b.next = 0 }

// Wait waits d or until ctx is done; it reports whether ctx is still live.
func Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Gone reports whether err says that a projector's consumer, or its
// stream, no longer exists: fetching again cannot help, the consumer must
// be created again (Keep does, by starting the projector again).
func Gone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrConsumerDoesNotExist)
}

// Keep runs a projector until ctx is done, and starts it again, after a
// growing pause, whenever it returns before: a projector whose stream was
// deleted (and re-provisioned) then creates its consumer again. Each
// restart is logged once.
func Keep(ctx context.Context, name string, log *slog.Logger, run func(context.Context) error) {
	var b Backoff
	for {
		start := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > MaxPause {
			b.Reset() // it ran fine for a while
		}
		pause := b.Next()
		log.Error(name+" stopped; starting it again", "err", err, "in", pause)
		if !Wait(ctx, pause) {
			return
		}
	}
}
