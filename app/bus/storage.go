package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kanadehq/kanade/agent/wire"
)

// The embedded broker sets aside every stream's max_bytes on disk when it
// creates the stream (a reservation, counted against JetStream's
// max_store), so what the sizes add up to must fit the volume of
// DATA/nats while the streams are still empty. A size of 0 is "auto": a
// share of the volume, between a floor and a ceiling, so that a default
// install starts on a small volume and a large one gets the sizes a big
// fleet needs. Auto sizes follow the volume's total size, not its free
// space, so a restart with less free space never shrinks a stream (which
// would discard its oldest messages).

// HealthMaxBytes bounds the HEALTH stream (one canary message per server).
const HealthMaxBytes = 1 << 20

// sized lists every stream and bucket whose size is configurable: its
// [streams] key, and how "auto" sizes it (thousandths of the volume,
// bounded).
var sized = []struct {
	name, key      string
	permille       int64
	floor, ceiling int64
	field          func(*StreamLimits) *int64
}{
	{wire.StreamExec, "exec_max_bytes", 25, 16 << 20, 1 << 30, func(l *StreamLimits) *int64 { return &l.ExecMaxBytes }},
	{wire.StreamResults, "results_max_bytes", 50, 32 << 20, 2 << 30, func(l *StreamLimits) *int64 { return &l.ResultsMaxBytes }},
	{wire.StreamOutput, "output_max_bytes", 25, 16 << 20, 512 << 20, func(l *StreamLimits) *int64 { return &l.OutputMaxBytes }},
	{wire.StreamInventory, "inventory_max_bytes", 80, 32 << 20, 8 << 30, func(l *StreamLimits) *int64 { return &l.InventoryMaxBytes }},
	{wire.StreamAudit, "audit_max_bytes", 100, 32 << 20, 4 << 30, func(l *StreamLimits) *int64 { return &l.AuditMaxBytes }},
	{kvStream(wire.KVScriptCurrent), "script_current_max_bytes", 5, 4 << 20, 64 << 20, func(l *StreamLimits) *int64 { return &l.ScriptCurrentMaxBytes }},
	{kvStream(wire.KVScriptStatus), "script_status_max_bytes", 5, 4 << 20, 64 << 20, func(l *StreamLimits) *int64 { return &l.ScriptStatusMaxBytes }},
	{kvStream(wire.KVFleet), "fleet_max_bytes", 2, 1 << 20, 16 << 20, func(l *StreamLimits) *int64 { return &l.FleetMaxBytes }},
	// Agent releases: about 15 MiB per version and platform; the floor
	// holds two.
	{wire.ReleaseStream, "releases_max_bytes", 20, 32 << 20, 4 << 30, func(l *StreamLimits) *int64 { return &l.ReleasesMaxBytes }},
}

// kvStream is the stream behind a KV bucket.
func kvStream(bucket string) string { return "KV_" + bucket }

// AutoSize is the size "auto" gives the stream or bucket configured by
// key ([streams] key) on a volume of total bytes; total 0 (unknown, as
// with an external broker) gives the ceiling. It is false for an unknown key.
func AutoSize(key string, total int64) (int64, bool) {
	for _, s := range sized {
		if s.key == key {
			return autoSize(s.permille, s.floor, s.ceiling, total), true
		}
	}
	return 0, false
}

func autoSize(permille, floor, ceiling, total int64) int64 {
	if total <= 0 {
		return ceiling
	}
	return min(max(total/1000*permille, floor), ceiling)
}

// Resolve returns l with every auto size (0) set for a volume of total
// bytes (0: unknown, the ceilings).
func (l StreamLimits) Resolve(total int64) StreamLimits {
	for _, s := range sized {
		if f := s.field(&l); *f <= 0 {
			*f = autoSize(s.permille, s.floor, s.ceiling, total)
		}
	}
	return l
}

// Reservation is what one stream or bucket sets aside on disk.
type Reservation struct {
	Stream string `json:"stream"` // a bucket's stream is KV_<bucket>
	// Key is its [streams] key in kanade.toml ("" when not configurable).
	Key   string `json:"key,omitempty"`
	Bytes int64  `json:"bytes"`
	// Auto: sized from the volume.
	Auto bool `json:"auto"`
}

// Volume is the file system a directory is on.
type Volume struct {
	Path string `json:"path"`
	// ID tells volumes apart (two paths on one volume have the same ID).
	ID    string `json:"-"`
	Total int64  `json:"total_bytes"`
	Used  int64  `json:"used_bytes"`
	Free  int64  `json:"free_bytes"` // available to this process
}

// UsedPercent is how full the volume is, 0–100, as df counts it: of the
// space this process may use, what is used (space reserved for root, on
// file systems that keep some, is left out), rounded up.
func (v Volume) UsedPercent() int {
	if v.Used+v.Free <= 0 {
		return 0
	}
	return int(min(100, max(0, (v.Used*100+v.Used+v.Free-1)/(v.Used+v.Free))))
}

// StoragePlan is what the streams and buckets set aside on the volume of
// the embedded broker's store, and the max_store given to JetStream.
type StoragePlan struct {
	Dir    string `json:"dir"`
	Volume Volume `json:"volume"`
	// Stored is what the store directory holds already.
	Stored       int64         `json:"stored_bytes"`
	Reservations []Reservation `json:"reservations"`
	// Others are streams on disk that kanade does not use, by name, with
	// their max_bytes: they are reserved too.
	Others map[string]int64 `json:"others,omitempty"`
	// Headroom is kept free beside the reservations (database, logs).
	Headroom int64 `json:"headroom_bytes"`
	// MaxStore is JetStream's max_store: every reservation fits in it,
	// the ones found on disk as well as the configured ones.
	MaxStore int64 `json:"max_store_bytes"`
}

// Reserved is what the streams set aside in total.
func (p StoragePlan) Reserved() int64 {
	var n int64
	for _, r := range p.Reservations {
		n += r.Bytes
	}
	for _, b := range p.Others {
		n += b
	}
	return n
}

// Available is what the streams may set aside: free space plus what they
// hold already, less the headroom.
func (p StoragePlan) Available() int64 { return p.Volume.Free + p.Stored - p.Headroom }

// headroom keeps a twentieth of the volume free beside the streams'
// reservations, at least 64 MiB and at most 4 GiB.
func headroom(total int64) int64 { return min(max(total/20, 64<<20), 4<<30) }

// ErrNoSpace is wrapped by PlanStorage's error when the streams do not fit.
var ErrNoSpace = errors.New("not enough disk space for the streams")

// PlanStorage resolves l's auto sizes for vol and checks that every
// reservation fits: the configured streams and buckets, the health
// stream, and the other streams found on disk (onDisk: stream name →
// max_bytes). stored is what the store directory holds already.
func PlanStorage(l StreamLimits, dir string, vol Volume, stored int64, onDisk map[string]int64) (StreamLimits, StoragePlan, error) {
	resolved := l.Resolve(vol.Total)
	p := StoragePlan{Dir: dir, Volume: vol, Stored: stored, Headroom: headroom(vol.Total)}
	ours := map[string]bool{wire.StreamHealth: true}
	for _, s := range sized {
		ours[s.name] = true
		p.Reservations = append(p.Reservations, Reservation{Stream: s.name, Key: s.key, Bytes: *s.field(&resolved), Auto: *s.field(&l) <= 0})
	}
	p.Reservations = append(p.Reservations, Reservation{Stream: wire.StreamHealth, Bytes: HealthMaxBytes})
	var found int64
	for name, b := range onDisk {
		found += b
		if !ours[name] {
			if p.Others == nil {
				p.Others = map[string]int64{}
			}
			p.Others[name] = b
		}
	}
	p.MaxStore = max(p.Reserved(), found)
	if need, has := p.Reserved(), p.Available(); need > has {
		return resolved, p, fmt.Errorf("%w: %s", ErrNoSpace, p.shortfall())
	}
	return resolved, p, nil
}

// shortfall says what the streams need, what the volume has and which
// settings lower the need.
func (p StoragePlan) shortfall() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the streams and buckets need %s in DATA/nats (%s), the volume has %s for them (%s free + %s they hold already − %s kept free)",
		SizeText(p.Reserved()), p.Dir, SizeText(max(p.Available(), 0)), SizeText(p.Volume.Free), SizeText(p.Stored), SizeText(p.Headroom))
	rs := append([]Reservation(nil), p.Reservations...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Bytes > rs[j].Bytes })
	var keys []string
	for _, r := range rs {
		if r.Key != "" {
			how := SizeText(r.Bytes)
			if r.Auto {
				how += " auto"
			}
			keys = append(keys, fmt.Sprintf("%s (%s)", r.Key, how))
		}
	}
	fmt.Fprintf(&b, "; lower [streams] %s in kanade.toml (or KANADE_STREAMS_<KEY>), or free space on the volume", strings.Join(keys, ", "))
	if len(p.Others) > 0 {
		names := make([]string, 0, len(p.Others))
		for n, v := range p.Others {
			names = append(names, fmt.Sprintf("%s (%s)", n, SizeText(v)))
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "; streams kanade does not use reserve space too: %s", strings.Join(names, ", "))
	}
	return b.String()
}

// ReadStorage looks at the embedded broker's store directory before the
// broker starts: the volume it is on, what it holds, and the max_bytes of
// every file stream of account on disk (stream name → bytes).
func ReadStorage(dir, account string) (Volume, int64, map[string]int64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Volume{}, 0, nil, fmt.Errorf("nats store %s: %w", dir, err)
	}
	vol, err := StatVolume(dir)
	if err != nil {
		return Volume{}, 0, nil, err
	}
	stored, err := DirSize(dir)
	if err != nil {
		return vol, 0, nil, err
	}
	onDisk, err := streamsOnDisk(filepath.Join(dir, "jetstream", account, "streams"))
	return vol, stored, onDisk, err
}

// DirSize adds up the sizes of the files below dir (files that vanish
// while it looks are skipped).
func DirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("size of %s: %w", dir, err)
	}
	return n, nil
}

// streamsOnDisk reads the max_bytes of each file stream in a JetStream
// account's streams directory (its meta.inf, which the broker writes as
// the stream's configuration in JSON).
func streamsOnDisk(dir string) (map[string]int64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats store: %w", err)
	}
	out := map[string]int64{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.inf"))
		if err != nil {
			continue // not a stream, or one the broker will not recover either
		}
		var meta struct {
			Name     string `json:"name"`
			MaxBytes int64  `json:"max_bytes"`
			Storage  string `json:"storage"`
		}
		if json.Unmarshal(b, &meta) != nil || meta.Name == "" || meta.Storage != "file" || meta.MaxBytes <= 0 {
			continue
		}
		out[meta.Name] = meta.MaxBytes
	}
	return out, nil
}

// SizeText formats a size in binary units with one decimal: "6.2 GiB".
func SizeText(n int64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
