package health

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descHealthy = prometheus.NewDesc("kanade_healthy",
		"1 when the last health check found the server able to work (the broker stores, the database writes, the volumes have room), else 0.", nil, nil)
	descVolumeTotal = prometheus.NewDesc("kanade_volume_total_bytes",
		"Size of a volume the server writes to (roles: nats, data, database).", []string{"path", "roles"}, nil)
	descVolumeFree = prometheus.NewDesc("kanade_volume_free_bytes",
		"Free space of a volume the server writes to, as available to the server.", []string{"path", "roles"}, nil)
	descVolumeUsed = prometheus.NewDesc("kanade_volume_used_ratio",
		"How full a volume the server writes to is, 0 to 1.", []string{"path", "roles"}, nil)
	descVolumeWarning = prometheus.NewDesc("kanade_volume_warning",
		"1 when a volume is fuller than [server] disk_warn_percent or nearly out of space, else 0.", []string{"path", "roles"}, nil)
	descWriteErrors = prometheus.NewDesc("kanade_stream_write_errors",
		"Streams the embedded broker no longer writes to (a write error such as a full disk), plus 1 when JetStream is off.", nil, nil)
	descRestarts = prometheus.NewDesc("kanade_jetstream_restarts_total",
		"JetStream restarts of the embedded broker that cleared write errors after a full disk.", nil, nil)
	descStreamBytes = prometheus.NewDesc("kanade_stream_bytes",
		"Bytes a stream (or KV bucket, KV_<bucket>) holds.", []string{"stream"}, nil)
	descStreamMaxBytes = prometheus.NewDesc("kanade_stream_max_bytes",
		"A stream's size limit, which the embedded broker reserves on disk.", []string{"stream"}, nil)
	descStreamMsgs = prometheus.NewDesc("kanade_stream_messages",
		"Messages a stream holds.", []string{"stream"}, nil)
	descDBBytes = prometheus.NewDesc("kanade_database_bytes",
		"Size of the database.", nil, nil)
)

// Collector returns the Prometheus collector of the monitor's last report
// (read without checking again) and of the streams and the database
// (read on each scrape).
func (m *Monitor) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Monitor }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHealthy, descVolumeTotal, descVolumeFree, descVolumeUsed, descVolumeWarning,
		descWriteErrors, descRestarts, descStreamBytes, descStreamMaxBytes, descStreamMsgs, descDBBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := prometheus.GaugeValue
	if r := c.m.Last(); !r.At.IsZero() {
		ch <- prometheus.MustNewConstMetric(descHealthy, gauge, boolValue(r.Status != Unavailable))
		ch <- prometheus.MustNewConstMetric(descWriteErrors, gauge, float64(len(r.WriteErrors)))
		for _, v := range r.Volumes {
			roles := strings.Join(v.Roles, ",")
			ch <- prometheus.MustNewConstMetric(descVolumeTotal, gauge, float64(v.Total), v.Path, roles)
			ch <- prometheus.MustNewConstMetric(descVolumeFree, gauge, float64(v.Free), v.Path, roles)
			used := 0.0
			if v.Total > 0 {
				used = float64(v.Total-v.Free) / float64(v.Total)
			}
			ch <- prometheus.MustNewConstMetric(descVolumeUsed, gauge, used, v.Path, roles)
			ch <- prometheus.MustNewConstMetric(descVolumeWarning, gauge, boolValue(v.Status != OK), v.Path, roles)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if b := c.m.o.Bus; b != nil {
		n, _, _ := b.Restarts()
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(n))
		if streams, err := b.Streams(ctx, false); err == nil {
			for _, s := range streams {
				ch <- prometheus.MustNewConstMetric(descStreamBytes, gauge, float64(s.Bytes), s.Name)
				ch <- prometheus.MustNewConstMetric(descStreamMaxBytes, gauge, float64(s.MaxBytes), s.Name)
				ch <- prometheus.MustNewConstMetric(descStreamMsgs, gauge, float64(s.Messages), s.Name)
			}
		} else {
			c.m.o.Log.Warn("metrics: streams", "err", err)
		}
	}
	if st := c.m.o.Store; st != nil {
		if n, err := st.Size(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(descDBBytes, gauge, float64(n))
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
