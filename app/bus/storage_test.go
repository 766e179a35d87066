package bus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

func TestAutoSize(t *testing.T) {
	tests := []struct {
		key   string
		total int64
		want  int64
	}{
		{"exec_max_bytes", 1 << 30, 1 << 30 / 1000 * 25},
		{"exec_max_bytes", 100 << 20, 16 << 20}, // the floor
		{"exec_max_bytes", 1 << 40, 1 << 30},    // the ceiling
		{"inventory_max_bytes", 0, 8 << 30},     // unknown volume: the ceiling
		{"inventory_max_bytes", 20 << 30, 20 << 30 / 1000 * 80},
		{"fleet_max_bytes", 1 << 30, 1 << 30 / 1000 * 2},
	}
	for _, tt := range tests {
		got, ok := AutoSize(tt.key, tt.total)
		if !ok || got != tt.want {
			t.Errorf("AutoSize(%q, %d) = %d, %v; want %d", tt.key, tt.total, got, ok, tt.want)
		}
	}
	if _, ok := AutoSize("nope", 1<<30); ok {
		t.Error("AutoSize of an unknown key")
	}
	// The ceilings are the sizes a large install had before sizes were
	// configurable.
	l := StreamLimits{}.Resolve(0)
	want := StreamLimits{ExecMaxBytes: 1 << 30, ResultsMaxBytes: 2 << 30, OutputMaxBytes: 512 << 20, InventoryMaxBytes: 8 << 30,
		AuditMaxBytes: 4 << 30, ScriptCurrentMaxBytes: 64 << 20, ScriptStatusMaxBytes: 64 << 20, FleetMaxBytes: 16 << 20,
		ReleasesMaxBytes: 4 << 30}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Errorf("ceilings (-want +got):\n%s", diff)
	}
}

func TestPlanStorage(t *testing.T) {
	const gib = int64(1 << 30)
	explicit := StreamLimits{ExecMaxBytes: 1 << 30, ResultsMaxBytes: 2 << 30, OutputMaxBytes: 512 << 20, InventoryMaxBytes: 8 << 30,
		AuditMaxBytes: 4 << 30, ScriptCurrentMaxBytes: 64 << 20, ScriptStatusMaxBytes: 64 << 20, FleetMaxBytes: 16 << 20,
		ReleasesMaxBytes: 32 << 20}
	tests := []struct {
		name   string
		limits StreamLimits
		vol    Volume
		stored int64
		onDisk map[string]int64
		// wantErr lists what the error must say; nil: it fits.
		wantErr      []string
		maxReserved  int64 // the plan reserves at most this (0: no check)
		wantMaxStore int64 // 0: equal to the reservations
	}{
		{name: "defaults on an empty 1 GiB volume", vol: Volume{Total: gib, Free: gib}, maxReserved: 342 << 20},
		{name: "defaults on a 256 MiB volume", vol: Volume{Total: 256 << 20, Free: 250 << 20}, maxReserved: 172 << 20},
		{name: "defaults on a nearly full 1 GiB volume", vol: Volume{Total: gib, Free: 200 << 20},
			wantErr: []string{"need 332.0 MiB in DATA/nats", "the volume has 136.0 MiB for them", "lower [streams] audit_max_bytes (102.4 MiB auto), inventory_max_bytes"}},
		{name: "what the streams hold counts as theirs", vol: Volume{Total: gib, Free: 200 << 20}, stored: 250 << 20},
		{name: "a large volume gets the ceilings", vol: Volume{Total: 500 * gib, Free: 400 * gib}, maxReserved: 19*gib + 900<<20},
		{name: "the former fixed sizes with 15 GiB free", limits: explicit, vol: Volume{Total: 20 * gib, Free: 15 * gib},
			wantErr: []string{"need 15.7 GiB in DATA/nats (/data/nats), the volume has 14.0 GiB for them (15.0 GiB free + 0 B they hold already − 1.0 GiB kept free)",
				"lower [streams] inventory_max_bytes (8.0 GiB), audit_max_bytes (4.0 GiB), results_max_bytes (2.0 GiB)"}},
		{name: "larger streams from an earlier start", vol: Volume{Total: 100 * gib, Free: 90 * gib}, stored: gib,
			onDisk: map[string]int64{wire.StreamInventory: 40 * gib, wire.StreamExec: gib}, wantMaxStore: 41 * gib},
		{name: "a stream kanade does not use reserves too", vol: Volume{Total: gib, Free: gib},
			onDisk: map[string]int64{"OLD": 900 << 20}, wantErr: []string{"streams kanade does not use reserve space too: OLD (900.0 MiB)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p, err := PlanStorage(tt.limits, "/data/nats", tt.vol, tt.stored, tt.onDisk)
			if tt.wantErr != nil {
				if !errors.Is(err, ErrNoSpace) {
					t.Fatalf("PlanStorage = %v, want ErrNoSpace", err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not say %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("PlanStorage: %v", err)
			}
			if p.Reserved() > p.Available() {
				t.Errorf("reserved %d > available %d", p.Reserved(), p.Available())
			}
			if tt.maxReserved > 0 && p.Reserved() > tt.maxReserved {
				t.Errorf("reserved %s, want at most %s", SizeText(p.Reserved()), SizeText(tt.maxReserved))
			}
			want := tt.wantMaxStore
			if want == 0 {
				want = p.Reserved()
			}
			if p.MaxStore != want {
				t.Errorf("max_store %s, want %s", SizeText(p.MaxStore), SizeText(want))
			}
			for _, r := range p.Reservations {
				if r.Bytes <= 0 {
					t.Errorf("%s reserves %d", r.Stream, r.Bytes)
				}
			}
			if got.InventoryMaxBytes <= 0 || got.FleetMaxBytes <= 0 {
				t.Errorf("unresolved limits: %+v", got)
			}
		})
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestOpen_StreamsDoNotFit: a server whose streams need more than the
// volume has refuses to start and says what to lower.
func TestOpen_StreamsDoNotFit(t *testing.T) {
	_, err := Open(context.Background(), Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: quietLogger(),
		Streams: StreamLimits{ExecMaxAge: time.Hour, ResultsMaxAge: time.Hour, OutputMaxAge: time.Hour, AuditMaxAge: time.Hour,
			ResultsMaxBytes: 1 << 60}})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Open = %v, want ErrNoSpace", err)
	}
	for _, w := range []string{"in DATA/nats", "lower [streams] results_max_bytes ("} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
}

// TestOpen_ShrinksBeforeGrowing: a restart with smaller streams than the
// store holds (a volume that was sized for the former fixed sizes)
// provisions: the broker checks every update against what all streams
// reserve at that moment, so the ones that shrink must go first.
func TestOpen_ShrinksBeforeGrowing(t *testing.T) {
	dir := t.TempDir()
	open := func(l StreamLimits) (*Bus, error) {
		l.ExecMaxAge, l.ResultsMaxAge, l.OutputMaxAge, l.AuditMaxAge = time.Hour, time.Hour, time.Hour, time.Hour
		return Open(context.Background(), Options{DataDir: dir, Listen: "127.0.0.1:0", Logger: quietLogger(), Streams: l})
	}
	b, err := open(StreamLimits{ExecMaxBytes: 16 << 20, InventoryMaxBytes: 2 << 30, AuditMaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	// EXEC grows while INVENTORY and AUDIT shrink: the total shrinks, but
	// growing EXEC first would exceed the reservations at that moment.
	b, err = open(StreamLimits{ExecMaxBytes: 64 << 20, InventoryMaxBytes: 64 << 20, AuditMaxBytes: 64 << 20})
	if err != nil {
		t.Fatalf("restart with smaller streams: %v", err)
	}
	defer b.Close()
	for name, want := range map[string]int64{wire.StreamExec: 64 << 20, wire.StreamInventory: 64 << 20, wire.StreamAudit: 64 << 20} {
		s, err := b.JS.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxBytes; got != want {
			t.Errorf("%s max_bytes = %d, want %d", name, got, want)
		}
	}
	if p := b.Plan(); p.MaxStore < (2<<30)+(1<<30) {
		t.Errorf("max_store %s does not hold what the store reserved at start", SizeText(p.MaxStore))
	}
}

func TestStatVolume(t *testing.T) {
	v, err := StatVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if v.Total <= 0 || v.Free < 0 || v.Used < 0 || v.Free+v.Used > v.Total || v.ID == "" {
		t.Errorf("StatVolume = %+v", v)
	}
	if _, err := StatVolume("/does/not/exist"); err == nil {
		t.Error("StatVolume of a missing directory")
	}
}

func TestVolume_UsedPercent(t *testing.T) {
	tests := []struct {
		v    Volume
		want int
	}{
		{Volume{Total: 252 << 30, Used: 29 << 30, Free: 63 << 30}, 32}, // root's reserve left out, as df does
		{Volume{Total: 1 << 30, Used: 0, Free: 1 << 30}, 0},
		{Volume{Total: 1 << 30, Used: 1 << 30, Free: 0}, 100},
		{Volume{Total: 100, Used: 801, Free: 199}, 81}, // rounded up
		{Volume{}, 0},
	}
	for _, tt := range tests {
		if got := tt.v.UsedPercent(); got != tt.want {
			t.Errorf("%+v.UsedPercent() = %d, want %d", tt.v, got, tt.want)
		}
	}
}
