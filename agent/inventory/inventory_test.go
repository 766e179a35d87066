package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

func TestRun_AFailingCollectorCostsOnlyItsSection(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	cs := []collector{
		{wire.SectionOS, "", func(ctx context.Context, inv *wire.Inventory) error {
			inv.OS = wire.OSInfo{Name: "TestOS", Version: "1"}
			return nil
		}},
		{wire.SectionHardware, "Win32_BIOS", func(ctx context.Context, inv *wire.Inventory) error {
			inv.Hardware.BIOSVersion = "partial"
			return errors.New("access denied")
		}},
		{wire.SectionDisks, "", func(ctx context.Context, inv *wire.Inventory) error {
			inv.Disks = []wire.Disk{{Mount: "/never"}}
			<-block // hangs and ignores ctx, like a WMI call
			return nil
		}},
		{wire.SectionNetwork, "", func(ctx context.Context, inv *wire.Inventory) error {
			panic("bug")
		}},
		{wire.SectionSoftware, "", func(ctx context.Context, inv *wire.Inventory) error {
			inv.Software = []wire.Package{{Name: "a"}}
			return nil
		}},
	}
	var inv wire.Inventory
	start := time.Now()
	run(context.Background(), &inv, cs, 50*time.Millisecond)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("run took %v despite the per-collector bound", d)
	}
	want := wire.Inventory{
		OS:       wire.OSInfo{Name: "TestOS", Version: "1"},
		Hardware: wire.Hardware{BIOSVersion: "partial"},
		Software: []wire.Package{{Name: "a"}},
		Errors:   []string{"hardware: Win32_BIOS: access denied", "disks: timed out after 50ms", "network: panic: bug"},
	}
	if diff := cmp.Diff(want, inv); diff != "" {
		t.Errorf("run (-want +got):\n%s", diff)
	}
	for _, s := range []string{wire.SectionHardware, wire.SectionDisks, wire.SectionNetwork} {
		if !inv.Failed(s) {
			t.Errorf("Failed(%s) = false", s)
		}
	}
}

func TestRun_StopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ran := 0
	cs := []collector{
		{wire.SectionOS, "", func(context.Context, *wire.Inventory) error { ran++; cancel(); return nil }},
		{wire.SectionSoftware, "", func(context.Context, *wire.Inventory) error { ran++; return nil }},
	}
	var inv wire.Inventory
	run(ctx, &inv, cs, time.Second)
	if ran != 1 || len(inv.Errors) != 1 || !strings.HasPrefix(inv.Errors[0], "software: not collected") {
		t.Errorf("ran %d collectors, errors %q", ran, inv.Errors)
	}
}

func TestMerge_KeepsEarlierValuesOverZeros(t *testing.T) {
	dst := wire.Inventory{Hardware: wire.Hardware{CPULogical: 2, Model: "Wine"}, Disks: []wire.Disk{{Mount: "C:"}}}
	merge(&dst, &wire.Inventory{Hardware: wire.Hardware{CPUModel: "CPU", CPULogical: 0}, Disks: []wire.Disk{{Mount: "D:"}}})
	want := wire.Inventory{Hardware: wire.Hardware{CPULogical: 2, Model: "Wine", CPUModel: "CPU"}, Disks: []wire.Disk{{Mount: "C:"}, {Mount: "D:"}}}
	if diff := cmp.Diff(want, dst); diff != "" {
		t.Errorf("merge (-want +got):\n%s", diff)
	}
}

func TestEncode(t *testing.T) {
	inv := func(packages int) *wire.Inventory {
		i := &wire.Inventory{Protocol: wire.ProtocolVersion, PCID: "pc1", CollectedAt: time.Now().UTC()}
		for range packages {
			i.Software = append(i.Software, wire.Package{Name: strings.Repeat("n", 100), Version: "1.0", Publisher: "Some Publisher"})
		}
		i.Hotfixes = []wire.Hotfix{{ID: "KB1"}, {ID: "KB2"}}
		return i
	}
	small := inv(3)
	b, err := Encode(small, 0)
	if err != nil || small.Truncated || len(small.Software) != 3 {
		t.Fatalf("Encode(small) = %d bytes, %v, truncated %v", len(b), err, small.Truncated)
	}

	big := inv(2000) // ~280 kB
	const limit = 64 << 10
	b, err = Encode(big, limit)
	if err != nil {
		t.Fatal(err)
	}
	var got wire.Inventory
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(b) > limit || !got.Truncated || len(got.Software) == 0 || len(got.Software) >= 2000 || len(got.Hotfixes) != 2 {
		t.Errorf("Encode(big, %d) = %d bytes, truncated %v, %d packages, %d hotfixes", limit, len(b), got.Truncated, len(got.Software), len(got.Hotfixes))
	}
	if len(got.Software) < 300 {
		t.Errorf("Encode cut too much: %d packages left in %d bytes", len(got.Software), len(b))
	}

	if _, err := Encode(inv(1), 10); err == nil {
		t.Error("Encode into 10 bytes succeeded")
	}
	bad := inv(1)
	bad.PCID = "a.b"
	if _, err := Encode(bad, 0); err == nil || !strings.Contains(err.Error(), "pc_id") {
		t.Errorf("Encode(bad pc_id) = %v", err)
	}
}

// TestCollect_ThisMachine collects the real inventory of the machine the
// test runs on: it must be valid and name its OS, whatever else fails.
func TestCollect_ThisMachine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	inv, err := Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inv.PCID = "test-pc"
	b, err := Encode(&inv, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collected in %v: %d bytes, os %+v, hardware %+v, %d disks, %d nics, %d packages, errors %q",
		time.Since(start), len(b), inv.OS, inv.Hardware, len(inv.Disks), len(inv.Network), len(inv.Software), inv.Errors)
	t.Logf("first packages: %+v", inv.Software[:min(5, len(inv.Software))])
	if inv.OS.Name == "" || inv.Protocol != wire.ProtocolVersion || inv.CollectedAt.IsZero() {
		t.Errorf("incomplete inventory: %+v", inv)
	}
}
