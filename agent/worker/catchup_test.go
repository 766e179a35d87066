package worker

import (
	"crypto/ed25519"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// answerCatchups answers every catch-up request on url the way the server
// does, with the messages reply returns for the request's n-th time
// (counted from 1) and then the end marker, or with errText instead of the
// end when errText is not empty.
func answerCatchups(t *testing.T, url string, reply func(n int) (msgs []*nats.Msg, errText string)) *atomic.Int32 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var n atomic.Int32
	if _, err := nc.Subscribe(wire.CatchupWildcard, func(m *nats.Msg) {
		msgs, errText := reply(int(n.Add(1)))
		for _, out := range msgs {
			out.Subject = m.Reply
			_ = nc.PublishMsg(out)
		}
		end := nats.NewMsg(m.Reply)
		if errText != "" {
			end.Header.Set(wire.HeaderCatchupError, errText)
		} else {
			end.Header.Set(wire.HeaderCatchupEnd, strconv.Itoa(len(msgs)))
		}
		_ = nc.PublishMsg(end)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

// nothingToCatchUp is a catch-up answer with no commands.
func nothingToCatchUp(int) ([]*nats.Msg, string) { return nil, "" }

// A catch-up the server cannot answer (here: it fails once) is retried
// until it succeeds, and the commands it then sends run once each.
func TestCatchup_RetriedUntilAnswered(t *testing.T) {
	s, js := runJetStream(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	putStop(t, js, priv, wire.EmergencyStop{})
	subject := wire.CommandPCSubject("pc1", "job")
	body, _ := json.Marshal(wire.Command{Protocol: wire.ProtocolVersion, ExecID: "e1", JobID: "job", Shell: "sh", Script: "true",
		Timeout: wire.Duration(time.Minute), IssuedAt: time.Now().UTC(), DeadlineAt: time.Now().Add(time.Hour).UTC()})
	command := func() *nats.Msg {
		m := &nats.Msg{Header: nats.Header{}, Data: body}
		for k, v := range wire.Sign(priv, subject, body, time.Now()) {
			m.Header.Set(k, v)
		}
		m.Header.Set(wire.HeaderSubject, subject)
		return m
	}
	asked := answerCatchups(t, s.ClientURL(), func(n int) ([]*nats.Msg, string) {
		if n == 1 {
			return nil, "the database is busy"
		}
		return []*nats.Msg{command(), command()}, "" // the same command twice: it runs once
	})
	w := startWorker(t, s.ClientURL(), Config{Trust: fakeTrust{keys: []wire.CommandKey{{Kid: wire.KeyID(pub), Key: pub}}}})
	eventually.Within(t, 10*time.Second, eventually.Holds("a successful catch-up", func() bool { return w.CatchUps() == 1 }))
	if n := asked.Load(); n != 2 {
		t.Errorf("asked %d times, want 2 (one failure, one success)", n)
	}
	finals := func() int {
		items, err := w.outbox.Pending()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, it := range items {
			var r wire.Result
			if json.Unmarshal(it.Data, &r) == nil && r.ExecID == "e1" && r.State.Final() {
				n++
			}
		}
		return n
	}
	// No RESULTS stream here: the result stays queued in the outbox.
	eventually.Within(t, 10*time.Second, eventually.Holds("the caught-up command's result", func() bool { return finals() > 0 }))
	if n := finals(); n != 1 {
		t.Errorf("%d final results of e1, want 1", n)
	}
}

// With no server answering (503 no responders), the agent keeps asking
// and catches up once one does.
func TestCatchup_WaitsForAServer(t *testing.T) {
	s, _ := runJetStream(t)
	w := startWorker(t, s.ClientURL(), Config{})
	time.Sleep(300 * time.Millisecond) // the first request finds nobody
	if w.CatchUps() != 0 {
		t.Fatal("caught up with no server answering")
	}
	asked := answerCatchups(t, s.ClientURL(), nothingToCatchUp)
	eventually.Within(t, 10*time.Second, eventually.Holds("a catch-up once a server answers", func() bool { return w.CatchUps() == 1 }))
	if asked.Load() != 1 {
		t.Errorf("the server was asked %d times, want 1", asked.Load())
	}
}

func TestCatchupPause(t *testing.T) {
	for _, tt := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, time.Second, 1500 * time.Millisecond},
		{2, 2 * time.Second, 3 * time.Second},
		{6, 32 * time.Second, 48 * time.Second},
		{7, time.Minute, 90 * time.Second},
		{100, time.Minute, 90 * time.Second},
	} {
		for range 20 {
			if got := catchupPause(tt.attempt); got < tt.min || got > tt.max {
				t.Errorf("catchupPause(%d) = %s, want %s to %s", tt.attempt, got, tt.min, tt.max)
			}
		}
	}
}
