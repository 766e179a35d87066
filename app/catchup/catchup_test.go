package catchup_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/catchup"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

// serve runs catchup.Serve on a fresh bus and store with pc1 recorded in
// group lab, and EXEC holding commands for several audiences.
func serve(t *testing.T) *bus.Bus {
	return serveLimited(t, catchup.Limit{Every: time.Nanosecond, Burst: 1 << 20})
}

// serveLimited is serve with a per-agent limit.
func serveLimited(t *testing.T, per catchup.Limit) *bus.Bus {
	t.Helper()
	ctx := context.Background()
	b := bustest.Open(t)
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
	go func() { done <- catchup.ServeLimited(sctx, b, st, slog.New(slog.NewTextHandler(io.Discard, nil)), per) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	eventually.Within(t, 10*time.Second, eventually.Holds("Serve to subscribe", func() bool { return b.NC.NumSubscriptions() != subs }))
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	return b
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
		for _, h := range []string{"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Num-Pending", "Nats-Last-Sequence"} {
			if v := m.Header.Get(h); v != "" {
				t.Errorf("message for %s carries the stream's header %s: %s", subj, h, v)
			}
		}
		subjects = append(subjects, subj)
	}
}

func TestServe_CommandsOfTheAgentAndItsRecordedGroups(t *testing.T) {
	b := serve(t)
	tests := []struct {
		pc   string
		want []string
	}{
		// pc1: its own newest, everyone's and its group's, in stream order.
		{"pc1", []string{wire.CommandPCSubject("pc1", "a"), wire.CommandAllSubject("b"), wire.CommandGroupSubject("lab", "c")}},
		// pc9 is not recorded: no groups, whatever its credential claims.
		{"pc9", []string{wire.CommandAllSubject("b")}},
	}
	for _, tt := range tests {
		nc, _ := bustest.Agent(t, b, tt.pc, []string{"finance"})
		got, end := ask(t, nc, tt.pc, wire.AgentInboxPrefix(tt.pc)+".c1", 10*time.Second)
		if end != strconv.Itoa(len(tt.want)) {
			t.Errorf("%s: end marker %q, want %d", tt.pc, end, len(tt.want))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: commands (-want +got):\n%s", tt.pc, diff)
		}
	}
}

// Only requests that come through the agents' service import are
// answered: the server's own account asking (as a hostile reply subject
// would make it) gets nothing.
func TestServe_OnlyThroughTheAgentsImport(t *testing.T) {
	b := serve(t)
	for _, reply := range []string{wire.AgentInboxPrefix("pc1") + ".x", "_INBOX.x"} {
		if got, end := ask(t, b.NC, "pc1", reply, 500*time.Millisecond); len(got) > 0 || end != "" {
			t.Errorf("request from kanade's account with reply %s: answered with %v (end %q)", reply, got, end)
		}
	}
	nc, _ := bustest.Agent(t, b, "pc1", nil)
	if _, end := ask(t, nc, "pc1", wire.AgentInboxPrefix("pc1")+".y", 10*time.Second); end == "" {
		t.Error("no answer to the agent")
	}
}

// A reconnect wave: every request is answered, none dropped while the
// workers are busy.
func TestServe_AnswersAReconnectWave(t *testing.T) {
	b := serve(t)
	nc, _ := bustest.Agent(t, b, "pc1", nil)
	const n = 2000
	ends := make(chan struct{}, n)
	sub, err := nc.Subscribe(wire.AgentInboxPrefix("pc1")+".>", func(m *nats.Msg) {
		if m.Header.Get(wire.HeaderCatchupEnd) != "" {
			ends <- struct{}{}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for i := range n {
		if err := nc.PublishRequest(wire.CatchupSubject("pc1"), fmt.Sprintf("%s.r%d", wire.AgentInboxPrefix("pc1"), i), nil); err != nil {
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

// One agent's flood is cut to its per-agent limit; another agent is
// answered at once.
func TestServe_PerAgentLimit(t *testing.T) {
	b := serveLimited(t, catchup.Limit{Every: time.Hour, Burst: 3})
	flood, _ := bustest.Agent(t, b, "pc1", nil)
	ends := make(chan struct{}, 100)
	if _, err := flood.Subscribe(wire.AgentInboxPrefix("pc1")+".>", func(m *nats.Msg) {
		if m.Header.Get(wire.HeaderCatchupEnd) != "" {
			ends <- struct{}{}
		}
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := flood.PublishRequest(wire.CatchupSubject("pc1"), fmt.Sprintf("%s.r%d", wire.AgentInboxPrefix("pc1"), i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := flood.Flush(); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 10*time.Second, func() error {
		if n := len(ends); n < 3 {
			return fmt.Errorf("the flooding agent got %d answers, want its burst of 3", n)
		}
		return nil
	})
	other, _ := bustest.Agent(t, b, "pc2", nil)
	if _, end := ask(t, other, "pc2", wire.AgentInboxPrefix("pc2")+".y", 10*time.Second); end == "" {
		t.Fatal("the other agent was not answered")
	}
	if _, end := ask(t, flood, "pc1", wire.AgentInboxPrefix("pc1")+".z", 200*time.Millisecond); end != "" {
		t.Error("the flooding agent was answered past its limit")
	}
	if n := len(ends); n != 3 {
		t.Errorf("the flooding agent got %d answers, want its burst of 3", n)
	}
}

// consumerCreates counts the JetStream consumer creations on the EXEC
// stream from now on.
func consumerCreates(t *testing.T, b *bus.Bus) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	sub, err := b.NC.Subscribe("$JS.API.CONSUMER.CREATE."+wire.StreamExec+".>", func(*nats.Msg) { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

// A catch-up reads the agent's commands with one direct get: a reconnect
// wave creates no consumer.
func TestServe_NoConsumerPerRequest(t *testing.T) {
	b := serve(t)
	creates := consumerCreates(t, b)
	for _, pc := range []string{"pc1", "pc2", "pc3"} {
		nc, _ := bustest.Agent(t, b, pc, nil)
		if _, end := ask(t, nc, pc, wire.AgentInboxPrefix(pc)+".c1", 10*time.Second); end == "" {
			t.Fatalf("%s: no answer", pc)
		}
	}
	if n := creates.Load(); n != 0 {
		t.Errorf("%d consumers created for 3 catch-ups, want none", n)
	}
}

// More commands than one direct get returns: the catch-up reads them
// through a consumer instead, and sends each once, in stream order.
func TestServe_MoreCommandsThanOneDirectGet(t *testing.T) {
	b := serve(t)
	ctx := context.Background()
	const extra = 1100
	var want []string
	want = append(want, wire.CommandPCSubject("pc1", "a"), wire.CommandAllSubject("b"), wire.CommandGroupSubject("lab", "c"))
	for i := range extra {
		subj := wire.CommandAllSubject(fmt.Sprintf("x%04d", i))
		m := nats.NewMsg(subj)
		m.Header.Set(wire.HeaderSig, "sig-"+subj)
		m.Data = []byte(subj)
		if _, err := b.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		want = append(want, subj)
	}
	creates := consumerCreates(t, b)
	nc, _ := bustest.Agent(t, b, "pc1", nil)
	got, end := ask(t, nc, "pc1", wire.AgentInboxPrefix("pc1")+".c1", 10*time.Second)
	if end != strconv.Itoa(len(want)) {
		t.Errorf("end marker %q, want %d", end, len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if creates.Load() == 0 {
		t.Error("no consumer created: the catch-up did not fall back")
	}
}
