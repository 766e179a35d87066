package inventory

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

func sp(s string) *string    { return &s }
func u32(n uint32) *uint32   { return &n }
func u64(n uint64) *uint64   { return &n }
func utc(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }

func TestWMIQuery_ExplicitColumns(t *testing.T) {
	tests := []struct {
		name string
		dst  any
		class, where,
		want string
	}{
		{"os", &[]win32OperatingSystem{}, "Win32_OperatingSystem", "",
			"SELECT Caption, Version, BuildNumber, ProductType, InstallDate, LastBootUpTime FROM Win32_OperatingSystem"},
		{"disks", &[]win32LogicalDisk{}, "Win32_LogicalDisk", "DriveType = 3",
			"SELECT DeviceID, VolumeName, FileSystem, Size, FreeSpace FROM Win32_LogicalDisk WHERE DriveType = 3"},
		{"nics", &[]win32NetworkAdapterConfiguration{}, "Win32_NetworkAdapterConfiguration", "IPEnabled = TRUE",
			"SELECT Description, MACAddress, IPAddress FROM Win32_NetworkAdapterConfiguration WHERE IPEnabled = TRUE"},
		{"computer system", &[]win32ComputerSystem{}, "Win32_ComputerSystem", "",
			"SELECT Manufacturer, Model, TotalPhysicalMemory, NumberOfLogicalProcessors FROM Win32_ComputerSystem"},
		{"processor", &[]win32Processor{}, "Win32_Processor", "", "SELECT Name, NumberOfCores, NumberOfLogicalProcessors FROM Win32_Processor"},
		{"bios", &[]win32BIOS{}, "Win32_BIOS", "", "SELECT SMBIOSBIOSVersion, Version, SerialNumber FROM Win32_BIOS"},
		{"hotfixes", &[]win32QuickFixEngineering{}, "Win32_QuickFixEngineering", "", "SELECT HotFixID, InstalledOn FROM Win32_QuickFixEngineering"},
	}
	for _, tt := range tests {
		got := wmiQuery(tt.dst, tt.class, tt.where)
		if got != tt.want || strings.Contains(got, "*") {
			t.Errorf("%s: wmiQuery = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseCIMDateTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"20231105123456.000000+060", utc("2023-11-05T11:34:56Z"), true},
		{"20231105123456.500000-300", utc("2023-11-05T17:34:56.5Z"), true},
		{"20231105123456.000000+000", utc("2023-11-05T12:34:56Z"), true},
		{"20231105123456.000000+***", utc("2023-11-05T12:34:56Z"), true}, // unknown offset
		{"20231105123456", utc("2023-11-05T12:34:56Z"), true},            // no fraction, no offset
		{" 20231105123456.000000+060 ", utc("2023-11-05T11:34:56Z"), true},
		{"2023110512****.******+060", time.Time{}, false},
		{"16010101000000.000000+000", time.Time{}, false}, // WMI's "none"
		{"20230231000000.000000+000", time.Time{}, false}, // 31 February
		{"20231305000000.000000+000", time.Time{}, false},
		{"", time.Time{}, false},
		{"garbage", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := parseCIMDateTime(tt.in)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseCIMDateTime(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestOSFromWindows(t *testing.T) {
	real := win32OperatingSystem{Caption: sp("Microsoft Windows 11 Pro "), Version: sp("10.0.22631"), BuildNumber: sp("22631"),
		ProductType: u32(1), InstallDate: sp("20231105123456.000000+060"), LastBootUpTime: sp("20261127070000.000000+000")}
	regCV := winCurrentVersion{ProductName: "Windows 10 Pro", DisplayVersion: "23H2", CurrentBuild: "22631", UBR: u64(2715),
		Major: u64(10), Minor: u64(0), InstallationType: "Client", InstallDate: u64(1699184096)}
	tests := []struct {
		name string
		os   *win32OperatingSystem
		cv   winCurrentVersion
		want wire.OSInfo
	}{
		{"real Windows 11: WMI caption wins over the registry's, UBR appended", &real, regCV, wire.OSInfo{
			Name: "Microsoft Windows 11 Pro", Version: "10.0.22631", Release: "23H2", Build: "22631.2715", Kind: wire.KindWorkstation,
			InstallDate: utc("2023-11-05T11:34:56Z"), LastBoot: utc("2026-11-27T07:00:00Z")}},
		{"Wine 10: no DisplayVersion, no UBR", &win32OperatingSystem{Caption: sp("Microsoft Windows 10 Pro"), Version: sp("10.0.19043"),
			BuildNumber: sp("19043"), ProductType: u32(1), LastBootUpTime: sp("20261128080000.000000+000")},
			winCurrentVersion{ProductName: "Windows 10 Pro", CurrentBuild: "19043"},
			wire.OSInfo{Name: "Microsoft Windows 10 Pro", Version: "10.0.19043", Build: "19043", Kind: wire.KindWorkstation, LastBoot: utc("2026-11-28T08:00:00Z")}},
		{"server, domain controller", &win32OperatingSystem{Caption: sp("Microsoft Windows Server 2022 Standard"), ProductType: u32(2)}, winCurrentVersion{},
			wire.OSInfo{Name: "Microsoft Windows Server 2022 Standard", Kind: wire.KindServer}},
		{"WMI failed: registry only (Windows 11 says 10 there)", nil, regCV, wire.OSInfo{Name: "Windows 11 Pro", Version: "10.0.22631", Release: "23H2",
			Build: "22631.2715", Kind: wire.KindWorkstation, InstallDate: utc("2023-11-05T11:34:56Z")}},
		{"all NULL", &win32OperatingSystem{}, winCurrentVersion{}, wire.OSInfo{}},
		{"Wine 8: no WMI property readable, Windows 7 registry", &win32OperatingSystem{},
			winCurrentVersion{ProductName: "Microsoft Windows 7", CurrentVersion: "6.1", CurrentBuild: "7601", InstallDate: u64(1273299354)},
			wire.OSInfo{Name: "Microsoft Windows 7", Version: "6.1.7601", Build: "7601", InstallDate: utc("2010-05-08T06:15:54Z")}},
		{"old Windows: ReleaseId, Server Core", &win32OperatingSystem{InstallDate: sp("junk")},
			winCurrentVersion{ReleaseID: "1809", InstallationType: "Server Core"}, wire.OSInfo{Release: "1809", Kind: wire.KindServer}},
		{"UBR of another build is not appended", &win32OperatingSystem{BuildNumber: sp("19045")},
			winCurrentVersion{CurrentBuild: "19044", UBR: u64(1)}, wire.OSInfo{Build: "19045"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, osFromWindows(tt.os, tt.cv)); diff != "" {
			t.Errorf("%s: osFromWindows (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestHardwareFromWMI(t *testing.T) {
	tests := []struct {
		name  string
		cs    []win32ComputerSystem
		cpus  []win32Processor
		bios  []win32BIOS
		want  wire.Hardware
		notes string
	}{
		{"Wine 10 (windows.md e6)",
			[]win32ComputerSystem{{Manufacturer: sp("The Wine Project"), Model: sp("Wine"), TotalPhysicalMemory: sp("25276022784"), NumberOfLogicalProcessors: u32(2)}},
			[]win32Processor{{Name: sp("AMD EPYC 7763 64-Core Processor                "), NumberOfCores: u32(2), NumberOfLogicalProcessors: u32(2)}},
			[]win32BIOS{{SMBIOSBIOSVersion: sp("Wine"), SerialNumber: sp("Serial number")}},
			wire.Hardware{Manufacturer: "The Wine Project", Model: "Wine", BIOSVersion: "Wine", CPUModel: "AMD EPYC 7763 64-Core Processor",
				CPUCores: 2, CPULogical: 2, RAMBytes: 25276022784}, ""},
		{"Wine in a chroot without /sys: zero cores stay unknown, the system's logical count is kept",
			[]win32ComputerSystem{{NumberOfLogicalProcessors: u32(2)}},
			[]win32Processor{{Name: sp("CPU"), NumberOfCores: u32(0), NumberOfLogicalProcessors: u32(0)}},
			[]win32BIOS{{SerialNumber: sp("0")}},
			wire.Hardware{CPUModel: "CPU", CPULogical: 2}, ""},
		{"two sockets, padded names, OEM placeholders",
			[]win32ComputerSystem{{Manufacturer: sp("System manufacturer"), Model: sp("To be filled by O.E.M."), TotalPhysicalMemory: sp("not a number")}},
			[]win32Processor{
				{Name: sp("Intel(R) Xeon(R) CPU           E5-2680 v4 @ 2.40GHz"), NumberOfCores: u32(14), NumberOfLogicalProcessors: u32(28)},
				{Name: sp("Intel(R) Xeon(R) CPU           E5-2680 v4 @ 2.40GHz"), NumberOfCores: u32(14), NumberOfLogicalProcessors: u32(28)}},
			[]win32BIOS{{Version: sp("DELL   - 1072009"), SerialNumber: sp("  7XK2L13 ")}},
			wire.Hardware{CPUModel: "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", CPUCores: 28, CPULogical: 56, SerialNumber: "7XK2L13", BIOSVersion: "DELL - 1072009"}, ""},
		{"everything NULL or empty", []win32ComputerSystem{{}}, []win32Processor{{}}, []win32BIOS{{SerialNumber: sp("")}}, wire.Hardware{}, ""},
		{"no rows", nil, nil, nil, wire.Hardware{}, ""},
	}
	for _, tt := range tests {
		// The collectors run in this order and are merged like this.
		var inv wire.Inventory
		merge(&inv, &wire.Inventory{Hardware: hardwareFromComputerSystem(tt.cs)})
		merge(&inv, &wire.Inventory{Hardware: hardwareFromProcessors(tt.cpus)})
		merge(&inv, &wire.Inventory{Hardware: hardwareFromBIOS(tt.bios)})
		if diff := cmp.Diff(tt.want, inv.Hardware); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestDisksFromWMI(t *testing.T) {
	rows := []win32LogicalDisk{
		{DeviceID: sp("Z:"), FileSystem: sp("NTFS"), Size: sp("104857600000"), FreeSpace: sp("52428800000"), VolumeName: sp("")}, // Wine: the host's /
		{DeviceID: sp("C:"), FileSystem: sp("NTFS"), Size: sp("511705088000"), FreeSpace: sp("214748364800"), VolumeName: sp("OS")},
		{DeviceID: sp("D:"), FileSystem: nil, Size: nil, FreeSpace: nil},                                    // BitLocker-locked: NULLs
		{DeviceID: sp("E:"), FileSystem: sp("exFAT"), Size: sp("18446744073709551615"), FreeSpace: sp("x")}, // beyond int64, garbage
		{DeviceID: nil, Size: sp("1")},
	}
	want := []wire.Disk{
		{Mount: "C:", Label: "OS", FS: "NTFS", SizeBytes: 511705088000, FreeBytes: 214748364800},
		{Mount: "D:"},
		{Mount: "E:", FS: "exFAT"},
		{Mount: "Z:", FS: "NTFS", SizeBytes: 104857600000, FreeBytes: 52428800000},
	}
	if diff := cmp.Diff(want, disksFromWMI(rows)); diff != "" {
		t.Errorf("disksFromWMI (-want +got):\n%s", diff)
	}
}

func TestNICsFromWMI(t *testing.T) {
	rows := []win32NetworkAdapterConfiguration{
		{Description: sp("Intel(R) Ethernet Connection I219-LM"), MACAddress: sp("A4:4C:C8:01:02:03"),
			IPAddress: []string{"192.168.1.23", "fe80::1c2d:3e4f:5a6b:7c8d", "2001:DB8::23"}},
		{Description: sp("Hyper-V Virtual Ethernet Adapter"), MACAddress: sp("00-15-5D-AA-BB-CC"), IPAddress: nil}, // NULL array
		{Description: sp("WAN Miniport"), MACAddress: nil, IPAddress: nil},                                         // nothing: dropped
		{Description: sp("odd"), MACAddress: sp("not a mac"), IPAddress: []string{"10.0.0.5", "bogus"}},
	}
	want := []wire.NIC{
		{Name: "Intel(R) Ethernet Connection I219-LM", MAC: "a4:4c:c8:01:02:03", IPv4: []string{"192.168.1.23"}, IPv6: []string{"fe80::1c2d:3e4f:5a6b:7c8d", "2001:db8::23"}},
		{Name: "Hyper-V Virtual Ethernet Adapter", MAC: "00:15:5d:aa:bb:cc"},
		{Name: "odd", IPv4: []string{"10.0.0.5"}},
	}
	if diff := cmp.Diff(want, nicsFromWMI(rows)); diff != "" {
		t.Errorf("nicsFromWMI (-want +got):\n%s", diff)
	}
}

func TestHotfixesFromWMI(t *testing.T) {
	rows := []win32QuickFixEngineering{
		{HotFixID: sp("KB5031356"), InstalledOn: sp("11/15/2023")},
		{HotFixID: sp("KB5030841"), InstalledOn: sp("20231010")},
		{HotFixID: sp("KB5012170"), InstalledOn: sp("01d9b6e3c4a5f000")}, // FILETIME in hex
		{HotFixID: sp("KB5031356"), InstalledOn: nil},                    // duplicate
		{HotFixID: sp("kb5000001"), InstalledOn: sp("")},
		{HotFixID: sp("File 1"), InstalledOn: sp("1/1/2010")},
		{HotFixID: nil, InstalledOn: sp("1/1/2010")},
		{HotFixID: sp("KB1"), InstalledOn: sp("13/45/2023")},
	}
	want := []wire.Hotfix{
		{ID: "KB1"},
		{ID: "KB5012170", InstalledOn: "2023-07-15"},
		{ID: "KB5030841", InstalledOn: "2023-10-10"},
		{ID: "KB5031356", InstalledOn: "2023-11-15"},
		{ID: "kb5000001"},
	}
	if diff := cmp.Diff(want, hotfixesFromWMI(rows)); diff != "" {
		t.Errorf("hotfixesFromWMI (-want +got):\n%s", diff)
	}
}

func TestSoftwareFromRegistry(t *testing.T) {
	entries := []uninstallEntry{
		// 64-bit view
		{DisplayName: "7-Zip 23.01 (x64)", DisplayVersion: "23.01", Publisher: "Igor Pavlov", InstallDate: "20231105"},
		{DisplayName: "Microsoft Edge", DisplayVersion: "119.0.2151.58", Publisher: "Microsoft Corporation", InstallDate: "20231120"},
		{DisplayName: "", DisplayVersion: "1.0"},                                                 // no DisplayName (an MSI component key)
		{DisplayName: "Microsoft Visual C++ 2022 X64 Minimum Runtime", SystemComponent: 1},       // hidden component
		{DisplayName: "Security Update for Microsoft Office", ParentKeyName: "Office16.PROPLUS"}, // belongs to Office
		{DisplayName: "Update for Windows (KB2504637)", ReleaseType: "Update"},
		// 32-bit view: the same Edge again (some installers register in both), one new entry
		{DisplayName: "microsoft edge", DisplayVersion: "119.0.2151.58", InstallDate: "bogus"},
		{DisplayName: "Notepad++ (32-bit x86)", DisplayVersion: "8.5.8", Publisher: "Notepad++ Team", InstallDate: "2023-10-02"},
		{DisplayName: "  Zoom  ", DisplayVersion: "5.16.6 (24664)", InstallDate: "11/5/2023"},
		// an older Edge is a different package
		{DisplayName: "Microsoft Edge", DisplayVersion: "118.0.2088.76"},
	}
	want := []wire.Package{
		{Name: "7-Zip 23.01 (x64)", Version: "23.01", Publisher: "Igor Pavlov", InstallDate: "2023-11-05"},
		{Name: "Microsoft Edge", Version: "118.0.2088.76"},
		{Name: "Microsoft Edge", Version: "119.0.2151.58", Publisher: "Microsoft Corporation", InstallDate: "2023-11-20"},
		{Name: "Notepad++ (32-bit x86)", Version: "8.5.8", Publisher: "Notepad++ Team", InstallDate: "2023-10-02"},
		{Name: "Zoom", Version: "5.16.6 (24664)", InstallDate: "2023-11-05"},
	}
	if diff := cmp.Diff(want, softwareFromRegistry(entries)); diff != "" {
		t.Errorf("softwareFromRegistry (-want +got):\n%s", diff)
	}
}

func TestDedupePackages_FillsMissingFields(t *testing.T) {
	got := dedupePackages([]wire.Package{{Name: "App", Version: "1"}, {Name: "APP", Version: "1", Publisher: "Acme", InstallDate: "2024-01-02"}})
	want := []wire.Package{{Name: "App", Version: "1", Publisher: "Acme", InstallDate: "2024-01-02"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dedupePackages (-want +got):\n%s", diff)
	}
}

func TestMeaningful(t *testing.T) {
	for in, want := range map[string]string{
		"LENOVO": "LENOVO", "  Dell   Inc. ": "Dell Inc.", "To Be Filled By O.E.M.": "", "Default string": "",
		"0": "", "00000000": "", "Serial number": "", "System Serial Number": "", "": "", "The Wine Project": "The Wine Project",
	} {
		if got := meaningful(in); got != want {
			t.Errorf("meaningful(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnreadable(t *testing.T) {
	tests := []struct {
		name string
		rows any
		want bool
	}{
		{"no rows", []win32BIOS{}, false},
		{"Wine 8: every property unreadable", []win32BIOS{{}, {}}, true},
		{"one field read", []win32BIOS{{}, {SerialNumber: sp("")}}, false},
		{"array read", []win32NetworkAdapterConfiguration{{IPAddress: []string{}}}, false},
	}
	for _, tt := range tests {
		if got := unreadable(tt.rows); got != tt.want {
			t.Errorf("%s: unreadable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWindowsVersion(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	tests := []struct {
		name string
		cv   winCurrentVersion
		want string
	}{
		{"Windows 11 (the registry says 10)", winCurrentVersion{ProductName: "Windows 10 Pro", DisplayVersion: "23H2", CurrentBuild: "22631", UBR: u64(2715)},
			"Windows 11 Pro 23H2 (build 22631.2715)"},
		{"Windows 10 22H2", winCurrentVersion{ProductName: "Windows 10 Enterprise", DisplayVersion: "22H2", CurrentBuild: "19045", UBR: u64(3693)},
			"Windows 10 Enterprise 22H2 (build 19045.3693)"},
		{"Windows 10 1809: ReleaseId", winCurrentVersion{ProductName: "Windows 10 Enterprise LTSC 2019", ReleaseID: "1809", CurrentBuild: "17763", UBR: u64(5329)},
			"Windows 10 Enterprise LTSC 2019 1809 (build 17763.5329)"},
		{"Server 2022", winCurrentVersion{ProductName: "Windows Server 2022 Standard", DisplayVersion: "21H2", CurrentBuild: "20348", UBR: u64(2113)},
			"Windows Server 2022 Standard 21H2 (build 20348.2113)"},
		{"Wine 10", winCurrentVersion{ProductName: "Windows 10 Pro", CurrentVersion: "6.3", CurrentBuild: "19043"}, "Windows 10 Pro (build 19043)"},
		{"Wine 8", winCurrentVersion{ProductName: "Microsoft Windows 7", CurrentVersion: "6.1", CurrentBuild: "7601"}, "Microsoft Windows 7 (build 7601)"},
		{"no product name", winCurrentVersion{CurrentBuild: "19045"}, ""},
	}
	for _, tt := range tests {
		if got := windowsVersion(tt.cv); got != tt.want {
			t.Errorf("%s: windowsVersion = %q, want %q", tt.name, got, tt.want)
		}
	}
}
