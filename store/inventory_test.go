package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/store/storetest"
)

func inventory(pc string, software ...string) wire.Inventory {
	inv := wire.Inventory{Protocol: wire.ProtocolVersion, PCID: pc, CollectedAt: t0,
		OS:       wire.OSInfo{Name: "Microsoft Windows 11 Pro", Version: "10.0.22631", Build: "22631.2715", Kind: wire.KindWorkstation, LastBoot: t0.Add(-time.Hour)},
		Hardware: wire.Hardware{Manufacturer: "LENOVO", Model: "20XW", CPUModel: "Intel Core i7", CPUCores: 8, CPULogical: 16, RAMBytes: 16 << 30},
		Disks:    []wire.Disk{{Mount: "C:", FS: "NTFS", SizeBytes: 500 << 30, FreeBytes: 100 << 30}},
		Network:  []wire.NIC{{Name: "Ethernet", MAC: "00:15:5d:01:02:03", IPv4: []string{"10.1.2.3"}, IPv6: []string{"fe80::1"}}},
		Hotfixes: []wire.Hotfix{{ID: "KB5031356", InstalledOn: "2026-11-01"}},
	}
	for _, s := range software {
		inv.Software = append(inv.Software, wire.Package{Name: s, Version: "1.0", Publisher: "ACME"})
	}
	return inv
}

func TestInventory(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		mustUpsert(t, s, agent("pc1", t0), agent("pc2", t0))
		inv := inventory("pc1", "Google Chrome", "7-Zip 23.01", "Mozilla Firefox")
		if err := s.PutInventories(ctx, []wire.Inventory{inv, inventory("pc2", "7-Zip 23.01")}, t0); err != nil {
			t.Fatal(err)
		}
		got, err := s.AgentInventory(ctx, "pc1")
		if err != nil {
			t.Fatal(err)
		}
		want := inv
		want.Protocol = 0                                                                 // not stored
		want.Software = []wire.Package{inv.Software[1], inv.Software[0], inv.Software[2]} // by name
		if diff := cmp.Diff(want, got.Inventory); diff != "" {
			t.Errorf("inventory (-want +got):\n%s", diff)
		}
		for _, tc := range []struct {
			f    store.AgentFilter
			want []string
		}{
			{store.AgentFilter{Software: "zip"}, []string{"pc1", "pc2"}},
			{store.AgentFilter{Software: "CHROME"}, []string{"pc1"}},
			{store.AgentFilter{Q: "10.1.2"}, []string{"pc1", "pc2"}},
			{store.AgentFilter{Q: "10.1.2.30"}, nil},
			{store.AgentFilter{Version: "1.0.0"}, []string{"pc1", "pc2"}},
			{store.AgentFilter{Version: "2.0"}, nil},
		} {
			as, _, err := s.Agents(ctx, tc.f)
			var ids []string
			for _, a := range as {
				ids = append(ids, a.PCID)
			}
			if err != nil || fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Errorf("Agents(%+v) = %v, %v; want %v", tc.f, ids, err, tc.want)
			}
		}
		// A failed software collector keeps the old list; others are replaced.
		next := inventory("pc1")
		next.Errors = []string{"software: registry: access denied"}
		next.Disks = nil
		if err := s.PutInventories(ctx, []wire.Inventory{next}, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, _ = s.AgentInventory(ctx, "pc1")
		if len(got.Software) != 3 || len(got.Disks) != 0 || len(got.Errors) != 1 || !got.ReceivedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("after a failed software collector: software %d, disks %d, errors %v", len(got.Software), len(got.Disks), got.Errors)
		}
		if sw, _ := s.AgentSoftware(ctx, "pc1", "fire"); len(sw) != 1 || sw[0].Name != "Mozilla Firefox" {
			t.Errorf("software search = %+v", sw)
		}
		byOS, byVersion, err := s.FleetBreakdown(ctx)
		if err != nil || len(byOS) != 1 || byOS[0] != (store.Count{Value: "Microsoft Windows 11 Pro", N: 2}) || byVersion[0].N != 2 {
			t.Errorf("breakdown = %v %v, %v", byOS, byVersion, err)
		}
	})
}

func TestAgents_Sort(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a, b, c := agent("pc-a", t0.Add(2*time.Minute)), agent("pc-b", t0), agent("pc-c", t0.Add(time.Minute))
		a.Hostname, b.Hostname, c.Hostname = "Zeta", "alpha", "Mid"
		mustUpsert(t, s, a, b, c)
		for sort, want := range map[string]string{"": "[pc-a pc-b pc-c]", "-pc": "[pc-c pc-b pc-a]", "hostname": "[pc-b pc-c pc-a]",
			"-last_seen": "[pc-a pc-c pc-b]", "last_seen": "[pc-b pc-c pc-a]"} {
			as, _, err := s.Agents(ctx, store.AgentFilter{Sort: sort})
			var ids []string
			for _, x := range as {
				ids = append(ids, x.PCID)
			}
			if err != nil || fmt.Sprint(ids) != want {
				t.Errorf("sort %q = %v, %v; want %s", sort, ids, err, want)
			}
		}
		if _, _, err := s.Agents(ctx, store.AgentFilter{Sort: "secret"}); err == nil {
			t.Error("an unknown sort column was accepted")
		}
	})
}

func TestRecentFailures(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if err := s.CreateExecution(ctx, execution("e1", t0), []string{"pc1", "pc2", "pc3", "pc4"}); err != nil {
			t.Fatal(err)
		}
		rs := []wire.Result{
			{Protocol: wire.ProtocolVersion, ExecID: "e1", PCID: "pc1", State: wire.StateFailed, ExitCode: exit(1), StartedAt: t0, FinishedAt: t0.Add(time.Minute)},
			{Protocol: wire.ProtocolVersion, ExecID: "e1", PCID: "pc2", State: wire.StateTimedOut, StartedAt: t0, FinishedAt: t0.Add(2 * time.Minute)},
			{Protocol: wire.ProtocolVersion, ExecID: "e1", PCID: "pc3", State: wire.StateSucceeded, ExitCode: exit(0), StartedAt: t0, FinishedAt: t0.Add(time.Minute)},
			{Protocol: wire.ProtocolVersion, ExecID: "e1", PCID: "pc4", State: wire.StateFailed, ExitCode: exit(2), StartedAt: t0.Add(-48 * time.Hour), FinishedAt: t0.Add(-47 * time.Hour)},
		}
		if _, err := s.ApplyResults(ctx, rs, t0.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, total, err := s.RecentFailures(ctx, t0.Add(-24*time.Hour), 10)
		var pcs []string
		for _, r := range got {
			pcs = append(pcs, r.PCID)
		}
		if err != nil || total != 2 || fmt.Sprint(pcs) != "[pc2 pc1]" {
			t.Errorf("recent failures = %v (total %d), %v; want pc2 then pc1", pcs, total, err)
		}
	})
}

// TestInventory_RegistryFallback: a PC whose WMI is broken reports the OS
// it read from the registry. The server keeps that OS — for a PC it has
// never seen and for one it knows — while the sections that really failed
// keep what was stored before. Older agents mark such an OS section
// failed; the fields it still carries are kept too.
func TestInventory_RegistryFallback(t *testing.T) {
	// What the agent reads from the CurrentVersion key without WMI (under
	// Wine with WMI disabled); the boot comes from the uptime.
	registryOS := wire.OSInfo{Name: "Windows 10 Pro", Version: "10.0.19043", Build: "19043", Kind: wire.KindWorkstation,
		InstallDate: time.Date(2010, 5, 8, 6, 15, 54, 0, time.UTC), LastBoot: t0.Add(-10 * time.Minute)}
	wmiErrors := []string{
		"hardware: Win32_ComputerSystem: error 2147614729", "hardware: Win32_Processor: error 2147614729",
		"hardware: Win32_BIOS: error 2147614729", "disks: Win32_LogicalDisk: error 2147614729",
	}
	broken := func(pc string, osError string) wire.Inventory {
		return wire.Inventory{Protocol: wire.ProtocolVersion, PCID: pc, CollectedAt: t0.Add(time.Hour), OS: registryOS,
			Errors: append([]string{osError}, wmiErrors...)}
	}
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		mustUpsert(t, s, agent("new-pc", t0), agent("known-pc", t0), agent("old-agent", t0))
		before := inventory("known-pc")
		if err := s.PutInventories(ctx, []wire.Inventory{before, inventory("old-agent")}, t0); err != nil {
			t.Fatal(err)
		}
		fallback := "os (from the registry): Win32_OperatingSystem: error 2147614729"
		old := broken("old-agent", "os: Win32_OperatingSystem: error 2147614729")
		old.OS.LastBoot = time.Time{} // older agents had no boot time without WMI
		if err := s.PutInventories(ctx, []wire.Inventory{broken("new-pc", fallback), broken("known-pc", fallback), old}, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			pc       string
			wantOS   wire.OSInfo
			wantHW   wire.Hardware
			wantDisk int
		}{
			{"new-pc", registryOS, wire.Hardware{}, 0},
			{"known-pc", registryOS, before.Hardware, 1},
			// Fields the failed section lacks (the last boot) keep their
			// stored value; the others are the registry's.
			{"old-agent", func() wire.OSInfo { o := registryOS; o.LastBoot = before.OS.LastBoot; return o }(), before.Hardware, 1},
		}
		for _, tt := range tests {
			got, err := s.AgentInventory(ctx, tt.pc)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantOS, got.OS); diff != "" {
				t.Errorf("%s: OS (-want +got):\n%s", tt.pc, diff)
			}
			if diff := cmp.Diff(tt.wantHW, got.Hardware); diff != "" {
				t.Errorf("%s: hardware (-want +got):\n%s", tt.pc, diff)
			}
			if len(got.Disks) != tt.wantDisk || len(got.Errors) != 1+len(wmiErrors) {
				t.Errorf("%s: %d disks, errors %q; want %d disks and every error kept", tt.pc, len(got.Disks), got.Errors, tt.wantDisk)
			}
		}
		byOS, _, err := s.FleetBreakdown(ctx)
		if err != nil || len(byOS) != 1 || byOS[0] != (store.Count{Value: "Windows 10 Pro", N: 3}) {
			t.Errorf("breakdown by OS = %v, %v; want all three on the registry's Windows 10 Pro", byOS, err)
		}
	})
}

// TestInventory_PartialHardware: one failed WMI class of the hardware
// section (the BIOS) does not discard what the other classes read.
func TestInventory_PartialHardware(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		mustUpsert(t, s, agent("pc1", t0))
		before := inventory("pc1")
		before.Hardware.BIOSVersion, before.Hardware.SerialNumber = "N3HET82W", "PF2ABCDE"
		if err := s.PutInventories(ctx, []wire.Inventory{before}, t0); err != nil {
			t.Fatal(err)
		}
		next := inventory("pc1")
		next.Hardware.CPUModel, next.Hardware.RAMBytes = "Intel Core i7-1365U", 32<<30
		next.Errors = []string{"hardware: Win32_BIOS: timed out after 45s"}
		if err := s.PutInventories(ctx, []wire.Inventory{next}, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err := s.AgentInventory(ctx, "pc1")
		if err != nil {
			t.Fatal(err)
		}
		want := next.Hardware
		want.BIOSVersion, want.SerialNumber = before.Hardware.BIOSVersion, before.Hardware.SerialNumber
		if diff := cmp.Diff(want, got.Hardware); diff != "" {
			t.Errorf("hardware (-want +got):\n%s", diff)
		}
	})
}

// TestAgentAddresses: each PC's addresses for the agents list, IPv4
// first, without loopback or link-local ones; PCs without an inventory
// have none.
func TestAgentAddresses(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		mustUpsert(t, s, agent("pc1", t0), agent("pc2", t0), agent("pc3", t0))
		inv := inventory("pc1")
		inv.Network = []wire.NIC{
			{Name: "Wi-Fi", IPv4: []string{"192.168.1.23", "169.254.3.4"}, IPv6: []string{"fe80::1", "2001:db8::23"}},
			{Name: "Ethernet", IPv4: []string{"10.1.2.3"}},
			{Name: "lo", IPv4: []string{"127.0.0.1"}, IPv6: []string{"::1"}},
		}
		if err := s.PutInventories(ctx, []wire.Inventory{inv, inventory("pc2")}, t0); err != nil {
			t.Fatal(err)
		}
		got, err := s.AgentAddresses(ctx, []string{"pc1", "pc2", "pc3"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{"pc1": {"10.1.2.3", "192.168.1.23", "2001:db8::23"}, "pc2": {"10.1.2.3"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("AgentAddresses (-want +got):\n%s", diff)
		}
	})
}
