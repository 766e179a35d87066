package bus

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LiveConn opens one more connection as the server's own user (with the
// options of NC), for consumers that feed people: live output streams.
// What those read, and how slowly the viewers take it, then never backs
// up NC, which the broker would drop as a slow consumer with all the
// server's own work on it. The caller closes the connection.
func (b *Bus) LiveConn() (*nats.Conn, jetstream.JetStream, error) {
	if b.NC == nil {
		return nil, nil, errors.New("bus: not connected")
	}
	opts := b.NC.Opts
	opts.Name = "kanade-server-live"
	nc, err := opts.Connect()
	if err != nil {
		return nil, nil, fmt.Errorf("connect for live streams: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("connect for live streams: jetstream: %w", err)
	}
	return nc, js, nil
}
