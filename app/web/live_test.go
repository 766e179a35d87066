package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/web"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func openBus(t *testing.T) *bus.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Options{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20, Logger: slog.New(slog.DiscardHandler),
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20, AuditMaxBytes: 64 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestLogStream_HostileOutput: a live log viewer is replayed its target's
// output from the target's start, not everything its PC's subject holds;
// a huge chunk reaches it cut, with a marker; and it reads on the live
// connection (the server's main one is not even given here).
func TestLogStream_HostileOutput(t *testing.T) {
	ctx := context.Background()
	b := openBus(t)
	liveNC, liveJS, err := b.LiveConn()
	if err != nil {
		t.Fatal(err)
	}
	defer liveNC.Close()
	st := storetest.New(t)

	publish := func(data string) error {
		t.Helper()
		body, _ := json.Marshal(wire.OutputChunk{ExecID: "e1", PCID: "pc1", Stream: "stdout", Data: data})
		_, err := b.JS.Publish(ctx, wire.OutputSubject("pc1"), body)
		return err
	}
	// Output the PC's subject held before the target started (here: an
	// hour before), claiming to be this execution's.
	if err := publish("stale-marker"); err != nil {
		t.Fatal(err)
	}
	created := time.Now().UTC().Add(time.Hour)
	if err := st.CreateExecution(ctx, store.Execution{ExecID: "e1", JobID: "adhoc", Shell: wire.ShellSh, Script: "true",
		Timeout: time.Minute, CreatedAt: created, DeadlineAt: created.Add(time.Hour)}, []string{"pc1"}); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(devHandler(t, st, func(d *web.Deps) { d.LiveJS = liveJS }))
	defer srv.Close()
	s, code, body := openSSE(t, srv.URL+"/executions/e1/log/pc1/stream", nil)
	if s == nil {
		t.Fatalf("live log stream: %d %s", code, body)
	}
	defer s.close()
	// Publish once the viewer's consumer exists.
	stream, err := b.JS.Stream(ctx, wire.StreamOutput)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Consumers > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the live viewer made no consumer on OUTPUT")
		}
		time.Sleep(10 * time.Millisecond) // polling for the consumer
	}
	const huge = 1 << 20
	hugeStored := true
	if err := publish(strings.Repeat("x", huge)); errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
		hugeStored = false // OUTPUT itself refuses such chunks
	} else if err != nil {
		t.Fatal(err)
	}
	if err := publish("fresh-marker"); err != nil {
		t.Fatal(err)
	}

	var got strings.Builder
	for !strings.Contains(got.String(), "fresh-marker") {
		line, err := s.lines.ReadString('\n')
		if err != nil {
			t.Fatalf("live stream ended before the fresh chunk (%v); got %d bytes: %.500s", err, got.Len(), got.String())
		}
		got.WriteString(line)
	}
	text := got.String()
	if strings.Contains(text, "stale-marker") {
		t.Error("the viewer was replayed output from before the target started")
	}
	if n := strings.Count(text, "x"); n > 128<<10 {
		t.Errorf("the viewer got %d bytes of a %d-byte chunk, want it cut to at most 128 KiB", n, huge)
	}
	if hugeStored && !strings.Contains(text, "more bytes of this chunk are not shown live") {
		t.Error("the cut chunk has no marker")
	}
}
