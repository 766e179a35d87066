package catchup_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/catchup"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// serve runs catchup.Serve on a fresh bus and store with pc1 recorded in
// group lab, and EXEC holding commands for several audiences.
func serve(t *testing.T) (*bus.Bus, *nats.Conn) {
	t.Helper()
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Options{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20, AuditMaxBytes: 64 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	st := storetest.New(t)
	now := time.Now().UTC()
	if err := st.UpsertAgents(ctx, []store.Agent{{PCID: "pc1", Hostname: "pc1", OS: "linux", Arch: "amd64", Protocol: wire.ProtocolVersion,
		Groups: []string{"lab"}, Interval: 30 * time.Second, LastSeen: now, OfflineAfter: now.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{
		wire.CommandPCSubject("pc1", "a"), wire.CommandPCSubject("pc1", "a"), // the newer replaces the older
		wire.CommandAllSubject("b"), wire.CommandGroupSubject("lab", "c"),
		wire.CommandGroupSubject("finance", "d"), wire.CommandPCSubject("pc2", "e"),
	} {
		m := nats.NewMsg(subj)
		m.Header.Set(wire.HeaderSig, "sig-"+subj)
		m.Data = []byte(subj)
		if _, err := b.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	subs := b.NC.NumSubscriptions()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- catchup.Serve(sctx, b.NC, b.JS, st, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); b.NC.NumSubscriptions() == subs; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Serve did not subscribe")
		}
	}
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	// The requester: the server's own connection (the permissions are
	// the bus's concern, tested there).
	nc := b.NC
	return b, nc
}

// ask sends pc's catch-up request with reply and collects the answer's
// subjects (from HeaderSubject) until the end marker, or until wait.
func ask(t *testing.T, nc *nats.Conn, pc, reply string, wait time.Duration) (subjects []string, end string) {
	t.Helper()
	sub, err := nc.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(wire.CatchupSubject(pc), reply, nil); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := sub.NextMsg(wait)
		if err != nil {
			return subjects, ""
		}
		if e := m.Header.Get(wire.HeaderCatchupEnd); e != "" {
			return subjects, e
		}
		subj := m.Header.Get(wire.HeaderSubject)
		if string(m.Data) != subj || m.Header.Get(wire.HeaderSig) != "sig-"+subj {
			t.Errorf("message for %s has body %q and signature %q: not as stored", subj, m.Data, m.Header.Get(wire.HeaderSig))
		}
		subjects = append(subjects, subj)
	}
}

func TestServe_CommandsOfTheAgentAndItsRecordedGroups(t *testing.T) {
	_, nc := serve(t)
	tests := []struct {
		pc   string
		want []string
	}{
		// pc1: its own newest, everyone's and its group's, in stream order.
		{"pc1", []string{wire.CommandPCSubject("pc1", "a"), wire.CommandAllSubject("b"), wire.CommandGroupSubject("lab", "c")}},
		// pc9 is not recorded: no groups, whatever it may claim.
		{"pc9", []string{wire.CommandAllSubject("b")}},
	}
	for _, tt := range tests {
		got, end := ask(t, nc, tt.pc, wire.AgentInboxPrefix(tt.pc)+".c1", 10*time.Second)
		if end != strconv.Itoa(len(tt.want)) {
			t.Errorf("%s: end marker %q, want %d", tt.pc, end, len(tt.want))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: commands (-want +got):\n%s", tt.pc, diff)
		}
	}
}

// An agent chooses its reply subject; the server answers only into the
// agent's own inbox, so that it cannot have its commands sent to another.
func TestServe_OnlyIntoTheAgentsInbox(t *testing.T) {
	_, nc := serve(t)
	for _, reply := range []string{wire.AgentInboxPrefix("pc2") + ".x", "_INBOX.x", "elsewhere"} {
		if got, end := ask(t, nc, "pc1", reply, 500*time.Millisecond); len(got) > 0 || end != "" {
			t.Errorf("reply %s: answered with %v (end %q)", reply, got, end)
		}
	}
	// The same request into its inbox is answered.
	if _, end := ask(t, nc, "pc1", wire.AgentInboxPrefix("pc1")+".y", 10*time.Second); end == "" {
		t.Error("no answer into the agent's inbox")
	}
}

// A reconnect wave: every request is answered, none dropped while the
// workers are busy.
func TestServe_AnswersAReconnectWave(t *testing.T) {
	_, nc := serve(t)
	const n = 2000
	ends := make(chan struct{}, n)
	sub, err := nc.Subscribe("_AGENT_INBOX.>", func(m *nats.Msg) {
		if m.Header.Get(wire.HeaderCatchupEnd) != "" {
			ends <- struct{}{}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for i := range n {
		pc := fmt.Sprintf("w%04d", i)
		if err := nc.PublishRequest(wire.CatchupSubject(pc), wire.AgentInboxPrefix(pc)+".r", nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(2 * time.Minute)
	for got := 0; got < n; got++ {
		select {
		case <-ends:
		case <-deadline:
			t.Fatalf("%d of %d requests answered", got, n)
		}
	}
}
