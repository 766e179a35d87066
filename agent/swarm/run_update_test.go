package swarm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/enroll"
	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/sign"
)

// TestRunUpdates runs enrolled simulated agents against the server's
// broker (app/bus) and sends them a signed update command: each asks for
// a permit, reads the release from the Object Store, restarts as the new
// version (its heartbeats say so) and reports "updated from v1 to v2".
func TestRunUpdates(t *testing.T) {
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Options{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ExecMaxBytes: 16 << 20, ResultsMaxBytes: 16 << 20, OutputMaxBytes: 16 << 20, AuditMaxBytes: 16 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	root := t.TempDir()
	cmdKeys, err := sign.Load(filepath.Join(root, "secrets", "command-keys"))
	if err != nil {
		t.Fatal(err)
	}
	relKeys, err := sign.LoadRelease(filepath.Join(root, "secrets", "release-keys"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(wire.EmergencyStop{})
	if _, err := b.JS.PublishMsg(ctx, cmdKeys.Msg(wire.KVSubject(wire.KVFleet, wire.KeyEmergencyStop), body, time.Now())); err != nil {
		t.Fatal(err)
	}
	obs, err := b.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.ReleaseBucket})
	if err != nil {
		t.Fatal(err)
	}
	// The simulated agents' identities, as enrollment leaves them.
	const n = 3
	data := filepath.Join(root, "swarm")
	pcs := make([]string, n)
	for i := range pcs {
		pcs[i] = fmt.Sprintf("sw-%05d", i+1)
		kp, _ := nkeys.CreateUser()
		pub, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		dir := filepath.Join(data, pcs[i])
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "identity.nk"), append(seed, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
		expiry := time.Now().Add(24 * time.Hour)
		j, err := b.ID.MintAgent(pub, pcs[i], nil, expiry)
		if err != nil {
			t.Fatal(err)
		}
		if err := enroll.SaveCredential(dir, enroll.Credential{JWT: j, Expiry: expiry, CommandKeys: cmdKeys.Trusted(), ReleaseKeys: relKeys.Trusted()}); err != nil {
			t.Fatal(err)
		}
	}
	bundleUser, _ := nkeys.CreateUser()
	creds, err := b.ID.EnrollCreds(bundleUser, "default", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(root, "agent-credentials")
	creds = append(creds, "\n-----BEGIN KANADE ENROLLMENT TOKEN-----\ntoken\n------END KANADE ENROLLMENT TOKEN------\n"...)
	if err := os.WriteFile(bundle, creds, 0o600); err != nil {
		t.Fatal(err)
	}

	// The server side: catch-up answers (no commands), permits, and what
	// the agents report.
	var mu sync.Mutex
	versions := map[string]string{} // pc → version of its latest heartbeat
	results := map[string]wire.Result{}
	permits := 0
	sub := func(subject string, fn nats.MsgHandler) {
		if _, err := b.NC.Subscribe(subject, fn); err != nil {
			t.Fatal(err)
		}
	}
	sub(wire.CatchupWildcard, func(m *nats.Msg) {
		end := nats.NewMsg(m.Reply)
		end.Header.Set(wire.HeaderCatchupEnd, "0")
		_ = b.NC.PublishMsg(end)
	})
	sub(wire.HeartbeatSubject("*"), func(m *nats.Msg) {
		var hb wire.Heartbeat
		if json.Unmarshal(m.Data, &hb) == nil && !hb.Stopping {
			mu.Lock()
			versions[hb.PCID] = hb.AgentVersion
			mu.Unlock()
		}
	})
	sub(wire.ResultSubject("*"), func(m *nats.Msg) {
		if r, err := wire.DecodeResult(m.Data); err == nil && r.State.Final() {
			mu.Lock()
			results[strings.TrimPrefix(m.Subject, strings.TrimSuffix(wire.ResultSubject("*"), "*"))] = r
			mu.Unlock()
		}
	})
	sub(wire.UpdatePermitSubject("*"), func(m *nats.Msg) {
		var req wire.PermitRequest
		if json.Unmarshal(m.Data, &req) != nil || req.Done {
			return
		}
		mu.Lock()
		permits++
		mu.Unlock()
		b, _ := json.Marshal(wire.PermitReply{Granted: true})
		_ = m.Respond(b)
	})
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}

	var stats Stats
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(rctx, Config{Server: b.ClientURL(), Credentials: bundle, Count: n, Seed: 1, Prefix: "sw", DataDir: data,
			HeartbeatInterval: 200 * time.Millisecond, AgentVersion: "v1"}, &stats, nil)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	eventually.Within(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, pc := range pcs {
			if versions[pc] != "v1" {
				return fmt.Errorf("%s: heartbeat version %q, want v1", pc, versions[pc])
			}
		}
		return nil
	})

	// A release of v2 for every platform the agents run, and its command.
	bin := make([]byte, 300<<10)
	_, _ = rand.Read(bin)
	sum := sha256.Sum256(bin)
	var releases []wire.SignedRelease
	for _, tpl := range Templates {
		rel := wire.Release{Version: "v2", OS: tpl.OS, Arch: tpl.Arch, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(bin)),
			Object: wire.ReleaseObject("v2", tpl.OS, tpl.Arch)}
		if _, err := obs.GetInfo(ctx, rel.Object); err == nil {
			continue
		}
		if _, err := obs.PutBytes(ctx, rel.Object, bin); err != nil {
			t.Fatal(err)
		}
		sr, err := relKeys.SignRelease(rel, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, sr)
	}
	for i, pc := range pcs {
		tpl := Config{Seed: 1, Prefix: "sw"}.newAgent(i+1, &Stats{}).tpl
		var sr wire.SignedRelease
		for _, r := range releases {
			if r.OS == tpl.OS && r.Arch == tpl.Arch {
				sr = r
			}
		}
		now := time.Now().UTC()
		uc := wire.UpdateCommand{Command: wire.Command{Protocol: wire.ProtocolVersion, ExecID: "exec-" + pc, JobID: wire.UpdateJobID, Kind: wire.KindUpdate,
			Timeout: wire.Duration(time.Minute), IssuedAt: now, DeadlineAt: now.Add(10 * time.Minute)}, Update: wire.Update{Release: sr}}
		if err := uc.Validate(); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(uc)
		if _, err := b.JS.PublishMsg(ctx, cmdKeys.Msg(wire.CommandPCSubject(pc, wire.UpdateJobID), body, now)); err != nil {
			t.Fatal(err)
		}
	}
	eventually.Within(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, pc := range pcs {
			r := results[pc]
			if r.State != wire.StateSucceeded || r.Stdout != "updated from v1 to v2" || r.ExecID != "exec-"+pc {
				return fmt.Errorf("%s: result %q %q %q, want the update's success", pc, r.State, r.Stdout, r.Reason)
			}
			if versions[pc] != "v2" {
				return fmt.Errorf("%s: heartbeat version %q, want v2", pc, versions[pc])
			}
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if permits != n || stats.Updated.Load() != n || stats.Downloaded.Load() != n || stats.DownloadPeak.Load() < 1 {
		t.Errorf("%d permits, %d updated, %d downloaded (peak %d); want %d each", permits, stats.Updated.Load(), stats.Downloaded.Load(), stats.DownloadPeak.Load(), n)
	}
}
