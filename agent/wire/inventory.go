package wire

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
)

// Inventory reports travel from the agent to the server on
// InventorySubject(pc) into the INVENTORY stream, which keeps the newest
// report of each PC.
const (
	StreamInventory         = "INVENTORY"
	StreamInventorySubjects = "inventory.>"
	// InventoryWildcard matches every PC's inventory subject.
	InventoryWildcard = "inventory.*"
)

// InventorySubject is the subject an agent publishes its inventory on.
func InventorySubject(pc string) string { return "inventory." + pc }

// ControlInventory asks one agent (on control.pc.<pc>) to collect and
// publish its inventory now, outside its schedule ("Refresh inventory").
// Agents that do not know it ignore it.
const ControlInventory = "inventory"

// Sections of an inventory. Each is filled by one collector on the agent;
// a collector that fails names its section in Inventory.Errors
// ("software: …"), and that section is then missing or incomplete.
const (
	SectionOS       = "os"
	SectionHardware = "hardware"
	SectionDisks    = "disks"
	SectionNetwork  = "network"
	SectionSoftware = "software"
	SectionHotfixes = "hotfixes"
)

// OS kinds.
const (
	KindWorkstation = "workstation"
	KindServer      = "server"
)

// InventoryDateLayout is the layout of the date-only fields of an
// inventory (Package.InstallDate, Hotfix.InstalledOn).
const InventoryDateLayout = "2006-01-02"

// Limits of an inventory report. Validate cuts longer lists and strings
// (and sets Truncated) rather than refusing the report.
const (
	// MaxInventoryBytes bounds an encoded report; the agent drops software
	// entries (and then hotfixes) until its report fits.
	MaxInventoryBytes  = 4 << 20
	MaxPackages        = 20000
	MaxHotfixes        = 5000
	MaxDisks           = 256
	MaxNICs            = 256
	MaxNICAddrs        = 64
	MaxInventoryErrors = 64
	// MaxInventoryText bounds every string but the errors.
	MaxInventoryText = 256
	// MaxInventoryError bounds each entry of Errors.
	MaxInventoryError = 1024
	// MaxCPUs bounds cpu_cores and cpu_logical; more is nonsense.
	MaxCPUs = 1 << 16
)

// Inventory is what an agent knows about its PC: OS, hardware, disks,
// network, installed software and hotfixes. It is collected at start,
// every inventory interval and when the server asks (ControlInventory),
// and replaces the PC's previous report.
type Inventory struct {
	Protocol    int       `json:"protocol"`
	PCID        string    `json:"pc_id"`
	Hostname    string    `json:"hostname,omitempty"`
	CollectedAt time.Time `json:"collected_at"`
	OS          OSInfo    `json:"os"`
	Hardware    Hardware  `json:"hardware"`
	Disks       []Disk    `json:"disks,omitempty"`
	Network     []NIC     `json:"network,omitempty"`
	Software    []Package `json:"software,omitempty"`
	Hotfixes    []Hotfix  `json:"hotfixes,omitempty"`
	// Errors names the collectors that failed, one "section: message"
	// entry each (see Failed).
	Errors []string `json:"errors,omitempty"`
	// Truncated is set when lists or strings were cut to the limits.
	Truncated bool `json:"truncated,omitempty"`
}

// OSInfo describes the operating system.
type OSInfo struct {
	// Name is the product ("Microsoft Windows 11 Pro", "Debian GNU/Linux
	// 13 (trixie)", "macOS").
	Name string `json:"name,omitempty"`
	// Version is the numeric version ("10.0.22631", "13", "14.1").
	Version string `json:"version,omitempty"`
	// Release is the marketing release where there is one ("23H2",
	// "trixie").
	Release string `json:"release,omitempty"`
	// Build is the build ("22631.2715", the Linux kernel release, "23B74").
	Build string `json:"build,omitempty"`
	// Kind is KindWorkstation, KindServer or empty (unknown).
	Kind        string    `json:"kind,omitempty"`
	InstallDate time.Time `json:"install_date,omitzero"`
	LastBoot    time.Time `json:"last_boot,omitzero"`
}

// Hardware describes the machine. Zero values mean unknown.
type Hardware struct {
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	SerialNumber string `json:"serial_number,omitempty"`
	BIOSVersion  string `json:"bios_version,omitempty"`
	CPUModel     string `json:"cpu_model,omitempty"`
	CPUCores     int    `json:"cpu_cores,omitempty"`
	CPULogical   int    `json:"cpu_logical,omitempty"`
	RAMBytes     int64  `json:"ram_bytes,omitempty"`
}

// Disk is one local file system.
type Disk struct {
	// Mount is where it is mounted ("C:", "/home").
	Mount string `json:"mount"`
	// Device is what is mounted ("/dev/nvme0n1p2"); empty on Windows.
	Device    string `json:"device,omitempty"`
	Label     string `json:"label,omitempty"`
	FS        string `json:"fs,omitempty"`
	SizeBytes int64  `json:"size_bytes"`
	FreeBytes int64  `json:"free_bytes"`
}

// NIC is one network interface with its addresses.
type NIC struct {
	Name string `json:"name"`
	// MAC is lower-case, colon-separated ("00:15:5d:01:02:03").
	MAC  string   `json:"mac,omitempty"`
	IPv4 []string `json:"ipv4,omitempty"`
	IPv6 []string `json:"ipv6,omitempty"`
}

// Package is one installed software package.
type Package struct {
	Name      string `json:"name"`
	Version   string `json:"version,omitempty"`
	Publisher string `json:"publisher,omitempty"`
	// InstallDate is a date in InventoryDateLayout, or empty.
	InstallDate string `json:"install_date,omitempty"`
}

// Hotfix is one installed Windows update ("KB5031356").
type Hotfix struct {
	ID string `json:"id"`
	// InstalledOn is a date in InventoryDateLayout, or empty.
	InstalledOn string `json:"installed_on,omitempty"`
}

// Failed reports whether the collector of section failed; the section is
// then missing or incomplete (a server keeps what it knew before rather
// than wiping it).
func (inv *Inventory) Failed(section string) bool {
	for _, e := range inv.Errors {
		if name, _, ok := strings.Cut(e, ":"); ok && name == section {
			return true
		}
	}
	return false
}

// Validate checks an inventory before it is published or stored. It
// repairs what it can in place — over-long strings and lists are cut
// (setting Truncated), invalid UTF-8 is replaced, entries without a name
// and addresses that do not parse are dropped, unparsable dates and an
// unknown kind are cleared, free space above the size is clamped — and
// returns an error for what it cannot: a bad pc_id, a missing protocol or
// collected_at, negative or absurd counts.
func (inv *Inventory) Validate() error {
	var errs []error
	if inv.Protocol < 1 {
		errs = append(errs, errors.New("protocol must be at least 1"))
	}
	if err := ValidateID("pc_id", inv.PCID); err != nil {
		errs = append(errs, err)
	}
	if inv.CollectedAt.IsZero() {
		errs = append(errs, errors.New("collected_at is required"))
	}
	c := clipper{max: MaxInventoryText}
	c.clip(&inv.Hostname)

	o := &inv.OS
	c.clip(&o.Name, &o.Version, &o.Release, &o.Build)
	if o.Kind != KindWorkstation && o.Kind != KindServer {
		o.Kind = ""
	}

	h := &inv.Hardware
	c.clip(&h.Manufacturer, &h.Model, &h.SerialNumber, &h.BIOSVersion, &h.CPUModel)
	if h.CPUCores < 0 || h.CPUCores > MaxCPUs || h.CPULogical < 0 || h.CPULogical > MaxCPUs {
		errs = append(errs, fmt.Errorf("hardware: cpu_cores %d and cpu_logical %d must be within 0–%d", h.CPUCores, h.CPULogical, MaxCPUs))
	}
	if h.RAMBytes < 0 {
		errs = append(errs, fmt.Errorf("hardware: ram_bytes %d must not be negative", h.RAMBytes))
	}

	inv.Disks = keep(inv.Disks, func(d *Disk) bool {
		c.clip(&d.Mount, &d.Device, &d.Label, &d.FS)
		if d.SizeBytes < 0 || d.FreeBytes < 0 {
			errs = append(errs, fmt.Errorf("disks: %q: size_bytes %d and free_bytes %d must not be negative", d.Mount, d.SizeBytes, d.FreeBytes))
		}
		d.FreeBytes = min(d.FreeBytes, d.SizeBytes)
		return d.Mount != ""
	})
	inv.Disks = capList(&c, inv.Disks, MaxDisks)

	inv.Network = keep(inv.Network, func(n *NIC) bool {
		c.clip(&n.Name, &n.MAC)
		n.MAC = strings.ToLower(n.MAC)
		n.IPv4 = capList(&c, addrs(n.IPv4, true), MaxNICAddrs)
		n.IPv6 = capList(&c, addrs(n.IPv6, false), MaxNICAddrs)
		return n.Name != "" || n.MAC != ""
	})
	inv.Network = capList(&c, inv.Network, MaxNICs)

	inv.Software = keep(inv.Software, func(p *Package) bool {
		c.clip(&p.Name, &p.Version, &p.Publisher)
		p.InstallDate = date(p.InstallDate)
		return p.Name != ""
	})
	inv.Software = capList(&c, inv.Software, MaxPackages)

	inv.Hotfixes = keep(inv.Hotfixes, func(f *Hotfix) bool {
		c.clip(&f.ID)
		f.InstalledOn = date(f.InstalledOn)
		return f.ID != ""
	})
	inv.Hotfixes = capList(&c, inv.Hotfixes, MaxHotfixes)

	ec := clipper{max: MaxInventoryError}
	inv.Errors = keep(inv.Errors, func(e *string) bool { ec.clip(e); return *e != "" })
	inv.Errors = capList(&ec, inv.Errors, MaxInventoryErrors)

	if c.cut || ec.cut {
		inv.Truncated = true
	}
	return errors.Join(errs...)
}

// clipper cuts strings and lists to their limits and remembers whether it
// cut anything.
type clipper struct {
	max int
	cut bool
}

// clip trims space, replaces invalid UTF-8 and cuts each string to c.max
// bytes on a character boundary.
func (c *clipper) clip(ss ...*string) {
	for _, s := range ss {
		v := strings.TrimSpace(strings.ToValidUTF8(*s, "\uFFFD"))
		if len(v) > c.max {
			n := c.max
			for n > 0 && !utf8.RuneStart(v[n]) {
				n--
			}
			v, c.cut = strings.TrimSpace(v[:n]), true
		}
		*s = v
	}
}

// capList cuts s to n elements, noting the cut in c.
func capList[T any](c *clipper, s []T, n int) []T {
	if len(s) > n {
		c.cut = true
		return s[:n:n]
	}
	return s
}

// keep keeps, in place, the elements for which fn (which may repair
// them) returns true.
func keep[T any](s []T, fn func(*T) bool) []T {
	out := s[:0]
	for i := range s {
		if fn(&s[i]) {
			out = append(out, s[i])
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// addrs keeps the addresses of one family that parse, in canonical form,
// without duplicates.
func addrs(in []string, v4 bool) []string {
	seen := map[string]bool{}
	return keep(in, func(s *string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(*s))
		if err != nil || a.Is4() != v4 || a.Is4In6() {
			return false
		}
		*s = a.String()
		if seen[*s] {
			return false
		}
		seen[*s] = true
		return true
	})
}

// date returns s when it is a date in InventoryDateLayout, else "".
func date(s string) string {
	if _, err := time.Parse(InventoryDateLayout, s); err != nil {
		return ""
	}
	return s
}
