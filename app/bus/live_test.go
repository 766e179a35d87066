package bus

import (
	"context"
	"testing"
	"time"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// TestLiveConn: the live connection is a connection of its own as the
// server's user (it reads the OUTPUT stream), and closing it leaves the
// server's connection alone.
func TestLiveConn(t *testing.T) {
	ctx := context.Background()
	b := openTestBus(t)
	before, _, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	nc, js, err := b.LiveConn()
	if err != nil {
		t.Fatal(err)
	}
	if nc == b.NC || nc == b.CmdNC {
		t.Fatal("LiveConn returned one of the server's connections")
	}
	eventually.Within(t, 10*time.Second, eventually.Holds("the broker to count the live connection", func() bool {
		st, _, err := b.Stats()
		return err == nil && st.Connections == before.Connections+1
	}))
	if _, err := js.Stream(ctx, wire.StreamOutput); err != nil {
		t.Errorf("OUTPUT stream on the live connection: %v", err)
	}
	nc.Close()
	if !b.NC.IsConnected() {
		t.Error("the server's connection closed with the live one")
	}
	if _, err := b.JS.Stream(ctx, wire.StreamOutput); err != nil {
		t.Errorf("OUTPUT stream on the server's connection after the live one closed: %v", err)
	}
}
