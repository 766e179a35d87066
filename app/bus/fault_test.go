package bus_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/certs"
)

// openOn starts the embedded broker with its data on dir and small
// explicit sizes.
func openOn(t *testing.T, dir string) *bus.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Options{DataDir: dir, Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ExecMaxBytes: 8 << 20, ResultsMaxBytes: 32 << 20, OutputMaxBytes: 8 << 20, InventoryMaxBytes: 8 << 20, AuditMaxBytes: 8 << 20,
			ScriptCurrentMaxBytes: 1 << 20, ScriptStatusMaxBytes: 1 << 20, FleetMaxBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func publish(b *bus.Bus, subject string, size int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := b.JS.Publish(ctx, subject, make([]byte, size))
	return err
}

// TestRestartJetStream_AfterDiskFull fills the broker's volume: a stream
// that met the full disk keeps refusing writes after space is back (the
// broker keeps its write error), and RestartJetStream brings it back with
// what it held and its consumer's position, without restarting anything else.
func TestRestartJetStream_AfterDiskFull(t *testing.T) {
	dir := bustest.Tmpfs(t, 256<<20)
	b := openOn(t, dir)
	ctx := context.Background()
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, wire.StreamResults, jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := publish(b, wire.ResultSubject(fmt.Sprintf("pc%d", i)), 100); err != nil {
			t.Fatal(err)
		}
	}
	if errs := b.WriteErrors(); len(errs) != 0 {
		t.Fatalf("write errors before the disk filled: %v", errs)
	}

	filler := bustest.Fill(t, dir)
	var pubErr error
	for i := 0; i < 20 && pubErr == nil; i++ {
		pubErr = publish(b, wire.ResultSubject("big"), 64<<10)
	}
	if pubErr == nil {
		t.Fatal("publishes kept succeeding on a full disk")
	}
	errs := b.WriteErrors()
	if len(errs) == 0 || errs[0].Stream != wire.StreamResults {
		t.Fatalf("WriteErrors() = %v, want RESULTS", errs)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := publish(b, wire.ResultSubject("pc0"), 100); err == nil {
		t.Fatal("the stream took a write after the disk was freed without a restart; the sticky write error this test relies on is gone")
	}
	if err := b.RestartJetStream(ctx); err != nil {
		t.Fatalf("RestartJetStream: %v", err)
	}
	if errs := b.WriteErrors(); len(errs) != 0 {
		t.Errorf("write errors after the restart: %v", errs)
	}
	if err := publish(b, wire.ResultSubject("pc0"), 100); err != nil {
		t.Fatalf("publish after the restart: %v", err)
	}
	if err := b.Canary(ctx, "test"); err != nil {
		t.Errorf("canary after the restart: %v", err)
	}
	// What the stream held before the disk filled is still there, and the
	// durable consumer delivers it.
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		_ = m.Ack()
		n++
	}
	if n < 4 {
		t.Errorf("consumer delivered %d messages after the restart, want the 3 from before and the new one", n)
	}
	if n, _, lastErr := b.Restarts(); n != 1 || lastErr != nil {
		t.Errorf("Restarts() = %d, %v", n, lastErr)
	}
}

// TestRestartJetStream_TLS restarts the JetStream of a broker that serves
// TLS to agents: the reload it uses takes the broker's own options as
// they are, and agents keep storing afterwards.
func TestRestartJetStream_TLS(t *testing.T) {
	src, err := certs.Auto(filepath.Join(t.TempDir(), "tls"), []string{"127.0.0.1"}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(context.Background(), bus.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", TLS: src.TLSConfig(),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.RestartJetStream(context.Background()); err != nil {
		t.Fatalf("RestartJetStream: %v", err)
	}
	if err := publish(b, wire.ResultSubject("pc1"), 100); err != nil {
		t.Fatalf("the server's publish after the restart: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(src.CA())
	nc, _ := bustest.Agent(t, b, "pc1", nil, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, wire.ResultSubject("pc1"), []byte("{}")); err != nil {
		t.Errorf("an agent's result after the restart: %v", err)
	}
}
