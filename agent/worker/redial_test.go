package worker

import (
	"errors"
	"net"
	"testing"
)

// Dialing again closes the connection dialed before: a handshake that
// failed does not leave its socket open.
func TestRedialerClosesTheConnectionBefore(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	r := &redialer{d: &net.Dialer{}}
	first, err := r.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	second, err := r.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := first.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("writing to the first connection after a second dial: %v, want %v", err, net.ErrClosed)
	}
	if _, err := second.Write([]byte("x")); err != nil {
		t.Errorf("the second connection: %v", err)
	}
	// A failed dial leaves nothing to close next time.
	if _, err := r.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Skip("something listens on port 1")
	}
	if r.last != nil {
		t.Error("a failed dial is remembered")
	}
	if _, err := second.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the second connection after a third dial: %v, want %v", err, net.ErrClosed)
	}
}
