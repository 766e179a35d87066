package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
)

// Streams are the broker streams a backup keeps, the newest message of
// each subject: the pins and statuses of jobs and the fleet switches
// (emergency stop), which agents read from the broker, and the newest
// command of every subject, which offline agents fetch when they come
// back (catch-up). Results, output, inventory and audit events are
// projected into the database and are not kept.
var Streams = []string{"KV_" + wire.KVScriptCurrent, "KV_" + wire.KVScriptStatus, "KV_" + wire.KVFleet, wire.StreamExec}

// message is one line of broker/messages.jsonl.
type message struct {
	Stream  string      `json:"stream"`
	Subject string      `json:"subject"`
	Header  nats.Header `json:"header,omitempty"`
	Data    []byte      `json:"data"`
}

// fetchWait bounds the wait for each message of a dump.
const fetchWait = 5 * time.Second

// dumpStreams writes the newest message of every subject of streams as
// JSON lines and returns how many it wrote. A stream that does not exist
// has none; a key-value delete or purge marker is left out.
func dumpStreams(ctx context.Context, js jetstream.JetStream, streams []string, w io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	n := 0
	for _, name := range streams {
		st, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("stream %s: %w", name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return n, fmt.Errorf("stream %s: %w", name, err)
		}
		if info.State.Msgs == 0 {
			continue
		}
		// An ordered consumer would restart from the next sequence after
		// its first message and deliver every older value; a plain
		// ephemeral one keeps to the newest of each subject.
		cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
			FilterSubjects: info.Config.Subjects,
			AckPolicy:      jetstream.AckNonePolicy, InactiveThreshold: time.Minute, MemoryStorage: true})
		if err != nil {
			return n, fmt.Errorf("stream %s: %w", name, err)
		}
		defer func() { _ = st.DeleteConsumer(context.WithoutCancel(ctx), cons.CachedInfo().Name) }()
		for {
			msg, err := cons.Next(jetstream.FetchMaxWait(fetchWait))
			if err != nil {
				return n, fmt.Errorf("stream %s: read: %w", name, err)
			}
			meta, err := msg.Metadata()
			if err != nil {
				return n, fmt.Errorf("stream %s: %w", name, err)
			}
			if op := msg.Headers().Get("KV-Operation"); op != "DEL" && op != "PURGE" {
				if err := enc.Encode(message{Stream: name, Subject: msg.Subject(), Header: replayHeader(msg.Headers()), Data: msg.Data()}); err != nil {
					return n, err
				}
				n++
			}
			if meta.NumPending == 0 || meta.Sequence.Stream >= info.State.LastSeq {
				break
			}
		}
	}
	return n, nil
}

// replayHeader keeps the headers a message is published again with:
// not the broker's own (Nats-Expected-*, which would fail the publish
// into a fresh stream).
func replayHeader(h nats.Header) nats.Header {
	if len(h) == 0 {
		return nil
	}
	out := nats.Header{}
	for k, v := range h {
		if strings.HasPrefix(k, "Nats-Expected") {
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// replayStreams publishes the messages of a dump again, each into the
// stream it came from; a message of a stream not in allowed, or whose
// subject that stream does not take, is an error.
func replayStreams(ctx context.Context, js jetstream.JetStream, allowed []string, r io.Reader) (int, error) {
	ok := map[string]bool{}
	for _, s := range allowed {
		ok[s] = true
	}
	dec := json.NewDecoder(r)
	n := 0
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("broker messages: %w", err)
		}
		if !ok[m.Stream] {
			return n, fmt.Errorf("broker messages: stream %q is not one a backup keeps", m.Stream)
		}
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}, jetstream.WithExpectStream(m.Stream))
		if err != nil {
			return n, fmt.Errorf("broker messages: %s %s: %w", m.Stream, m.Subject, err)
		}
		if ack.Stream != m.Stream {
			return n, fmt.Errorf("broker messages: %s went to stream %s", m.Subject, ack.Stream)
		}
		n++
	}
}
