package health_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kanadehq/kanade/agent/eventually"
	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/bus/bustest"
	"github.com/kanadehq/kanade/app/health"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestCheck_Healthy(t *testing.T) {
	b := bustest.Open(t)
	st := storetest.New(t)
	m := health.New(health.Options{Bus: b, Store: st, Paths: map[string]string{"data": t.TempDir()}, WarnPercent: 99, Log: quiet()})
	r := m.Check(context.Background())
	if r.Status != health.OK || r.NATS != "ok" || r.DB != "ok" || r.Disk != "ok" || len(r.Problems) != 0 {
		t.Fatalf("Check() = %+v, want ok", r)
	}
	var roles []string
	for _, v := range r.Volumes {
		roles = append(roles, v.Roles...)
		if v.Total <= 0 || v.Path == "" {
			t.Errorf("volume %+v", v)
		}
	}
	if got := strings.Join(roles, ","); !strings.Contains(got, "data") || !strings.Contains(got, "nats") {
		t.Errorf("volume roles %s, want data and nats", got)
	}
	// The canary landed in the HEALTH stream.
	s, err := b.JS.Stream(context.Background(), wire.StreamHealth)
	if err != nil || s.CachedInfo().State.Msgs != 1 {
		t.Errorf("HEALTH stream: %v, %+v", err, s)
	}
}

// TestCheck_WarnsBeforeFull: a volume fuller than the warning threshold
// is a warning, not a failure: the server still works.
func TestCheck_WarnsBeforeFull(t *testing.T) {
	b := bustest.Open(t)
	m := health.New(health.Options{Bus: b, Store: storetest.New(t), WarnPercent: 1, Log: quiet()})
	r := m.Check(context.Background())
	if r.Status != health.Warning || !strings.HasPrefix(r.Disk, "warning: the volume of ") || len(r.Warnings) == 0 || len(r.Problems) != 0 {
		t.Fatalf("Check() = %+v, want a disk warning", r)
	}
	if !strings.Contains(r.Disk, "warning at 1%") {
		t.Errorf("disk = %q, want the threshold named", r.Disk)
	}
}

// TestCheck_StoreFails: a database that takes no writes makes the server
// unavailable, and the report says so.
func TestCheck_StoreFails(t *testing.T) {
	b := bustest.Open(t)
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.DriverSQLite, filepath.Join(dir, "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	m := health.New(health.Options{Bus: b, Store: st, WarnPercent: 99, Log: quiet()})
	r := m.Check(context.Background())
	if r.Status != health.Unavailable || !strings.HasPrefix(r.DB, "error: ") || r.NATS != "ok" {
		t.Fatalf("Check() with a closed database = %+v", r)
	}
}

// TestMonitor_DiskFullThenRecovers fills the volume that holds the
// broker's store and the database: the report turns unavailable with
// the reasons, and once the filler is gone the monitor restarts
// JetStream by itself and the report is healthy again.
func TestMonitor_DiskFullThenRecovers(t *testing.T) {
	dir := bustest.Tmpfs(t, 256<<20)
	b, err := bus.Open(context.Background(), bus.Options{DataDir: dir, Listen: "127.0.0.1:0", Logger: quiet(),
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ExecMaxBytes: 8 << 20, ResultsMaxBytes: 32 << 20, OutputMaxBytes: 8 << 20, InventoryMaxBytes: 8 << 20, AuditMaxBytes: 8 << 20,
			ScriptCurrentMaxBytes: 1 << 20, ScriptStatusMaxBytes: 1 << 20, FleetMaxBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	st, err := store.Open(context.Background(), store.DriverSQLite, filepath.Join(dir, "kanade.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Each reading of the clock is two seconds on: Check never answers
	// with the report before.
	var ticks atomic.Int64
	start := time.Now()
	clock := func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * 2 * time.Second) }
	m := health.New(health.Options{Bus: b, Store: st, Paths: map[string]string{"data": dir}, Log: quiet(), Now: clock})
	if r := m.Check(context.Background()); r.Status != health.OK {
		t.Fatalf("before: %+v", r)
	}

	filler := bustest.Fill(t, dir)
	for i := 0; i < 20; i++ { // until RESULTS meets the full disk
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := b.JS.Publish(ctx, wire.ResultSubject("big"), make([]byte, 64<<10))
		cancel()
		if err != nil {
			break
		}
	}
	r := m.Check(context.Background())
	if r.Status != health.Unavailable {
		t.Fatalf("full disk: %+v", r)
	}
	for _, want := range []string{"disk: the volume of data and nats (" + dir, "is full", "nats: stream RESULTS cannot store"} {
		if !strings.Contains(strings.Join(r.Problems, "\n"), want) {
			t.Errorf("problems do not say %q:\n%s", want, strings.Join(r.Problems, "\n"))
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx, 100*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 30*time.Second, func() error {
		if r := m.Last(); r.Status != health.OK {
			return fmt.Errorf("status %s: %v", r.Status, r.Problems)
		}
		return nil
	})
	if n, _, err := b.Restarts(); n < 1 || err != nil {
		t.Errorf("Restarts() = %d, %v; want the monitor to have restarted JetStream", n, err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := b.JS.Publish(ctx2, wire.ResultSubject("pc1"), []byte("{}")); err != nil {
		t.Errorf("RESULTS after the recovery: %v", err)
	}
}

// TestSystem lists every stream and bucket with its limit and setting,
// each consumer's backlog, the database's size and the leaders.
func TestSystem(t *testing.T) {
	b := bustest.Open(t)
	st := storetest.New(t)
	ctx := context.Background()
	if _, err := b.JS.CreateOrUpdateConsumer(ctx, wire.StreamResults, jetstream.ConsumerConfig{Durable: "projector", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := b.JS.Publish(ctx, wire.ResultSubject(fmt.Sprintf("pc%d", i)), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	m := health.New(health.Options{Bus: b, Store: st, WarnPercent: 99, Log: quiet()})
	sys, err := m.System(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]bus.StreamStatus{}
	for _, s := range sys.Streams {
		byName[s.Name] = s
	}
	for _, name := range []string{wire.StreamExec, wire.StreamResults, wire.StreamOutput, wire.StreamInventory, wire.StreamAudit, wire.StreamHealth,
		"KV_" + wire.KVScriptCurrent, "KV_" + wire.KVScriptStatus, "KV_" + wire.KVFleet} {
		s, ok := byName[name]
		if !ok {
			t.Errorf("System has no stream %s", name)
			continue
		}
		if s.MaxBytes <= 0 || s.Leader != bus.ThisServer {
			t.Errorf("%s: max_bytes %d, leader %q", name, s.MaxBytes, s.Leader)
		}
	}
	if s := byName["KV_"+wire.KVFleet]; s.Bucket != wire.KVFleet || s.Key != "fleet_max_bytes" || !s.Auto {
		t.Errorf("fleet bucket = %+v", s)
	}
	res := byName[wire.StreamResults]
	if res.Messages != 3 || len(res.Consumers) != 1 || res.Consumers[0].Name != "projector" || res.Consumers[0].Pending != 3 {
		t.Errorf("RESULTS = %+v, want 3 messages and the projector's backlog of 3", res)
	}
	if sys.Database.Driver != store.DriverSQLite || sys.Database.Bytes <= 0 {
		t.Errorf("database = %+v", sys.Database)
	}
	if !sys.Broker.Embedded || sys.Broker.Reserved <= 0 || sys.Broker.MaxStore < sys.Broker.Reserved {
		t.Errorf("broker = %+v", sys.Broker)
	}
	if len(sys.Leaders) == 0 || sys.Leaders[0].Replica != bus.ThisServer {
		t.Errorf("leaders = %+v", sys.Leaders)
	}
}

func TestCollector(t *testing.T) {
	b := bustest.Open(t)
	m := health.New(health.Options{Bus: b, Store: storetest.New(t), WarnPercent: 1, Log: quiet()})
	m.Check(context.Background())
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range metric.GetLabel() {
				if l.GetName() == "stream" {
					key += "{" + l.GetValue() + "}"
				}
			}
			got[key] = metric.GetGauge().GetValue() + metric.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{"kanade_healthy": 1, "kanade_volume_warning": 1, "kanade_stream_write_errors": 0,
		"kanade_jetstream_restarts_total": 0, "kanade_stream_max_bytes{EXEC}": float64(b.Limits().ExecMaxBytes)} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	if got["kanade_database_bytes"] <= 0 || got["kanade_volume_total_bytes"] <= 0 {
		t.Errorf("database or volume size missing: %v", got)
	}
}
