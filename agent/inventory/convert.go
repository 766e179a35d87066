package inventory

import (
	"math"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// This file maps what Windows reports (WMI rows, registry values) to wire
// types. It has no build tags so that it is tested on every OS, with
// fixtures of what real Windows and Wine return.
//
// The WMI structs hold only the columns that are used; wmiQuery selects
// exactly those. Every field is a pointer (nil where WMI says NULL or
// lacks the property, as Wine does for some). uint64 properties and CIM
// datetimes arrive as strings in WMI scripting; they are kept as strings
// and parsed here, so an odd value costs one field instead of the whole
// query.

type win32OperatingSystem struct {
	Caption        *string
	Version        *string
	BuildNumber    *string
	ProductType    *uint32 // 1 workstation, 2 domain controller, 3 server
	InstallDate    *string // CIM datetime
	LastBootUpTime *string // CIM datetime
}

type win32ComputerSystem struct {
	Manufacturer              *string
	Model                     *string
	TotalPhysicalMemory       *string // uint64
	NumberOfLogicalProcessors *uint32
}

type win32Processor struct {
	Name                      *string
	NumberOfCores             *uint32
	NumberOfLogicalProcessors *uint32
}

type win32BIOS struct {
	SMBIOSBIOSVersion *string
	Version           *string
	SerialNumber      *string
}

type win32LogicalDisk struct {
	DeviceID   *string
	VolumeName *string
	FileSystem *string
	Size       *string // uint64
	FreeSpace  *string // uint64
}

type win32NetworkAdapterConfiguration struct {
	Description *string
	MACAddress  *string
	IPAddress   []string
}

type win32QuickFixEngineering struct {
	HotFixID    *string
	InstalledOn *string // "11/5/2023", "20231105" or a hex FILETIME
}

// winCurrentVersion holds values of HKLM\SOFTWARE\Microsoft\Windows
// NT\CurrentVersion: the update revision and release WMI does not give,
// and a fallback when WMI fails. Empty or nil when missing.
type winCurrentVersion struct {
	ProductName      string
	DisplayVersion   string // "23H2"; older systems have only ReleaseId ("1909")
	ReleaseID        string
	CurrentVersion   string // "6.3" on every Windows since 8.1; "6.1" on 7 (and Wine 8)
	CurrentBuild     string
	UBR              *uint64
	Major, Minor     *uint64 // CurrentMajorVersionNumber, CurrentMinorVersionNumber
	InstallationType string  // "Client", "Server", "Server Core"
	InstallDate      *uint64 // Unix seconds
}

// uninstallEntry is one subkey of a registry Uninstall key.
type uninstallEntry struct {
	DisplayName     string
	DisplayVersion  string
	Publisher       string
	InstallDate     string // usually "20231105"
	ParentKeyName   string // set on updates that belong to another entry
	ReleaseType     string // "Update", "Hotfix", "Security Update", …
	SystemComponent uint64 // 1: hidden from "Programs and Features"
}

// wmiQuery returns the WQL query selecting exactly the fields of the
// struct that dst (a *[]T) holds, from class, with an optional WHERE
// clause. It never selects *.
func wmiQuery(dst any, class, where string) string {
	t := reflect.TypeOf(dst)
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	cols := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		cols = append(cols, t.Field(i).Name)
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + class
	if where != "" {
		q += " WHERE " + where
	}
	return q
}

// unreadable reports whether WMI returned rows of which no field could be
// read (Wine 8 answers every property read with E_NOTIMPL; with missing
// fields allowed that would pass as an empty, successful answer).
func unreadable(rows any) bool {
	v := reflect.ValueOf(rows)
	if v.Len() == 0 {
		return false
	}
	for i := range v.Len() {
		for _, f := range v.Index(i).Fields() {
			if !f.IsNil() {
				return false
			}
		}
	}
	return true
}

// firstWindows11Build is the first build of Windows 11, whose registry
// still says "Windows 10" in ProductName.
const firstWindows11Build = 22000

// productName is the CurrentVersion key's ProductName, with "Windows 10"
// made "Windows 11" from build 22000 on.
func productName(cv winCurrentVersion) string {
	name := text(cv.ProductName)
	if rest, ok := strings.CutPrefix(name, "Windows 10"); ok {
		if b, err := strconv.Atoi(text(cv.CurrentBuild)); err == nil && b >= firstWindows11Build {
			name = "Windows 11" + rest
		}
	}
	return name
}

// windowsVersion is the OS a Windows heartbeat names (os_version), from
// the CurrentVersion key: "Windows 11 Pro 23H2 (build 22631.2715)". ""
// when the key holds no product name.
func windowsVersion(cv winCurrentVersion) string {
	name := productName(cv)
	if name == "" {
		return ""
	}
	if r := first(text(cv.DisplayVersion), text(cv.ReleaseID)); r != "" {
		name += " " + r
	}
	if b := text(cv.CurrentBuild); b != "" {
		if cv.UBR != nil {
			b += "." + strconv.FormatUint(*cv.UBR, 10)
		}
		name += " (build " + b + ")"
	}
	return name
}

// osFromWindows builds the OS section from Win32_OperatingSystem (nil when
// the query failed) and the CurrentVersion registry key.
func osFromWindows(o *win32OperatingSystem, cv winCurrentVersion) wire.OSInfo {
	var out wire.OSInfo
	if o == nil {
		o = &win32OperatingSystem{}
	}
	out.Name = first(str(o.Caption), productName(cv))
	out.Version = str(o.Version)
	if build := text(cv.CurrentBuild); out.Version == "" && build != "" {
		switch {
		case cv.Major != nil && cv.Minor != nil:
			out.Version = strconv.FormatUint(*cv.Major, 10) + "." + strconv.FormatUint(*cv.Minor, 10) + "." + build
		case text(cv.CurrentVersion) != "":
			out.Version = text(cv.CurrentVersion) + "." + build // before Windows 10
		}
	}
	out.Release = first(text(cv.DisplayVersion), text(cv.ReleaseID))
	out.Build = first(str(o.BuildNumber), text(cv.CurrentBuild))
	if out.Build != "" && cv.UBR != nil && (text(cv.CurrentBuild) == "" || text(cv.CurrentBuild) == out.Build) {
		out.Build += "." + strconv.FormatUint(*cv.UBR, 10)
	}
	switch {
	case o.ProductType != nil && *o.ProductType == 1:
		out.Kind = wire.KindWorkstation
	case o.ProductType != nil && (*o.ProductType == 2 || *o.ProductType == 3):
		out.Kind = wire.KindServer
	case strings.EqualFold(text(cv.InstallationType), "Client"):
		out.Kind = wire.KindWorkstation
	case strings.HasPrefix(strings.ToLower(text(cv.InstallationType)), "server"):
		out.Kind = wire.KindServer
	}
	if t, ok := parseCIMDateTime(str(o.InstallDate)); ok {
		out.InstallDate = t
	} else if cv.InstallDate != nil && *cv.InstallDate > 0 && *cv.InstallDate < math.MaxInt32 {
		out.InstallDate = time.Unix(int64(*cv.InstallDate), 0).UTC()
	}
	if t, ok := parseCIMDateTime(str(o.LastBootUpTime)); ok {
		out.LastBoot = t
	}
	return out
}

// hardwareFromComputerSystem takes maker, model, memory and (as a
// fallback for Win32_Processor) the logical CPU count.
func hardwareFromComputerSystem(rows []win32ComputerSystem) wire.Hardware {
	var h wire.Hardware
	if len(rows) == 0 {
		return h
	}
	cs := rows[0]
	h.Manufacturer = meaningful(str(cs.Manufacturer))
	h.Model = meaningful(str(cs.Model))
	if n, ok := parseSize(str(cs.TotalPhysicalMemory)); ok {
		h.RAMBytes = n
	}
	if cs.NumberOfLogicalProcessors != nil {
		h.CPULogical = int(*cs.NumberOfLogicalProcessors)
	}
	return h
}

// hardwareFromProcessors sums cores and logical processors over the
// sockets and takes the first CPU's name. A zero count (Wine without
// /sys) stays zero: unknown.
func hardwareFromProcessors(rows []win32Processor) wire.Hardware {
	var h wire.Hardware
	for _, p := range rows {
		if h.CPUModel == "" {
			h.CPUModel = str(p.Name)
		}
		if p.NumberOfCores != nil {
			h.CPUCores += int(*p.NumberOfCores)
		}
		if p.NumberOfLogicalProcessors != nil {
			h.CPULogical += int(*p.NumberOfLogicalProcessors)
		}
	}
	return h
}

// hardwareFromBIOS takes the serial number (placeholders such as Wine's
// "0" or "Serial number" dropped) and the BIOS version.
func hardwareFromBIOS(rows []win32BIOS) wire.Hardware {
	var h wire.Hardware
	if len(rows) == 0 {
		return h
	}
	b := rows[0]
	h.SerialNumber = meaningful(str(b.SerialNumber))
	h.BIOSVersion = first(str(b.SMBIOSBIOSVersion), str(b.Version))
	return h
}

// disksFromWMI maps fixed logical disks; a disk without a size (a locked
// or unformatted volume) is listed with zeros.
func disksFromWMI(rows []win32LogicalDisk) []wire.Disk {
	var out []wire.Disk
	for _, d := range rows {
		mount := str(d.DeviceID)
		if mount == "" {
			continue
		}
		size, _ := parseSize(str(d.Size))
		free, _ := parseSize(str(d.FreeSpace))
		out = append(out, wire.Disk{Mount: mount, Label: str(d.VolumeName), FS: str(d.FileSystem), SizeBytes: size, FreeBytes: min(free, size)})
	}
	slices.SortFunc(out, func(a, b wire.Disk) int { return strings.Compare(a.Mount, b.Mount) })
	return out
}

// nicsFromWMI maps IP-enabled adapters; IPAddress mixes both families.
func nicsFromWMI(rows []win32NetworkAdapterConfiguration) []wire.NIC {
	var out []wire.NIC
	for _, a := range rows {
		n := wire.NIC{Name: str(a.Description), MAC: normalizeMAC(str(a.MACAddress))}
		n.IPv4, n.IPv6 = splitAddrs(a.IPAddress)
		if n.MAC == "" && len(n.IPv4)+len(n.IPv6) == 0 {
			continue
		}
		out = append(out, n)
	}
	return out
}

// hotfixesFromWMI maps Win32_QuickFixEngineering rows, dropping empty and
// "File 1" IDs (old systems list one such row per file) and duplicates.
func hotfixesFromWMI(rows []win32QuickFixEngineering) []wire.Hotfix {
	byID := map[string]int{}
	var out []wire.Hotfix
	for _, q := range rows {
		id := str(q.HotFixID)
		if id == "" || strings.EqualFold(id, "File 1") {
			continue
		}
		on := hotfixDate(str(q.InstalledOn))
		if i, ok := byID[strings.ToUpper(id)]; ok {
			if out[i].InstalledOn == "" {
				out[i].InstalledOn = on
			}
			continue
		}
		byID[strings.ToUpper(id)] = len(out)
		out = append(out, wire.Hotfix{ID: id, InstalledOn: on})
	}
	slices.SortFunc(out, func(a, b wire.Hotfix) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// releaseTypesSkipped are Uninstall entries that are updates of another
// product rather than software of their own.
var releaseTypesSkipped = map[string]bool{"update": true, "hotfix": true, "security update": true, "update rollup": true, "service pack": true, "servicepack": true}

// softwareFromRegistry maps Uninstall entries read from the 64- and 32-bit
// views (and users' hives) to packages: entries without a DisplayName,
// system components, updates of another entry (ParentKeyName,
// ReleaseType) are skipped, and the same name and version seen in several
// views is listed once.
func softwareFromRegistry(entries []uninstallEntry) []wire.Package {
	var ps []wire.Package
	for _, e := range entries {
		name := text(e.DisplayName)
		if name == "" || e.SystemComponent == 1 || text(e.ParentKeyName) != "" || releaseTypesSkipped[strings.ToLower(text(e.ReleaseType))] {
			continue
		}
		ps = append(ps, wire.Package{Name: name, Version: text(e.DisplayVersion), Publisher: text(e.Publisher), InstallDate: registryDate(e.InstallDate)})
	}
	return dedupePackages(ps)
}

// dedupePackages lists each (name, version) once — names compared without
// case — filling a missing publisher or date from the duplicates, sorted
// by name and version.
func dedupePackages(ps []wire.Package) []wire.Package {
	idx := map[string]int{}
	var out []wire.Package
	for _, p := range ps {
		key := strings.ToLower(p.Name) + "\x00" + p.Version
		if i, ok := idx[key]; ok {
			out[i].Publisher = first(out[i].Publisher, p.Publisher)
			out[i].InstallDate = first(out[i].InstallDate, p.InstallDate)
			continue
		}
		idx[key] = len(out)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b wire.Package) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// parseCIMDateTime parses a CIM datetime, "yyyymmddHHMMSS.mmmmmmsUUU"
// where sUUU is the offset from UTC in minutes ("20231105123456.000000+060"),
// into UTC. Unknown parts are '*' in CIM: an unknown offset reads as UTC,
// an unknown date or time fails. Dates before 1980 (WMI's
// "16010101000000.000000+000" stands for none) fail.
func parseCIMDateTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 14 || !digits(s[:14]) {
		return time.Time{}, false
	}
	n := func(i, j int) int { v, _ := strconv.Atoi(s[i:j]); return v }
	year, mon, day, hour, mnt, sec := n(0, 4), n(4, 6), n(6, 8), n(8, 10), n(10, 12), n(12, 14)
	if year < 1980 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || mnt > 59 || sec > 60 {
		return time.Time{}, false
	}
	var usec, offset int
	if len(s) >= 21 && s[14] == '.' && digits(s[15:21]) {
		usec = n(15, 21)
	}
	if len(s) >= 25 && (s[21] == '+' || s[21] == '-') && digits(s[22:25]) {
		offset = n(22, 25)
		if s[21] == '-' {
			offset = -offset
		}
	}
	t := time.Date(year, time.Month(mon), day, hour, mnt, sec, usec*1000, time.FixedZone("", offset*60))
	if t.Day() != day { // 31 February
		return time.Time{}, false
	}
	return t.UTC(), true
}

// registryDate reads an Uninstall InstallDate: "20231105" (the norm),
// "2023-11-05" or "11/5/2023"; anything else (there is plenty) gives "".
func registryDate(s string) string {
	return anyDate(strings.TrimSpace(s), "20060102", wire.InventoryDateLayout, "1/2/2006")
}

// hotfixDate reads Win32_QuickFixEngineering.InstalledOn: "11/5/2023" (US
// order whatever the locale), "20231105", or on some systems a FILETIME
// in hex ("01d9b6e3c4a5f000").
func hotfixDate(s string) string {
	s = strings.TrimSpace(s)
	if len(s) == 16 {
		if ft, err := strconv.ParseUint(s, 16, 64); err == nil {
			const ticksPerSecond, epochDiff = 10_000_000, 11644473600 // 1601 → 1970
			secs := int64(ft/ticksPerSecond) - epochDiff
			if t := time.Unix(secs, 0).UTC(); t.Year() >= 1990 && t.Year() < 2200 {
				return t.Format(wire.InventoryDateLayout)
			}
			return ""
		}
	}
	return anyDate(s, "1/2/2006", "20060102", wire.InventoryDateLayout)
}

func anyDate(s string, layouts ...string) string {
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil && t.Year() >= 1980 && t.Year() < 2200 {
			return t.Format(wire.InventoryDateLayout)
		}
	}
	return ""
}

// parseSize reads a byte count that WMI gives as a decimal string.
func parseSize(s string) (int64, bool) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// normalizeMAC returns a MAC address lower-case and colon-separated, or ""
// when s is not one.
func normalizeMAC(s string) string {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) == 0 {
		return ""
	}
	return hw.String()
}

// splitAddrs sorts addresses (plain or with a prefix, "10.0.0.2/24") into
// IPv4 and IPv6, in canonical form, dropping what does not parse.
func splitAddrs(addrs []string) (v4, v6 []string) {
	for _, s := range addrs {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			s = p.Addr().String()
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		a = a.Unmap()
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	return v4, v6
}

// placeholders are what firmware and hypervisors put where they know no
// maker, model or serial number.
var placeholders = map[string]bool{
	"0": true, "none": true, "n/a": true, "na": true, "null": true, "unknown": true, "invalid": true,
	"default string": true, "to be filled by o.e.m.": true, "to be filled by oem": true, "o.e.m.": true, "oem": true,
	"system manufacturer": true, "system product name": true, "system version": true, "system serial number": true,
	"not specified": true, "not applicable": true, "not available": true, "not present": true,
	"serial number": true, "chassis serial number": true, "base board serial number": true,
	"123456789": true, "0123456789": true, "1234567890": true,
}

// meaningful normalises spaces and returns "" for placeholders and serials
// of zeros.
func meaningful(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if placeholders[strings.ToLower(s)] || strings.Trim(s, "0") == "" {
		return ""
	}
	return s
}

// str returns *p with runs of white space (CPU names are padded) folded,
// or "" for nil.
func str(p *string) string {
	if p == nil {
		return ""
	}
	return text(*p)
}

func text(s string) string { return strings.Join(strings.Fields(s), " ") }

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
