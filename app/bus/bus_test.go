package bus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
)

func openTestBus(t *testing.T) *Bus {
	t.Helper()
	b, err := Open(context.Background(), Options{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Streams: StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour,
			ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// violations collects the permission errors the server reports.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err.Error())
	v.mu.Unlock()
}

func (v *violations) has(s string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.errs {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

func TestEmbedded_RefusesAnonymous(t *testing.T) {
	b := openTestBus(t)
	nc, err := nats.Connect(b.ClientURL(), nats.NoReconnect())
	if err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("anonymous connect error = %v, want an authorization violation", err)
	}
}

// agentConn connects as an agent with a freshly minted credential.
func agentConn(t *testing.T, b *Bus, pc string, groups []string, v *violations, opts ...nats.Option) (*nats.Conn, string) {
	nc, pubKey, _, _ := agentConnKey(t, b, pc, groups, v, opts...)
	return nc, pubKey
}

func agentConnKey(t *testing.T, b *Bus, pc string, groups []string, v *violations, opts ...nats.Option) (*nats.Conn, string, string, nkeys.KeyPair) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pubKey, _ := kp.PublicKey()
	j, err := b.ID.MintAgent(pubKey, pc, groups, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.ClientURL(), append([]nats.Option{userAuth(j, kp), nats.ErrorHandler(v.handler),
		nats.CustomInboxPrefix(wire.AgentInboxPrefix(pc))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, pubKey, j, kp
}

func expectPubDenied(t *testing.T, nc *nats.Conn, v *violations, subj string) {
	t.Helper()
	if err := nc.Publish(subj, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	eventually.Within(t, 10*time.Second, eventually.Holds("violation for publish "+subj, func() bool { return v.has(`Publish to "` + subj + `"`) }))
}

func expectSubDenied(t *testing.T, nc *nats.Conn, v *violations, subj string) {
	t.Helper()
	if _, err := nc.SubscribeSync(subj); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	eventually.Within(t, 10*time.Second, eventually.Holds("violation for subscribe "+subj, func() bool { return v.has(`Subscription to "` + subj + `"`) }))
}

// TestAgentCredential_Permissions is the permission matrix of a per-agent
// credential (pc1 in group lab): everything it must be able to do, and
// everything it must never do.
func TestAgentCredential_Permissions(t *testing.T) {
	b := openTestBus(t)
	v := &violations{}
	nc, _ := agentConn(t, b, "pc1", []string{"lab"}, v)
	ctx := context.Background()

	for _, subj := range []string{
		wire.CommandAllSubject("evil"), wire.CommandPCSubject("pc2", "evil"), wire.KillSubject("e1"), wire.ControlAll,
		wire.ControlPCSubject("pc2"), wire.ResultSubject("pc2"), wire.OutputSubject("pc2"),
		"results.e1.pc1", "output.e1.pc1", "results.pc1.x", wire.CatchupSubject("pc2"), "catchup.pc1.x",
		"$JS.API.CONSUMER.CREATE." + wire.StreamExec + ".c.commands.pc.pc1.>", "$JS.API.CONSUMER.MSG.NEXT." + wire.StreamExec + ".c",
		wire.HeartbeatSubject("pc2"), "inventory.pc2", wire.RenewSubject("pc2"), wire.EnrollSubject,
		"$JS.API.STREAM.PURGE." + wire.StreamExec, "$JS.API.DIRECT.GET." + wire.StreamExec,
		"$JS.API.STREAM.INFO." + wire.StreamExec, "$JS.API.STREAM.INFO.KV_" + wire.KVFleet, "$JS.API.DIRECT.GET.KV_other.$KV.other.k",
	} {
		expectPubDenied(t, nc, v, subj)
	}
	for _, subj := range []string{
		"results.>", "output.>", "heartbeat.*", "_INBOX.>", ">", "commands.>", wire.CommandPCWildcard("pc2"),
		wire.CommandGroupWildcard("finance"), wire.ControlPCSubject("pc2"), wire.AgentInboxPrefix("pc2") + ".>", wire.EnrollInboxPrefix + ".>",
	} {
		expectSubDenied(t, nc, v, subj)
	}
	st, err := b.JS.Stream(ctx, wire.StreamExec)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(ctx); info.State.Msgs != 0 {
		t.Errorf("EXEC holds %d messages after denied publishes", info.State.Msgs)
	}

	// Allowed: its own, its group's and everyone's commands arrive; results are acknowledged.
	for _, subj := range []string{wire.CommandPCSubject("pc1", "j"), wire.CommandGroupSubject("lab", "j"), wire.CommandAllSubject("j")} {
		addr, _ := wire.ParseCommandSubject(subj)
		wild := wire.CommandAllWildcard
		switch addr.Scope {
		case wire.ScopePC:
			wild = wire.CommandPCWildcard(addr.Name)
		case wire.ScopeGroup:
			wild = wire.CommandGroupWildcard(addr.Name)
		}
		sub, err := nc.SubscribeSync(wild)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		if _, err := b.JS.Publish(ctx, subj, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Errorf("agent did not receive %s: %v", subj, err)
		}
	}
	for _, subj := range []string{wire.KillSubject("e1"), wire.ControlAll, wire.ControlPCSubject("pc1")} {
		sub, err := nc.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		_ = b.NC.Publish(subj, []byte("{}"))
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Errorf("agent did not receive %s: %v", subj, err)
		}
	}
	ajs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, subj := range []string{wire.ResultSubject("pc1"), wire.OutputSubject("pc1")} {
		if _, err := ajs.Publish(pctx, subj, []byte(`{}`)); err != nil {
			t.Errorf("agent publish %s: %v", subj, err)
		}
	}
	// Allowed: asking the server to catch it up.
	creq, err := b.NC.SubscribeSync(wire.CatchupWildcard)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.NC.Flush()
	if err := nc.PublishRequest(wire.CatchupSubject("pc1"), nc.NewRespInbox(), nil); err != nil {
		t.Fatal(err)
	}
	if m, err := creq.NextMsg(5 * time.Second); err != nil || m.Subject != wire.CatchupSubject("pc1") {
		t.Errorf("catch-up request did not arrive: %v", err)
	}
	// Allowed: reading its KV buckets by direct get (the value, and a
	// missing key answered as such).
	kv, err := b.JS.KeyValue(ctx, wire.KVFleet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"k": "v", "missing": ""} {
		m, err := nc.Request(wire.KVDirectGetSubject(wire.KVFleet, key), nil, 5*time.Second)
		if err != nil {
			t.Fatalf("direct get %s: %v", key, err)
		}
		if status := m.Header.Get("Status"); string(m.Data) != want || (want == "") != (status == "404") {
			t.Errorf("direct get %s = %q (status %q), want %q", key, m.Data, status, want)
		}
	}
	// Denied: any consumer, on its own commands (the server catches it
	// up) as on another PC's or group's, or on all of them.
	for _, f := range []string{wire.CommandPCWildcard("pc1"), wire.CommandAllWildcard, wire.CommandPCWildcard("pc2"), wire.CommandGroupWildcard("finance"), "commands.>"} {
		dctx, dcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := ajs.CreateConsumer(dctx, wire.StreamExec, jetstream.ConsumerConfig{FilterSubject: f, AckPolicy: jetstream.AckNonePolicy})
		dcancel()
		if err == nil {
			t.Errorf("consumer on %s was allowed", f)
		}
	}
}

// TestEnrollCredential_OnlyEnrolls: the shared enrollment credential can
// send an enrollment request and nothing else.
func TestEnrollCredential_OnlyEnrolls(t *testing.T) {
	b := openTestBus(t)
	v := &violations{}
	creds, err := b.ID.EnrollCreds(b.ID.EnrollUser, "default", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "enroll.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.ClientURL(), nats.UserCredentials(path), nats.ErrorHandler(v.handler), nats.CustomInboxPrefix(wire.EnrollInboxPrefix))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range []string{wire.CommandAllSubject("x"), wire.ResultSubject("pc1"), wire.HeartbeatSubject("pc1"), wire.RenewSubject("pc1"), "$JS.API.INFO"} {
		expectPubDenied(t, nc, v, subj)
	}
	for _, subj := range []string{"commands.>", "kill.*", "_INBOX.>", wire.AgentInboxPrefix("pc1") + ".>"} {
		expectSubDenied(t, nc, v, subj)
	}
	sub, err := b.NC.SubscribeSync(wire.EnrollSubject)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.NC.Flush()
	go func() {
		if m, err := sub.NextMsg(5 * time.Second); err == nil {
			_ = m.Respond([]byte(`{"status":"pending"}`))
		}
	}()
	if _, err := nc.Request(wire.EnrollSubject, []byte("{}"), 5*time.Second); err != nil {
		t.Errorf("enrollment request: %v", err)
	}
}

// TestRevocation_CutsOffAgent: pushing a revocation drops the agent's
// connection and its key cannot connect again.
func TestRevocation_CutsOffAgent(t *testing.T) {
	b := openTestBus(t)
	v := &violations{}
	closed := make(chan time.Time, 1)
	nc, pubKey, j, kp := agentConnKey(t, b, "pc1", nil, v, nats.MaxReconnects(0), nats.ClosedHandler(func(*nats.Conn) { closed <- time.Now() }))
	if !nc.IsConnected() {
		t.Fatal("agent not connected")
	}
	start := time.Now()
	if err := b.UpdateAccount(context.Background(), []Revocation{{PublicKey: pubKey, At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-closed:
		t.Logf("revocation → agent disconnected in %v", at.Sub(start))
	case <-time.After(10 * time.Second):
		t.Fatal("revoked agent still connected after 10s")
	}
	// Connecting again with the revoked credential is refused.
	if nc2, err := nats.Connect(b.ClientURL(), userAuth(j, kp), nats.NoReconnect()); err == nil {
		nc2.Close()
		t.Fatal("revoked credential connected again")
	}
}

func TestProvision_Idempotent(t *testing.T) {
	b := openTestBus(t)
	ctx := context.Background()
	if err := b.provision(ctx, StreamLimits{ExecMaxAge: 2 * time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour,
		ExecMaxBytes: 32 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20}); err != nil {
		t.Fatalf("second provision: %v", err)
	}
	st, err := b.JS.Stream(ctx, wire.StreamExec)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxAge != 2*time.Hour || cfg.MaxBytes != 32<<20 || cfg.MaxMsgsPerSubject != 1 || !cfg.AllowDirect {
		t.Errorf("EXEC config after update = age %v bytes %d per-subject %d direct %v", cfg.MaxAge, cfg.MaxBytes, cfg.MaxMsgsPerSubject, cfg.AllowDirect)
	}
	if err := b.Healthy(ctx); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}

// TestResults_StoredPerPC: results are stored under their PC, so the
// broker's per-subject index holds one entry per PC instead of one per
// result, both as agents publish them now and as protocol 1 agents did
// (results.<exec>.<pc>); a stream provisioned before that keeps its old
// messages.
func TestResults_StoredPerPC(t *testing.T) {
	b := openTestBus(t)
	ctx := context.Background()
	limits := StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour,
		ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20}
	st, err := b.JS.Stream(ctx, wire.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	old := st.CachedInfo().Config
	old.SubjectTransform = nil
	if _, err := b.JS.UpdateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := b.JS.Publish(ctx, "results.e0.pc1", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := b.provision(ctx, limits); err != nil {
		t.Fatal(err)
	}
	for _, exec := range []string{"e1", "e2", "e3"} {
		for _, pc := range []string{"pc1", "pc2"} {
			if _, err := b.JS.Publish(ctx, "results."+exec+"."+pc, []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.JS.Publish(ctx, wire.ResultSubject("pc1"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"results.e0.pc1": 1, "results.pc1": 4, "results.pc2": 3}
	if diff := cmp.Diff(want, info.State.Subjects); diff != "" {
		t.Errorf("RESULTS subjects (-want +got):\n%s", diff)
	}
}

// One PC's output is bounded in the OUTPUT stream: a chunk larger than
// wire.MaxOutputChunkBytes is refused, and a PC keeps at most
// wire.OutputChunksPerPC chunks, so it cannot push out the others'.
func TestOutput_BoundedPerPC(t *testing.T) {
	b := openTestBus(t)
	ctx := context.Background()
	if _, err := b.JS.Publish(ctx, wire.OutputSubject("pc1"), make([]byte, wire.MaxOutputChunkBytes+1)); err == nil {
		t.Error("an oversized chunk was stored")
	}
	if _, err := b.JS.Publish(ctx, wire.OutputSubject("pc2"), []byte("other")); err != nil {
		t.Fatal(err)
	}
	for range wire.OutputChunksPerPC + 10 {
		if _, err := b.JS.PublishAsync(wire.OutputSubject("pc1"), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	<-b.JS.PublishAsyncComplete()
	st, err := b.JS.Stream(ctx, wire.StreamOutput)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("output.>"))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Subjects; got[wire.OutputSubject("pc1")] != wire.OutputChunksPerPC || got[wire.OutputSubject("pc2")] != 1 {
		t.Errorf("chunks per PC = %v, want %d for pc1 and 1 for pc2", got, wire.OutputChunksPerPC)
	}
}

// A broker whose port is taken fails at once with the reason instead of
// waiting to become ready.
func TestEmbedded_PortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Open(context.Background(), Options{DataDir: t.TempDir(), Listen: ln.Addr().String(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "nats listen") || !strings.Contains(err.Error(), "--nats-listen") {
		t.Errorf("Open on a taken port = %v, want an error naming the listener and the flag", err)
	}
}
