package update

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	base := Marker{ExecID: "e1", From: "v1", To: "v2", Executable: "/x", Window: wire.Duration(2 * time.Minute), FirstStart: t0, Starts: 1}
	with := func(f func(*Marker)) Marker { m := base; f(&m); return m }
	tests := []struct {
		name    string
		m       Marker
		running string
		now     time.Time
		want    step
		reason  string
	}{
		{"new version, first start", base, "v2", t0, stepWatch, ""},
		{"new version, third start within the window", with(func(m *Marker) { m.Starts = 3 }), "v2", t0.Add(time.Minute), stepWatch, ""},
		{"new version, fourth start", with(func(m *Marker) { m.Starts = 4 }), "v2", t0.Add(time.Minute), stepRollBack,
			"rolled back: version v2 stopped 3 times before it reached the broker"},
		{"new version after its window", base, "v2", t0.Add(2*time.Minute + time.Second), stepRollBack, "rolled back: no connection within 2m"},
		{"new version, a rollback was under way", with(func(m *Marker) { m.Outcome = "rolled back: x" }), "v2", t0, stepRollBack, "rolled back: x"},
		{"previous version back", with(func(m *Marker) { m.Outcome = "rolled back: no connection within 2m" }), "v1", t0.Add(time.Hour), stepReport,
			"rolled back: no connection within 2m"},
		{"previous version, no swap", with(func(m *Marker) { m.FirstStart, m.Starts = time.Time{}, 0 }), "v1", t0, stepReport,
			"swap failed: the agent stopped before version v2 was in place"},
		{"another version", base, "v9", t0, stepReport, "swap failed: version v9 runs, neither v1 nor v2 (replaced by hand?)"},
		{"previous version without an outcome", base, "v1", t0, stepReport, "rolled back: version v1 runs again, not v2 (put back by hand?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := decide(tt.m, tt.running, tt.now)
			if got != tt.want || reason != tt.reason {
				t.Errorf("decide() = %d, %q; want %d, %q", got, reason, tt.want, tt.reason)
			}
			if k := wire.UpdateReasonKind(reason); reason != "" && k == "" {
				t.Errorf("reason %q is none of wire.UpdateReasons", reason)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{2 * time.Minute: "2m", 3 * time.Second: "3s", 90 * time.Second: "90s", 1500 * time.Millisecond: "1.5s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestBegin_Marker: each start of the new version is counted in the
// marker; an unreadable marker is set aside and changes nothing.
func TestBegin_Marker(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "update")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m := Marker{ExecID: "e1", From: "v1", To: "v2", Executable: filepath.Join(data, "agent"), Previous: filepath.Join(data, ".agent.previous"),
		Window: wire.Duration(time.Hour), SwappedAt: time.Now()}
	if err := writeMarker(dir, m); err != nil {
		t.Fatal(err)
	}
	for start := 1; start <= 2; start++ {
		u, err := Begin(Config{DataDir: data, Version: "v2", Logger: quiet()})
		if err != nil {
			t.Fatalf("start %d: Begin() = %v", start, err)
		}
		u.watchdog.Stop()
		got, ok, err := readMarker(dir)
		if !ok || err != nil || got.Starts != start || got.FirstStart.IsZero() {
			t.Fatalf("start %d: marker %+v, %v, %v", start, got, ok, err)
		}
	}
	if err := os.WriteFile(markerPath(dir), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := Begin(Config{DataDir: data, Version: "v2", Logger: quiet()})
	if err != nil || u.pending != nil {
		t.Fatalf("Begin() with an unreadable marker = %v (pending %v)", err, u.pending)
	}
	if _, err := os.Stat(markerPath(dir) + ".unreadable"); err != nil {
		t.Errorf("the unreadable marker was not set aside: %v", err)
	}
}

// TestBegin_RollsBack: the fourth start of a new version that never
// reached the broker puts the previous binary back and asks for a restart
// into it; the previous version then reports why.
func TestBegin_RollsBack(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "update")
	exe := filepath.Join(data, "bin", "kanade-agent")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	old, neu := []byte("old binary v1"), []byte("new binary v2")
	writeFile(t, exe, old)
	staged := filepath.Join(t.TempDir(), "v2")
	writeFile(t, staged, neu)
	u, err := Begin(Config{DataDir: data, Executable: exe, Version: "v1", Args: []string{"--pc-id", "pc1"}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(neu)
	rel := wire.Release{Version: "v2", SHA256: hex.EncodeToString(sum[:])}
	if err := u.swapIn(Request{ExecID: "e1", Update: wire.Update{RollbackWindow: wire.Duration(time.Hour)}}, rel, staged); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, exe); !bytes.Equal(got, neu) {
		t.Fatalf("after the swap the binary is %q", got)
	}
	if got := readFile(t, previousPath(exe)); !bytes.Equal(got, old) {
		t.Fatalf("the previous binary kept is %q", got)
	}
	for start := 1; start <= MaxStarts; start++ {
		u, err := Begin(Config{DataDir: data, Executable: exe, Version: "v2", Logger: quiet()})
		if err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
		u.watchdog.Stop()
	}
	_, err = Begin(Config{DataDir: data, Executable: exe, Version: "v2", Args: []string{"--pc-id", "pc1"}, Logger: quiet()})
	r, ok := errors.AsType[*Restart](err)
	if !ok || r.Version != "v1" || r.Executable != exe || strings.Join(r.Args, " ") != "--pc-id pc1" ||
		r.Reason != "rolled back: version v2 stopped 3 times before it reached the broker" {
		t.Fatalf("the fourth start: Begin() = %v", err)
	}
	if got := readFile(t, exe); !bytes.Equal(got, old) {
		t.Fatalf("after the rollback the binary is %q", got)
	}
	u, err = Begin(Config{DataDir: data, Executable: exe, Version: "v1", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	res, ok := u.Connected(context.Background(), nil)
	if !ok || res.ExecID != "e1" || res.State != wire.StateFailed || res.Reason != r.Reason {
		t.Fatalf("Connected() = %+v, %v", res, ok)
	}
	if _, again := u.Connected(context.Background(), nil); again {
		t.Error("the outcome was handed over twice")
	}
	u.Reported("e1")
	for _, p := range []string{markerPath(dir), previousPath(exe), failedPath(exe)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left (%v)", p, err)
		}
	}
}

// TestSwap: the new binary takes the old one's place and the old one is
// kept; a checksum that does not match changes nothing.
func TestSwap(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "kanade-agent"+exeSuffix)
	writeFile(t, exe, []byte("one"))
	src := filepath.Join(t.TempDir(), "two")
	writeFile(t, src, []byte("two"))
	bad := sha256.Sum256([]byte("three"))
	if err := swap(exe, src, previousPath(exe), bad[:]); err == nil {
		t.Fatal("swap() with a wrong checksum succeeded")
	}
	if got := readFile(t, exe); string(got) != "one" {
		t.Fatalf("a refused swap changed the binary to %q", got)
	}
	if _, err := os.Stat(previousPath(exe)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused swap left %s", previousPath(exe))
	}
	good := sha256.Sum256([]byte("two"))
	if err := swap(exe, src, previousPath(exe), good[:]); err != nil {
		t.Fatal(err)
	}
	if got, prev := readFile(t, exe), readFile(t, previousPath(exe)); string(got) != "two" || string(prev) != "one" {
		t.Errorf("after the swap: binary %q, previous %q", got, prev)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("the directory holds %d files, want the binary and the previous one", len(ents))
	}
}

// TestDownload reads releases put with nats.go's Object Store through
// direct gets only, and refuses what does not match the record.
func TestDownload(t *testing.T) {
	nc, js := runJetStream(t)
	obs, err := js.CreateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: wire.ReleaseBucket})
	if err != nil {
		t.Fatal(err)
	}
	bin := make([]byte, 700<<10+123) // several chunks and a short last one
	if _, err := rand.Read(bin); err != nil {
		t.Fatal(err)
	}
	put := func(name string, b []byte) {
		t.Helper()
		if _, err := obs.PutBytes(context.Background(), name, b); err != nil {
			t.Fatal(err)
		}
	}
	record := func(version string, b []byte) wire.Release {
		sum := sha256.Sum256(b)
		return wire.Release{Version: version, OS: "linux", Arch: "amd64", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)),
			Object: wire.ReleaseObject(version, "linux", "amd64")}
	}
	good := record("v2", bin)
	put(good.Object, bin)
	tampered := record("v3", bin)
	put(tampered.Object, append([]byte{bin[0] ^ 1}, bin[1:]...))
	longer := record("v4", bin)
	put(longer.Object, append(bin, 'x'))
	deleted := record("v5", bin)
	put(deleted.Object, bin)
	if err := obs.Delete(context.Background(), deleted.Object); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rel  wire.Release
		kind string
		err  string
	}{
		{"good", good, "", ""},
		{"tampered bytes", tampered, wire.UpdateHashMismatch, "SHA-256"},
		{"other size", longer, wire.UpdateHashMismatch, "bytes, the release"},
		{"deleted", deleted, wire.UpdateDownloadFailed, "was deleted"},
		{"missing", record("v6", bin), wire.UpdateDownloadFailed, "is not in the agent_releases bucket"},
	}
	u := &Updater{dir: filepath.Join(t.TempDir(), "update"), log: quiet()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, kind, err := u.download(context.Background(), nc, tt.rel)
			if kind != tt.kind || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("download() = %q, %v; want kind %q and an error with %q", kind, err, tt.kind, tt.err)
			}
			if err == nil && !bytes.Equal(readFile(t, path), bin) {
				t.Error("the staged binary differs from the object")
			}
			if err != nil {
				ents, _ := os.ReadDir(u.dir)
				if len(ents) > 0 {
					t.Errorf("a refused download left %s", ents[0].Name())
				}
			}
		})
	}
}

// TestPermit: "not now" answers are waited out, a grant ends the wait, a
// refusal is final.
func TestPermit(t *testing.T) {
	nc, _ := runJetStream(t)
	var asked []wire.PermitRequest
	answers := []wire.PermitReply{{RetryAfter: wire.Duration(20 * time.Millisecond), Reason: "200 downloads under way"},
		{RetryAfter: wire.Duration(20 * time.Millisecond)}, {Granted: true}, {Reason: "the rollout ended"}}
	sub, err := nc.Subscribe(wire.UpdatePermitSubject("pc1"), func(m *nats.Msg) {
		var r wire.PermitRequest
		_ = json.Unmarshal(m.Data, &r)
		asked = append(asked, r)
		b, _ := json.Marshal(answers[0])
		answers = answers[1:]
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	u := &Updater{cfg: Config{PCID: "pc1"}, log: quiet()}
	req := wire.PermitRequest{ExecID: "e1", PCID: "pc1", Version: "v2"}
	if err := u.permit(context.Background(), nc, req); err != nil {
		t.Fatalf("permit() = %v", err)
	}
	if len(asked) != 3 || asked[2] != req {
		t.Errorf("asked %+v, want the request three times", asked)
	}
	var ref refusedError
	if err := u.permit(context.Background(), nc, req); !errors.As(err, &ref) || ref.reason != "the rollout ended" {
		t.Errorf("permit() after a refusal = %v", err)
	}
}

func runJetStream(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the broker did not start")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
