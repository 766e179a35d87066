package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CheckInterval is how often Provisioner.Run looks for missing streams and
// buckets.
const CheckInterval = 30 * time.Second

// Provisioner puts back kanade's streams and buckets when one disappears
// while the server runs (deleted by mistake, or by a request the broker
// should not have accepted). Without it a deleted EXEC made every run fail
// and a deleted AUDIT made every action unauditable until a restart. A
// write that finds no stream re-provisions and tries again once (Retry),
// and Run checks every CheckInterval for what nobody writes to. A stream
// that comes back is empty: what it held is gone.
type Provisioner struct {
	js     jetstream.JetStream
	limits StreamLimits
	log    *slog.Logger
	// mu: one check at a time, and none while JetStream restarts (Bus's
	// provisioners share the Bus's lock): a stream not read back from
	// disk yet must not be taken for a deleted one and re-created empty.
	mu *sync.Mutex
}

// NewProvisioner returns a provisioner for the streams StreamConfigs(l)
// and the buckets KVConfigs(l); l's sizes are resolved (Bus.Limits).
func NewProvisioner(js jetstream.JetStream, l StreamLimits, log *slog.Logger) *Provisioner {
	if log == nil {
		log = slog.Default()
	}
	return &Provisioner{js: js, limits: l, log: log, mu: new(sync.Mutex)}
}

// NewProvisioner returns a provisioner for the bus's streams and buckets
// (its resolved limits) that waits while RestartJetStream runs.
func (b *Bus) NewProvisioner(log *slog.Logger) *Provisioner {
	p := NewProvisioner(b.JS, b.limits, log)
	p.mu = &b.provMu
	return p
}

// Missing reports whether err says that a stream or bucket does not exist:
// a publish nobody stores (no responders), or a lookup that found nothing.
func Missing(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
}

// Ensure creates the streams and buckets that do not exist (with their
// configured settings) and returns their names.
func (p *Provisioner) Ensure(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var created []string
	for _, cfg := range StreamConfigs(p.limits) {
		_, err := p.js.Stream(ctx, cfg.Name)
		if err == nil {
			continue
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return created, fmt.Errorf("check stream %s: %w", cfg.Name, err)
		}
		if _, err := p.js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return created, fmt.Errorf("re-create stream %s: %w", cfg.Name, err)
		}
		p.log.Error("stream was missing; re-created it empty", "stream", cfg.Name)
		created = append(created, cfg.Name)
	}
	for _, cfg := range KVConfigs(p.limits) {
		_, err := p.js.KeyValue(ctx, cfg.Bucket)
		if err == nil {
			continue
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return created, fmt.Errorf("check bucket %s: %w", cfg.Bucket, err)
		}
		if _, err := p.js.CreateKeyValue(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return created, fmt.Errorf("re-create bucket %s: %w", cfg.Bucket, err)
		}
		p.log.Error("bucket was missing; re-created it empty", "bucket", cfg.Bucket)
		created = append(created, cfg.Bucket)
	}
	return created, nil
}

// Retry runs fn and, when it fails because a stream or bucket is missing,
// re-provisions and runs it once more. A nil provisioner runs fn once.
func (p *Provisioner) Retry(ctx context.Context, fn func() error) error {
	err := fn()
	if p == nil || !Missing(err) {
		return err
	}
	if _, perr := p.Ensure(ctx); perr != nil {
		return errors.Join(err, perr)
	}
	return fn()
}

// Run calls Ensure every interval until ctx is done.
func (p *Provisioner) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := p.Ensure(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("checking the streams and buckets", "err", err)
		}
	}
}
