package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func validInventory() Inventory {
	return Inventory{
		Protocol: ProtocolVersion, PCID: "pc1", Hostname: "pc1.corp.example",
		CollectedAt: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC),
		OS: OSInfo{Name: "Microsoft Windows 11 Pro", Version: "10.0.22631", Release: "23H2", Build: "22631.2715", Kind: KindWorkstation,
			InstallDate: time.Date(2023, 11, 5, 11, 34, 56, 0, time.UTC), LastBoot: time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)},
		Hardware: Hardware{Manufacturer: "LENOVO", Model: "20XW0026GE", SerialNumber: "PF2ABCDE", BIOSVersion: "N32ET86W (1.62 )",
			CPUModel: "11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz", CPUCores: 4, CPULogical: 8, RAMBytes: 16 << 30},
		Disks:    []Disk{{Mount: "C:", Label: "OS", FS: "NTFS", SizeBytes: 511 << 30, FreeBytes: 200 << 30}},
		Network:  []NIC{{Name: "Intel(R) Wi-Fi 6 AX201 160MHz", MAC: "a4:c3:f0:01:02:03", IPv4: []string{"192.168.1.23"}, IPv6: []string{"fe80::1c2d:3e4f:5a6b:7c8d"}}},
		Software: []Package{{Name: "7-Zip 23.01 (x64)", Version: "23.01", Publisher: "Igor Pavlov", InstallDate: "2023-11-05"}},
		Hotfixes: []Hotfix{{ID: "KB5031356", InstalledOn: "2023-11-15"}},
	}
}

func TestInventory_ValidateAcceptsAValidReportUnchanged(t *testing.T) {
	inv := validInventory()
	if err := inv.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	if diff := cmp.Diff(validInventory(), inv); diff != "" {
		t.Errorf("Validate changed a valid report (-want +got):\n%s", diff)
	}
}

func TestInventory_ValidateRejects(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Inventory)
		wantErr string
	}{
		{"no protocol", func(i *Inventory) { i.Protocol = 0 }, "protocol"},
		{"bad pc_id", func(i *Inventory) { i.PCID = "pc1.corp" }, "pc_id"},
		{"empty pc_id", func(i *Inventory) { i.PCID = "" }, "pc_id"},
		{"no collected_at", func(i *Inventory) { i.CollectedAt = time.Time{} }, "collected_at"},
		{"negative cores", func(i *Inventory) { i.Hardware.CPUCores = -1 }, "cpu_cores"},
		{"absurd logical CPUs", func(i *Inventory) { i.Hardware.CPULogical = MaxCPUs + 1 }, "cpu_logical"},
		{"negative RAM", func(i *Inventory) { i.Hardware.RAMBytes = -5 }, "ram_bytes"},
		{"negative disk size", func(i *Inventory) { i.Disks[0].SizeBytes = -1 }, "size_bytes"},
		{"negative free space", func(i *Inventory) { i.Disks[0].FreeBytes = -1 }, "free_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := validInventory()
			tt.mutate(&inv)
			err := inv.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
}

func TestInventory_ValidateRepairs(t *testing.T) {
	long := strings.Repeat("日", 100) // 300 bytes
	tests := []struct {
		name          string
		mutate        func(*Inventory)
		check         func(*Inventory) string // "" when fine
		wantTruncated bool
	}{
		{"long string cut on a character boundary", func(i *Inventory) { i.Software[0].Name = long },
			func(i *Inventory) string {
				n := i.Software[0].Name
				if len(n) > MaxInventoryText || !utf8.ValidString(n) || !strings.HasPrefix(long, n) || len(n) < MaxInventoryText-3 {
					return "name = " + n
				}
				return ""
			}, true},
		{"invalid UTF-8 replaced, space trimmed", func(i *Inventory) { i.Hardware.Model = " Think\xffPad \r\n" },
			func(i *Inventory) string {
				if i.Hardware.Model != "Think\uFFFDPad" {
					return "model = " + i.Hardware.Model
				}
				return ""
			}, false},
		{"unknown kind cleared", func(i *Inventory) { i.OS.Kind = "toaster" },
			func(i *Inventory) string {
				if i.OS.Kind != "" {
					return "kind = " + i.OS.Kind
				}
				return ""
			}, false},
		{"free space above the size clamped", func(i *Inventory) { i.Disks[0].FreeBytes = i.Disks[0].SizeBytes + 1 },
			func(i *Inventory) string {
				if i.Disks[0].FreeBytes != i.Disks[0].SizeBytes {
					return "free above size"
				}
				return ""
			}, false},
		{"disk without a mount dropped", func(i *Inventory) { i.Disks = append(i.Disks, Disk{FS: "NTFS", SizeBytes: 1}) },
			func(i *Inventory) string {
				if len(i.Disks) != 1 {
					return "disks kept"
				}
				return ""
			}, false},
		{"nameless package and hotfix dropped", func(i *Inventory) {
			i.Software = append(i.Software, Package{Version: "1.0"}, Package{Name: "  "})
			i.Hotfixes = append(i.Hotfixes, Hotfix{InstalledOn: "2023-01-01"})
		}, func(i *Inventory) string {
			if len(i.Software) != 1 || len(i.Hotfixes) != 1 {
				return "nameless entries kept"
			}
			return ""
		}, false},
		{"bad dates cleared", func(i *Inventory) { i.Software[0].InstallDate = "20231105"; i.Hotfixes[0].InstalledOn = "11/5/2023" },
			func(i *Inventory) string {
				if i.Software[0].InstallDate != "" || i.Hotfixes[0].InstalledOn != "" {
					return "dates kept"
				}
				return ""
			}, false},
		{"addresses: wrong family, garbage and duplicates dropped, canonical form", func(i *Inventory) {
			i.Network[0].IPv4 = []string{"10.0.0.1", "fe80::1", "not an ip", " 10.0.0.1 ", "::ffff:10.0.0.2"}
			i.Network[0].IPv6 = []string{"FE80::0001", "10.0.0.3", "2001:db8::1"}
			i.Network[0].MAC = "A4:C3:F0:01:02:03"
		}, func(i *Inventory) string {
			n := i.Network[0]
			if !cmp.Equal(n.IPv4, []string{"10.0.0.1"}) || !cmp.Equal(n.IPv6, []string{"fe80::1", "2001:db8::1"}) || n.MAC != "a4:c3:f0:01:02:03" {
				return cmp.Diff(validInventory().Network[0], n)
			}
			return ""
		}, false},
		{"too many packages cut", func(i *Inventory) {
			i.Software = make([]Package, MaxPackages+10)
			for k := range i.Software {
				i.Software[k].Name = "p"
			}
		}, func(i *Inventory) string {
			if len(i.Software) != MaxPackages {
				return "software not cut"
			}
			return ""
		}, true},
		{"too many errors cut, long errors cut", func(i *Inventory) {
			for range MaxInventoryErrors + 1 {
				i.Errors = append(i.Errors, "software: "+strings.Repeat("x", MaxInventoryError))
			}
		}, func(i *Inventory) string {
			if len(i.Errors) != MaxInventoryErrors || len(i.Errors[0]) != MaxInventoryError {
				return "errors not cut"
			}
			return ""
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := validInventory()
			tt.mutate(&inv)
			if err := inv.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want a repair without error", err)
			}
			if msg := tt.check(&inv); msg != "" {
				t.Error(msg)
			}
			if inv.Truncated != tt.wantTruncated {
				t.Errorf("Truncated = %v, want %v", inv.Truncated, tt.wantTruncated)
			}
		})
	}
}

func TestInventory_Failed(t *testing.T) {
	inv := Inventory{Errors: []string{"software: registry: access denied", "hardware: Win32_BIOS: timeout"}}
	for section, want := range map[string]bool{SectionSoftware: true, SectionHardware: true, SectionOS: false, "soft": false} {
		if got := inv.Failed(section); got != want {
			t.Errorf("Failed(%q) = %v, want %v", section, got, want)
		}
	}
}

func TestInventorySubject(t *testing.T) {
	s := InventorySubject("pc1")
	if s != "inventory.pc1" || !matches(InventoryWildcard, s) || !matches(StreamInventorySubjects, s) {
		t.Errorf("InventorySubject(pc1) = %q; must match %q and %q", s, InventoryWildcard, StreamInventorySubjects)
	}
}

func TestInventory_JSONShape(t *testing.T) {
	b, err := json.Marshal(validInventory())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"pc_id":"pc1"`, `"collected_at":"2026-11-28T09:00:00Z"`, `"install_date":"2023-11-05T11:34:56Z"`,
		`"last_boot":`, `"serial_number":`, `"bios_version":`, `"cpu_logical":8`, `"ram_bytes":17179869184`, `"size_bytes":`,
		`"free_bytes":`, `"ipv4":["192.168.1.23"]`, `"installed_on":"2023-11-15"`, `"kind":"workstation"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("encoding lacks %s:\n%s", key, b)
		}
	}
	// Unknown fields from a newer agent are ignored; missing optional ones stay zero.
	var got Inventory
	if err := json.Unmarshal([]byte(`{"protocol":9,"pc_id":"pc1","collected_at":"2026-11-28T09:00:00Z","os":{"name":"x","future":1},"gpu":"y"}`), &got); err != nil {
		t.Fatal(err)
	}
	if got.OS.Name != "x" || !got.OS.LastBoot.IsZero() || got.Disks != nil {
		t.Errorf("lenient decode = %+v", got)
	}
	// An empty report stays small: no empty lists or zero times.
	b, _ = json.Marshal(Inventory{Protocol: 1, PCID: "pc1", CollectedAt: time.Unix(0, 0).UTC()})
	if want := `{"protocol":1,"pc_id":"pc1","collected_at":"1970-01-01T00:00:00Z","os":{},"hardware":{}}`; string(b) != want {
		t.Errorf("empty report = %s, want %s", b, want)
	}
}
