// Package bustest starts an embedded broker with kanade's identity and
// connects as the endpoints do, for tests of the packages that serve them.
package bustest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
)

// Open starts an embedded broker in a temporary directory, closed when
// the test ends.
func Open(t testing.TB) *bus.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Options{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20, AuditMaxBytes: 64 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// Agent connects as an agent with a freshly minted credential for pc in
// groups, in the agents' account, with the agent's own inbox prefix. It
// returns the connection and the agent's key.
func Agent(t testing.TB, b *bus.Bus, pc string, groups []string, opts ...nats.Option) (*nats.Conn, nkeys.KeyPair) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	j, err := b.ID.MintAgent(pub, pc, groups, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.ClientURL(), append([]nats.Option{nats.UserJWT(func() (string, error) { return j, nil }, kp.Sign),
		nats.CustomInboxPrefix(wire.AgentInboxPrefix(pc))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, kp
}
