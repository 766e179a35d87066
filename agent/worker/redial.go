package worker

import (
	"net"
	"sync"
)

// redialer dials the broker for one nats.Conn and closes the connection
// it dialed before when it dials again. nats.go drops a connection whose
// handshake failed during a reconnect without closing it, so that its
// socket stays open until the garbage collector finds it: a fleet
// reconnecting to a busy broker, whose handshakes time out, then runs out
// of file descriptors (thousands in the load simulator, which holds a
// fleet in one process).
type redialer struct {
	d interface {
		Dial(network, address string) (net.Conn, error)
	}

	mu   sync.Mutex
	last net.Conn
}

// Dial closes the connection dialed before, if any, and dials anew.
// nats.go dials only once it is done with the connection it had.
func (r *redialer) Dial(network, address string) (net.Conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last != nil {
		_ = r.last.Close() // closed already after a clean disconnect
		r.last = nil
	}
	c, err := r.d.Dial(network, address)
	if err != nil {
		return nil, err
	}
	r.last = c
	return c, nil
}
