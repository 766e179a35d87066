package bus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
)

// When the disk fills, the broker keeps the write error on every stream
// whose store met it and refuses each later write to that stream without
// answering the publisher, until JetStream starts again: freeing the disk
// alone does not bring it back. A standalone broker stays up; a clustered
// one turns its JetStream off instead. WriteErrors sees both states and
// RestartJetStream clears them.

// StreamError is a stream the broker no longer writes to ("" Stream: the
// error is JetStream's own).
type StreamError struct {
	Stream string `json:"stream,omitempty"`
	Error  string `json:"error"`
}

// WriteErrors lists the streams of kanade's account that hold a write
// error, and JetStream itself when it is off (embedded broker only; nil
// with an external one, whose own monitoring reports its state).
func (b *Bus) WriteErrors() []StreamError {
	if b.srv == nil || b.ID == nil {
		return nil
	}
	if !b.srv.JetStreamEnabled() {
		return []StreamError{{Error: "JetStream is off"}}
	}
	hs := b.srv.Healthz(&server.HealthzOptions{Details: true, Account: b.ID.AccountPublicKey()})
	var out []StreamError
	for _, e := range hs.Errors {
		if e.Type == server.HealthzErrorAccount && hs.StatusCode == 404 {
			continue // no stream stored yet
		}
		out = append(out, StreamError{Stream: e.Stream, Error: e.Error})
	}
	return out
}

// CanaryTimeout bounds one canary publish: a broker that cannot store
// does not answer at all.
const CanaryTimeout = 2 * time.Second

// Canary stores a small message for the named server in the HEALTH
// stream and waits for the broker's acknowledgement: proof that the
// broker can still write to its store.
func (b *Bus) Canary(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, CanaryTimeout)
	defer cancel()
	if _, err := b.JS.Publish(ctx, wire.HealthSubject(name), []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the broker did not store a message within %s", CanaryTimeout)
		}
		return fmt.Errorf("the broker did not store a message: %w", err)
	}
	return nil
}

// restartLog remembers the JetStream restarts of one Bus.
type restartLog struct {
	mu   sync.Mutex // also serializes restarts
	n    int
	last time.Time
	err  error
}

// Restarts reports how many times RestartJetStream brought JetStream back,
// when it last ran, and the error of its last run (nil when it worked).
func (b *Bus) Restarts() (n int, last time.Time, lastErr error) {
	b.restarts.mu.Lock()
	defer b.restarts.mu.Unlock()
	return b.restarts.n, b.restarts.last, b.restarts.err
}

// RestartJetStream stops the embedded broker's JetStream and starts it
// again from its store, the way a configuration reload restarts a
// JetStream that turned itself off. Every stream is read back from disk,
// which clears the write errors they kept; connections stay up, and
// durable consumers resume from their stored state. The streams and
// buckets are then provisioned again. Call it once the disk has space.
func (b *Bus) RestartJetStream(ctx context.Context) error {
	if b.srv == nil {
		return errors.New("JetStream restarts need the embedded broker")
	}
	b.restarts.mu.Lock()
	defer b.restarts.mu.Unlock()
	b.provMu.Lock()
	defer b.provMu.Unlock()
	b.restarts.last = time.Now()
	err := b.restartJetStream(ctx)
	b.restarts.err = err
	if err != nil {
		b.log.Error("JetStream did not restart", "err", err)
		return err
	}
	b.restarts.n++
	b.log.Warn("JetStream restarted: its streams were read back from disk, clearing their write errors")
	return nil
}

func (b *Bus) restartJetStream(ctx context.Context) error {
	if b.srv.JetStreamEnabled() {
		if err := b.srv.ShutdownJetStream(); err != nil {
			return fmt.Errorf("stop JetStream: %w", err)
		}
	}
	o := b.opts.Clone()
	// The broker filled TrustedKeys from TrustedOperators at start; a
	// reload derives them again and refuses both set.
	o.TrustedKeys = nil
	if err := b.srv.ReloadOptions(o); err != nil {
		return fmt.Errorf("start JetStream: %w", err)
	}
	if !b.srv.JetStreamEnabled() {
		return errors.New("start JetStream: it stayed off (the broker's log says why)")
	}
	if err := b.provision(ctx, b.limits); err != nil {
		return fmt.Errorf("after the JetStream restart: %w", err)
	}
	return nil
}

// ThisServer names the embedded broker as the leader of what it holds
// (a single node leads everything).
const ThisServer = "this server"

// StreamStatus is one stream (or bucket) as the broker reports it.
type StreamStatus struct {
	Name string `json:"name"`
	// Bucket is the KV bucket the stream holds ("" for a plain stream).
	Bucket   string `json:"bucket,omitempty"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	MaxBytes int64  `json:"max_bytes"`
	// Key is the [streams] setting of its size ("" when not configurable)
	// and Auto whether that size was derived from the volume.
	Key  string `json:"key,omitempty"`
	Auto bool   `json:"auto,omitempty"`
	// Leader is the broker node that writes it (ThisServer for the
	// embedded broker).
	Leader     string           `json:"leader"`
	WriteError string           `json:"write_error,omitempty"`
	Consumers  []ConsumerStatus `json:"consumers"`
}

// ConsumerStatus is one consumer of a stream and its backlog.
type ConsumerStatus struct {
	Name string `json:"name"`
	// Pending is what it has yet to deliver, AckPending what it delivered
	// and waits to have acknowledged.
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
	Leader     string `json:"leader"`
}

// Streams reports every stream of the account, kanade's and any other,
// in name order, and with consumers each one's consumers.
func (b *Bus) Streams(ctx context.Context, consumers bool) ([]StreamStatus, error) {
	keys := map[string]Reservation{}
	for _, r := range b.plan.Reservations {
		keys[r.Stream] = r
	}
	if b.srv == nil { // an external broker: sizes without a volume plan
		l := b.limits
		for _, s := range sized {
			keys[s.name] = Reservation{Stream: s.name, Key: s.key, Bytes: *s.field(&l)}
		}
	}
	werr := map[string]string{}
	for _, e := range b.WriteErrors() {
		if e.Stream != "" {
			werr[e.Stream] = e.Error
		}
	}
	var out []StreamStatus
	lister := b.JS.ListStreams(ctx)
	for info := range lister.Info() {
		st := StreamStatus{Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes, MaxBytes: info.Config.MaxBytes,
			Leader: b.leader(info.Cluster), WriteError: werr[info.Config.Name], Consumers: []ConsumerStatus{}}
		if r, ok := keys[st.Name]; ok {
			st.Key, st.Auto = r.Key, r.Auto
		}
		if bucket, ok := bucketOf(st.Name); ok {
			st.Bucket = bucket
		}
		if !consumers {
			out = append(out, st)
			continue
		}
		s, err := b.JS.Stream(ctx, st.Name)
		if err == nil {
			cl := s.ListConsumers(ctx)
			for ci := range cl.Info() {
				st.Consumers = append(st.Consumers, ConsumerStatus{Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending, Leader: b.leader(ci.Cluster)})
			}
			err = cl.Err()
		}
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return out, fmt.Errorf("consumers of %s: %w", st.Name, err)
		}
		sort.Slice(st.Consumers, func(i, j int) bool { return st.Consumers[i].Name < st.Consumers[j].Name })
		out = append(out, st)
	}
	if err := lister.Err(); err != nil {
		return out, fmt.Errorf("list streams: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// bucketOf returns the KV bucket a stream holds.
func bucketOf(stream string) (string, bool) {
	const prefix = "KV_"
	if len(stream) > len(prefix) && stream[:len(prefix)] == prefix {
		return stream[len(prefix):], true
	}
	return "", false
}

// leader names the broker node that leads a stream or consumer.
func (b *Bus) leader(ci *jetstream.ClusterInfo) string {
	switch {
	case b.srv != nil:
		return ThisServer
	case ci == nil || ci.Leader == "":
		return "unknown"
	}
	return ci.Leader
}
