package views

// InventoryView is an agent's inventory on its page, formatted.
type InventoryView struct {
	Collected, Received                    TimeText
	OSName, OSVersion, OSRelease, OSBuild  string
	OSKind                                 string
	LastBoot, Installed                    TimeText
	Manufacturer, Model, Serial, BIOS, CPU string
	Cores, Logical                         int
	RAM                                    string // "16 GiB"
	Disks                                  []DiskView
	NICs                                   []NICView
	Software                               []SoftwareRow
	SoftwareTotal                          int    // before the search
	SoftwareQ                              string // the software search
	Hotfixes                               []HotfixRow
	Errors                                 []string
	Truncated                              bool
}

// DiskView is one file system with its usage.
type DiskView struct {
	Mount, Device, FS, Size, Free string
	UsedPercent                   int
}

// NICView is one network interface.
type NICView struct {
	Name, MAC, IPs string
}

// SoftwareRow is one installed package.
type SoftwareRow struct {
	Name, Version, Publisher, Installed string
}

// HotfixRow is one installed update.
type HotfixRow struct {
	ID, Installed string
}
