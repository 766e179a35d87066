// Package metrics is kanade's Prometheus face at /metrics: a registry
// owned by one server (so that several servers in one process do not
// collide), the counters and histograms updated as work happens, and a
// collector that reads the fleet, the executions, the projectors' lag and
// the NATS connection from their sources on each scrape, so that nothing
// runs between scrapes.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/store"
)

// Consumer names a durable JetStream consumer whose backlog is reported as
// kanade_projector_pending_messages{consumer}.
type Consumer struct {
	Stream, Durable string
}

// Sources are what the scrape-time collector reads. Nil fields leave their
// metrics out.
type Sources struct {
	// Store gives kanade_agents_online, kanade_agents_total and
	// kanade_executions{status}.
	Store *store.Store
	// NC gives kanade_nats_connected.
	NC *nats.Conn
	// Broker gives the embedded broker's kanade_nats_* totals (nil, or
	// ok false, with an external broker).
	Broker func() (st bus.BrokerStats, ok bool, err error)
	// JS and Consumers give kanade_projector_pending_messages.
	JS        jetstream.JetStream
	Consumers []Consumer
	// Timeout bounds the reads of one scrape (default DefaultScrapeTimeout).
	Timeout time.Duration
	// Now is the clock for "online" (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// DefaultScrapeTimeout bounds the database and JetStream reads of a scrape.
const DefaultScrapeTimeout = 2 * time.Second

// Metrics holds one server's registry and the metrics updated as work
// happens.
type Metrics struct {
	// Registry holds every kanade metric plus the Go runtime and process
	// collectors.
	Registry *prometheus.Registry
	// ResultsIngested counts results committed by the results projector.
	ResultsIngested prometheus.Counter
	// MemoryTrims counts the times the server returned its unused heap to
	// the OS (app/memtrim).
	MemoryTrims prometheus.Counter

	httpDuration *prometheus.HistogramVec
	sseClients   atomic.Int64
	watchOnce    sync.Once
	// routes holds, per echo instance, the set of its route patterns.
	routes sync.Map // *echo.Echo → map[string]bool
}

// New returns Metrics with a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		ResultsIngested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kanade_results_ingested_total",
			Help: "Results committed to the database by the results projector.",
		}),
		MemoryTrims: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kanade_memory_trims_total",
			Help: "Times the server, quiet after a busy spell, collected its garbage and returned its free heap to the OS.",
		}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kanade_http_request_duration_seconds",
			Help:    "Duration of HTTP requests by method, route pattern and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "code"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ResultsIngested,
		m.MemoryTrims,
		m.httpDuration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kanade_sse_clients",
			Help: "Open live (SSE) streams.",
		}, func() float64 { return float64(m.sseClients.Load()) }),
	)
	return m
}

// Watch registers the scrape-time collector reading src. Only the first
// call has an effect.
func (m *Metrics) Watch(src Sources) {
	m.watchOnce.Do(func() {
		if src.Timeout <= 0 {
			src.Timeout = DefaultScrapeTimeout
		}
		if src.Now == nil {
			src.Now = time.Now
		}
		if src.Log == nil {
			src.Log = slog.New(slog.DiscardHandler)
		}
		m.Registry.MustRegister(&collector{src: src})
	})
}

// WatchUpdateDownloads registers the agent update download permits:
// inFlight, the grants that count now, and the configured limit.
func (m *Metrics) WatchUpdateDownloads(inFlight func() int, limit int) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kanade_update_downloads_in_flight",
			Help: "Agents holding a permit to download an agent release now.",
		}, func() float64 { return float64(inFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kanade_update_downloads_max",
			Help: "The most agents that may download an agent release at once ([update] max_downloads).",
		}, func() float64 { return float64(limit) }),
	)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// TrackSSE counts one open live stream until the returned func is called.
func (m *Metrics) TrackSSE() (done func()) {
	m.sseClients.Add(1)
	var once sync.Once
	return func() { once.Do(func() { m.sseClients.Add(-1) }) }
}

// SSEClients returns the number of open live streams.
func (m *Metrics) SSEClients() int64 { return m.sseClients.Load() }

// MetricsPath is the route the middleware does not time.
const MetricsPath = "/metrics"

// Unmatched is the route label of requests that match no route, and
// OtherMethod the method label of methods outside the standard ones.
const (
	Unmatched   = "unmatched"
	OtherMethod = "OTHER"
)

// Middleware times each request into
// kanade_http_request_duration_seconds, labelled by the route pattern
// (c.Path(), never the raw URL; a request that matches no route is
// Unmatched) and the method (a standard one, else OtherMethod), so that
// no request can add a label value: each series lives as long as the
// process. Place it outside any middleware that turns errors into
// responses, or the code of a returned error is read from the error.
func (m *Metrics) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		route := c.Path()
		if route == MetricsPath {
			return err
		}
		if !m.isRoute(c.Echo(), route) {
			// The router names a 404 or 405 after the tree node it
			// stopped at, which need not be a route.
			route = Unmatched
		}
		code := c.Response().Status
		if err != nil && !c.Response().Committed {
			code = http.StatusInternalServerError
			var he *echo.HTTPError
			if errors.As(err, &he) {
				code = he.Code
			}
		}
		m.httpDuration.WithLabelValues(methodLabel(c.Request().Method), route, strconv.Itoa(code)).
			Observe(time.Since(start).Seconds())
		return err
	}
}

// isRoute reports whether path is the pattern of one of e's routes. The
// set is read once per echo instance, on its first request: every route
// is registered before the server serves.
func (m *Metrics) isRoute(e *echo.Echo, path string) bool {
	if path == "" || e == nil {
		return false
	}
	set, ok := m.routes.Load(e)
	if !ok {
		paths := map[string]bool{}
		for _, r := range e.Routes() {
			paths[r.Path] = true
		}
		set, _ = m.routes.LoadOrStore(e, paths)
	}
	return set.(map[string]bool)[path]
}

// methodLabel returns the label of a request method: the methods of
// RFC 9110 and PATCH stand for themselves, anything else is OtherMethod.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return OtherMethod
}

var (
	descAgentsOnline = prometheus.NewDesc("kanade_agents_online",
		"Agents whose last heartbeat is recent enough to count as online.", nil, nil)
	descAgentsTotal = prometheus.NewDesc("kanade_agents_total",
		"Agents known to the server.", nil, nil)
	descExecutions = prometheus.NewDesc("kanade_executions",
		"Executions by status.", []string{"status"}, nil)
	descPending = prometheus.NewDesc("kanade_projector_pending_messages",
		"Messages a projector's durable consumer has not yet had acknowledged (pending + ack pending).",
		[]string{"consumer"}, nil)
	descNATSConnected = prometheus.NewDesc("kanade_nats_connected",
		"1 when the server's NATS connection is connected, else 0.", nil, nil)
	descNATSConns = prometheus.NewDesc("kanade_nats_connections",
		"Client connections to the embedded broker (agents and the server's own).", nil, nil)
	descNATSSubs = prometheus.NewDesc("kanade_nats_subscriptions",
		"Subscriptions in the embedded broker.", nil, nil)
	descNATSMsgs = prometheus.NewDesc("kanade_nats_messages_total",
		"Messages the embedded broker received (in) and delivered (out).", []string{"direction"}, nil)
	descNATSBytes = prometheus.NewDesc("kanade_nats_bytes_total",
		"Payload bytes the embedded broker received (in) and delivered (out).", []string{"direction"}, nil)
	descNATSSlow = prometheus.NewDesc("kanade_nats_slow_consumers_total",
		"Times the embedded broker found a client too slow to keep up.", nil, nil)
)

// collector reads its sources on each scrape. A source that fails leaves
// its metrics out of that scrape (and is logged) rather than failing the
// whole scrape.
type collector struct {
	src Sources
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAgentsOnline, descAgentsTotal, descExecutions, descPending, descNATSConnected,
		descNATSConns, descNATSSubs, descNATSMsgs, descNATSBytes, descNATSSlow} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.src.Timeout)
	defer cancel()
	var wg sync.WaitGroup
	if st := c.src.Store; st != nil {
		wg.Go(func() {
			online, total, err := st.AgentCounts(ctx, c.src.Now())
			if err != nil {
				c.src.Log.Warn("metrics: agent counts", "err", err)
				return
			}
			ch <- prometheus.MustNewConstMetric(descAgentsOnline, prometheus.GaugeValue, float64(online))
			ch <- prometheus.MustNewConstMetric(descAgentsTotal, prometheus.GaugeValue, float64(total))
		})
		wg.Go(func() {
			counts, err := st.ExecutionCountsByStatus(ctx)
			if err != nil {
				c.src.Log.Warn("metrics: execution counts", "err", err)
				return
			}
			for status, n := range counts {
				ch <- prometheus.MustNewConstMetric(descExecutions, prometheus.GaugeValue, float64(n), status)
			}
		})
	}
	if js := c.src.JS; js != nil {
		for _, k := range c.src.Consumers {
			wg.Go(func() {
				n, err := pending(ctx, js, k)
				if errors.Is(err, jetstream.ErrConsumerNotFound) {
					return // its projector has not started yet
				}
				if err != nil {
					c.src.Log.Warn("metrics: consumer info", "stream", k.Stream, "consumer", k.Durable, "err", err)
					return
				}
				ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(n), k.Durable)
			})
		}
	}
	if nc := c.src.NC; nc != nil {
		v := 0.0
		if nc.IsConnected() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descNATSConnected, prometheus.GaugeValue, v)
	}
	if c.src.Broker != nil {
		st, ok, err := c.src.Broker()
		switch {
		case err != nil:
			c.src.Log.Warn("metrics: broker stats", "err", err)
		case ok:
			gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
			ch <- prometheus.MustNewConstMetric(descNATSConns, gauge, float64(st.Connections))
			ch <- prometheus.MustNewConstMetric(descNATSSubs, gauge, float64(st.Subscriptions))
			ch <- prometheus.MustNewConstMetric(descNATSMsgs, counter, float64(st.InMsgs), "in")
			ch <- prometheus.MustNewConstMetric(descNATSMsgs, counter, float64(st.OutMsgs), "out")
			ch <- prometheus.MustNewConstMetric(descNATSBytes, counter, float64(st.InBytes), "in")
			ch <- prometheus.MustNewConstMetric(descNATSBytes, counter, float64(st.OutBytes), "out")
			ch <- prometheus.MustNewConstMetric(descNATSSlow, counter, float64(st.SlowOut))
		}
	}
	wg.Wait()
}

// pending returns the messages consumer k has yet to deliver plus those
// delivered but not yet acknowledged.
func pending(ctx context.Context, js jetstream.JetStream, k Consumer) (uint64, error) {
	cons, err := js.Consumer(ctx, k.Stream, k.Durable)
	if err != nil {
		return 0, err
	}
	info := cons.CachedInfo() // fetched by js.Consumer just now
	return info.NumPending + uint64(info.NumAckPending), nil
}
