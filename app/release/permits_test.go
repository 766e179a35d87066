package release_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/release"
)

// clock is a settable time for the permits' leases.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func ask(t *testing.T, nc *nats.Conn, subject string, req wire.PermitRequest) wire.PermitReply {
	t.Helper()
	data, _ := json.Marshal(req)
	m, err := nc.Request(subject, data, 10*time.Second)
	if err != nil {
		t.Fatalf("permit request on %s: %v", subject, err)
	}
	var rep wire.PermitReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		t.Fatalf("permit reply %s: %v", m.Data, err)
	}
	return rep
}

// With a limit of 2, a third agent is told "not now" until a done message
// or a final result frees a slot or a lease ends; an agent asks for
// itself only; a request whose reply subject the broker did not map is
// not answered; a rollout that ended refuses without asking again.
func TestPermits(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.agents(t, map[string]string{"pc1": "linux/amd64 3 v1", "pc2": "linux/amd64 3 v1", "pc3": "linux/amd64 3 v1", "pc4": "linux/amd64 3 v1"})
	f.upload(t, "v2", "linux", "amd64", []byte("v2"))
	e, _, err := f.svc.Rollout(ctx, dispatch.UpdateRequest{Version: "v2", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	permits := release.NewPermits(f.b, f.st, release.PermitOptions{Max: 2, Now: clk.now}, slog.New(slog.DiscardHandler))
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- permits.Serve(sctx) }()
	t.Cleanup(func() { cancel(); <-served })
	poll(t, "the permit responder", func() bool {
		nc, _ := bustest.Agent(t, f.b, "pc4", nil)
		defer nc.Close()
		_, err := nc.Request(wire.UpdatePermitSubject("pc4"), []byte(`{}`), time.Second)
		return err == nil
	})

	conns := map[string]*nats.Conn{}
	for _, pc := range []string{"pc1", "pc2", "pc3", "pc4"} {
		conns[pc], _ = bustest.Agent(t, f.b, pc, nil)
	}
	req := func(pc string) wire.PermitRequest {
		return wire.PermitRequest{ExecID: e.ExecID, PCID: pc, Version: "v2", Size: 2}
	}
	for _, pc := range []string{"pc1", "pc2"} {
		if rep := ask(t, conns[pc], wire.UpdatePermitSubject(pc), req(pc)); !rep.Granted {
			t.Errorf("%s: %+v; want granted", pc, rep)
		}
	}
	rep := ask(t, conns["pc3"], wire.UpdatePermitSubject("pc3"), req("pc3"))
	if rep.Granted || rep.RetryAfter <= 0 {
		t.Errorf("pc3 over the limit: %+v; want retry_after", rep)
	}
	if n := permits.InFlight(); n != 2 {
		t.Errorf("in flight = %d; want 2", n)
	}
	// Asking again while granted keeps the one slot.
	if rep := ask(t, conns["pc1"], wire.UpdatePermitSubject("pc1"), req("pc1")); !rep.Granted || permits.InFlight() != 2 {
		t.Errorf("pc1 again: %+v, in flight %d", rep, permits.InFlight())
	}

	// pc3 asking for pc1 (its own subject, another pc_id): refused for good.
	rep = ask(t, conns["pc3"], wire.UpdatePermitSubject("pc3"), req("pc1"))
	if rep.Granted || rep.RetryAfter != 0 {
		t.Errorf("pc3 asking as pc1: %+v; want a refusal without retry_after", rep)
	}
	// pc3 cannot even publish on pc1's subject (the broker's permissions).
	if _, err := conns["pc3"].Request(wire.UpdatePermitSubject("pc1"), mustJSON(req("pc1")), 500*time.Millisecond); err == nil {
		t.Error("pc3 got an answer on pc1's permit subject")
	}

	// A request from inside the server's account with a reply subject of
	// its choosing is not answered.
	evil, err := f.b.NC.SubscribeSync("audit.evil")
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(wire.UpdatePermitSubject("pc4"))
	m.Reply, m.Data = "audit.evil", mustJSON(req("pc4"))
	if err := f.b.NC.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := f.b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	// Answered in order: once pc3's next answer is here, the hostile one
	// was handled.
	ask(t, conns["pc3"], wire.UpdatePermitSubject("pc3"), req("pc3"))
	if err := f.b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := evil.Pending(); n != 0 {
		t.Errorf("the responder answered on a subject the requester chose (%d messages)", n)
	}
	if n := permits.InFlight(); n != 2 {
		t.Errorf("in flight after refused requests = %d; want 2", n)
	}

	// pc1's done frees its slot for pc3.
	if err := conns["pc1"].Publish(wire.UpdatePermitSubject("pc1"), mustJSON(wire.PermitRequest{ExecID: e.ExecID, PCID: "pc1", Version: "v2", Done: true})); err != nil {
		t.Fatal(err)
	}
	poll(t, "pc1's done to free its slot", func() bool { return permits.InFlight() == 1 })
	if rep := ask(t, conns["pc3"], wire.UpdatePermitSubject("pc3"), req("pc3")); !rep.Granted {
		t.Errorf("pc3 after pc1's done: %+v; want granted", rep)
	}
	// pc2's final result frees its slot for pc4.
	if _, err := f.st.ApplyResults(ctx, []wire.Result{{ExecID: e.ExecID, PCID: "pc2", State: wire.StateSucceeded}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	clk.add(3 * time.Second) // a full pool looks its targets up at most every 2s
	if rep := ask(t, conns["pc4"], wire.UpdatePermitSubject("pc4"), req("pc4")); !rep.Granted {
		t.Errorf("pc4 after pc2's result: %+v; want granted", rep)
	}
	// Leases end.
	clk.add(release.DefaultLease)
	if n := permits.InFlight(); n != 0 {
		t.Errorf("in flight after the lease = %d; want 0", n)
	}
	// Once the rollout ended, no permit, and no asking again.
	if err := f.disp.Kill(ctx, e.ExecID, "alice"); err != nil {
		t.Fatal(err)
	}
	rep = ask(t, conns["pc1"], wire.UpdatePermitSubject("pc1"), req("pc1"))
	if rep.Granted || rep.RetryAfter != 0 || rep.Reason != release.PermitEnded {
		t.Errorf("after the kill: %+v; want %q without retry_after", rep, release.PermitEnded)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
