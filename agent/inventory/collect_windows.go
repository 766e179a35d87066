package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/yusufpapurcu/wmi"
	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"

	"github.com/kanadehq/kanade/agent/wire"
)

// wmiClient tolerates what Wine and old Windows lack: a missing property
// or a NULL leaves the field nil instead of failing the query.
var wmiClient = &wmi.Client{AllowMissingFields: true, PtrNil: true, NonePtrZero: true}

func collectors() []collector {
	return []collector{
		{wire.SectionOS, "", collectOS},
		{wire.SectionHardware, "Win32_ComputerSystem", func(ctx context.Context, inv *wire.Inventory) error {
			rows, err := wmiRows[win32ComputerSystem]("Win32_ComputerSystem", "")
			inv.Hardware = hardwareFromComputerSystem(rows)
			return err
		}},
		{wire.SectionHardware, "Win32_Processor", func(ctx context.Context, inv *wire.Inventory) error {
			rows, err := wmiRows[win32Processor]("Win32_Processor", "")
			inv.Hardware = hardwareFromProcessors(rows)
			return err
		}},
		{wire.SectionHardware, "Win32_BIOS", func(ctx context.Context, inv *wire.Inventory) error {
			rows, err := wmiRows[win32BIOS]("Win32_BIOS", "")
			inv.Hardware = hardwareFromBIOS(rows)
			return err
		}},
		{wire.SectionDisks, "Win32_LogicalDisk", func(ctx context.Context, inv *wire.Inventory) error {
			rows, err := wmiRows[win32LogicalDisk]("Win32_LogicalDisk", "DriveType = 3")
			inv.Disks = disksFromWMI(rows)
			return err
		}},
		{wire.SectionNetwork, "Win32_NetworkAdapterConfiguration", func(ctx context.Context, inv *wire.Inventory) error {
			rows, err := wmiRows[win32NetworkAdapterConfiguration]("Win32_NetworkAdapterConfiguration", "IPEnabled = TRUE")
			inv.Network = nicsFromWMI(rows)
			return err
		}},
		{wire.SectionSoftware, "registry", collectSoftware},
		{wire.SectionHotfixes, "Win32_QuickFixEngineering", func(ctx context.Context, inv *wire.Inventory) error {
			rows, err := wmiRows[win32QuickFixEngineering]("Win32_QuickFixEngineering", "")
			inv.Hotfixes = hotfixesFromWMI(rows)
			return err
		}},
	}
}

// wmiRows runs an explicit-column query for T. A field that could not be
// loaded (ErrFieldMismatch) still returns the rows, with the error.
func wmiRows[T any](class, where string) ([]T, error) {
	var rows []T
	err := wmiClient.Query(wmiQuery(&rows, class, where), &rows)
	var mismatch *wmi.ErrFieldMismatch
	if err != nil && !errors.As(err, &mismatch) {
		return nil, err
	}
	if err == nil && unreadable(rows) {
		err = fmt.Errorf("%d rows, but no property could be read", len(rows))
	}
	return rows, err
}

// collectOS combines Win32_OperatingSystem with the CurrentVersion key;
// either one alone still gives a useful answer. When WMI fails and the
// registry answers, the section is complete but for WMI-only details (the
// last boot is then worked out from the uptime): it is not a failure, and
// the WMI error is kept as a note (see fallbackNote).
func collectOS(ctx context.Context, inv *wire.Inventory) error {
	rows, werr := wmiRows[win32OperatingSystem]("Win32_OperatingSystem", "")
	cv, rerr := readCurrentVersion()
	var o *win32OperatingSystem
	if len(rows) > 0 {
		o = &rows[0]
	}
	inv.OS = osFromWindows(o, cv)
	switch {
	case werr != nil && rerr != nil:
		return fmt.Errorf("Win32_OperatingSystem: %w; registry: %w", werr, rerr)
	case werr != nil:
		if inv.OS.LastBoot.IsZero() {
			inv.OS.LastBoot = bootFromUptime()
		}
		inv.Errors = append(inv.Errors, fallbackNote(wire.SectionOS, "the registry", fmt.Errorf("Win32_OperatingSystem: %w", werr)))
	}
	return nil
}

var procTickCount64 = windows.NewLazySystemDLL("kernel32.dll").NewProc("GetTickCount64")

// bootFromUptime is when the system started, from GetTickCount64 (the
// milliseconds since); zero when unknown.
func bootFromUptime() time.Time {
	if unsafe.Sizeof(uintptr(0)) < 8 || procTickCount64.Find() != nil {
		return time.Time{} // the 64-bit count does not fit a 32-bit return register
	}
	ms, _, _ := procTickCount64.Call()
	if ms == 0 {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(ms) * time.Millisecond).UTC().Truncate(time.Second)
}

func readCurrentVersion() (winCurrentVersion, error) {
	var cv winCurrentVersion
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Windows NT\CurrentVersion`, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if err != nil {
		return cv, fmt.Errorf("CurrentVersion: %w", err)
	}
	defer k.Close()
	cv.ProductName = regString(k, "ProductName")
	cv.DisplayVersion = regString(k, "DisplayVersion")
	cv.ReleaseID = regString(k, "ReleaseId")
	cv.CurrentVersion = regString(k, "CurrentVersion")
	cv.CurrentBuild = regString(k, "CurrentBuild")
	cv.InstallationType = regString(k, "InstallationType")
	cv.UBR = regInt(k, "UBR")
	cv.Major = regInt(k, "CurrentMajorVersionNumber")
	cv.Minor = regInt(k, "CurrentMinorVersionNumber")
	cv.InstallDate = regInt(k, "InstallDate")
	return cv, nil
}

const uninstallKey = `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`

// collectSoftware reads the Uninstall keys of HKLM in the 64- and 32-bit
// views and of every loaded user hive (per-user installs); the same
// entry seen twice is listed once.
func collectSoftware(ctx context.Context, inv *wire.Inventory) error {
	var entries []uninstallEntry
	var errs []error
	for _, view := range []struct {
		name   string
		access uint32
	}{{"64-bit", registry.WOW64_64KEY}, {"32-bit", registry.WOW64_32KEY}} {
		es, err := readUninstall(ctx, registry.LOCAL_MACHINE, uninstallKey, view.access)
		if errors.Is(err, registry.ErrNotExist) {
			continue // no 32-bit view (Wine without WoW64): nothing installed there
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("HKLM %s view: %w", view.name, err))
		}
		entries = append(entries, es...)
	}
	if len(errs) == 2 {
		return errors.Join(errs...)
	}
	// Loaded user hives: HKU\S-1-5-21-…\Software\…\Uninstall. Failures
	// here are normal (no such key for most users) and not reported.
	if users, err := registry.OpenKey(registry.USERS, "", registry.ENUMERATE_SUB_KEYS); err == nil {
		sids, _ := users.ReadSubKeyNames(-1)
		users.Close()
		for _, sid := range sids {
			if !strings.HasPrefix(sid, "S-1-5-21-") || strings.HasSuffix(sid, "_Classes") {
				continue
			}
			es, _ := readUninstall(ctx, registry.USERS, sid+`\`+uninstallKey, registry.WOW64_64KEY)
			entries = append(entries, es...)
		}
	}
	inv.Software = softwareFromRegistry(entries)
	return errors.Join(errs...)
}

func readUninstall(ctx context.Context, root registry.Key, path string, view uint32) ([]uninstallEntry, error) {
	k, err := registry.OpenKey(root, path, registry.ENUMERATE_SUB_KEYS|registry.QUERY_VALUE|view)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	names, err := k.ReadSubKeyNames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]uninstallEntry, 0, len(names))
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		sk, err := registry.OpenKey(k, name, registry.QUERY_VALUE|view)
		if err != nil {
			continue
		}
		e := uninstallEntry{
			DisplayName: regString(sk, "DisplayName"), DisplayVersion: regString(sk, "DisplayVersion"),
			Publisher: regString(sk, "Publisher"), InstallDate: regString(sk, "InstallDate"),
			ParentKeyName: regString(sk, "ParentKeyName"), ReleaseType: regString(sk, "ReleaseType"),
		}
		if v := regInt(sk, "SystemComponent"); v != nil {
			e.SystemComponent = *v
		}
		sk.Close()
		out = append(out, e)
	}
	return out, nil
}

// regString reads a REG_SZ or REG_EXPAND_SZ value (unexpanded); "" when
// missing or of another type.
func regString(k registry.Key, name string) string {
	s, _, err := k.GetStringValue(name)
	if err != nil {
		return ""
	}
	return s
}

// regInt reads a REG_DWORD or REG_QWORD value; nil when missing.
func regInt(k registry.Key, name string) *uint64 {
	v, _, err := k.GetIntegerValue(name)
	if err != nil {
		return nil
	}
	return &v
}
