package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

// chunkSink collects the output chunks published for pc1.
type chunkSink struct {
	t      *testing.T
	sub    *nats.Subscription
	chunks []wire.OutputChunk
}

// get returns the chunks received so far (see chunkerUnderTest's flush).
func (s *chunkSink) get() []wire.OutputChunk {
	s.t.Helper()
	for n, _, _ := s.sub.Pending(); n > 0; n-- {
		m, err := s.sub.NextMsg(time.Second)
		if err != nil {
			s.t.Fatal(err)
		}
		var c wire.OutputChunk
		if err := json.Unmarshal(m.Data, &c); err != nil {
			s.t.Errorf("undecodable chunk: %v", err)
		}
		s.chunks = append(s.chunks, c)
	}
	return s.chunks
}

// chunkerUnderTest returns a chunker publishing for pc1 on an embedded
// broker, what it published, and a flush after which every chunk the
// chunker published so far is in the sink.
func chunkerUnderTest(t *testing.T) (*chunker, *chunkSink, func()) {
	t.Helper()
	srv, _ := runJetStream(t)
	pub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(wire.OutputSubject("pc1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	w := &Worker{nc: pub, cfg: Config{PCID: "pc1"}}
	flush := func() {
		t.Helper()
		// The broker has the chunks once the publisher's ping is answered,
		// and the subscriber has them queued once its own ping is: the
		// broker sends in order, and the client reads in order.
		if err := pub.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return newChunker(w, "e1"), &chunkSink{t: t, sub: sub}, flush
}

// joined concatenates the chunks of one stream, checking that each starts
// where the previous one ended.
func joined(t *testing.T, chunks []wire.OutputChunk, stream string) string {
	t.Helper()
	var b strings.Builder
	for _, c := range chunks {
		if c.Stream != stream {
			continue
		}
		if c.Offset != int64(b.Len()) {
			t.Errorf("%s chunk at offset %d, want %d", stream, c.Offset, b.Len())
		}
		if c.ExecID != "e1" || c.PCID != "pc1" {
			t.Errorf("chunk of %s/%s, want e1/pc1", c.ExecID, c.PCID)
		}
		b.WriteString(c.Data)
	}
	return b.String()
}

func TestChunker_QuickRunSendsNoChunk(t *testing.T) {
	c, sink, flush := chunkerUnderTest(t)
	c.every = time.Hour // the run ends long before its first chunk is due, however slow the machine
	c.add(wire.Stdout, []byte("hello\n"))
	c.add(wire.Stderr, []byte("warn\n"))
	c.stop()
	c.stop() // twice is fine
	flush()
	if got := sink.get(); len(got) != 0 {
		t.Errorf("a run that ended before its first chunk was due sent %d chunks", len(got))
	}
	if c.tick == nil || c.tick.Stop() {
		t.Error("the flush timer is still due after stop")
	}
}

func TestChunker_SilentRunStartsNoTimer(t *testing.T) {
	c, _, _ := chunkerUnderTest(t)
	c.stop()
	if c.tick != nil {
		t.Error("a run without output started a flush timer")
	}
}

func TestChunker_StreamsWhileRunningAndSendsTheRestAtStop(t *testing.T) {
	c, sink, flush := chunkerUnderTest(t)
	c.add(wire.Stdout, []byte("one\n"))
	eventually.Within(t, 10*time.Second, func() error {
		if flush(); len(sink.get()) == 0 {
			return errors.New("no chunk while the run goes on")
		}
		return nil
	})
	// Quiet for a while: the timer stops, and starts again with output.
	time.Sleep(3 * chunkEvery)
	c.add(wire.Stdout, []byte("two\n"))
	c.add(wire.Stderr, []byte("日本"[:4])) // a character cut in two: held back…
	eventually.Within(t, 10*time.Second, func() error {
		if flush(); joined(t, sink.get(), wire.Stdout) != "one\ntwo\n" {
			return fmt.Errorf("stdout so far %q", joined(t, sink.get(), wire.Stdout))
		}
		return nil
	})
	if got := joined(t, sink.get(), wire.Stderr); got != "日" {
		t.Errorf("stderr before stop = %q, want the whole character only", got)
	}
	c.add(wire.Stderr, []byte("日本"[4:])) // …until it is whole
	c.add(wire.Stdout, []byte("three\n"))
	c.stop()
	flush()
	n := len(sink.get())
	if got := joined(t, sink.get(), wire.Stdout); got != "one\ntwo\nthree\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := joined(t, sink.get(), wire.Stderr); got != "日本" {
		t.Errorf("stderr = %q", got)
	}
	time.Sleep(2 * chunkEvery)
	c.add(wire.Stdout, []byte("after stop\n"))
	flush()
	if got := len(sink.get()); got != n {
		t.Errorf("%d chunks after stop", got-n)
	}
}

func TestChunker_FullBufferGoesAtOnceInWholeCharacters(t *testing.T) {
	c, sink, flush := chunkerUnderTest(t)
	big := strings.Repeat("語", chunkMax/3+10) // more than chunkMax bytes
	c.add(wire.Stdout, []byte(big))
	flush()
	got := sink.get()
	if len(got) == 0 {
		t.Fatal("a full buffer was not sent at once")
	}
	for _, ch := range got {
		if len(ch.Data) > chunkMax || !strings.HasPrefix(big[ch.Offset:], ch.Data) {
			t.Errorf("chunk at %d: %d bytes, a piece of the output: %v", ch.Offset, len(ch.Data), strings.HasPrefix(big[ch.Offset:], ch.Data))
		}
	}
	c.stop()
	flush()
	if s := joined(t, sink.get(), wire.Stdout); s != big {
		t.Errorf("stdout: %d bytes, want %d", len(s), len(big))
	}
}
