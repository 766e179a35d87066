package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/metrics"
	"github.com/kanadehq/kanade/app/projector"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openBus(t *testing.T) *bus.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Options{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxPayload: 8 << 20, Logger: quietLog(),
		Streams: bus.StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ExecMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20, OutputMaxBytes: 64 << 20, AuditMaxBytes: 64 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// scrape GETs h and parses the text exposition.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, rec.Body)
	}
	return fams
}

// values maps each sample of a gauge or counter family to its value, keyed
// by its labels as "k=v,k=v" ("" without labels).
func values(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	f, ok := fams[name]
	if !ok {
		return nil
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		v := m.GetGauge().GetValue()
		if m.Counter != nil {
			v = m.GetCounter().GetValue()
		}
		out[strings.Join(ls, ",")] = v
	}
	return out
}

func TestScrape(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	b := openBus(t)

	// Two agents online at t0, one gone long ago.
	agents := []store.Agent{
		{PCID: "pc1", LastSeen: t0, OfflineAfter: t0.Add(time.Minute)},
		{PCID: "pc2", LastSeen: t0, OfflineAfter: t0.Add(time.Minute)},
		{PCID: "pc3", LastSeen: t0.Add(-time.Hour), OfflineAfter: t0.Add(-time.Hour)},
	}
	if err := st.UpsertAgents(ctx, agents); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"e1", "e2", "e3"} {
		e := store.Execution{ExecID: id, JobID: "j", Shell: wire.ShellSh, Script: "true", Timeout: time.Minute,
			CreatedAt: t0, DeadlineAt: t0.Add(time.Hour)}
		if err := st.CreateExecution(ctx, e, []string{"pc1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RequestKill(ctx, "e3", "alice", t0); err != nil {
		t.Fatal(err)
	}

	// The results consumer exists with 3 messages it has not delivered; the
	// audit consumer does not exist yet, so it is left out.
	if _, err := b.JS.CreateOrUpdateConsumer(ctx, wire.StreamResults, jetstream.ConsumerConfig{
		Durable: projector.ResultsConsumer, AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	for _, pc := range []string{"pc1", "pc2", "pc3"} {
		if _, err := b.JS.Publish(ctx, wire.ResultSubject(pc), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}

	m := metrics.New()
	m.Watch(metrics.Sources{Store: st, NC: b.NC, JS: b.JS, Broker: b.Stats, Now: func() time.Time { return t0 }, Log: quietLog(),
		Consumers: []metrics.Consumer{
			{Stream: wire.StreamResults, Durable: projector.ResultsConsumer},
			{Stream: wire.StreamAudit, Durable: "audit-projector"},
		}})
	m.ResultsIngested.Add(5)
	m.MemoryTrims.Inc()
	done := m.TrackSSE()
	m.TrackSSE()()
	defer done()

	fams := scrape(t, m.Handler())
	tests := []struct {
		name string
		want map[string]float64
	}{
		{"kanade_agents_online", map[string]float64{"": 2}},
		{"kanade_agents_total", map[string]float64{"": 3}},
		{"kanade_executions", map[string]float64{"status=running": 2, "status=killed": 1}},
		{"kanade_results_ingested_total", map[string]float64{"": 5}},
		{"kanade_memory_trims_total", map[string]float64{"": 1}},
		{"kanade_projector_pending_messages", map[string]float64{"consumer=results-projector": 3}},
		{"kanade_sse_clients", map[string]float64{"": 1}},
		{"kanade_nats_connected", map[string]float64{"": 1}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, values(fams, tt.name)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	// The embedded broker's totals: this test's own connections, and the
	// three results it published (at least) in.
	if got := values(fams, "kanade_nats_connections")[""]; got < 1 {
		t.Errorf("kanade_nats_connections = %v, want ≥ 1", got)
	}
	if got := values(fams, "kanade_nats_subscriptions")[""]; got < 1 {
		t.Errorf("kanade_nats_subscriptions = %v, want ≥ 1", got)
	}
	if got := values(fams, "kanade_nats_messages_total"); got["direction=in"] < 3 || got["direction=out"] < 1 {
		t.Errorf("kanade_nats_messages_total = %v, want in ≥ 3 and out ≥ 1", got)
	}
	if got := values(fams, "kanade_nats_bytes_total"); got["direction=in"] < 6 {
		t.Errorf("kanade_nats_bytes_total = %v, want in ≥ 6", got)
	}
	if _, ok := values(fams, "kanade_nats_slow_consumers_total")[""]; !ok {
		t.Error("kanade_nats_slow_consumers_total is missing")
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_start_time_seconds"} {
		if _, ok := fams[name]; !ok && (name != "process_start_time_seconds" || processMetricsSupported()) {
			t.Errorf("%s is missing", name)
		}
	}

	// Without its connection, NATS reads 0 and the lag is left out
	// instead of failing the scrape.
	b.NC.Close()
	fams = scrape(t, m.Handler())
	if diff := cmp.Diff(map[string]float64{"": 0}, values(fams, "kanade_nats_connected")); diff != "" {
		t.Errorf("kanade_nats_connected after close (-want +got):\n%s", diff)
	}
	if got := values(fams, "kanade_projector_pending_messages"); got != nil {
		t.Errorf("kanade_projector_pending_messages after close = %v, want absent", got)
	}
	if got := values(fams, "kanade_agents_total"); got[""] != 3 {
		t.Errorf("kanade_agents_total after close = %v, want 3", got)
	}
}

// processMetricsSupported reports whether the process collector reports on
// this OS.
func processMetricsSupported() bool { return runtime.GOOS == "linux" || runtime.GOOS == "windows" }

func TestScrape_NothingWatched(t *testing.T) {
	fams := scrape(t, metrics.New().Handler())
	for _, name := range []string{"kanade_agents_online", "kanade_executions", "kanade_nats_connected", "kanade_projector_pending_messages"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s present without a source", name)
		}
	}
	if got := values(fams, "kanade_sse_clients"); got[""] != 0 || got == nil {
		t.Errorf("kanade_sse_clients = %v, want 0", got)
	}
}

func TestMiddleware(t *testing.T) {
	m := metrics.New()
	e := echo.New()
	e.Use(m.Middleware)
	e.GET("/metrics", echo.WrapHandler(m.Handler()))
	e.GET("/agents/:pc", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("pc")) })
	e.POST("/agents/:pc/revoke", func(c echo.Context) error { return echo.NewHTTPError(http.StatusConflict, "no") })
	e.GET("/boom", func(c echo.Context) error { return errors.New("boom") })

	reqs := []struct{ method, path string }{
		{http.MethodGet, "/agents/pc1"},
		{http.MethodGet, "/agents/pc2"},
		{http.MethodPost, "/agents/pc1/revoke"},
		{http.MethodGet, "/boom"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/no/such/page"},
	}
	for _, r := range reqs {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	fams := scrape(t, e)
	f, ok := fams["kanade_http_request_duration_seconds"]
	if !ok {
		t.Fatal("kanade_http_request_duration_seconds is missing")
	}
	got := map[string]uint64{}
	for _, s := range f.GetMetric() {
		var ls []string
		for _, l := range s.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		got[strings.Join(ls, ",")] = s.GetHistogram().GetSampleCount()
	}
	want := map[string]uint64{
		"code=200,method=GET,route=/agents/:pc":         2,
		"code=409,method=POST,route=/agents/:pc/revoke": 1,
		"code=500,method=GET,route=/boom":               1,
		"code=404,method=GET,route=unmatched":           1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request counts by labels (-want +got):\n%s", diff)
	}
}

// TestMiddleware_BoundedLabels: invented methods and paths that match no
// route add no label values, however many arrive.
func TestMiddleware_BoundedLabels(t *testing.T) {
	m := metrics.New()
	e := echo.New()
	e.Use(m.Middleware)
	e.GET("/metrics", echo.WrapHandler(m.Handler()))
	e.GET("/agents/:pc", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("pc")) })
	e.POST("/agents/:pc/revoke", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	e.GET("/api/executions/:id/wait", func(c echo.Context) error { return c.NoContent(http.StatusOK) })

	series := func() map[string]uint64 {
		got := map[string]uint64{}
		for _, s := range scrape(t, e)["kanade_http_request_duration_seconds"].GetMetric() {
			var ls []string
			for _, l := range s.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			got[strings.Join(ls, ",")] += s.GetHistogram().GetSampleCount()
		}
		return got
	}
	paths := []string{"/agents/pc1", "/agents/pc1/revoke", "/api/executions/x", "/api/e", "/no/such/page"}
	const n = 5000
	each := uint64(n / len(paths))
	for i := range n {
		req := httptest.NewRequest(http.MethodGet, paths[i%len(paths)], nil)
		req.Method = fmt.Sprintf("INVENTED%d", i)
		e.ServeHTTP(httptest.NewRecorder(), req)
	}
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/agents/pc1", nil))
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/api/e", nil))
	want := map[string]uint64{
		"code=405,method=OTHER,route=/agents/:pc":        each,
		"code=405,method=OTHER,route=/agents/:pc/revoke": each,
		"code=404,method=OTHER,route=unmatched":          3 * each,
		"code=200,method=GET,route=/agents/:pc":          1,
		"code=404,method=DELETE,route=unmatched":         1,
	}
	if diff := cmp.Diff(want, series()); diff != "" {
		t.Errorf("series after %d requests with invented methods (-want +got):\n%s", n, diff)
	}
}
