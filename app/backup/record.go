package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RecordFile, in the data directory, describes the newest backup: the
// server shows it (Settings → Backups) and exports its age (/metrics).
const RecordFile = "last-backup.json"

// Record is the newest backup of a data directory.
type Record struct {
	At     time.Time `json:"at"`
	File   string    `json:"file"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
	// Database: whether the file holds the database (not on PostgreSQL).
	Database bool `json:"database"`
}

func writeRecord(dataDir string, r Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(dataDir, RecordFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// ReadRecord reads the record of the newest backup; ok is false when no
// backup was made.
func ReadRecord(dataDir string) (r Record, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dataDir, RecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil || r.At.IsZero() {
		return Record{}, false, fmt.Errorf("%s: not a backup record", RecordFile)
	}
	return r, true, nil
}

// Collector exports kanade_backup_age_seconds and
// kanade_backup_size_bytes from the record in a data directory; without
// a record it exports neither (alert on absent()).
type Collector struct {
	dataDir string
	now     func() time.Time
	age     *prometheus.Desc
	size    *prometheus.Desc
}

// NewCollector reads the record of dataDir at each scrape.
func NewCollector(dataDir string, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{dataDir: dataDir, now: now,
		age:  prometheus.NewDesc("kanade_backup_age_seconds", "Seconds since the newest `kanade backup` of this data directory was made (absent: never).", nil, nil),
		size: prometheus.NewDesc("kanade_backup_size_bytes", "Size of the newest backup file.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.age; ch <- c.size }

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	r, ok, err := ReadRecord(c.dataDir)
	if err != nil || !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, max(0, c.now().Sub(r.At).Seconds()))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(r.Size))
}
