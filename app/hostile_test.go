//go:build !windows

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
)

// The hostile-endpoint suite: one compromised PC holds the real
// enrollment file and a real enrolled agent's own credential, and tries
// every subject of the wire contract, of the permission templates, of
// JetStream's and the system account's APIs and of every inbox — as a
// publish subject, as a subscription and as the reply subject of every
// request an endpoint may make. Afterwards the streams, the KV values
// (emergency stop, pins, revoked flags), the pending commands, the
// audit, the revocations and the other agent's results are as they were,
// and the fleet still works. docs/SECURITY.md has the matrix.

// Names the probes instantiate subject patterns with.
const (
	attackerPC = "mallory"
	victimPC   = "victim"
	offlinePC  = "ghost"
	probeGroup = "lab"
	pinnedJob  = "labjob"
	pendingJob = "ghostjob"
)

// probeSubjects lists every subject the attacker tries: the wire
// contract's and the permission templates' patterns with their
// wildcards and placeholders filled in (for itself and for others), and
// the broker's own APIs.
func probeSubjects(agentsAccount, kanadeAccount string) []string {
	var patterns []string
	for _, c := range wire.Contract() {
		patterns = append(patterns, c.Pattern)
	}
	tmpl := bus.AgentTemplate()
	patterns = append(patterns, tmpl.Pub.Allow...)
	patterns = append(patterns, tmpl.Sub.Allow...)
	enrollPerms := bus.EnrollPermissions()
	patterns = append(patterns, enrollPerms.Pub.Allow...)
	patterns = append(patterns, enrollPerms.Sub.Allow...)
	set := map[string]bool{}
	for _, p := range patterns {
		for _, s := range instantiate(p) {
			set[s] = true
		}
	}
	streams := []string{wire.StreamExec, wire.StreamResults, wire.StreamOutput, wire.StreamInventory, wire.StreamAudit, wire.StreamHealth,
		"KV_" + wire.KVFleet, "KV_" + wire.KVScriptCurrent, "KV_" + wire.KVScriptStatus}
	for _, st := range streams {
		for _, api := range []string{"STREAM.PURGE", "STREAM.DELETE", "STREAM.UPDATE", "STREAM.INFO", "STREAM.MSG.DELETE",
			"STREAM.MSG.GET", "DIRECT.GET", "CONSUMER.CREATE", "STREAM.SNAPSHOT"} {
			set["$JS.API."+api+"."+st] = true
		}
	}
	for _, s := range []string{
		"$JS.API.INFO", "$JS.API.STREAM.CREATE.EVIL", "$JS.API.STREAM.LIST", "$JS.API.ACCOUNT.PURGE." + kanadeAccount,
		wire.KVSubject(wire.KVFleet, wire.KeyEmergencyStop), wire.KVSubject(wire.KVScriptStatus, pinnedJob),
		wire.KVSubject(wire.KVScriptCurrent, pinnedJob), wire.KVSubject(wire.KVScriptCurrent, pendingJob),
		"$SYS.REQ.CLAIMS.UPDATE", "$SYS.REQ.CLAIMS.DELETE", "$SYS.REQ.SERVER.PING",
		"$SYS.REQ.ACCOUNT." + agentsAccount + ".CLAIMS.UPDATE", "$SYS.REQ.ACCOUNT." + kanadeAccount + ".CLAIMS.UPDATE",
		"_INBOX.x", wire.AgentInboxPrefix(victimPC) + ".x", wire.EnrollInboxPrefix + ".x", bus.ResponsePrefix + "x.y",
		wire.CommandPCSubject(offlinePC, pendingJob), wire.AuditSubject("login"),
	} {
		set[s] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// instantiate fills a pattern's placeholders and wildcards with the
// attacker's, the victim's and others' names.
func instantiate(p string) []string {
	subs := []string{p}
	fill := func(from string, to ...string) {
		var next []string
		for _, s := range subs {
			if !strings.Contains(s, from) {
				next = append(next, s)
				continue
			}
			for _, t := range to {
				next = append(next, strings.Replace(s, from, t, 1))
			}
		}
		subs = next
	}
	fill("{{name()}}", attackerPC, victimPC)
	fill("{{tag(group)}}", probeGroup, "finance")
	for strings.Contains(strings.Join(subs, " "), "*") {
		fill("*", attackerPC, victimPC)
	}
	fill(">", "pc."+victimPC+".x", "all.x", "x")
	return subs
}

// attacker is one connection of the compromised PC, counting the
// permission violations the broker reports.
type attacker struct {
	name string
	nc   *nats.Conn
	mu   sync.Mutex
	errs []string
}

func (a *attacker) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	a.mu.Lock()
	a.errs = append(a.errs, err.Error())
	a.mu.Unlock()
}

func (a *attacker) violations(prefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.errs {
		if strings.Contains(e, prefix) {
			n++
		}
	}
	return n
}

// fleetState is everything the attacker must not change.
type fleetState struct {
	Streams map[string][3]uint64 // messages, first and last sequence
	// Newest maps subjects to the sequence of their newest message: in
	// the streams the attacker may add to under its own subjects (its
	// results, output, inventory), other PCs' messages must stay.
	Newest     map[string]uint64
	KV         map[string]string // bucket/key → revision and value
	AuditTotal int
	Accounts   map[string]string // account → its JWT as the broker has it
	// Executions maps the seeded executions to their status and targets.
	Executions map[string]string
}

func (s *testServer) fleetState(t *testing.T, js jetstream.JetStream, sys *nats.Conn, id *bus.Identity, execs ...string) fleetState {
	t.Helper()
	ctx := context.Background()
	fs := fleetState{Streams: map[string][3]uint64{}, Newest: map[string]uint64{}, KV: map[string]string{}, Accounts: map[string]string{},
		Executions: map[string]string{}}
	for _, ex := range execs {
		var e execution
		if code := s.get(t, "/api/executions/"+ex, &e); code != http.StatusOK {
			t.Fatalf("execution %s: %d", ex, code)
		}
		var targets []string
		for _, tr := range e.Targets {
			targets = append(targets, tr.PCID+" "+tr.State)
		}
		fs.Executions[ex] = e.Status + ": " + strings.Join(targets, ", ")
	}
	for _, name := range []string{wire.StreamExec, wire.StreamAudit, "KV_" + wire.KVFleet, "KV_" + wire.KVScriptCurrent, "KV_" + wire.KVScriptStatus} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		i := st.CachedInfo().State
		fs.Streams[name] = [3]uint64{i.Msgs, i.FirstSeq, i.LastSeq}
	}
	exec, _ := js.Stream(ctx, wire.StreamExec)
	results, _ := js.Stream(ctx, wire.StreamResults)
	for _, subj := range []struct {
		st   jetstream.Stream
		subj string
	}{{exec, wire.CommandPCSubject(offlinePC, pendingJob)}, {exec, wire.CommandGroupSubject(probeGroup, pinnedJob)}, {results, wire.ResultSubject(victimPC)}} {
		m, err := subj.st.GetLastMsgForSubject(ctx, subj.subj)
		if err != nil {
			t.Fatalf("newest message on %s: %v", subj.subj, err)
		}
		fs.Newest[subj.subj] = m.Sequence
	}
	for _, b := range []string{wire.KVFleet, wire.KVScriptCurrent, wire.KVScriptStatus} {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys.Keys() {
			e, err := kv.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			fs.KV[b+"/"+k] = fmt.Sprintf("%d %s", e.Revision(), e.Value())
		}
	}
	// The audit log, once it has caught up with the stream.
	checkFor(t, 30*time.Second, func() error {
		var audit struct {
			Total int `json:"total"`
		}
		if code := s.get(t, "/api/audit?limit=1", &audit); code != http.StatusOK {
			return fmt.Errorf("audit: %d", code)
		}
		if uint64(audit.Total) != fs.Streams[wire.StreamAudit][0] {
			return fmt.Errorf("audit log %d events, stream %d", audit.Total, fs.Streams[wire.StreamAudit][0])
		}
		fs.AuditTotal = audit.Total
		return nil
	})
	for _, acc := range []string{id.AccountPublicKey(), id.AgentAccountPublicKey()} {
		m, err := sys.Request("$SYS.REQ.ACCOUNT."+acc+".CLAIMS.LOOKUP", nil, 5*time.Second)
		if err != nil {
			t.Fatalf("account %s: %v", acc, err)
		}
		fs.Accounts[acc] = string(m.Data)
	}
	return fs
}

func TestHostileEndpoint(t *testing.T) {
	skipIfShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, victimPC, []string{probeGroup}, "")
	s.waitOnline(t, victimPC)

	// The server's view, for the checks: its own user and the system user.
	id, err := bus.LoadIdentity(filepath.Join(s.data, bus.SecretsDir))
	if err != nil {
		t.Fatal(err)
	}
	serverJWT, _ := id.ServerUserJWT()
	snc, err := nats.Connect(s.NATSURL, nats.UserJWT(func() (string, error) { return serverJWT, nil }, id.ServerUser.Sign))
	if err != nil {
		t.Fatal(err)
	}
	defer snc.Close()
	js, _ := jetstream.New(snc)
	sysJWT, _ := id.SysUserJWT()
	sys, err := nats.Connect(s.NATSURL, nats.UserJWT(func() (string, error) { return sysJWT, nil }, id.SysUser.Sign))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()

	// State worth attacking: a finished run, a pinned job that ran, a
	// revoked job, a command waiting for an offline PC, and the
	// emergency stop on.
	done := s.waitExec(t, s.run(t, map[string]any{"target": map[string]any{"pcs": []string{victimPC}}, "shell": "sh", "script": "echo ok", "timeout": "30s"}).ExecID, completed)
	if done.Targets[0].State != "succeeded" {
		t.Fatalf("seed run: %+v", done.Targets[0])
	}
	var dep map[string]any
	s.deploy(t, manifest(pinnedJob, "1", "groups: ["+probeGroup+"]", "echo pinned"), &dep)
	s.waitExec(t, dep["exec_id"].(string), targetIn(victimPC, "succeeded"))
	// The offline PC enrolled once and has not connected since (a PC no
	// agent has ever had is refused).
	if _, err := enroll.Setup(ctx, s.NATSURL, s.Creds, t.TempDir(), enroll.Request{PCID: offlinePC, Hostname: offlinePC}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if code := s.deploy(t, manifest(pendingJob, "1", "pcs: ["+offlinePC+"]", "echo pending"), &dep); code != http.StatusAccepted {
		t.Fatalf("deploy for the offline PC: %d %v", code, dep)
	}
	if code := s.post(t, "/api/jobs/"+pinnedJob+"/revoke", nil, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	if code := s.post(t, "/api/emergency-stop", map[string]string{"reason": "hostile endpoint test"}, nil); code != http.StatusOK {
		t.Fatalf("emergency stop: %d", code)
	}

	// The attacker: the enrollment file every PC holds, and an agent's
	// own credential enrolled with it.
	mdir := t.TempDir()
	mid, err := enroll.Setup(ctx, s.NATSURL, s.Creds, mdir, enroll.Request{PCID: attackerPC, Hostname: attackerPC, Groups: []string{probeGroup}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	agent := &attacker{name: "agent credential"}
	agent.nc, err = nats.Connect(s.NATSURL, mid.Option, nats.CustomInboxPrefix(wire.AgentInboxPrefix(attackerPC)), nats.ErrorHandler(agent.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.nc.Close()
	raw, err := os.ReadFile(s.Creds)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := enroll.ParseEnrollmentFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	bkp, err := nkeys.FromSeed(bundle.Seed)
	if err != nil {
		t.Fatal(err)
	}
	enroller := &attacker{name: "enrollment file"}
	enroller.nc, err = nats.Connect(s.NATSURL, nats.UserJWT(func() (string, error) { return bundle.JWT, nil }, bkp.Sign),
		nats.CustomInboxPrefix(wire.EnrollInboxPrefix), nats.ErrorHandler(enroller.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer enroller.nc.Close()

	before := s.fleetState(t, js, sys, id, done.ExecID)
	subjects := probeSubjects(id.AgentAccountPublicKey(), id.AccountPublicKey())

	// Requests each credential may make, with a body the server answers.
	akp, _ := nkeys.CreateUser()
	apub, _ := akp.PublicKey()
	enrollReq := wire.EnrollRequest{Protocol: wire.ProtocolVersion, PCID: "squatter", PublicKey: apub, Token: bundle.Token, At: time.Now().UTC()}
	enrollReq.Signature, _ = akp.Sign(enrollReq.SigningBytes())
	enrollBody, _ := json.Marshal(enrollReq)
	// A result that adds the attacker to the victim's finished execution.
	resultBody, _ := json.Marshal(wire.Result{ExecID: done.ExecID, PCID: attackerPC, State: wire.StateRunning})
	type request struct {
		subject string
		body    []byte
	}
	requests := map[*attacker][]request{
		agent: {
			{wire.CatchupSubject(attackerPC), nil}, {wire.RenewSubject(attackerPC), []byte("{}")},
			{wire.KVDirectGetSubject(wire.KVFleet, wire.KeyEmergencyStop), nil}, {wire.KVDirectGetSubject(wire.KVScriptStatus, pinnedJob), nil},
			{wire.KVDirectGetSubject(wire.KVScriptCurrent, pinnedJob), nil}, {wire.ResultSubject(attackerPC), resultBody},
			{wire.OutputSubject(attackerPC), []byte("{}")}, {wire.InventorySubject(attackerPC), []byte("{}")},
			{wire.HeartbeatSubject(attackerPC), []byte("{}")},
		},
		enroller: {{wire.EnrollSubject, enrollBody}},
	}
	counts := map[string]int{}
	for _, a := range []*attacker{agent, enroller} {
		for _, subj := range subjects {
			for _, body := range [][]byte{[]byte("not json: purge everything"), []byte("{}")} {
				if err := a.nc.Publish(subj, body); err != nil {
					t.Fatal(err)
				}
				counts[a.name+" publish"]++
			}
			if _, err := a.nc.Subscribe(subj, func(*nats.Msg) {}); err == nil {
				counts[a.name+" subscribe"]++
			}
		}
		for _, req := range requests[a] {
			for _, reply := range subjects {
				if err := a.nc.PublishRequest(req.subject, reply, req.body); err != nil {
					t.Fatal(err)
				}
				counts[a.name+" reply"]++
			}
		}
		if err := a.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// A barrier: each path answers one more request in order, after the
	// probes, and the victim reports a heartbeat.
	// (Not catch-up: the flood used up the attacker's share of it.)
	for _, req := range requests[agent][1:3] {
		if _, err := agent.nc.Request(req.subject, req.body, 10*time.Second); err != nil {
			t.Fatalf("barrier %s: %v", req.subject, err)
		}
	}
	if _, err := enroller.nc.Request(wire.EnrollSubject, enrollBody, 10*time.Second); err != nil {
		t.Fatalf("barrier enrollment: %v", err)
	}
	s.waitOnline(t, victimPC)

	after := s.fleetState(t, js, sys, id, done.ExecID)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the attacker changed the fleet's state (-before +after):\n%s", diff)
	}
	for _, a := range []*attacker{agent, enroller} {
		t.Logf("%s: %d publishes (%d refused), %d subscriptions (%d refused), %d requests with a chosen reply subject",
			a.name, counts[a.name+" publish"], a.violations("Permissions Violation for Publish"),
			counts[a.name+" subscribe"], a.violations("Permissions Violation for Subscription"), counts[a.name+" reply"])
		// Only the credential's own subjects were accepted.
		if n := a.violations("Permissions Violation for Subscription"); n == 0 {
			t.Errorf("%s: no subscription was refused", a.name)
		}
	}
	if !agent.nc.IsConnected() {
		t.Error("the attacker's connection was dropped: the broker treats violations as errors, not disconnects")
	}

	// The fleet still works: the stop lifts, the victim runs.
	req, _ := http.NewRequest(http.MethodDelete, s.URL+"/api/emergency-stop", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("lift the emergency stop: %d", resp.StatusCode)
	}
	e := s.waitExec(t, s.run(t, map[string]any{"target": map[string]any{"pcs": []string{victimPC}}, "shell": "sh", "script": "echo still", "timeout": "30s"}).ExecID, completed)
	if e.Targets[0].State != "succeeded" {
		t.Errorf("the victim after the attack: %+v", e.Targets[0])
	}
}
