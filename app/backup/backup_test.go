package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/store"
)

var limits = bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
	ExecMaxBytes: 8 << 20, ResultsMaxBytes: 8 << 20, OutputMaxBytes: 8 << 20, AuditMaxBytes: 8 << 20, InventoryMaxBytes: 8 << 20,
	ScriptCurrentMaxBytes: 1 << 20, ScriptStatusMaxBytes: 1 << 20, FleetMaxBytes: 1 << 20}

func openBus(t testing.TB, ctx context.Context, dataDir, secretsDir string) (*bus.Bus, error) {
	return bus.Open(ctx, bus.Options{DataDir: dataDir, SecretsDir: secretsDir, Listen: "127.0.0.1:0", MaxPayload: 8 << 20,
		Streams: limits, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func brokerFor(t testing.TB) func(ctx context.Context, dataDir, secretsDir string) (jetstream.JetStream, func(), error) {
	return func(ctx context.Context, dataDir, secretsDir string) (jetstream.JetStream, func(), error) {
		b, err := openBus(t, ctx, dataDir, secretsDir)
		if err != nil {
			return nil, nil, err
		}
		return b.JS, b.Close, nil
	}
}

// server is a data directory with a SQLite database, keys and a broker
// with state in every stream a backup keeps, as a running server has.
type server struct {
	data string
	st   *store.Store
	b    *bus.Bus
}

func newServer(t *testing.T) *server {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	st, err := store.Open(ctx, store.DriverSQLite, filepath.Join(data, "kanade.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "tok1", Name: "lab", CreatedAt: time.Now(), CreatedBy: "test"}, strings.Repeat("a", 64)); err != nil {
		t.Fatal(err)
	}
	b, err := openBus(t, ctx, data, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for bucket, kv := range map[string]map[string]string{
		wire.KVScriptCurrent: {"job1": "v1", "job2": "v2"},
		wire.KVScriptStatus:  {"job1": wire.StatusActive, "job2": wire.StatusRevoked, "gone": wire.StatusActive},
		wire.KVFleet:         {wire.KeyEmergencyStop: `{"on":true}`},
	} {
		h, err := b.JS.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range kv {
			if _, err := h.Put(ctx, k, []byte("old "+v)); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Put(ctx, k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if bucket == wire.KVScriptStatus {
			if err := h.Delete(ctx, "gone"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.JS.Publish(ctx, "commands.pc.pc1.job1", []byte("command for pc1")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "tls", "ca.pem"), []byte("CA"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &server{data: data, st: st, b: b}
}

func (s *server) backup(t *testing.T, out string) *Manifest {
	t.Helper()
	m, err := Create(context.Background(), Source{DataDir: s.data, SecretsDir: filepath.Join(s.data, "secrets"), TLSDir: filepath.Join(s.data, "tls"),
		Driver: "sqlite", SQLitePath: filepath.Join(s.data, "kanade.db"), JS: s.b.JS, KanadeVersion: "test"}, out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// kvState reads every bucket a backup keeps.
func kvState(t *testing.T, js jetstream.JetStream) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, bucket := range []string{wire.KVScriptCurrent, wire.KVScriptStatus, wire.KVFleet} {
		h, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := h.Keys(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			t.Fatal(err)
		}
		for _, k := range keys {
			e, err := h.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			out[bucket+"/"+k] = string(e.Value())
		}
	}
	return out
}

func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A backup taken while the store and the broker are in use restores into
// an empty directory: the database with its rows, the same keys and TLS
// authority, the newest value of every key and the pending command; the
// record of the backup feeds the metrics.
func TestBackupRestore_RoundTrip(t *testing.T) {
	s := newServer(t)
	out := filepath.Join(t.TempDir(), "kanade.tar.gz")
	m := s.backup(t, out)
	if !m.Database.Included || m.Format != Format || len(m.Parts) < 4 {
		t.Fatalf("manifest %+v", m)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v, want mode 0600", st, err)
	}
	rec, ok, err := ReadRecord(s.data)
	if err != nil || !ok || rec.Size == 0 || !rec.Database || rec.File != out {
		t.Fatalf("record %+v %v %v", rec, ok, err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(s.data, func() time.Time { return rec.At.Add(90 * time.Second) }))
	got := gather(t, reg)
	if diff := cmp.Diff(map[string]float64{"kanade_backup_age_seconds": 90, "kanade_backup_size_bytes": float64(rec.Size)}, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	empty := prometheus.NewPedanticRegistry()
	empty.MustRegister(NewCollector(t.TempDir(), nil))
	if got := gather(t, empty); len(got) != 0 {
		t.Errorf("metrics without a backup: %v, want none", got)
	}
	if _, err := Create(context.Background(), Source{DataDir: s.data, SecretsDir: filepath.Join(s.data, "secrets"), Driver: "sqlite",
		SQLitePath: filepath.Join(s.data, "kanade.db"), JS: s.b.JS}, out); err == nil {
		t.Error("a backup over an existing file was written")
	}

	dst := filepath.Join(t.TempDir(), "restored")
	rm, err := Restore(context.Background(), out, Target{DataDir: dst, Driver: "sqlite", Broker: brokerFor(t)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, rm); diff != "" {
		t.Errorf("restored manifest differs (-backup +restore):\n%s", diff)
	}
	for _, dir := range []string{"secrets", "tls"} {
		if diff := cmp.Diff(tree(t, filepath.Join(s.data, dir)), tree(t, filepath.Join(dst, dir))); diff != "" {
			t.Errorf("%s differ (-original +restored):\n%s", dir, diff)
		}
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.DriverSQLite, filepath.Join(dst, "kanade.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if tok, err := st.EnrollmentToken(ctx, "tok1"); err != nil || tok.Name != "lab" {
		t.Errorf("restored database: %+v %v", tok, err)
	}
	want := kvState(t, s.b.JS)
	b, err := openBus(t, ctx, dst, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if diff := cmp.Diff(want, kvState(t, b.JS)); diff != "" {
		t.Errorf("buckets differ (-original +restored):\n%s", diff)
	}
	if want["script_status/gone"] != "" || want["fleet/emergency_stop"] != `{"on":true}` {
		t.Errorf("original state %v", want)
	}
	msg, err := b.JS.Stream(ctx, wire.StreamExec)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := msg.GetLastMsgForSubject(ctx, "commands.pc.pc1.job1"); err != nil || string(raw.Data) != "command for pc1" {
		t.Errorf("pending command: %v %v", raw, err)
	}
	if _, err := os.Stat(filepath.Join(dst, RecordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the restore wrote a backup record: %v", err)
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	return out
}

// entry is one entry of a backup file, for building damaged ones.
type entry struct {
	hdr  tar.Header
	body []byte
}

func readEntries(t *testing.T, path string) []entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []entry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, entry{*h, b})
	}
}

func writeEntries(t *testing.T, path string, es []entry) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range es {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A restore refuses a damaged, changed, incomplete or hostile file and a
// directory that is not empty, and writes nothing: the target stays as
// it was and no staging directory is left behind.
func TestRestore_RefusesAndChangesNothing(t *testing.T) {
	s := newServer(t)
	good := filepath.Join(t.TempDir(), "good.tar.gz")
	s.backup(t, good)
	es := readEntries(t, good)
	find := func(prefix string) int {
		for i, e := range es {
			if strings.HasPrefix(e.hdr.Name, prefix) {
				return i
			}
		}
		t.Fatalf("no entry %s", prefix)
		return -1
	}
	edit := func(fn func([]entry) []entry) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			cp := make([]entry, len(es))
			for i, e := range es {
				cp[i] = entry{e.hdr, append([]byte(nil), e.body...)}
			}
			writeEntries(t, path, fn(cp))
		}
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		make    func(t *testing.T, path string)
		nonEmpy bool
		want    string
	}{
		{"changed key", edit(func(e []entry) []entry { i := find("secrets/"); e[i].body[0] ^= 1; return e }), false, "SHA-256"},
		{"changed database", edit(func(e []entry) []entry { i := find("database/"); e[i].body[100] ^= 1; return e }), false, "SHA-256"},
		{"missing part", edit(func(e []entry) []entry { i := find("broker/"); return append(e[:i], e[i+1:]...) }), false, "missing"},
		{"extra entry", edit(func(e []entry) []entry {
			return append(e, entry{tar.Header{Name: "secrets/extra.nk", Typeflag: tar.TypeReg, Mode: 0o600}, []byte("x")})
		}), false, "not in the manifest"},
		{"path outside", edit(func(e []entry) []entry {
			return append(e, entry{tar.Header{Name: "../../evil", Typeflag: tar.TypeReg, Mode: 0o600}, []byte("x")})
		}), false, "not in the manifest"},
		{"symlink", edit(func(e []entry) []entry {
			i := find("tls/")
			e[i].hdr.Typeflag, e[i].hdr.Linkname, e[i].body = tar.TypeSymlink, "/etc/passwd", nil
			return e
		}), false, "not a regular file"},
		{"manifest not first", edit(func(e []entry) []entry { e[0], e[1] = e[1], e[0]; return e }), false, "not the manifest"},
		{"manifest hostile path", edit(func(e []entry) []entry {
			e[0].body = bytes.Replace(e[0].body, []byte(`"tls/ca.pem"`), []byte(`"tls/../../x"`), 1)
			return e
		}), false, "clean relative path"},
		{"truncated", func(t *testing.T, path string) { os.WriteFile(path, raw[:len(raw)*2/3], 0o600) }, false, ""},
		{"trailer damaged", func(t *testing.T, path string) {
			b := append([]byte(nil), raw...)
			b[len(b)-6] ^= 0xff // the gzip CRC
			os.WriteFile(path, b, 0o600)
		}, false, ""},
		{"not a backup", func(t *testing.T, path string) { os.WriteFile(path, []byte("hello"), 0o600) }, false, "not a .tar.gz"},
		{"target not empty", func(t *testing.T, path string) { os.WriteFile(path, raw, 0o600) }, true, "is not empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.tar.gz")
			tc.make(t, in)
			parent := t.TempDir()
			dst := filepath.Join(parent, "data")
			if tc.nonEmpy {
				if err := os.MkdirAll(dst, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dst, "kanade.db"), []byte("live"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := tree(t, parent)
			_, err := Restore(context.Background(), in, Target{DataDir: dst, Driver: "sqlite", Broker: brokerFor(t)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore = %v, want an error with %q", err, tc.want)
			}
			if diff := cmp.Diff(before, tree(t, parent)); diff != "" {
				t.Errorf("the restore changed the target (-before +after):\n%s", diff)
			}
			if ents, _ := os.ReadDir(parent); len(ents) > 1 || (len(ents) == 1) != tc.nonEmpy {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
	// The good file restores (the cases above failed for their damage).
	if _, err := Restore(context.Background(), good, Target{DataDir: filepath.Join(t.TempDir(), "d"), Driver: "sqlite", Broker: brokerFor(t)}); err != nil {
		t.Errorf("good file: %v", err)
	}
	// A SQLite backup does not restore onto PostgreSQL.
	if _, err := Restore(context.Background(), good, Target{DataDir: filepath.Join(t.TempDir(), "d"), Driver: "postgres", Broker: brokerFor(t)}); err == nil || !strings.Contains(err.Error(), "SQLite database") {
		t.Errorf("sqlite backup onto postgres: %v", err)
	}
}

// On PostgreSQL the file holds no database and its manifest says so; a
// missing secrets directory is refused rather than backed up empty.
func TestBackup_PostgresAndNoSecrets(t *testing.T) {
	s := newServer(t)
	out := filepath.Join(t.TempDir(), "pg.tar.gz")
	m, err := Create(context.Background(), Source{DataDir: s.data, SecretsDir: filepath.Join(s.data, "secrets"), Driver: "postgres", JS: s.b.JS}, out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Database.Included || m.Database.Note != PostgresNote {
		t.Errorf("database %+v", m.Database)
	}
	for _, p := range m.Parts {
		if p.Kind == KindDatabase {
			t.Errorf("part %+v in a PostgreSQL backup", p)
		}
	}
	dst := filepath.Join(t.TempDir(), "d")
	if _, err := Restore(context.Background(), out, Target{DataDir: dst, Driver: "postgres", Broker: brokerFor(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "kanade.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a database file appeared: %v", err)
	}
	_, err = Create(context.Background(), Source{DataDir: s.data, SecretsDir: filepath.Join(t.TempDir(), "none"), Driver: "postgres", JS: s.b.JS},
		filepath.Join(t.TempDir(), "x.tar.gz"))
	if err == nil {
		t.Error("a backup without secrets was written")
	}
}

// Every key-value bucket the server provisions is kept: a bucket added
// later must be added to Streams (or this test says why not).
func TestStreams_CoverEveryBucket(t *testing.T) {
	kept := map[string]bool{}
	for _, s := range Streams {
		kept[s] = true
	}
	for _, kv := range bus.KVConfigs(limits) {
		if !kept["KV_"+kv.Bucket] {
			t.Errorf("bucket %s is not in backup.Streams", kv.Bucket)
		}
	}
	if !kept[wire.StreamExec] {
		t.Errorf("%s is not in backup.Streams: offline agents would miss their pending commands", wire.StreamExec)
	}
}
